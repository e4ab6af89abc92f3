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

    // a backup of a JetStream node holds its stores; the stream is NATS's to back up
    let r = reqwest::Client::new()
        .post(c.url("/admin/backup"))
        .bearer_auth(support::operator_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let manifest: Value = r.json().await.unwrap();
    assert_eq!((manifest["log"].as_str(), manifest["logLastSequence"].as_u64()), (Some("jetstream"), None));
    assert!(manifest["restore"].as_str().unwrap().contains("nats stream backup"), "{manifest}");
    let path = std::path::PathBuf::from(manifest["path"].as_str().unwrap());
    assert!(path.join("store").is_dir() && path.join("public").is_dir() && !path.join("log.redb").exists());
}

#[tokio::test]
async fn requests_are_rate_limited_per_provider() {
    let nats = cireg_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _c =
        Cireg::start(&dir.path().join("data"), &["--nats", &nats.url(), "--ingest-rate", "1", "--ingest-burst", "1"]);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let provider = "synthetic-breast-consortium";
    let answer = request(&client, provider, &example("provider.registered")).await;
    assert_eq!(answer["sequence"], json!(1), "{answer}");
    let answer = request(&client, provider, &example("dataset.published")).await;
    assert_eq!(answer["status"], json!(429), "{answer}");
    // another provider has its own bucket (its event is refused for what it is, not for the rate)
    let answer = request(&client, "another-provider", &example("dataset.published")).await;
    assert_eq!(answer["status"], json!(403), "{answer}");
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

/// The passwords `deploy/nats/single-node.conf` reads from nats-server's environment.
const PASSWORDS: [(&str, &str); 3] = [
    ("CIREG_NATS_PASSWORD", "registry-secret-9f2c"),
    ("PROVIDER_SYNTHETIC_BREAST_CONSORTIUM_PASSWORD", "breast-secret-41aa"),
    ("PROVIDER_EXAMPLE_HOSPITAL_PASSWORD", "hospital-secret-77d0"),
];

fn deploy_nats() -> cireg_testkit::NatsServer {
    let config = support::repo_root().join("deploy/nats/single-node.conf");
    cireg_testkit::NatsServer::start_with_config_and_env(&std::fs::read_to_string(config).unwrap(), &PASSWORDS)
}

/// A provider's connection, as its NATS user, receiving replies under its own inbox prefix.
async fn connect_as(nats: &cireg_testkit::NatsServer, user: &str, password: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password.to_owned())
        .custom_inbox_prefix(format!("_INBOX.{user}"))
        .connect(nats.url())
        .await
        .unwrap()
}

/// A request that must not get through: the server refuses it (permissions) or nobody answers.
async fn refused(client: &async_nats::Client, subject: &str, payload: bytes::Bytes) {
    let answer = tokio::time::timeout(Duration::from_secs(2), client.request(subject.to_owned(), payload)).await;
    assert!(!matches!(answer, Ok(Ok(_))), "{subject} answered: {answer:?}");
}

#[tokio::test]
async fn deploy_config_runs_the_registry() {
    let nats = deploy_nats();
    let dir = tempfile::tempdir().unwrap();
    // the registry as its own user; the password from the environment, and kept out of the log
    let c = Cireg::start_with_env(
        &dir.path().join("data"),
        &["--nats", &nats.url(), "--nats-user", "cireg"],
        &[("CIREG_NATS_PASSWORD", PASSWORDS[0].1), ("CIREG_LOG", "debug")],
    );
    assert_eq!(c.post_event(&example("provider.registered")).await.0, 201);
    assert_eq!(c.post_event(&example("dataset.published")).await.0, 201);
    // a provider publishes with `cireg publish` as its own NATS user, by request and durably
    let examples = support::repo_root().join("schemas/examples");
    let url = nats.url();
    let as_provider = |extra: &[&str]| {
        let mut args = vec!["publish", "--to", &url, "--nats-user", "synthetic-breast-consortium"];
        args.extend(["--nats-password", PASSWORDS[1].1]);
        args.extend(extra);
        support::run_cli(&args.iter().map(|s| &**s).collect::<Vec<_>>())
    };
    let updated = examples.join("eu.cancerimage.dataset.updated.v1.json").display().to_string();
    let (ok, out, err) = as_provider(&["--timeout", "20", &updated]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("\"sequence\":3"), "{out}");
    let (ok, out, err) = as_provider(&["--submit", "--timeout", "20", &updated]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("\"duplicate\":true"), "{out}");
    c.wait_ready().await;
    assert_eq!(c.select(TITLES, "t").await.len(), 1);
    // a read of the provider's studies is in the audit stream, on the provider's own subject,
    // which its NATS user may hear
    let provider = connect_as(&nats, "synthetic-breast-consortium", PASSWORDS[1].1).await;
    let mut reads = provider.subscribe("cireg.audit.synthetic-breast-consortium").await.unwrap();
    provider.flush().await.unwrap();
    assert_eq!(c.post_event(&example("study.registered")).await.0, 201);
    c.wait_ready().await;
    let r = support::researcher_client().get(c.url("/fhir/ImagingStudy")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let heard = tokio::time::timeout(Duration::from_secs(10), reads.next()).await.unwrap().unwrap();
    let record: Value = serde_json::from_slice(&heard.payload).unwrap();
    assert_eq!((record["reader"].as_str(), record["kind"].as_str()), (Some("researcher-1"), Some("fhir-search")));
    let listed: Value = reqwest::Client::new()
        .get(c.url("/api/v1/audit"))
        .bearer_auth(support::provider_token(&["synthetic-breast-consortium"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["records"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["records"][0], record);
    // each step of an access request for its datasets reaches the provider's own subject, and
    // no other provider's; the provider decides over NATS like it publishes
    let mut requests = provider.subscribe("cireg.events.synthetic-breast-consortium.access.>").await.unwrap();
    provider.flush().await.unwrap();
    let other = connect_as(&nats, "example-hospital", PASSWORDS[2].1).await;
    let mut overheard = other.subscribe("cireg.events.synthetic-breast-consortium.access.>").await.unwrap();
    other.flush().await.unwrap();
    let alice = support::test_key().key.mint(&support::token_claims("alice", &[], true)).unwrap();
    let dataset = format!("{}/datasets/synthetic-breast-consortium/breast-mri-screening-2024", c.base);
    let created: Value = reqwest::Client::new()
        .post(c.url("/api/v1/access-requests"))
        .bearer_auth(&alice)
        .json(&json!({
            "title": "t", "purposes": ["https://w3id.org/dpv#AcademicResearch"], "description": "d",
            "ethicsApproval": "EC-1", "datasets": [dataset],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request_id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    let heard = tokio::time::timeout(Duration::from_secs(10), requests.next()).await.unwrap().unwrap();
    let event: Value = serde_json::from_slice(&heard.payload).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["subject"].as_str()),
        (Some("eu.cancerimage.access.requested.v1"), Some(request_id.as_str()))
    );
    assert_eq!(event["data"]["researcher"], "alice");
    let caught = tokio::time::timeout(Duration::from_millis(500), overheard.next()).await;
    assert!(!matches!(caught, Ok(Some(_))), "another provider heard the request: {caught:?}");
    let mut decision = example("access.decided");
    decision["subject"] = json!(request_id);
    decision["time"] =
        json!(time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap());
    let answer = provider
        .request("cireg.ingest.synthetic-breast-consortium", serde_json::to_vec(&decision).unwrap().into())
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert!(answer["sequence"].as_u64().is_some(), "{answer}");
    let r = reqwest::Client::new().get(c.url("/fhir/ImagingStudy")).bearer_auth(&alice).send().await.unwrap();
    let bundle: Value = r.json().await.unwrap();
    assert_eq!(bundle["total"], 1, "the approval is alice's permit: {bundle}");
    // nobody connects without a user
    let anonymous =
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5)).connect(nats.url()).await;
    assert!(anonymous.is_err(), "connected without a user");
    let log = c.log();
    assert!(log.contains("DEBUG"));
    for (_, secret) in PASSWORDS {
        assert!(!log.contains(secret), "a password is in the log");
    }
}

#[tokio::test]
async fn provider_users_only_reach_their_own_subjects() {
    let nats = deploy_nats();
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start_with_env(
        &dir.path().join("data"),
        &["--nats", &nats.url(), "--nats-user", "cireg"],
        &[("CIREG_NATS_PASSWORD", PASSWORDS[0].1)],
    );
    let (a_name, b_name) = ("synthetic-breast-consortium", "example-hospital");
    let a = connect_as(&nats, a_name, PASSWORDS[1].1).await;
    let b = connect_as(&nats, b_name, PASSWORDS[2].1).await;
    let b_registered = {
        let mut e = example("provider.registered");
        e["id"] = json!("b-registered");
        e["source"] = json!(format!("urn:cireg:provider:{b_name}"));
        e["subject"] = json!(b_name);
        e
    };

    // A's spies: every outcome and every inbox (the server refuses both subscriptions)
    let mut all_outcomes = a.subscribe("cireg.outcome.>").await.unwrap();
    let mut all_inboxes = a.subscribe("_INBOX.>").await.unwrap();
    let mut b_outcomes = a.subscribe(format!("cireg.outcome.{b_name}.>")).await.unwrap();
    let mut own_outcomes = a.subscribe(format!("cireg.outcome.{a_name}.>")).await.unwrap();
    let mut all_reads = a.subscribe("cireg.audit.>").await.unwrap();
    let mut b_reads = a.subscribe(format!("cireg.audit.{b_name}")).await.unwrap();
    a.flush().await.unwrap();

    // A publishes for itself, by request and by the durable submission stream
    let answer = request(&a, a_name, &example("provider.registered")).await;
    assert_eq!(answer["sequence"], json!(1), "{answer}");
    let js_a = jetstream::new(a.clone());
    let dataset = example("dataset.published");
    let id = dataset["id"].as_str().unwrap().to_owned();
    let publish = jetstream::message::PublishMessage::build().payload(bytes(&dataset)).message_id(&id);
    js_a.send_publish(format!("cireg.submit.{a_name}.{id}"), publish).await.unwrap().await.unwrap();
    // A hears its own outcomes
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(30), own_outcomes.next()).await.expect("own outcome").unwrap();
        heard.push(serde_json::from_slice::<Value>(&m.payload).unwrap());
    }
    assert_eq!(heard[1]["sequence"], json!(2), "{heard:?}");

    // B publishes for itself
    let answer = request(&b, b_name, &b_registered).await;
    assert_eq!(answer["sequence"], json!(3), "{answer}");

    // A, on its own subject, with an event that names B: refused, an error reply
    let mut as_b = b_registered.clone();
    as_b["id"] = json!("a-pretends-to-be-b");
    let answer = request(&a, a_name, &as_b).await;
    assert_eq!(answer["status"], json!(403), "{answer}");
    // A on B's subjects, on the log itself, and on the JetStream API: the server refuses
    refused(&a, &format!("cireg.ingest.{b_name}"), bytes(&as_b)).await;
    let js_refused = jetstream::new(a.clone());
    let sneaked = jetstream::message::PublishMessage::build().payload(bytes(&as_b)).message_id("sneak");
    let sent = js_refused.send_publish(format!("cireg.submit.{b_name}.sneak"), sneaked).await;
    if let Ok(ack) = sent {
        assert!(tokio::time::timeout(Duration::from_secs(3), ack).await.map(|r| r.is_err()).unwrap_or(true));
    }
    a.publish(format!("cireg.events.{a_name}.dataset.forged"), bytes(&dataset)).await.unwrap();
    for api in [
        "$JS.API.STREAM.PURGE.CIREG_EVENTS",
        "$JS.API.STREAM.DELETE.CIREG_EVENTS",
        "$JS.API.STREAM.INFO.CIREG_EVENTS",
        "$JS.API.STREAM.MSG.DELETE.CIREG_EVENTS",
        "$JS.API.CONSUMER.CREATE.CIREG_EVENTS",
        "$JS.API.STREAM.LIST",
    ] {
        refused(&a, api, bytes::Bytes::from_static(b"{}")).await;
    }
    a.flush().await.unwrap();
    // the audit record of a read of B's data, as the registry writes one
    let registry = async_nats::ConnectOptions::with_user_and_password("cireg".into(), PASSWORDS[0].1.into())
        .connect(nats.url())
        .await
        .unwrap();
    registry.publish(format!("cireg.audit.{b_name}"), bytes::Bytes::from_static(b"{}")).await.unwrap();
    registry.flush().await.unwrap();
    // what A's spies caught: nothing of B's
    for spy in [&mut all_outcomes, &mut all_inboxes, &mut b_outcomes, &mut all_reads, &mut b_reads] {
        let caught = tokio::time::timeout(Duration::from_millis(500), spy.next()).await;
        assert!(!matches!(caught, Ok(Some(_))), "a provider received another's messages: {caught:?}");
    }

    // the log holds exactly the three accepted events, and the stream is whole
    let js = jetstream::new(registry);
    let mut stream = js.get_stream(cireg_log::EVENTS_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 3);
    let subjects: Vec<String> = {
        let mut out = Vec::new();
        for seq in 1..=3 {
            out.push(stream.get_raw_message(seq).await.unwrap().subject.to_string());
        }
        out
    };
    assert!(subjects.iter().all(|s| !s.contains("forged")), "{subjects:?}");
    c.wait_ready().await;
    assert_eq!(c.select(TITLES, "t").await.len(), 1);
}

/// Makes a CA and a certificate for 127.0.0.1 signed by it, with openssl; returns the directory.
fn tls_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl (Debian package openssl) makes the test certificates");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cireg test CA",
    ]);
    std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    dir
}

#[tokio::test]
async fn the_registry_reaches_nats_over_tls() {
    let certs = tls_files();
    let file = |name: &str| certs.path().join(name).display().to_string();
    let config = format!(
        "jetstream {{\n  store_dir: /placeholder\n}}\ntls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
        file("server.pem"),
        file("server.key")
    );
    let nats = cireg_testkit::NatsServer::start_with_config(&config);
    let url = nats.url().replace("nats://", "tls://");
    // a client that does not know the CA cannot connect
    let unknown_ca = async_nats::ConnectOptions::new().require_tls(true).connect(&url).await;
    assert!(unknown_ca.is_err(), "connected over TLS without trusting the server's CA");
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--nats", &url, "--nats-tls-ca", &file("ca.pem")]);
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
    let token = support::provider_token(&["synthetic-breast-consortium"]);
    let (ok, out, _) = support::run_cli(&["publish", "--to", &c.listen, "--token", &token, &bad]);
    assert!(!ok);
    assert!(out.contains("400") && out.contains("/data/numberOfSubjects"), "{out}");
    // without a token: 401, and the command fails
    let (ok, out, _) = support::run_cli(&["publish", "--to", &c.listen, &file("dataset.updated")]);
    assert!(!ok);
    assert!(out.contains("401"), "{out}");
    let (ok, out, err) = support::run_cli(&["publish", "--to", &c.listen, "--token", &token, &file("dataset.updated")]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("201"), "{out}");
}
