//! Following the log: live (batching when behind, one by one when live) and rebuilding.

use std::{sync::Arc, time::Duration};

use cireg_log::EventLog;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{ProjectionError, Projector};

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Name of this reader (JetStream durable consumer name); one per store.
    pub reader: String,
    /// Most events folded in one transaction.
    pub max_batch: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { reader: "cireg-projector".to_owned(), max_batch: 1000 }
    }
}

/// How often a following projector has the store write its memtables out (see
/// [`Projector::flush`]): their memory is then bounded by what a node takes in this long.
const FLUSH_EVERY: Duration = Duration::from_secs(30);

async fn apply(projector: &Projector, batch: Vec<cireg_log::StoredEvent>) -> Result<u64, ProjectionError> {
    let p = projector.clone();
    tokio::task::spawn_blocking(move || p.apply_batch(&batch))
        .await
        .map_err(|e| ProjectionError::Other(format!("projector task: {e}")))?
}

/// Follows `log` until `shutdown` turns true, publishing each new checkpoint on `applied`.
/// A log that goes away, or a store that cannot be written, is retried with backoff; an event the
/// projector cannot read stops it (the log only holds validated events, so that is a defect to
/// look at, not to skip).
pub async fn run(
    projector: Projector,
    log: Arc<dyn EventLog>,
    options: RunOptions,
    applied: watch::Sender<u64>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ProjectionError> {
    let mut backoff = Duration::from_millis(200);
    let mut flushed = std::time::Instant::now();
    'reconnect: loop {
        let checkpoint = projector.checkpoint()?;
        applied.send_replace(checkpoint);
        let mut follower = match log.follow(checkpoint + 1, &options.reader).await {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "projector cannot follow the log; retrying");
                if !back_off(&mut backoff, &mut shutdown).await {
                    return Ok(());
                }
                continue 'reconnect;
            }
        };
        info!(from = checkpoint + 1, backend = log.backend(), "projector following the log");
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let batch = tokio::select! {
                b = follower.next_batch(options.max_batch, Duration::from_secs(1)) => b,
                _ = shutdown.changed() => return Ok(()),
            };
            match batch {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => {
                    let n = batch.len();
                    let seq = match apply(&projector, batch).await {
                        Ok(seq) => seq,
                        // the store could not be written (a full disk): the batch's transaction
                        // did not commit, so it is read again from the checkpoint, later
                        Err(e @ (ProjectionError::Store(_) | ProjectionError::History(_))) => {
                            warn!(error = %e, "the projector could not write the store; retrying");
                            if !back_off(&mut backoff, &mut shutdown).await {
                                return Ok(());
                            }
                            continue 'reconnect;
                        }
                        Err(e) => return Err(e),
                    };
                    if let Err(e) = follower.confirm().await {
                        warn!(error = %e, "could not confirm to the log (the store is ahead; harmless)");
                    }
                    tracing::debug!(events = n, checkpoint = seq, "applied batch");
                    applied.send_replace(seq);
                    backoff = Duration::from_millis(200);
                    if flushed.elapsed() >= FLUSH_EVERY {
                        flushed = std::time::Instant::now();
                        let p = projector.clone();
                        // the batch is committed: a flush that fails loses nothing (RocksDB's
                        // write-ahead log has it), the memory just stays until the next one
                        match tokio::task::spawn_blocking(move || p.flush()).await {
                            Ok(Ok(())) => tracing::debug!("flushed the store's memtables"),
                            Ok(Err(e)) => warn!(error = %e, "could not flush the store"),
                            Err(e) => warn!(error = %e, "flush task"),
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "lost the log; following again");
                    if !back_off(&mut backoff, &mut shutdown).await {
                        return Ok(());
                    }
                    continue 'reconnect;
                }
            }
        }
    }
}

/// Waits `backoff` (then doubles it, up to 10 s); false when shutdown came first.
async fn back_off(backoff: &mut Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(Duration::from_secs(10));
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.changed() => false,
    }
}

/// Events folded in one transaction by [`rebuild`]: large, so that a rebuild pays the fixed cost of
/// a commit (and of a bulk load of new study graphs) seldom; 10,000 study events are ~15 MB.
const REBUILD_BATCH: usize = 10_000;

/// Folds the whole log, from sequence 1 up to the log's end when called, into `projector`'s
/// (fresh) store. `progress(applied, total)` is called after each batch. The next batch is read
/// while one is applied.
pub async fn rebuild(
    projector: &Projector,
    log: Arc<dyn EventLog>,
    reader: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ProjectionError> {
    let end = log.last_seq().await.map_err(|e| ProjectionError::Other(e.to_string()))?;
    let mut checkpoint = projector.checkpoint()?;
    progress(checkpoint, end);
    if checkpoint >= end {
        return Ok(checkpoint);
    }
    let mut follower = log.follow(checkpoint + 1, reader).await.map_err(|e| ProjectionError::Other(e.to_string()))?;
    let mut applying: Option<tokio::task::JoinHandle<Result<u64, ProjectionError>>> = None;
    let mut read = checkpoint;
    while read < end {
        // read while the batch before is applied
        let batch = follower
            .next_batch(REBUILD_BATCH, Duration::from_secs(10))
            .await
            .map_err(|e| ProjectionError::Other(e.to_string()))?;
        if let Some(running) = applying.take() {
            checkpoint = applied(running).await?;
            // the rebuild's reader is thrown away after it (a stopped rebuild starts over from an
            // empty store), so confirming a batch read ahead of its application loses nothing: it
            // only keeps the log's flow control moving
            let _ = follower.confirm().await;
            progress(checkpoint.min(end), end);
        }
        // empty: nothing more to read (the last events were purged by an erasure)
        let Some(last) = batch.last().map(|e| e.seq) else { break };
        read = last;
        let p = projector.clone();
        applying = Some(tokio::task::spawn_blocking(move || p.apply_batch(&batch)));
    }
    if let Some(running) = applying {
        checkpoint = applied(running).await?;
        let _ = follower.confirm().await;
        progress(checkpoint.min(end), end);
    }
    Ok(checkpoint)
}

async fn applied(task: tokio::task::JoinHandle<Result<u64, ProjectionError>>) -> Result<u64, ProjectionError> {
    task.await.map_err(|e| ProjectionError::Other(format!("projector task: {e}")))?
}
