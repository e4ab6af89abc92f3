//! Black-box: kill -9 the projector at random points while it folds a long log; after a restart
//! the store must equal what a rebuild from sequence 1 gives.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{example, run_cli, Cireg};

/// Many dataset events: publications and updates, so batches mix new graphs and replacements.
fn many_events(n: usize) -> Vec<Value> {
    let mut events = vec![example("provider.registered")];
    for i in 0..n {
        let mut e = example("dataset.published");
        e["id"] = json!(format!("crash-publish-{i}"));
        e["subject"] = json!(format!("crash-{}", i % (n / 3).max(1)));
        if i >= n / 3 {
            // later events update the datasets published first
            e["id"] = json!(format!("crash-update-{i}"));
            e["type"] = json!("eu.cancerimage.dataset.updated.v1");
            e["data"] = json!({"numberOfSubjects": i, "version": format!("v{i}")});
        }
        events.push(e);
    }
    events
}

#[tokio::test]
async fn killed_projector_restarts_to_the_rebuilt_state() {
    let nats = cireg_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    // a writer node fills the log
    let writer = Cireg::start(
        &dir.path().join("writer"),
        &["--nats", &nats.url(), "--reader", "writer", "--public-base", "http://registry.test"],
    );
    let events = many_events(3000);
    let r = reqwest::Client::new()
        .post(writer.url("/events"))
        .bearer_auth(support::provider_token(&["synthetic-breast-consortium"]))
        .header("content-type", "application/cloudevents-batch+json")
        .body(serde_json::to_vec(&events).unwrap())
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    drop(writer);

    // a reader node folds the whole log and is killed three times on the way
    let data = dir.path().join("reader");
    let mut reader =
        Cireg::start(&data, &["--nats", &nats.url(), "--reader", "reader", "--public-base", "http://registry.test"]);
    let mut kills = 0;
    for delay_ms in [150u64, 400, 900] {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let applied = reader.metric("cireg_projector_applied_sequence").await;
        if applied < events.len() as u64 {
            kills += 1;
        }
        reader.restart();
    }
    reader.wait_ready().await;
    reader.stop();
    assert!(kills > 0, "the projector finished before any kill; the test proved nothing");

    let rebuilt = dir.path().join("rebuilt");
    let (ok, out, err) = run_cli(&[
        "rebuild",
        "--data",
        rebuilt.to_str().unwrap(),
        "--nats",
        &nats.url(),
        "--public-base",
        &reader.base,
    ]);
    assert!(ok, "{out}\n{err}");
    let (ok1, a, e1) = run_cli(&["dump", "--data", data.to_str().unwrap()]);
    let (ok2, b, e2) = run_cli(&["dump", "--data", rebuilt.to_str().unwrap()]);
    assert!(ok1 && ok2, "{e1}\n{e2}");
    assert!(a.lines().count() > 1000, "{}", a.lines().count());
    assert!(a == b, "the store after kills differs from the rebuilt one");
    // and so does its public mirror (a kill between the store's commit and the mirror's is
    // repaired at the next start)
    let (ok1, a, e1) = run_cli(&["dump", "--public", "--data", data.to_str().unwrap()]);
    let (ok2, b, e2) = run_cli(&["dump", "--public", "--data", rebuilt.to_str().unwrap()]);
    assert!(ok1 && ok2, "{e1}\n{e2}");
    assert!(a.lines().count() > 1000, "{}", a.lines().count());
    assert!(a == b, "the public mirror after kills differs from the rebuilt one");
}
