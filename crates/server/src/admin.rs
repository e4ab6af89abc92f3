//! Operating the node: `POST /admin/backup` writes a consistent copy of what the node keeps (the
//! store, its public mirror and the embedded log) while it serves. A backup is itself a data
//! directory: `cireg serve --data <backup>` serves it, and the projector catches up from the
//! log copy if the store copy is behind it.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use tracing::{error, info};

use crate::{auth, problem::problem, AppState};

/// Where backups are written, one at a time.
#[derive(Clone)]
pub struct Backups {
    dir: PathBuf,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Backups {
    /// Backups under `dir`, each in a directory named after the second it was asked for.
    pub fn new(dir: PathBuf) -> Self {
        Backups { dir, running: Arc::default() }
    }
}

/// What a backup failed on.
struct Failure {
    /// Whether the disk was full (507), else the node's own failure (500).
    no_space: bool,
    detail: String,
}

impl Failure {
    fn of(what: &str, e: impl std::fmt::Display) -> Self {
        let detail = format!("{what}: {e}");
        Failure { no_space: cireg_log::is_disk_full(&detail), detail }
    }
}

/// `POST /admin/backup`: for operators' tokens.
pub(crate) async fn backup(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = auth::operator(&state, &headers).await {
        return refusal.problem(auth::token_given(&headers));
    }
    let Some(backups) = state.backups.clone() else {
        return problem(404, "no-backups", "This node keeps no backups", "start it with --backup-dir").into_response();
    };
    let Ok(_running) = backups.running.try_lock() else {
        return problem(409, "backup-running", "A backup is being written", "ask again once it is done")
            .retry_after(10);
    };
    let now = OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let target = backups.dir.join(now.format(&format).unwrap_or_default());
    if target.exists() {
        return problem(409, "backup-exists", "A backup of this second exists", format!("{}", target.display()))
            .retry_after(1);
    }
    match write_backup(&state, &target, now).await {
        Ok(manifest) => {
            info!(path = %target.display(), "wrote a backup");
            (StatusCode::CREATED, Json(manifest)).into_response()
        }
        Err(failure) => {
            // a backup is whole or not there
            let _ = std::fs::remove_dir_all(&target);
            error!(path = %target.display(), error = %failure.detail, "a backup failed");
            if failure.no_space {
                problem(507, "insufficient-storage", "No space left for the backup", failure.detail).into_response()
            } else {
                problem(500, "backup-failed", "The backup could not be written", failure.detail).into_response()
            }
        }
    }
}

/// Writes the backup at `target`: the stores first, then the log, so that no copy of the store is
/// ahead of the copy of the log; `backup.json` last, so a directory without it is not a backup.
async fn write_backup(state: &AppState, target: &Path, now: OffsetDateTime) -> Result<Value, Failure> {
    std::fs::create_dir_all(target).map_err(|e| Failure::of("creating the backup directory", e))?;
    let (store, public, dir) = (state.store.clone(), state.public_store.clone(), target.to_owned());
    tokio::task::spawn_blocking(move || {
        // RocksDB checkpoints: hard links to the immutable files on the same file system
        store.backup(dir.join("store")).map_err(|e| Failure::of("copying the store", e))?;
        public.backup(dir.join("public")).map_err(|e| Failure::of("copying the public mirror", e))
    })
    .await
    .map_err(|e| Failure::of("the backup task", e))??;
    let log = state.ingest.log();
    let last = log.backup(&target.join("log.redb")).await.map_err(|e| Failure::of("copying the log", e))?;
    let audit =
        state.audit.backup(&target.join("audit.redb")).await.map_err(|e| Failure::of("copying the audit trail", e))?;
    let mut manifest = json!({
        "auditRecords": audit,
        "created": now.format(&Rfc3339).unwrap_or_default(),
        "path": target.display().to_string(),
        "publicBase": state.base.as_str(),
        "log": log.backend(),
        "logLastSequence": last,
    });
    if last.is_none() {
        manifest["restore"] = json!(
            "the log is kept by NATS JetStream: back it up there (nats stream backup cireg-events <dir>) \
             and restore it before starting a node on this store"
        );
    }
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Failure::of("writing backup.json", e))?;
    write_synced(&target.join("backup.json"), &bytes).map_err(|e| Failure::of("writing backup.json", e))?;
    Ok(manifest)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
