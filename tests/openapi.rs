//! The OpenAPI document covers every public HTTP endpoint, and an independent API fuzzer
//! (Schemathesis, from PyPI) finds no server error and no response outside the document, as an
//! anonymous caller, a provider and a researcher (so `/events` and `/fhir` are reached past their
//! 401s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeSet, process::Command};

use serde_json::Value;
use support::Cireg;

/// The routes the server answers (from its router), as OpenAPI paths.
const ROUTES: [&str; 45] = [
    "/",
    "/search",
    "/access",
    "/api/v1/datasets",
    "/api/v1/datasets/{provider}/{id}",
    "/api/openapi.json",
    "/api/eucaim/search",
    "/fhir/metadata",
    "/fhir/ImagingStudy",
    "/fhir/ImagingStudy/_search",
    "/fhir/ImagingStudy/{id}",
    "/fhir/ImagingStudy/{id}/_history",
    "/fhir/ImagingStudy/{id}/_history/{vid}",
    "/sparql",
    "/catalog",
    "/catalog.ttl",
    "/catalog.jsonld",
    "/catalog.rdf",
    "/catalog.nt",
    "/feed",
    "/feed/{seq}",
    "/problems",
    "/problems/{kind}",
    "/schemas",
    "/schemas/{file}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/datasets/{provider}/{dataset}",
    "/datasets/{provider}/{dataset}/distributions/{distribution}",
    "/datasets/{provider}/{dataset}/{folder}/{id}",
    "/records/{provider}/{dataset}",
    "/providers/{provider}",
    "/manufacturers/{slug}",
    "/nodes/{domain}",
    "/api/v1/nodes",
    "/api/v1/audit",
    "/api/v1/access-requests",
    "/api/v1/access-requests/{id}",
    "/api/v1/access-requests/{id}/decisions",
    "/api/v1/access-requests/{id}/revocations",
    "/api/v1/access-requests/{id}/answers",
    "/api/v1/access-requests/{id}/withdrawal",
    "/events",
    "/admin/backup",
];

fn python() -> String {
    std::env::var("CIREG_PYTHON").unwrap_or_else(|_| "/var/tmp/cireg-pyenv/bin/python".to_owned())
}

#[tokio::test]
async fn the_document_covers_every_endpoint_and_the_fuzzer_finds_no_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo", "--sparql-timeout", "2", "--request-timeout", "10"]);
    c.wait_ready().await;
    let doc: Value = reqwest::get(c.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    let documented: BTreeSet<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    let routes: BTreeSet<&str> = ROUTES.into_iter().collect();
    assert_eq!(documented, routes, "the document and the router differ");

    let check = Command::new(python()).args(["-c", "import schemathesis"]).status();
    assert!(
        matches!(check, Ok(s) if s.success()),
        "this test needs Schemathesis in the Python at {} (set CIREG_PYTHON): scripts/test.sh installs it",
        python()
    );
    let provider = support::provider_token(&["synthetic-breast-consortium"]);
    let researcher = support::researcher_token();
    for (who, token) in [("anonymous", None), ("provider", Some(provider)), ("researcher", Some(researcher))] {
        let mut cmd = Command::new(python());
        cmd.args(["-m", "schemathesis.cli", "run", &c.url("/api/openapi.json")])
            .args(["--url", &c.listen])
            .args(["--checks", "not_a_server_error,response_schema_conformance,content_type_conformance"])
            .args(["--max-examples", "15", "--seed", "7", "--request-timeout", "30", "--workers", "1"])
            .args(["--phases", "examples,coverage,fuzzing", "--generation-database", "none"])
            .current_dir(dir.path())
            .env("SCHEMATHESIS_HOOKS", "")
            .env("NO_COLOR", "1");
        if let Some(token) = &token {
            cmd.args(["--header", &format!("Authorization: Bearer {token}")]);
        }
        let out = cmd.output().expect("schemathesis runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "schemathesis as {who} found failures:\n{stdout}\n{stderr}\ncireg's log:\n{}",
            c.log()
        );
        let tail: Vec<&str> = stdout.lines().rev().take(6).collect();
        println!("schemathesis as {who}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
    }
    // the node is still well after the fuzzing
    assert_eq!(reqwest::get(c.url("/readyz")).await.unwrap().status(), 200);
}
