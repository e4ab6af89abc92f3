//! Black-box: the federation on NATS's own mechanisms, with real processes. Two national nodes
//! (their NATS from `deploy/nats/federation/national.conf`, each its own JetStream domain) and the
//! central NATS (`central.conf`), which reaches them as leaf nodes; a `cireg serve` on each
//! national NATS and `cireg serve --central de,fr` on the central one. JetStream sources the
//! national logs' catalogue events into the central stream; the central node folds and serves
//! them and takes no events. Checked: both countries' datasets reach the central catalogue,
//! their study events never reach the central log, a withdrawal propagates, and a national node
//! that is down stops nothing (its events arrive once it is back).
//!
//! Needs nats-server 2.10 or later (a stream sourcing one stream with two filters);
//! `scripts/ensure-python.sh` installs it into the tests' venv.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use cireg_log::{EventLog, JetStreamLog, JetStreamOptions};
use cireg_testkit::{free_port, nats_server_2_10_bin, NatsServer};
use serde_json::{json, Value};
use support::{example, provider_token, researcher_client, Cireg};

const REGISTRY_PASSWORD: &str = "registry-fed-3a9d";
const LEAF_PASSWORD: &str = "leaf-fed-81c2";

const DATASETS: &str = "SELECT ?d WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> } ORDER BY ?d";

/// A national NATS: its JetStream domain, and the leaf node port the central NATS connects to.
fn national_nats(domain: &str) -> (NatsServer, u16) {
    let config = std::fs::read_to_string(support::repo_root().join("deploy/nats/federation/national.conf")).unwrap();
    let leaf = free_port();
    let name = format!("nats-{domain}");
    let leaf_port = leaf.to_string();
    let env = [
        ("CIREG_NATS_NAME", name.as_str()),
        ("CIREG_NATS_HOST", "127.0.0.1"),
        ("CIREG_NATS_DOMAIN", domain),
        ("CIREG_NATS_LEAF_PORT", leaf_port.as_str()),
        ("CIREG_NATS_LEAF_PASSWORD", LEAF_PASSWORD),
        ("CIREG_NATS_PASSWORD", REGISTRY_PASSWORD),
    ];
    (NatsServer::start_with_config_env_and_bin(&config, &env, nats_server_2_10_bin()), leaf)
}

fn central_nats(leaf_ports: [u16; 2]) -> NatsServer {
    let config = std::fs::read_to_string(support::repo_root().join("deploy/nats/federation/central.conf")).unwrap();
    let remotes: Vec<String> =
        leaf_ports.iter().map(|p| format!("nats-leaf://central:{LEAF_PASSWORD}@127.0.0.1:{p}")).collect();
    let env = [
        ("CIREG_NATS_NAME", "nats-central"),
        ("CIREG_NATS_HOST", "127.0.0.1"),
        ("CIREG_NATIONAL_1", remotes[0].as_str()),
        ("CIREG_NATIONAL_2", remotes[1].as_str()),
        ("CIREG_NATS_PASSWORD", REGISTRY_PASSWORD),
    ];
    NatsServer::start_with_config_env_and_bin(&config, &env, nats_server_2_10_bin())
}

fn registry(data: &std::path::Path, nats: &NatsServer, base: &str, extra: &[&str]) -> Cireg {
    let url = nats.url();
    let mut args = vec!["--nats", url.as_str(), "--nats-user", "cireg", "--public-base", base];
    args.extend_from_slice(extra);
    Cireg::start_with_env(data, &args, &[("CIREG_NATS_PASSWORD", REGISTRY_PASSWORD)])
}

/// The example event `name`, of `provider`, about `dataset` (for dataset events).
fn event(name: &str, provider: &str, dataset: &str, id: &str) -> Value {
    let mut e = example(name);
    e["source"] = json!(format!("urn:cireg:provider:{provider}"));
    e["subject"] = json!(if name == "provider.registered" { provider } else { dataset });
    e["id"] = json!(id);
    e
}

async fn post(node: &Cireg, e: &Value) -> u16 {
    let provider = e["source"].as_str().unwrap().trim_start_matches("urn:cireg:provider:");
    node.post_event_with(e, &provider_token(&[provider])).await.0
}

/// Waits until the central catalogue holds `n` datasets; returns their IRIs.
async fn central_datasets(central: &Cireg, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = central.select(DATASETS, "d").await;
        if found.len() == n {
            return found;
        }
        assert!(Instant::now() < deadline, "the central catalogue holds {found:?}, not {n} datasets");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_central_node_folds_the_national_catalogues_and_nothing_else() {
    let (de_nats, de_leaf) = national_nats("de");
    let (mut fr_nats, fr_leaf) = national_nats("fr");
    let central_nats = central_nats([de_leaf, fr_leaf]);
    let dir = tempfile::tempdir().unwrap();
    let de = registry(&dir.path().join("de"), &de_nats, "https://registry.de.test", &[]);
    let fr = registry(&dir.path().join("fr"), &fr_nats, "https://registry.fr.test", &[]);
    let central =
        registry(&dir.path().join("central"), &central_nats, "https://registry.eu.test", &["--central", "de,fr"]);

    // each country's provider publishes a dataset; the German one also a study
    for (node, provider, dataset) in [(&de, "de-imaging", "lung-ct"), (&fr, "fr-imaging", "prostate-mr")] {
        assert_eq!(post(node, &event("provider.registered", provider, dataset, &format!("{provider}-1"))).await, 201);
        assert_eq!(post(node, &event("dataset.published", provider, dataset, &format!("{provider}-2"))).await, 201);
    }
    let mut study = example("study.registered");
    study["source"] = json!("urn:cireg:provider:de-imaging");
    study["data"]["dataset"] = json!("lung-ct");
    assert_eq!(post(&de, &study).await, 201);
    let found = central_datasets(&central, 2).await;
    assert_eq!(
        found,
        [
            "https://registry.eu.test/datasets/de-imaging/lung-ct",
            "https://registry.eu.test/datasets/fr-imaging/prostate-mr"
        ]
    );

    // the central log holds the catalogue events and no study or consent event
    let client = async_nats::ConnectOptions::with_user_and_password("cireg".into(), REGISTRY_PASSWORD.into())
        .connect(central_nats.url())
        .await
        .unwrap();
    let options = JetStreamOptions::default();
    let log = JetStreamLog::open_central(client, &["de".to_owned(), "fr".to_owned()], &options).await.unwrap();
    let subjects: Vec<String> = log.read_range(1, usize::MAX).await.unwrap().into_iter().map(|e| e.subject).collect();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(subjects.iter().all(|s| !s.contains(".subject.")), "{subjects:?}");
    // nor does the central node serve it; the German node does
    let total = |node: &Cireg| {
        let url = node.url("/fhir/ImagingStudy?_count=0");
        async move { researcher_client().get(url).send().await.unwrap().json::<Value>().await.unwrap()["total"].clone() }
    };
    assert_eq!(total(&de).await, 1);
    assert_eq!(total(&central).await, 0);
    // the central node takes no events, and says where to publish
    let refused = central.post_event(&example("provider.registered")).await;
    assert_eq!(refused.0, 403, "{}", refused.1);
    assert!(refused.1["detail"].as_str().unwrap().contains("national node"), "{}", refused.1);

    // a withdrawal at its node propagates
    let withdrawn = event("dataset.withdrawn", "de-imaging", "lung-ct", "de-imaging-3");
    assert_eq!(post(&de, &withdrawn).await, 201);
    central_datasets(&central, 1).await;

    // a national node that is down stops nothing: the others' events arrive, and its own once
    // it is back
    fr_nats.stop();
    assert_eq!(post(&de, &event("dataset.published", "de-imaging", "brain-mr", "de-imaging-4")).await, 201);
    central_datasets(&central, 2).await;
    assert_eq!(reqwest::get(central.url("/readyz")).await.unwrap().status(), 200);
    fr_nats.restart();
    fr.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = post(&fr, &event("dataset.published", "fr-imaging", "colon-ct", "fr-imaging-3")).await;
        if status == 201 || status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the French node did not take events again: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    central_datasets(&central, 3).await;
}
