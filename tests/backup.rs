//! Backups while serving: `POST /admin/backup` (operators' tokens only) writes a data directory
//! that a node serves as the node was: the log up to the backup's last sequence and nothing after
//! it, and a store that a rebuild of that log gives again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use cireg_log::{EmbeddedLog, EventLog};
use serde_json::{json, Value};
use support::{example, operator_token, provider_token, researcher_token, run_cli, Cireg};

fn study(i: usize) -> Value {
    let mut e = example("study.registered");
    e["id"] = json!(format!("backup-study-{i}"));
    e["subject"] = json!(format!("SUBJ-B{i}"));
    e["data"]["studyInstanceUid"] = json!(format!("2.25.{}", 81_000 + i));
    e
}

async fn ask_for_backup(c: &Cireg, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(c.url("/admin/backup"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_backup_taken_while_serving_is_the_node_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("backups"));
    let mut c = Cireg::start(&data, &["--backup-dir", backups.to_str().unwrap()]);
    c.wait_ready().await;
    for e in [example("provider.registered"), example("dataset.published"), study(1000)] {
        assert_eq!(c.post_event(&e).await.0, 201);
    }
    // a read of study-level data, which the audit trail records
    c.wait_ready().await;
    let read = support::researcher_client().get(c.url("/fhir/ImagingStudy")).send().await.unwrap();
    assert_eq!(read.status(), 200);

    // operators only, and the refusal says why
    let (status, problem) = ask_for_backup(&c, None).await;
    assert_eq!(status, 401, "{problem}");
    let (status, problem) = ask_for_backup(&c, Some(&researcher_token())).await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("cireg-operator"), "{problem}");
    assert!(!backups.exists(), "a refused request wrote something");

    // studies go on arriving while the backup is written
    let provider = support::provider_of(&study(0));
    let writer = {
        let (url, token) = (c.url("/events"), provider_token(&[&provider]));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..200 {
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/cloudevents+json")
                    .body(serde_json::to_vec(&study(i)).unwrap())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "study {i}: {}", r.text().await.unwrap());
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, manifest) = ask_for_backup(&c, Some(&operator_token())).await;
    assert_eq!(status, 201, "{manifest}");
    writer.await.unwrap();
    let last = manifest["logLastSequence"].as_u64().unwrap();
    let path = PathBuf::from(manifest["path"].as_str().unwrap());
    assert!(path.starts_with(&backups) && path.join("backup.json").is_file(), "{manifest}");
    assert_eq!(manifest["log"], "embedded");
    let written: Value = serde_json::from_slice(&std::fs::read(path.join("backup.json")).unwrap()).unwrap();
    assert_eq!(written, manifest);
    let audited = manifest["auditRecords"].as_u64().unwrap();
    assert!(audited >= 1, "{manifest}");
    c.stop();

    // its log is the node's log up to its last sequence
    let original = EmbeddedLog::open(&data.join("log.redb")).unwrap().read_range(1, usize::MAX).await.unwrap();
    let copy = EmbeddedLog::open(&path.join("log.redb")).unwrap().read_range(1, usize::MAX).await.unwrap();
    assert!(last >= 2 && (last as usize) <= original.len(), "{last} of {}", original.len());
    assert_eq!(copy.as_slice(), &original[..last as usize], "the backup's log is not the log as it was");
    let studies = copy.iter().filter(|e| e.subject.contains(".study.")).count();

    // it serves: the projector catches up from the log copy, every study of it is there
    let mut restored = Cireg::start(&path, &[]);
    restored.wait_ready().await;
    let count = support::researcher_client().get(restored.url("/fhir/ImagingStudy?_summary=count")).send();
    let bundle: Value = count.await.unwrap().json().await.unwrap();
    assert_eq!(bundle["total"], json!(studies), "{bundle}");
    // with the audit trail as it was (and the count just asked for)
    let audit = reqwest::Client::new()
        .get(restored.url("/api/v1/audit?limit=1000"))
        .bearer_auth(operator_token())
        .send()
        .await
        .unwrap();
    let records: Value = audit.json().await.unwrap();
    assert_eq!(records["records"].as_array().unwrap().len() as u64, audited + 1, "{records}");
    restored.stop();
    // and its store is what a rebuild of its log gives
    let path = path.to_str().unwrap();
    let (_, served, _) = run_cli(&["dump", "--data", path]);
    let (ok, out, err) = run_cli(&["rebuild", "--data", path]);
    assert!(ok, "{out}\n{err}");
    let (_, rebuilt, _) = run_cli(&["dump", "--data", path]);
    assert!(served.lines().count() > 100);
    assert_eq!(served, rebuilt, "the restored store differs from a rebuild of the restored log");
}
