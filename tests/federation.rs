//! Black-box: the federation on NATS's own mechanisms, with real processes. Two national nodes
//! (their NATS from `deploy/nats/federation/national.conf`, each its own JetStream domain) and the
//! central NATS (`central.conf`), which reaches them as leaf nodes; a `cireg serve` on each
//! national NATS and `cireg serve --central de=…,fr=…` on the central one. JetStream sources the
//! national logs' catalogue events into the central stream; the central node folds and serves
//! them and takes no events. Checked: both countries' datasets reach the central catalogue, each
//! saying which node it came from (a sub-catalogue per node, the node as publisher of its records,
//! a node facet in search) and identified by its IRI at that node; pySHACL accepts the central
//! catalogue; their study events never reach the central log, a withdrawal propagates, a
//! national node that is down stops nothing (its datasets stay, marked with when it was last
//! confirmed; its events arrive once it is back), and a central node rebuilt from nothing gets
//! everything again.
//!
//! Needs nats-server 2.10 or later (subject transforms of sourced streams);
//! `scripts/ensure-python.sh` installs it into the tests' venv.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;

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

fn central_nats_server(leaf_ports: [u16; 2]) -> NatsServer {
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

/// The values of `?x` that `query` selects from the central catalogue document (`/catalog.ttl`).
async fn in_catalogue(central: &Cireg, query: &str) -> Vec<String> {
    let turtle = reqwest::get(central.url("/catalog.ttl")).await.unwrap().text().await.unwrap();
    let store = oxigraph::store::Store::new().unwrap();
    store.load_from_reader(oxigraph::io::RdfFormat::Turtle, turtle.as_bytes()).unwrap();
    let oxigraph::sparql::QueryResults::Solutions(rows) =
        oxigraph::sparql::SparqlEvaluator::new().parse_query(query).unwrap().on_store(&store).execute().unwrap()
    else {
        panic!("not a SELECT")
    };
    rows.map(|r| r.unwrap().get("x").unwrap().to_string()).collect()
}

/// Waits until the central node sees national node `node` as `reachable`; returns its status.
async fn node_status(central: &Cireg, node: &str, reachable: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all: Value = reqwest::get(central.url("/api/v1/nodes")).await.unwrap().json().await.unwrap();
        let status = all["nodes"].as_array().unwrap().iter().find(|n| n["node"] == node).cloned();
        if let Some(s) = status.filter(|s| s["reachable"] == reachable) {
            return s;
        }
        assert!(Instant::now() < deadline, "node {node} is not reachable={reachable}: {all}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What the central catalogue says of where its datasets came from, and of their identity.
async fn provenance_and_identity(central: &Cireg) {
    // the dataset graph: identified by its IRI at its node, its record published by the node
    let query = r#"PREFIX dct: <http://purl.org/dc/terms/> PREFIX adms: <http://www.w3.org/ns/adms#>
        PREFIX foaf: <http://xmlns.com/foaf/0.1/> PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
        SELECT ?x WHERE {
          ?d dct:identifier ?id ; adms:identifier [ skos:notation ?n ] .
          ?r foaf:primaryTopic ?d ; dct:publisher ?node .
          BIND(CONCAT(STR(?d), " ", ?id, " ", STR(?n), " ", STR(?node)) AS ?x)
        } ORDER BY ?x"#;
    assert_eq!(
        central.select(query, "x").await,
        [
            "https://registry.eu.test/datasets/de-imaging/lung-ct https://registry.de.test/datasets/de-imaging/lung-ct \
             https://registry.de.test/datasets/de-imaging/lung-ct https://registry.eu.test/nodes/de",
            "https://registry.eu.test/datasets/fr-imaging/prostate-mr https://registry.fr.test/datasets/fr-imaging/prostate-mr \
             https://registry.fr.test/datasets/fr-imaging/prostate-mr https://registry.eu.test/nodes/fr"
        ]
    );
    // the catalogue: a sub-catalogue per node, published by it, listing that node's datasets
    let query = r#"PREFIX dct: <http://purl.org/dc/terms/> PREFIX dcat: <http://www.w3.org/ns/dcat#>
        SELECT ?x WHERE {
          <https://registry.eu.test/catalog> dct:hasPart ?sub ; dcat:catalog ?sub .
          ?sub a dcat:Catalog ; dct:publisher ?node ; dcat:dataset ?d ; dcat:record ?r .
          ?r <http://xmlns.com/foaf/0.1/primaryTopic> ?d .
          BIND(CONCAT(STR(?sub), " ", STR(?node), " ", STR(?d)) AS ?x)
        } ORDER BY ?x"#;
    assert_eq!(
        in_catalogue(central, query).await,
        [
            "\"https://registry.eu.test/catalog#node-de https://registry.eu.test/nodes/de \
             https://registry.eu.test/datasets/de-imaging/lung-ct\"",
            "\"https://registry.eu.test/catalog#node-fr https://registry.eu.test/nodes/fr \
             https://registry.eu.test/datasets/fr-imaging/prostate-mr\""
        ]
    );
    // the search API's node facet and filter
    let found: Value = reqwest::get(central.url("/api/v1/datasets?node=fr")).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = found["results"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["prostate-mr"], "{found}");
    assert_eq!(found["results"][0]["node"], "fr", "{found}");
    let nodes: Vec<(&str, u64)> = found["facets"]["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["value"].as_str().unwrap(), f["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(nodes, [("de", 1), ("fr", 1)], "{found}");
    let page = reqwest::get(central.url("/search")).await.unwrap().text().await.unwrap();
    assert!(page.contains("<legend>Node</legend>"), "the search page shows no node facet");
    // the node's IRI dereferences (the sub-catalogue's is a fragment of the catalogue's)
    let node =
        reqwest::Client::new().get(central.url("/nodes/de")).header("accept", "text/turtle").send().await.unwrap();
    assert_eq!(node.status(), 200);
    assert!(node.text().await.unwrap().contains("cireg node de"));
    assert_eq!(reqwest::get(central.url("/nodes/xx")).await.unwrap().status(), 404);
    // and pySHACL, with the official shapes, accepts the central catalogue
    let python = std::env::var("CIREG_PYTHON").unwrap_or_else(|_| "/var/tmp/cireg-pyenv/bin/python".to_owned());
    let out = std::process::Command::new(&python)
        .arg(support::repo_root().join("tests/python/judge.py"))
        .arg(central.url(""))
        .arg(support::repo_root().join("shapes"))
        .output()
        .unwrap_or_else(|e| panic!("running {python} (scripts/test.sh installs it; set CIREG_PYTHON): {e}"));
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}");
    assert!(report.contains("2 datasets"), "{report}");
}

#[tokio::test]
async fn the_central_node_folds_the_national_catalogues_and_nothing_else() {
    let (de_nats, de_leaf) = national_nats("de");
    let (mut fr_nats, fr_leaf) = national_nats("fr");
    let central_nats = central_nats_server([de_leaf, fr_leaf]);
    let dir = tempfile::tempdir().unwrap();
    let de = registry(&dir.path().join("de"), &de_nats, "https://registry.de.test", &[]);
    let fr = registry(&dir.path().join("fr"), &fr_nats, "https://registry.fr.test", &[]);
    let central = registry(
        &dir.path().join("central"),
        &central_nats,
        "https://registry.eu.test",
        &["--central", "de=https://registry.de.test,fr=https://registry.fr.test"],
    );

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

    // the German node's counts of its studies reach the central node as a fact, not as studies
    let counts = |base: &str| {
        format!(
            "PREFIX h: <http://healthdataportal.eu/ns/health#> SELECT ?x WHERE {{ <{base}/datasets/de-imaging/lung-ct> \
             h:numberOfUniqueIndividuals ?s ; h:numberOfRecords ?n BIND(CONCAT(STR(?s), \" \", STR(?n)) AS ?x) }}"
        )
    };
    // (each node folds its log on its own time: wait for the German node, then the central one)
    for (node, base) in [(&de, "https://registry.de.test"), (&central, "https://registry.eu.test")] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = node.select(&counts(base), "x").await;
            if seen == ["1 1"] {
                break;
            }
            assert!(Instant::now() < deadline, "{base} shows {seen:?} subjects and studies, not 1 1");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // the central log holds the catalogue events and no study or consent event
    let client = async_nats::ConnectOptions::with_user_and_password("cireg".into(), REGISTRY_PASSWORD.into())
        .connect(central_nats.url())
        .await
        .unwrap();
    let options = JetStreamOptions::default();
    let log = JetStreamLog::open_central(client, &["de".to_owned(), "fr".to_owned()], &options).await.unwrap();
    let events = log.read_range(1, usize::MAX).await.unwrap();
    let (facts, subjects): (Vec<(String, Option<String>)>, Vec<_>) =
        events.into_iter().map(|e| (e.subject, e.node)).partition(|(s, _)| s.contains(".counts."));
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(!facts.is_empty());
    for fact in &facts {
        assert_eq!(fact, &("cireg.events.de-imaging.counts.lung-ct".to_owned(), Some("de".to_owned())));
    }
    assert!(subjects.iter().all(|(s, _)| !s.contains(".subject.")), "{subjects:?}");
    // each says which node's log it came from (JetStream rewrote its subject as it sourced it)
    for (subject, node) in &subjects {
        let country = if subject.starts_with("cireg.events.de-imaging.") { "de" } else { "fr" };
        assert_eq!(node.as_deref(), Some(country), "{subject}");
    }

    // provenance and identity in the central catalogue
    provenance_and_identity(&central).await;
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
    node_status(&central, "fr", true).await;
    fr_nats.stop();
    let stopped = time::OffsetDateTime::now_utc();
    assert_eq!(post(&de, &event("dataset.published", "de-imaging", "brain-mr", "de-imaging-4")).await, 201);
    central_datasets(&central, 2).await;
    assert_eq!(reqwest::get(central.url("/readyz")).await.unwrap().status(), 200);
    // its datasets stay, marked with when the node was last confirmed
    let down = node_status(&central, "fr", false).await;
    let confirmed = time::OffsetDateTime::parse(
        down["lastConfirmed"].as_str().unwrap_or_else(|| panic!("{down}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(confirmed <= stopped + Duration::from_secs(1), "{down}, stopped at {stopped}");
    assert!(confirmed >= stopped - Duration::from_secs(60), "{down}, stopped at {stopped}");
    assert_eq!(node_status(&central, "de", true).await["reachable"], true);
    let marked = in_catalogue(
        &central,
        r#"SELECT ?x WHERE { ?sub <urn:cireg:vocab#lastConfirmed> ?t ; <http://www.w3.org/ns/dcat#dataset> ?d .
           BIND(CONCAT(STR(?sub), " ", STR(?d), " ", STR(?t)) AS ?x) }"#,
    )
    .await;
    assert_eq!(
        marked,
        [format!(
            "\"https://registry.eu.test/catalog#node-fr https://registry.eu.test/datasets/fr-imaging/prostate-mr {}\"",
            down["lastConfirmed"].as_str().unwrap()
        )]
    );
    let page = reqwest::Client::new()
        .get(central.url("/datasets/fr-imaging/prostate-mr"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("cannot be reached now; last confirmed"), "the dataset page does not say its node is down");
    fr_nats.restart();
    fr.wait_ready().await;
    node_status(&central, "fr", true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = post(&fr, &event("dataset.published", "fr-imaging", "colon-ct", "fr-imaging-3")).await;
        if status == 201 || status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the French node did not take events again: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = central_datasets(&central, 3).await;

    // a central node rebuilt from nothing (new NATS storage, new store) gets everything again
    // from the nodes' logs, withdrawal included
    drop(central);
    drop(central_nats);
    let central_nats = central_nats_server([de_leaf, fr_leaf]);
    let central = registry(
        &dir.path().join("central-again"),
        &central_nats,
        "https://registry.eu.test",
        &["--central", "de=https://registry.de.test,fr=https://registry.fr.test"],
    );
    assert_eq!(central_datasets(&central, 3).await, before);
    node_status(&central, "de", true).await;
    node_status(&central, "fr", true).await;
}

/// The national NATS's permissions for the central node's leaf connection
/// (`national.conf`, user `central`), tried from a rogue leaf node that holds those credentials:
/// it can source the node's catalogue events and counts exactly as `cireg serve --central` does,
/// and nothing else. It cannot make a consumer of study events (by the create subject, or by a
/// body that asks for another filter than the subject names, or for several), read a message,
/// look at or delete a stream, publish an event into the national log, or receive what the
/// national node's own clients publish.
#[tokio::test]
async fn a_central_node_can_source_the_catalogue_of_a_national_node_and_nothing_else() {
    let (de_nats, de_leaf) = national_nats("de");
    let national = async_nats::ConnectOptions::with_user_and_password("cireg".into(), REGISTRY_PASSWORD.into())
        .connect(de_nats.url())
        .await
        .unwrap();
    // the national node's log and facts streams, as its registry makes them, and one message of each kind
    JetStreamLog::open(national.clone(), &JetStreamOptions::default()).await.unwrap();
    cireg_log::FactsPublisher::open(national.clone(), &JetStreamOptions::default()).await.unwrap();
    let js = async_nats::jetstream::new(national.clone());
    for subject in [
        "cireg.events.de-imaging.provider",
        "cireg.events.de-imaging.dataset.lung-ct",
        "cireg.events.de-imaging.subject.patient-1",
        "cireg.facts.de-imaging.counts.lung-ct",
    ] {
        js.publish(subject, format!("{{\"from\":\"{subject}\"}}").into()).await.unwrap().await.unwrap();
    }
    let national_messages = |name: &'static str| {
        let js = js.clone();
        async move { js.get_stream(name).await.unwrap().get_info().await.unwrap().state.messages }
    };
    assert_eq!(national_messages("CIREG_EVENTS").await, 3);

    // a leaf node of its own, with the central node's credentials and no restrictions on its side
    let remote = format!("nats-leaf://central:{LEAF_PASSWORD}@127.0.0.1:{de_leaf}");
    let rogue_config = "server_name: rogue\njetstream {\n  domain: rogue\n  store_dir: x\n}\n\
                        leafnodes {\n  remotes: [ {url: $CIREG_NATIONAL_1} ]\n}\n";
    let rogue_nats = NatsServer::start_with_config_env_and_bin(
        rogue_config,
        &[("CIREG_NATIONAL_1", &remote)],
        nats_server_2_10_bin(),
    );
    let rogue = async_nats::connect(rogue_nats.url()).await.unwrap();

    // what it may do: source the catalogue events and counts, as the central node's log does
    let central =
        JetStreamLog::open_central(rogue.clone(), &["de".to_owned()], &JetStreamOptions::default()).await.unwrap();
    let rogue_js = async_nats::jetstream::new(rogue.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sourced = Vec::new();
    while sourced.len() < 3 {
        assert!(Instant::now() < deadline, "the central stream sourced only {sourced:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stream = rogue_js.get_stream(cireg_log::CENTRAL_STREAM).await.unwrap();
        let n = stream.get_info().await.unwrap().state.messages;
        sourced = Vec::new();
        for seq in 1..=n {
            sourced.push(stream.direct_get(seq).await.unwrap().subject.to_string());
        }
    }
    sourced.sort();
    assert_eq!(
        sourced,
        [
            "cireg.nodes.de.de-imaging.counts.lung-ct",
            "cireg.nodes.de.de-imaging.dataset.lung-ct",
            "cireg.nodes.de.de-imaging.provider"
        ]
    );
    let activity = central.source_activity().await.unwrap();
    assert_eq!(activity.len(), 1, "{activity:?}");
    assert_eq!(activity[0].domain, "de");

    // what it may not: each request gets an answer from the national JetStream only if the
    // permissions let it through (the answer comes back under $JSC.R, which the leaf may receive)
    let mut n = 0;
    let mut ask = |subject: String, body: Value| {
        n += 1;
        let reply = format!("$JSC.R.rogue{n}");
        let rogue = rogue.clone();
        async move {
            let mut answers = rogue.subscribe(reply.clone()).await.unwrap();
            rogue.flush().await.unwrap();
            rogue.publish_with_reply(subject, reply, body.to_string().into()).await.unwrap();
            rogue.flush().await.unwrap();
            match tokio::time::timeout(Duration::from_secs(2), answers.next()).await {
                // no answer, or the server's own "no responders" status (no payload)
                Err(_) | Ok(None) => None,
                Ok(Some(m)) if m.payload.is_empty() => None,
                Ok(Some(m)) => Some(serde_json::from_slice::<Value>(&m.payload).unwrap()),
            }
        }
    };
    let study_filter = "cireg.events.*.subject.>";
    let consumer = |name: &str, config: Value| {
        let mut config = config;
        config["name"] = json!(name);
        config["ack_policy"] = json!("none");
        config["deliver_subject"] = json!("$JS.S.rogue");
        json!({"stream_name": "CIREG_EVENTS", "config": config})
    };
    for (subject, body) in [
        ("$JS.de.API.STREAM.MSG.GET.CIREG_EVENTS".to_owned(), json!({"seq": 3})),
        ("$JS.de.API.DIRECT.GET.CIREG_EVENTS".to_owned(), json!({"seq": 3})),
        ("$JS.de.API.STREAM.INFO.CIREG_EVENTS".to_owned(), json!({})),
        ("$JS.de.API.STREAM.LIST".to_owned(), json!({})),
        ("$JS.de.API.CONSUMER.CREATE.CIREG_EVENTS".to_owned(), consumer("all", json!({}))),
        (
            format!("$JS.de.API.CONSUMER.CREATE.CIREG_EVENTS.studies.{study_filter}"),
            consumer("studies", json!({"filter_subject": study_filter})),
        ),
        ("$JS.de.API.CONSUMER.DELETE.CIREG_EVENTS.studies".to_owned(), json!({})),
        ("$JS.de.API.STREAM.PURGE.CIREG_EVENTS".to_owned(), json!({})),
        ("$JS.de.API.STREAM.DELETE.CIREG_EVENTS".to_owned(), json!({})),
        ("$JS.de.API.STREAM.DELETE.CIREG_FACTS".to_owned(), json!({})),
    ] {
        let answer = ask(subject.clone(), body).await;
        assert_eq!(answer, None, "{subject} was let through: {answer:?}");
    }
    // the create subject names an allowed filter; JetStream refuses a body that asks for another
    let allowed = "$JS.de.API.CONSUMER.CREATE.CIREG_EVENTS.{}.cireg.events.*.provider";
    for (name, config) in [
        ("other", json!({"filter_subject": study_filter})),
        ("several", json!({"filter_subjects": ["cireg.events.*.provider", study_filter]})),
        ("unfiltered", json!({})),
    ] {
        let answer = ask(allowed.replace("{}", name), consumer(name, config)).await;
        let answer = answer.unwrap_or_else(|| panic!("no answer to the consumer {name}"));
        assert!(answer["error"]["code"] == 400, "the consumer {name} was made: {answer}");
    }
    // it cannot publish into the national log, nor hear what the node's own clients publish
    rogue.publish("cireg.events.de-imaging.provider", "{\"forged\":true}".into()).await.unwrap();
    rogue.flush().await.unwrap();
    let mut overheard = rogue.subscribe("cireg.>").await.unwrap();
    rogue.flush().await.unwrap();
    national.publish("cireg.outcome.de-imaging", "{\"accepted\":true}".into()).await.unwrap();
    national.flush().await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(2), overheard.next()).await;
    assert!(heard.is_err(), "the leaf received {:?}", heard.unwrap().map(|m| m.subject));
    // the national log holds what its node published, no more and no less
    assert_eq!(national_messages("CIREG_EVENTS").await, 3);
    assert_eq!(national_messages("CIREG_FACTS").await, 1);
}
