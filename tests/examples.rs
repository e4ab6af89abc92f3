//! The provider examples in `examples/` run against a live node (a real nats-server, JetStream
//! log) and do what they say: Python over HTTP (`requests`) and NATS (`nats-py`), events made by
//! the official CloudEvents SDK in structured, batch and binary mode, curl, and Rust with
//! async-nats. Each publishes a provider, a dataset and studies, then reads them back; the test
//! checks the registry's side independently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use support::{provider_token, repo_root, Cireg};

fn python() -> String {
    std::env::var("CIREG_PYTHON").unwrap_or_else(|_| "/var/tmp/cireg-pyenv/bin/python".to_owned())
}

/// Runs an example with the node's addresses and a provider's credentials; fails the test with
/// its output unless it exits 0.
fn run(program: &Path, args: &[&str], node: &Cireg, nats: &str, provider: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .env("CIREG_URL", &node.listen)
        .env("CIREG_NATS", nats)
        .env("CIREG_PROVIDER", provider)
        .env("CIREG_TOKEN", provider_token(&[provider]))
        .env("CIREG_STUDIES", "4")
        .output()
        .unwrap_or_else(|e| panic!("running {} (scripts/test.sh installs what it needs): {e}", program.display()));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} {args:?} failed:\n{stdout}\n{stderr}", program.display());
    stdout.into_owned()
}

/// The studies of `provider` the registry holds, counted by FHIR with an all-studies token.
async fn studies_of(node: &Cireg, provider: &str) -> u64 {
    let bundle: Value = support::researcher_client()
        .get(node.url("/fhir/ImagingStudy"))
        .query(&[("dataset", format!("{provider}/example-breast-mri")), ("_summary", "count".into())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    bundle["total"].as_u64().unwrap_or_else(|| panic!("{bundle}"))
}

/// Each example's events as the log holds them: the ones of its provider, by type.
async fn published(node: &Cireg, provider: &str) -> (bool, bool) {
    let doc: Value = reqwest::get(node.url(&format!("/api/v1/datasets/{provider}/example-breast-mri")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (doc["provider"] == provider, doc["id"] == "example-breast-mri")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_provider_example_publishes_and_reads_back() {
    let nats = cireg_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Cireg::start(&dir.path().join("node"), &["--nats", &nats.url()]);
    node.wait_ready().await;
    let examples = repo_root().join("examples");
    let python = PathBuf::from(python());

    // Python over HTTP, twice: the second run meets its provider and dataset (409, taken as done)
    let out = run(&python, &[examples.join("python/publish_http.py").to_str().unwrap()], &node, &nats.url(), "py-http");
    assert!(out.contains("every study found in FHIR (4)"), "{out}");
    let out = run(&python, &[examples.join("python/publish_http.py").to_str().unwrap()], &node, &nats.url(), "py-http");
    assert!(out.contains("already done"), "{out}");
    assert_eq!(studies_of(&node, "py-http").await, 8);
    assert_eq!(published(&node, "py-http").await, (true, true));

    // Python over NATS: request/reply, then the durable submission stream
    let out = run(&python, &[examples.join("python/publish_nats.py").to_str().unwrap()], &node, &nats.url(), "py-nats");
    assert!(out.contains("4 studies registered through the submission stream"), "{out}");
    assert!(out.contains("every study found in FHIR (4)"), "{out}");
    assert_eq!(studies_of(&node, "py-nats").await, 4);

    // the CloudEvents SDK: structured (provider), binary (dataset), batch (two studies)
    let out =
        run(&python, &[examples.join("python/cloudevents_sdk.py").to_str().unwrap()], &node, &nats.url(), "ce-sdk");
    for mode in ["structured mode: 201", "binary mode: 201", "batch: 200"] {
        assert!(out.contains(mode), "{mode}: {out}");
    }
    assert_eq!(published(&node, "ce-sdk").await, (true, true));
    assert_eq!(studies_of(&node, "ce-sdk").await, 2);

    // curl
    let out = run(&examples.join("curl/publish.sh"), &[], &node, &nats.url(), "curl-provider");
    assert!(out.contains("found in FHIR"), "{out}");
    assert_eq!(studies_of(&node, "curl-provider").await, 1);

    // Rust with async-nats (built by `cargo test` as an example of this crate)
    let rust = Path::new(env!("CARGO_BIN_EXE_cireg")).parent().unwrap().join("examples/provider_nats");
    assert!(rust.is_file(), "{} is missing: `cargo test` builds the examples", rust.display());
    let out = run(&rust, &[], &node, &nats.url(), "rust-nats");
    assert!(out.contains("every study found in FHIR (4)"), "{out}");
    assert_eq!(studies_of(&node, "rust-nats").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_mode_refusals_say_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let node = Cireg::start(&dir.path().join("node"), &[]);
    node.wait_ready().await;
    let client = reqwest::Client::new();
    let token = provider_token(&["synthetic-breast-consortium"]);
    let example = support::example("provider.registered");
    let post = |content_type: &'static str, body: Vec<u8>, extra: Vec<(&'static str, String)>| {
        let mut request = client
            .post(node.url("/events"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .header("ce-specversion", "1.0")
            .header("ce-type", "eu.cancerimage.provider.registered.v1")
            .header("ce-source", "urn:cireg:provider:synthetic-breast-consortium")
            .header("ce-subject", "synthetic-breast-consortium")
            .body(body);
        for (name, value) in extra {
            request = request.header(name, value);
        }
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let data = serde_json::to_vec(&example["data"]).unwrap();
    // data that is not JSON: 415, pointing at the content type
    let (status, problem) = post("text/plain", b"hello".to_vec(), vec![("ce-id", "a1".into())]).await;
    assert_eq!(status, 415, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/datacontenttype", "{problem}");
    // a body that is not JSON: 400 at /data
    let (status, problem) = post("application/json", b"{oops".to_vec(), vec![("ce-id", "a2".into())]).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/data", "{problem}");
    // a header that is not percent-encoded UTF-8: 400 naming the attribute
    let (status, problem) = post("application/json", data.clone(), vec![("ce-id", "bad%zz".into())]).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/id", "{problem}");
    // without an id: the schema's own refusal, as in structured mode
    let (status, problem) = post("application/json", data.clone(), vec![]).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem.to_string().contains("id"), "{problem}");
    // percent-encoded attributes are decoded (the time's colons, as the SDK encodes them); the
    // event is accepted once and then answered as a re-send
    let id = vec![("ce-id", "b-1".to_owned()), ("ce-time", "2026-11-01T09%3A00%3A00Z".to_owned())];
    let (status, accepted) = post("application/json", data.clone(), id.clone()).await;
    assert_eq!(status, 201, "{accepted}");
    assert_eq!(accepted["id"], "b-1");
    let (status, again) = post("application/json", data, id).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)), "{again}");
}
