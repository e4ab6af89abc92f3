//! Black-box: the real binary with the JetStream log on a real nats-server.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{example, Cireg, TITLES};

fn bytes(v: &Value) -> bytes::Bytes {
    serde_json::to_vec(v).unwrap().into()
}

async fn request(client: &async_nats::Client, provider: &str, event: &Value) -> Value {
    let reply =
        tokio::time::timeout(Duration::from_secs(30), client.request(format!("cireg.ingest.{provider}"), bytes(event)))
            .await
            .expect("an answer in time")
            .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test]
async fn publish_over_nats_request_then_query() {
    let nats = cireg_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--nats", &nats.url()]);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let provider = "synthetic-breast-consortium";

    let answer = request(&client, provider, &example("provider.registered")).await;
    assert_eq!(answer["sequence"], json!(1), "{answer}");
    let answer = request(&client, provider, &example("dataset.published")).await;
    assert_eq!(answer["sequence"], json!(2), "{answer}");
    // a re-send is recognised
    let answer = request(&client, provider, &example("dataset.published")).await;
    assert_eq!(answer["duplicate"], json!(true), "{answer}");
    assert_eq!(answer["sequence"], json!(2));

    // an invalid event gets the same problem details as over HTTP
    let mut bad = example("dataset.published");
    bad["id"] = json!("bad-1");
    bad["data"]["countries"] = json!(["Spain"]);
    let answer = request(&client, provider, &bad).await;
    assert_eq!(answer["status"], json!(400), "{answer}");
    assert_eq!(answer["errors"][0]["pointer"], json!("/data/countries/0"));

    // a provider cannot send for another one
    let answer = request(&client, "someone-else", &example("dataset.updated")).await;
    assert_eq!(answer["status"], json!(403), "{answer}");

    // the application profile's SHACL gate answers over NATS as over HTTP
    let mut unprofiled = example("dataset.updated");
    unprofiled["id"] = json!("profile-1");
    unprofiled["data"] = json!({ "structuredData": null });
    let answer = request(&client, provider, &unprofiled).await;
    assert_eq!(answer["status"], json!(422), "{answer}");
    assert!(
        answer["shaclResults"].as_array().unwrap().iter().any(|r| r["pointer"] == json!("/data/structuredData")),
        "{answer}"
    );

    c.wait_ready().await;
    let titles = c.select(TITLES, "t").await;
    assert_eq!(titles, vec!["Breast MRI screening cohort (synthetic)".to_owned()]);

    // the change feed and the catalogue as of a time read the JetStream log too
    let feed = reqwest::get(c.url("/feed?from=1")).await.unwrap().text().await.unwrap();
    assert_eq!(feed.matches("tree:member").count(), 1, "{feed}");
    assert!(feed.contains("as:Create"), "{feed}");
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let then = reqwest::get(c.url(&format!("/catalog.nt?at={now}"))).await.unwrap().text().await.unwrap();
    assert!(then.contains("breast-mri-screening-2024"), "{then}");
    let before = reqwest::get(c.url("/catalog.nt?at=2000-01-01")).await.unwrap().text().await.unwrap();
    assert!(!before.contains("breast-mri-screening-2024"));

    // the log is the JetStream stream, with one subject per aggregate
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream(cireg_log::EVENTS_STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 2);
    let last = stream
        .get_last_raw_message_by_subject("cireg.events.synthetic-breast-consortium.dataset.breast-mri-screening-2024")
        .await
        .unwrap();
    assert_eq!(last.sequence, 2);
}

#[tokio::test]
async fn submissions_are_durable_while_cireg_is_down() {
    let nats = cireg_testkit::NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    // the registry created its streams once and is now down
    cireg_ingest::nats::ensure_streams(&js, 1).await.unwrap();
    let provider = "synthetic-breast-consortium";
    let mut outcomes = client.subscribe(format!("cireg.outcome.{provider}.>")).await.unwrap();
    let mut bad = example("dataset.published");
    bad["id"] = json!("bad-2");
    bad["data"].as_object_mut().unwrap().remove("title");
    for event in [example("provider.registered"), example("dataset.published"), bad] {
        let id = event["id"].as_str().unwrap().to_owned();
        let publish = jetstream::message::PublishMessage::build().payload(bytes(&event)).message_id(&id);
        js.send_publish(format!("cireg.submit.{provider}.{id}"), publish).await.unwrap().await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--nats", &nats.url()]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(30), outcomes.next()).await.expect("an outcome").unwrap();
        seen.push((m.subject.to_string(), serde_json::from_slice::<Value>(&m.payload).unwrap()));
    }
    assert_eq!(seen[0].0, "cireg.outcome.synthetic-breast-consortium.0b9a7c1e-4a51-4c8e-9d0b-6f3f1f0d2a01");
    assert_eq!(seen[0].1["sequence"], json!(1));
    assert_eq!(seen[1].1["sequence"], json!(2));
    assert_eq!(seen[2].0, "cireg.outcome.synthetic-breast-consortium.bad-2");
    assert_eq!(seen[2].1["status"], json!(400));
    // the submission stream is a work queue: everything taken
    let mut submissions = js.get_stream(cireg_ingest::nats::SUBMISSIONS_STREAM).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while submissions.info().await.unwrap().state.messages > 0 {
        assert!(std::time::Instant::now() < deadline, "submissions not acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.wait_ready().await;
    assert_eq!(c.select(TITLES, "t").await.len(), 1);
}

#[tokio::test]
async fn registry_rides_out_a_nats_restart() {
    let mut nats = cireg_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--nats", &nats.url()]);
    assert_eq!(c.post_event(&example("provider.registered")).await.0, 201);
    nats.restart();
    // while the client reconnects an event may be refused as unavailable (503), never lost
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = c.post_event(&example("dataset.published")).await;
        if status == 201 || status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(std::time::Instant::now() < deadline, "never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    c.wait_ready().await;
    assert_eq!(c.select(TITLES, "t").await.len(), 1);
}

#[tokio::test]
async fn deploy_config_runs_the_registry() {
    let config = support::repo_root().join("deploy/nats/single-node.conf");
    let nats = cireg_testkit::NatsServer::start_with_config(&std::fs::read_to_string(config).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--nats", &nats.url()]);
    assert_eq!(c.post_event(&example("provider.registered")).await.0, 201);
    assert_eq!(c.post_event(&example("dataset.published")).await.0, 201);
    c.wait_ready().await;
    assert_eq!(c.select(TITLES, "t").await.len(), 1);
}

#[tokio::test]
async fn cireg_publish_sends_over_nats_and_http() {
    let nats = cireg_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--nats", &nats.url()]);
    let examples = support::repo_root().join("schemas/examples");
    let file = |name: &str| examples.join(format!("eu.cancerimage.{name}.v1.json")).display().to_string();

    // a NATS request
    let (ok, out, err) = support::run_cli(&["publish", "--to", &nats.url(), &file("provider.registered")]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("\"sequence\":1"), "{out}");
    // the durable submission stream, waiting for the outcome
    let (ok, out, err) = support::run_cli(&["publish", "--to", &nats.url(), "--submit", &file("dataset.published")]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("\"sequence\":2"), "{out}");
    // HTTP; a refused event makes the command fail and prints the problem
    let bad = examples.join("invalid/negative-subjects.json").display().to_string();
    let (ok, out, _) = support::run_cli(&["publish", "--to", &c.listen, &bad]);
    assert!(!ok);
    assert!(out.contains("400") && out.contains("/data/numberOfSubjects"), "{out}");
    let (ok, out, err) = support::run_cli(&["publish", "--to", &c.listen, &file("dataset.updated")]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("201"), "{out}");
}
