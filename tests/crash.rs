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

/// The embedded log commits concurrent appends in groups: kill -9 the node while many clients
/// publish at once; every event whose 201 a client got is in the log after the restart (its
/// dataset dereferences), and none is there twice.
#[tokio::test]
async fn acknowledged_events_survive_a_kill_during_concurrent_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut node = Cireg::start(&data, &["--public-base", "http://registry.test", "--ingest-rate", "100000"]);
    node.wait_ready().await;
    let (status, body) = node.post_event(&example("provider.registered")).await;
    assert_eq!(status, 201, "{body}");
    let url = node.url("/events");
    let token = support::provider_token(&["synthetic-breast-consortium"]);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (url, token, acked) = (url.clone(), token.clone(), acked.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..10_000 {
                    let mut e = example("dataset.published");
                    let id = format!("kill-{c}-{i}");
                    e["id"] = json!(id);
                    e["subject"] = json!(id);
                    let sent = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/cloudevents+json")
                        .body(serde_json::to_vec(&e).unwrap())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push(id),
                        // the node is gone: this client is done
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // let the clients publish for a while, then kill the node under them
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.kill();
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300, "only {} events were acknowledged before the kill", acked.len());
    node.restart();
    node.wait_ready().await;
    let http = reqwest::Client::new();
    let mut missing = Vec::new();
    for id in &acked {
        let r = http
            .get(node.url(&format!("/datasets/synthetic-breast-consortium/{id}")))
            .header("accept", "text/turtle")
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // the log holds each event once: the feed lists every publication once
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut from = 1u64;
    loop {
        let page: String = http
            .get(node.url(&format!("/feed?from={from}&limit=1000")))
            .header("accept", "application/n-triples")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut last = None;
        for line in page.lines() {
            if line.contains("https://www.w3.org/ns/activitystreams#object") {
                if let Some(id) =
                    line.split("/datasets/synthetic-breast-consortium/").nth(1).and_then(|r| r.split('>').next())
                {
                    *seen.entry(id.to_owned()).or_default() += 1;
                }
            }
            if let Some(seq) =
                line.split("/feed/").nth(1).and_then(|r| r.split('>').next()).and_then(|s| s.parse::<u64>().ok())
            {
                last = Some(last.map_or(seq, |l: u64| l.max(seq)));
            }
        }
        match last {
            Some(l) if l >= from => from = l + 1,
            _ => break,
        }
    }
    for id in &acked {
        assert_eq!(seen.get(id), Some(&1), "{id} is in the feed {:?} times", seen.get(id));
    }
}
