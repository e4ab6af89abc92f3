//! Black-box: the real binary with the embedded log, driven over HTTP.
#![allow(clippy::unwrap_used)]

mod support;

const PROVIDER: &str = "synthetic-breast-consortium";

use serde_json::{json, Value};
use support::{example, Cireg, TITLES};

/// Posts `batch` (a JSON array) as the provider: the status and the body.
async fn post_batch(c: &Cireg, batch: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(c.url("/events"))
        .bearer_auth(support::provider_token(&[PROVIDER]))
        .header("content-type", "application/cloudevents-batch+json")
        .body(serde_json::to_vec(batch).unwrap())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn registered(c: &Cireg) {
    let (status, body) = c.post_event(&example("provider.registered")).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn publish_over_http_then_query_and_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    registered(&c).await;
    let (status, body) = c.post_event(&example("dataset.published")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sequence"], json!(2));
    assert_eq!(body["duplicate"], json!(false));
    // ready means the read models were built since the start, in the background
    assert_eq!(c.wait_ready().await["readModels"], json!("built"));
    let titles = c.select(TITLES, "t").await;
    assert!(titles.contains(&"Breast MRI screening cohort (synthetic)".to_owned()), "{titles:?}");

    // the update lands in the same graph, replacing the old values
    let (status, body) = c.post_event(&example("dataset.updated")).await;
    assert_eq!(status, 201, "{body}");
    c.wait_ready().await;
    let subjects = c
        .select("SELECT ?n WHERE { ?d <http://healthdataportal.eu/ns/health#numberOfUniqueIndividuals> ?n }", "n")
        .await;
    assert_eq!(subjects, vec!["436".to_owned()]);

    // the catalogue in Turtle and JSON-LD parses and lists the dataset under the public base
    for (accept, format) in [
        ("text/turtle", oxigraph::io::RdfFormat::Turtle),
        ("application/ld+json", oxigraph::io::RdfFormat::JsonLd { profile: Default::default() }),
    ] {
        let r = reqwest::Client::new().get(c.url("/catalog")).header("accept", accept).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(accept));
        let body = r.bytes().await.unwrap();
        let store = oxigraph::store::Store::new().unwrap();
        store
            .load_from_slice(oxigraph::io::RdfParser::from_format(format).with_base_iri(&c.base).unwrap(), &body)
            .unwrap();
        let dataset = oxigraph::model::NamedNode::new(format!(
            "{}/datasets/synthetic-breast-consortium/breast-mri-screening-2024",
            c.base
        ))
        .unwrap();
        let dcat_dataset = oxigraph::model::NamedNode::new("http://www.w3.org/ns/dcat#dataset").unwrap();
        assert!(
            store
                .quads_for_pattern(None, Some(dcat_dataset.as_ref()), Some(dataset.as_ref().into()), None)
                .next()
                .is_some(),
            "{accept}: catalogue does not list {dataset}"
        );
    }
    for ext in ["ttl", "jsonld", "rdf", "nt"] {
        let r = reqwest::get(c.url(&format!("/catalog.{ext}"))).await.unwrap();
        assert_eq!(r.status(), 200, "catalog.{ext}");
    }
    // every minted IRI dereferences (the listen address stands in for the public base here)
    for path in [
        "/datasets/synthetic-breast-consortium/breast-mri-screening-2024",
        "/datasets/synthetic-breast-consortium/breast-mri-screening-2024/distributions/dicom",
        "/providers/synthetic-breast-consortium",
    ] {
        let r = reqwest::Client::new().get(c.url(path)).header("accept", "application/n-triples").send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        let subject = format!("<{}{path}> ", c.base);
        assert!(body.lines().any(|l| l.starts_with(&subject)), "{path}: {body}");
    }
    let r = reqwest::get(c.url("/datasets/synthetic-breast-consortium/never-published")).await.unwrap();
    assert_eq!(r.status(), 404);

    // the landing page says the data is synthetic
    let page = reqwest::get(c.url("/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("Synthetic demo data"), "{page}");
}

#[tokio::test]
async fn invalid_events_are_refused_with_a_pointer_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    registered(&c).await;
    let before = c.metric("cireg_log_last_sequence").await;

    let mut bad = example("dataset.published");
    bad["data"]["numberOfSubjects"] = json!(-1);
    let (status, problem) = c.post_event(&bad).await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["status"], json!(400));
    assert!(
        problem["errors"].as_array().unwrap().iter().any(|e| e["pointer"] == "/data/numberOfSubjects"),
        "{problem}"
    );

    let mut bad = example("dataset.published");
    bad["data"]["imageModalities"] = json!(["MRI"]);
    let (status, problem) = c.post_event(&bad).await;
    assert_eq!(status, 400);
    assert!(
        problem["errors"].as_array().unwrap().iter().any(|e| e["pointer"] == "/data/imageModalities/0"),
        "{problem}"
    );

    // not JSON at all
    let r = reqwest::Client::new()
        .post(c.url("/events"))
        .bearer_auth(support::provider_token(&[PROVIDER]))
        .header("content-type", "application/cloudevents+json")
        .body("{\"id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // wrong media type
    let r = reqwest::Client::new()
        .post(c.url("/events"))
        .bearer_auth(support::provider_token(&[PROVIDER]))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // a body over the limit is refused before it is read whole
    let huge = vec![b' '; 17 * 1024 * 1024];
    let r = reqwest::Client::new()
        .post(c.url("/events"))
        .bearer_auth(support::provider_token(&[PROVIDER]))
        .header("content-type", "application/cloudevents+json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // an unknown path is a problem too
    let r = reqwest::get(c.url("/no/such/thing")).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // lifecycle: an update of a dataset never published is a conflict
    let (status, problem) = c.post_event(&example("dataset.updated")).await;
    assert_eq!(status, 409, "{problem}");

    assert_eq!(c.metric("cireg_log_last_sequence").await, before, "a refused event reached the log");
    c.wait_ready().await;
    assert!(c.select(TITLES, "t").await.is_empty());
}

#[tokio::test]
async fn duplicates_answer_with_the_original_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    registered(&c).await;
    let (first, body) = c.post_event(&example("dataset.published")).await;
    assert_eq!(first, 201);
    let seq = body["sequence"].clone();
    let (again, body) = c.post_event(&example("dataset.published")).await;
    assert_eq!(again, 200, "{body}");
    assert_eq!(body["sequence"], seq);
    assert_eq!(body["duplicate"], json!(true));
    assert_eq!(c.metric("cireg_log_last_sequence").await, 2);
}

#[tokio::test]
async fn concurrent_updates_one_wins_one_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    registered(&c).await;
    assert_eq!(c.post_event(&example("dataset.published")).await.0, 201);
    // two writers both read version 1 and send a change based on it
    let mut a = example("dataset.updated");
    a["id"] = json!("writer-a");
    a["data"] = json!({"version": "2.0-a"});
    let mut b = example("dataset.updated");
    b["id"] = json!("writer-b");
    b["data"] = json!({"version": "2.0-b"});
    let ((sa, ba), (sb, bb)) = tokio::join!(c.post_event(&a), c.post_event(&b));
    let mut statuses = vec![sa, sb];
    statuses.sort();
    assert_eq!(statuses, vec![201, 409], "{ba} {bb}");
    let loser = if sa == 409 { &ba } else { &bb };
    assert_eq!(loser["type"], json!(format!("{}/problems/conflict", c.base)));
    c.wait_ready().await;
    let versions = c.select("SELECT ?v WHERE { ?d <http://www.w3.org/ns/dcat#version> ?v }", "v").await;
    assert_eq!(versions.len(), 1);
    assert!(versions[0] == "2.0-a" || versions[0] == "2.0-b");
}

#[tokio::test]
async fn batch_is_taken_in_order_with_an_outcome_each() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    let mut bad = example("dataset.published");
    bad["id"] = json!("bad-one");
    bad["data"]["accessRights"] = json!("OPEN");
    let batch = json!([example("provider.registered"), example("dataset.published"), bad]);
    let (status, body) = post_batch(&c, &json!(batch)).await;
    assert_eq!(status, 207);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], json!(201));
    assert_eq!(results[1]["status"], json!(201));
    assert_eq!(results[2]["status"], json!(400));
    assert_eq!(results[2]["problem"]["errors"][0]["pointer"], json!("/2/data/accessRights"));
    assert_eq!(results[2]["problem"]["type"], json!(format!("{}/problems/invalid-event", c.base)));
}

/// Every problem's `type` is a page under the public base that says what it means and how to
/// fix it; `/problems` lists them all.
#[tokio::test]
async fn problem_types_dereference_to_their_pages() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    let mut bad = example("provider.registered");
    bad["data"]["country"] = json!(12);
    let (status, problem) = c.post_event(&bad).await;
    assert_eq!(status, 400, "{problem}");
    let kind = format!("{}/problems/invalid-event", c.base);
    assert_eq!(problem["type"], json!(kind));
    // the base is where the node listens here, so the type is fetched as it stands
    let page = reqwest::get(kind.as_str()).await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("The event is not valid") && page.contains("How to fix it"), "{page}");
    let index = reqwest::get(c.url("/problems")).await.unwrap().text().await.unwrap();
    for kind in ["invalid-event", "conflict", "profile-violation", "rate-limited", "query-timeout"] {
        assert!(index.contains(&format!("{}/problems/{kind}", c.base)), "{kind} not listed");
    }
    let missing = reqwest::get(c.url("/problems/no-such-kind")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(missing["type"], json!(format!("{}/problems/not-found", c.base)));
}

/// A batch's study events overlap (different subjects), but each subject's events keep their
/// order, and a dataset event waits for what came before it and holds back what comes after.
#[tokio::test]
async fn a_batch_of_studies_overlaps_yet_keeps_each_subjects_order() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    let study = |i: usize, pseudonym: &str, kind: &str| {
        let mut e = example("study.registered");
        e["id"] = json!(format!("batch-{kind}-{i}"));
        e["type"] = json!(format!("eu.cancerimage.study.{kind}.v1"));
        e["subject"] = json!(pseudonym);
        e["data"]["studyInstanceUid"] = json!(format!("2.25.{}", 7000 + i));
        e["data"]["description"] = json!(format!("{kind} {i}"));
        e
    };
    let mut batch = vec![example("provider.registered"), example("dataset.published")];
    for i in 0..60 {
        batch.push(study(i, &format!("SUBJ-{i}"), "registered"));
    }
    // the same studies changed in the same batch: each after its own registration
    for i in 0..60 {
        let mut update = study(i, &format!("SUBJ-{i}"), "updated");
        update["expectedversion"] = json!(1);
        batch.push(update);
    }
    let mut consent = example("subject.consent.withdrawn");
    consent["subject"] = json!("SUBJ-0");
    batch.push(consent);
    // a study of the withdrawn subject after the withdrawal is refused
    batch.push(study(99, "SUBJ-0", "registered"));
    let mut withdrawn = example("dataset.withdrawn");
    withdrawn["id"] = json!("batch-withdrawn");
    batch.push(withdrawn);
    // after the dataset's withdrawal (a barrier), a new study of it is refused
    batch.push(study(100, "SUBJ-100", "registered"));
    let (status, body) = post_batch(&c, &json!(batch)).await;
    assert_eq!(status, 207);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), batch.len());
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], json!(i), "results are in the batch's order");
    }
    let status = |i: usize| results[i]["status"].as_u64().unwrap();
    // provider, dataset, 60 registrations, 60 updates, the withdrawal of consent
    for (i, r) in results.iter().enumerate().take(123) {
        assert_eq!(r["status"], json!(201), "event {i}: {r}");
    }
    assert_eq!(status(123), 409, "a study after its subject withdrew consent: {}", results[123]);
    assert_eq!(status(124), 201, "the dataset's withdrawal: {}", results[124]);
    assert_eq!(status(125), 409, "a study of a withdrawn dataset: {}", results[125]);
    // each update was appended after its registration
    for i in 0..60 {
        let (registered, updated) = (results[2 + i]["sequence"].as_u64(), results[62 + i]["sequence"].as_u64());
        assert!(registered < updated, "study {i}: registered at {registered:?}, updated at {updated:?}");
    }
}

#[tokio::test]
async fn sparql_protocol_formats_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo", "--sparql-timeout", "2"]);
    c.wait_ready().await;
    let http = reqwest::Client::new();
    let select = "SELECT ?d WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> }";
    assert_eq!(c.select(select, "d").await.len(), 40, "the demo catalogue has 40 datasets");

    for (accept, needle) in [
        ("application/sparql-results+json", "\"bindings\""),
        ("application/sparql-results+xml", "<sparql"),
        ("text/csv", "d\r\n"),
        ("text/tab-separated-values", "?d\n"),
    ] {
        let r = http.get(c.url("/sparql")).query(&[("query", select)]).header("accept", accept).send().await.unwrap();
        assert_eq!(r.status(), 200, "{accept}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(accept), "{accept}");
        assert!(r.text().await.unwrap().contains(needle), "{accept}");
    }
    // POST form and POST direct
    let r = http.post(c.url("/sparql")).form(&[("query", select)]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(c.url("/sparql"))
        .header("content-type", "application/sparql-query")
        .body(select)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let construct =
        "CONSTRUCT { ?d a <http://www.w3.org/ns/dcat#Dataset> } WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> }";
    for accept in ["text/turtle", "application/n-triples", "application/ld+json", "application/rdf+xml"] {
        let r =
            http.get(c.url("/sparql")).query(&[("query", construct)]).header("accept", accept).send().await.unwrap();
        assert_eq!(r.status(), 200, "{accept}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(accept));
    }
    let r = http.get(c.url("/sparql")).query(&[("query", "ASK { ?s ?p ?o }")]).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["boolean"], json!(true));

    // read-only: updates are refused however they come
    let r = http.post(c.url("/sparql")).form(&[("update", "CLEAR ALL")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .post(c.url("/sparql"))
        .header("content-type", "application/sparql-update")
        .body("CLEAR ALL")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http.get(c.url("/sparql")).query(&[("query", "CLEAR ALL")]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(c.select(select, "d").await.len(), 40);

    // a syntax error names the parameter
    let r = http.get(c.url("/sparql")).query(&[("query", "SELEKT ?x")]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["pointer"], json!("query"));
    let r = http.get(c.url("/sparql")).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // the projector's bookkeeping is not visible
    let graphs = c.select("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }", "g").await;
    assert!(!graphs.iter().any(|g| g.starts_with("urn:cireg")), "{graphs:?}");

    // the time limit cancels a query that would run for ages
    let heavy = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }";
    let start = std::time::Instant::now();
    let r = http.get(c.url("/sparql")).query(&[("query", heavy)]).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], json!(format!("{}/problems/query-timeout", c.base)));
}

#[tokio::test]
async fn demo_survives_restart_and_rebuild_gives_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = Cireg::start(&data, &["--demo", "--public-base", "https://registry.example.eu"]);
    c.wait_ready().await;
    assert!(c.base.starts_with("https://registry.example.eu"));
    // IRIs come from the public base, not from where the request went
    let datasets = reqwest::get(format!(
        "{}/sparql?query={}",
        c.listen,
        urlencode("SELECT ?d WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> } LIMIT 1")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(datasets.contains("https://registry.example.eu/datasets/"), "{datasets}");
    c.stop();
    let (_, before, _) = support::run_cli(&["dump", "--data", data.to_str().unwrap()]);
    assert!(before.lines().count() > 1000);
    let (_, public_before, _) = support::run_cli(&["dump", "--public", "--data", data.to_str().unwrap()]);
    assert!(public_before.lines().count() > 1000);
    assert!(!public_before.contains("/studies/"), "the public mirror holds study data");
    // without --public-base, the store's own base is kept (it once fell back to a default)
    let (ok, out, err) = support::run_cli(&["rebuild", "--data", data.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("under the public base https://registry.example.eu (the store's own)"), "{out}");
    let (_, after, _) = support::run_cli(&["dump", "--data", data.to_str().unwrap()]);
    assert_eq!(before, after, "the rebuilt store differs");
    let (_, public_after, _) = support::run_cli(&["dump", "--public", "--data", data.to_str().unwrap()]);
    assert_eq!(public_before, public_after, "the rebuilt public mirror differs");
    // another base is taken only when asked for, and said
    let (ok, out, err) =
        support::run_cli(&["rebuild", "--data", data.to_str().unwrap(), "--public-base", "https://other.example.eu"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("(given; the store's was https://registry.example.eu)"), "{out}");
    let (_, moved, _) = support::run_cli(&["dump", "--public", "--data", data.to_str().unwrap()]);
    assert!(moved.contains("<https://other.example.eu/datasets/"), "the rebuild kept the old base");
    assert!(!moved.contains("https://registry.example.eu/"), "the old base is left in the mirror");
    // `serve` without --public-base serves under the store's base, wherever it listens
    let mut c = Cireg::start(&data, &[]);
    c.wait_ready().await;
    assert!(c.base.starts_with("https://other.example.eu"), "{}", c.base);
    c.stop();
    // and refuses, with what to do, a base the store was not built for
    let (ok, out, err) = support::run_cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--public-base",
        "https://registry.example.eu",
    ]);
    assert!(!ok, "{out}");
    assert!(err.contains("cireg rebuild --public-base https://registry.example.eu"), "{err}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
