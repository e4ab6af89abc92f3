//! Black-box: who reads which studies, with real signed tokens and GA4GH Passport visas against
//! the real binary. A researcher reads the studies of the datasets a visa of a trusted issuer
//! grants, and no other (FHIR search, read, `_history`, SPARQL however it names graphs); a
//! forged, expired, untrusted or conditional visa grants nothing; a visa that expires stops
//! access at once; a provider reads its own studies; the all-studies role reads all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::BTreeSet, time::Duration};

use cireg_auth::{DevKey, DevToken, DevVisa};
use serde_json::{json, Value};
use support::{example, test_key, token_claims, Cireg};

const BASE: &str = "https://registry.example.eu";
const P1: &str = "synthetic-breast-consortium";
const P2: &str = "synthetic-lung-network";
const DAC: &str = "https://dac.example.eu/";

fn dataset_iri(provider: &str, id: &str) -> String {
    format!("{BASE}/datasets/{provider}/{id}")
}

/// The catalogue: P1 with datasets `a` and `b`, P2 with `c`; studies (dataset, pseudonym, UID).
fn events() -> (Vec<Value>, Vec<(&'static str, &'static str, String)>) {
    let mut out = vec![example("provider.registered")];
    let mut p2 = example("provider.registered");
    p2["id"] = json!("p2-registered");
    p2["source"] = json!(format!("urn:cireg:provider:{P2}"));
    p2["subject"] = json!(P2);
    out.push(p2);
    for (provider, dataset) in [(P1, "a"), (P1, "b"), (P2, "c")] {
        let mut d = example("dataset.published");
        d["id"] = json!(format!("published-{dataset}"));
        d["source"] = json!(format!("urn:cireg:provider:{provider}"));
        d["subject"] = json!(dataset);
        out.push(d);
    }
    let studies = [("a", "SUBJ-A1"), ("a", "SUBJ-A2"), ("b", "SUBJ-B1"), ("b", "SUBJ-B2"), ("c", "SUBJ-C1")];
    let mut listed = Vec::new();
    for (k, (dataset, pseudonym)) in studies.into_iter().enumerate() {
        let provider = if dataset == "c" { P2 } else { P1 };
        let uid = format!("2.25.9{k}00");
        let mut s = example("study.registered");
        s["id"] = json!(format!("study-{k}"));
        s["source"] = json!(format!("urn:cireg:provider:{provider}"));
        s["subject"] = json!(pseudonym);
        s["data"]["dataset"] = json!(dataset);
        s["data"]["studyInstanceUid"] = json!(uid);
        for (i, series) in s["data"]["series"].as_array_mut().unwrap().iter_mut().enumerate() {
            series["uid"] = json!(format!("{uid}.{i}"));
            // (get_mut: indexing a missing member of a mutable Value would add it as null)
            if let Some(instances) = series.get_mut("instances").and_then(Value::as_array_mut) {
                for (j, instance) in instances.iter_mut().enumerate() {
                    instance["uid"] = json!(format!("{uid}.{i}.{j}"));
                }
            }
        }
        out.push(s);
        listed.push((dataset, pseudonym, uid));
    }
    (out, listed)
}

struct Keys {
    dac: DevKey,
    rogue: DevKey,
    _dir: tempfile::TempDir,
    dac_jwks: std::path::PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let (dac, _) = DevKey::load_or_create(&dir.path().join("dac.pem")).unwrap();
    let (rogue, _) = DevKey::load_or_create(&dir.path().join("rogue.pem")).unwrap();
    let dac_jwks = dir.path().join("dac.json");
    dac.write_jwks(&dac_jwks).unwrap();
    Keys { dac, rogue, _dir: dir, dac_jwks }
}

fn visa(dataset: &str) -> DevVisa {
    let committee = "https://dac.example.eu/committees/imaging";
    DevVisa {
        asserted_ago: Duration::from_secs(60),
        ..DevVisa::grant(DAC, "alice", dataset, committee, Duration::from_secs(3600))
    }
}

fn token(subject: &str, researcher: bool, providers: &[&str], visas: Vec<String>) -> String {
    test_key().key.mint(&DevToken { visas, ..token_claims(subject, providers, researcher) }).unwrap()
}

/// The studies a FHIR search shows the token (by Study Instance UID), and the Bundle's total.
async fn fhir_uids(c: &Cireg, token: &str, query: &str) -> (BTreeSet<String>, u64) {
    let r = reqwest::Client::new()
        .get(c.url(&format!("/fhir/ImagingStudy?_count=100{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let bundle: Value = r.json().await.unwrap();
    let uids = bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    e["resource"]["identifier"][0]["value"].as_str().unwrap().trim_start_matches("urn:oid:").to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    (uids, bundle["total"].as_u64().unwrap())
}

/// The FHIR resource id of each study, by UID (read with the all-studies role).
async fn resource_ids(c: &Cireg) -> std::collections::BTreeMap<String, String> {
    let all = test_key().key.mint(&DevToken { all_studies: true, ..token_claims("steward", &[], false) }).unwrap();
    let r = reqwest::Client::new().get(c.url("/fhir/ImagingStudy?_count=100")).bearer_auth(&all).send().await.unwrap();
    let bundle: Value = r.json().await.unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let uid = e["resource"]["identifier"][0]["value"].as_str().unwrap().trim_start_matches("urn:oid:");
            (uid.to_owned(), e["resource"]["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

async fn status_of(c: &Cireg, token: &str, path: &str) -> u16 {
    reqwest::Client::new().get(c.url(path)).bearer_auth(token).send().await.unwrap().status().as_u16()
}

/// A SPARQL request's body as the token sees it.
async fn sparql(c: &Cireg, token: &str, params: &[(&str, &str)]) -> String {
    let r = reqwest::Client::new()
        .get(c.url("/sparql"))
        .query(params)
        .bearer_auth(token)
        .header("accept", "application/sparql-results+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn studies_are_read_per_dataset_by_visa_provider_or_role() {
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let visa_issuer = format!("{DAC}={}", keys.dac_jwks.display());
    let c = Cireg::start(&dir.path().join("data"), &["--public-base", BASE, "--visa-issuer", &visa_issuer]);
    let (events, studies) = events();
    for e in &events {
        let (status, body) = c.post_event(e).await;
        assert_eq!(status, 201, "{body}");
    }
    c.wait_ready().await;
    let uids_of = |datasets: &[&str]| -> BTreeSet<String> {
        studies.iter().filter(|(d, _, _)| datasets.contains(d)).map(|(_, _, uid)| uid.clone()).collect()
    };
    let ids = resource_ids(&c).await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    let id_of = |uid: &str| ids[uid].clone();

    // anonymous: 401; a token that is nobody who may read studies: 403
    let r = reqwest::get(c.url("/fhir/ImagingStudy")).await.unwrap();
    assert_eq!(r.status(), 401);
    let nobody = token("nobody", false, &[], Vec::new());
    assert_eq!(status_of(&c, &nobody, "/fhir/ImagingStudy").await, 403);

    // a researcher without a permit: nothing, and a study is not found
    let bare = token("carol", true, &[], Vec::new());
    assert_eq!(fhir_uids(&c, &bare, "").await, (BTreeSet::new(), 0));
    let a1 = id_of(&studies[0].2);
    assert_eq!(status_of(&c, &bare, &format!("/fhir/ImagingStudy/{a1}")).await, 404);

    // a visa for `a`, and visas for `b` that must grant nothing: forged (another key under the
    // issuer's kid), of an untrusted issuer, expired, with conditions, of another type
    let b = dataset_iri(P1, "b");
    let visas = vec![
        keys.dac.mint_visa(&visa(&dataset_iri(P1, "a"))).unwrap(),
        keys.rogue.mint_visa_with_kid(&visa(&b), keys.dac.kid()).unwrap(),
        keys.rogue.mint_visa(&DevVisa { issuer: "https://rogue.example/".into(), ..visa(&b) }).unwrap(),
        keys.dac.mint_visa(&DevVisa { expired_ago: Some(Duration::from_secs(120)), ..visa(&b) }).unwrap(),
        keys.dac
            .mint_visa(&DevVisa { conditions: Some(json!([[{"type": "AffiliationAndRole"}]])), ..visa(&b) })
            .unwrap(),
        keys.dac.mint_visa(&DevVisa { kind: "ResearcherStatus".into(), ..visa(&b) }).unwrap(),
    ];
    let alice = token("alice", true, &[], visas);
    let (seen, total) = fhir_uids(&c, &alice, "").await;
    assert_eq!((seen, total), (uids_of(&["a"]), 2));
    // searching for another dataset, by IRI or by provider/id, or by its subject finds nothing
    assert_eq!(fhir_uids(&c, &alice, &format!("&dataset={b}")).await.1, 0);
    assert_eq!(fhir_uids(&c, &alice, &format!("&dataset={P1}/b")).await.1, 0);
    assert_eq!(fhir_uids(&c, &alice, "&patient=SUBJ-B1").await.1, 0);
    assert_eq!(fhir_uids(&c, &alice, "&_count=0").await.1, 2, "the total counts only what it may read");
    let b1 = id_of(&studies[2].2);
    for path in [
        format!("/fhir/ImagingStudy/{b1}"),
        format!("/fhir/ImagingStudy/{b1}/_history"),
        format!("/fhir/ImagingStudy/{b1}/_history/1"),
    ] {
        assert_eq!(status_of(&c, &alice, &path).await, 404, "{path}");
    }
    for path in [
        format!("/fhir/ImagingStudy/{a1}"),
        format!("/fhir/ImagingStudy/{a1}/_history"),
        format!("/fhir/ImagingStudy/{a1}/_history/1"),
    ] {
        assert_eq!(status_of(&c, &alice, &path).await, 200, "{path}");
    }
    // a cached search of someone who reads more is never served to her
    let all = test_key().key.mint(&DevToken { all_studies: true, ..token_claims("steward", &[], false) }).unwrap();
    assert_eq!(fhir_uids(&c, &all, "&modality=MR").await.0, uids_of(&["a", "b", "c"]));
    assert_eq!(fhir_uids(&c, &alice, "&modality=MR").await.0, uids_of(&["a"]));

    // SPARQL: the studies of `a`, however the query names graphs
    let graph_of = |uid: &str| format!("{BASE}/studies/{}", id_of(uid));
    let (a_graph, b_graph) = (graph_of(&studies[0].2), graph_of(&studies[2].2));
    let study_class = "https://w3id.org/cireg/imaging#ImagingStudy";
    let all_studies = format!("SELECT ?g WHERE {{ GRAPH ?g {{ ?s a <{study_class}> }} }}");
    let body = sparql(&c, &alice, &[("query", &all_studies)]).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let graphs: BTreeSet<String> = v["results"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["g"]["value"].as_str().unwrap().to_owned())
        .collect();
    let a_graphs: BTreeSet<String> = uids_of(&["a"]).iter().map(|u| graph_of(u)).collect();
    assert_eq!(graphs, a_graphs);
    let union = format!("SELECT ?s WHERE {{ ?s a <{study_class}> }}");
    assert_eq!(
        serde_json::from_str::<Value>(&sparql(&c, &alice, &[("query", &union)]).await).unwrap()["results"]["bindings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let from = format!("SELECT * FROM <{b_graph}> WHERE {{ ?s ?p ?o }}");
    let from_named = format!("SELECT * FROM NAMED <{b_graph}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}");
    let named = format!("SELECT * WHERE {{ GRAPH <{b_graph}> {{ ?s ?p ?o }} }}");
    let b_uid = studies[2].2.clone();
    for params in [
        vec![("query", from.as_str())],
        vec![("query", from_named.as_str())],
        vec![("query", named.as_str())],
        vec![("query", "SELECT * WHERE { ?s ?p ?o }"), ("default-graph-uri", b_graph.as_str())],
        vec![("query", "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }"), ("named-graph-uri", b_graph.as_str())],
    ] {
        let body = sparql(&c, &alice, &params).await;
        assert!(!body.contains(&b_uid) && !body.contains("SUBJ-B1"), "{params:?}: {body}");
    }
    let body = sparql(&c, &alice, &[("query", &format!("ASK {{ GRAPH <{a_graph}> {{ ?s ?p ?o }} }}"))]).await;
    assert!(body.contains("true"), "{body}");

    // a visa that expires: access stops with it, though the token is still valid
    let short = keys.dac.mint_visa(&DevVisa { lifetime: Duration::from_secs(3), ..visa(&b) }).unwrap();
    let bob = token("bob", true, &[], vec![short]);
    assert_eq!(fhir_uids(&c, &bob, "").await.0, uids_of(&["b"]));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(fhir_uids(&c, &bob, "").await, (BTreeSet::new(), 0));
    assert!(!sparql(&c, &bob, &[("query", &all_studies)]).await.contains("/studies/"));

    // a provider reads its own studies (no researcher role needed), not another's
    let p2 = token("p2-staff", false, &[P2], Vec::new());
    assert_eq!(fhir_uids(&c, &p2, "").await.0, uids_of(&["c"]));
    assert_eq!(status_of(&c, &p2, &format!("/fhir/ImagingStudy/{a1}")).await, 404);
    // the all-studies role reads every study
    assert_eq!(fhir_uids(&c, &all, "").await, (uids_of(&["a", "b", "c"]), 5));

    // the audit trail: every read, and nothing else (no record of what was not found or empty)
    let records = |token: String, query: &'static str| {
        let c = &c;
        async move {
            let r = reqwest::Client::new()
                .get(c.url(&format!("/api/v1/audit{query}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["records"].as_array().unwrap().clone()
        }
    };
    let kinds = |records: &[Value], reader: &str| -> Vec<String> {
        let mut kinds: Vec<String> =
            records.iter().filter(|r| r["reader"] == reader).map(|r| r["kind"].as_str().unwrap().to_owned()).collect();
        kinds.sort();
        kinds
    };
    let mine = records(alice.clone(), "").await;
    let expected: Vec<String> = [vec!["fhir-history"; 2], vec!["fhir-read"], vec!["fhir-search"; 3], vec!["sparql"; 8]]
        .concat()
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(kinds(&mine, "alice"), expected, "{mine:#?}");
    assert!(mine.iter().all(|r| r["reader"] == "alice"), "a researcher sees its own reads only");
    let a = dataset_iri(P1, "a");
    for r in &mine {
        assert_eq!(r["datasets"], json!([a]), "{r}");
        assert_eq!(r["providers"], json!([P1]), "{r}");
    }
    let read = mine.iter().find(|r| r["kind"] == "fhir-read").unwrap();
    assert_eq!(
        (read["request"].as_str().unwrap(), read["results"].as_u64()),
        (format!("/fhir/ImagingStudy/{a1}").as_str(), Some(1))
    );
    let counted = mine.iter().find(|r| r["request"].as_str().unwrap().contains("_count=0")).unwrap();
    assert_eq!(counted["results"], 2, "a count alone is a read of the count");
    // the providers: each the reads of its own data, the researchers' and the role's
    let p1_token = token("p1-staff", false, &[P1], Vec::new());
    let p1 = records(p1_token.clone(), "").await;
    assert_eq!(kinds(&p1, "alice"), expected);
    assert_eq!(kinds(&p1, "bob"), ["fhir-search"]);
    assert_eq!(kinds(&p1, "steward"), ["fhir-search"; 3]);
    assert!(kinds(&p1, "p2-staff").is_empty() && kinds(&p1, "carol").is_empty(), "{p1:#?}");
    let p2_records = records(p2.clone(), "").await;
    assert_eq!(kinds(&p2_records, "p2-staff"), ["fhir-search"]);
    assert_eq!(kinds(&p2_records, "steward"), ["fhir-search"; 3]);
    assert!(kinds(&p2_records, "alice").is_empty() && kinds(&p2_records, "bob").is_empty());
    assert_eq!(records(p1_token.clone(), "?reader=bob").await.len(), 1);
    assert_eq!(records(p1_token.clone(), "?limit=2").await.len(), 2);
    assert!(records(p1_token.clone(), "?until=2000-01-01T00:00:00Z").await.is_empty());
    assert_eq!(records(p1_token.clone(), "?since=2000-01-01T00:00:00%2B01:00").await.len(), p1.len());
    // and what nobody may see, or ask in a wrong form
    for (token, query, status) in [
        (p2.clone(), format!("?provider={P1}"), 403),
        (alice.clone(), "?reader=bob".to_owned(), 403),
        (alice.clone(), format!("?provider={P1}"), 403),
        (nobody.clone(), String::new(), 403),
        (p1_token.clone(), "?since=yesterday".to_owned(), 400),
        (p1_token.clone(), "?limit=0".to_owned(), 400),
        (p1_token.clone(), "?bogus=1".to_owned(), 400),
    ] {
        let r = reqwest::Client::new()
            .get(c.url(&format!("/api/v1/audit{query}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{query}");
        if status == 400 {
            let problem: Value = r.json().await.unwrap();
            let named = query.trim_start_matches('?').split('=').next().unwrap();
            assert_eq!(problem["errors"][0]["pointer"], named, "{problem}");
        }
    }
    assert_eq!(reqwest::get(c.url("/api/v1/audit")).await.unwrap().status(), 401);
}

/// An RFC 3339 instant `seconds` from now.
fn in_seconds(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A JSON request of `token`: (status, body).
async fn call(c: &Cireg, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = match method {
        "GET" => client.get(c.url(path)),
        _ => client.post(c.url(path)),
    };
    request = request.bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Each dataset of a request as the answer shows it: IRI → status.
fn statuses(request: &Value) -> std::collections::BTreeMap<String, String> {
    request["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["dataset"].as_str().unwrap().to_owned(), d["status"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn access_requests_are_decided_per_dataset_by_their_holders_and_grant_exactly_that() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--public-base", BASE]);
    let (events, studies) = events();
    for e in &events {
        let (status, body) = c.post_event(e).await;
        assert_eq!(status, 201, "{body}");
    }
    c.wait_ready().await;
    let uids_of = |datasets: &[&str]| -> BTreeSet<String> {
        studies.iter().filter(|(d, _, _)| datasets.contains(d)).map(|(_, _, uid)| uid.clone()).collect()
    };
    let (a, b, cc) = (dataset_iri(P1, "a"), dataset_iri(P1, "b"), dataset_iri(P2, "c"));
    let alice = token("alice", true, &[], Vec::new());
    let bob = token("bob", true, &[], Vec::new());
    let p1 = token("p1-staff", false, &[P1], Vec::new());
    let p2 = token("p2-staff", false, &[P2], Vec::new());
    let request = |datasets: Vec<&str>| {
        json!({
            "title": "Radiomics of response",
            "purposes": ["https://w3id.org/dpv#AcademicResearch"],
            "description": "A model of treatment response.",
            "ethicsApproval": "EC-2026-117",
            "datasets": datasets,
        })
    };

    // what is refused, and where
    let (status, p) = call(&c, "POST", "/api/v1/access-requests", &p1, Some(request(vec![&a]))).await;
    assert_eq!(status, 403, "a provider's token is no researcher's: {p}");
    let mut bad = request(vec![&a]);
    bad["purposes"] = json!(["research"]);
    let (status, p) = call(&c, "POST", "/api/v1/access-requests", &alice, Some(bad)).await;
    assert_eq!((status, p["errors"][0]["pointer"].as_str()), (400, Some("/purposes/0")), "{p}");
    let (status, p) =
        call(&c, "POST", "/api/v1/access-requests", &alice, Some(request(vec![&a, "https://elsewhere.example/x"])))
            .await;
    assert_eq!((status, p["errors"][0]["pointer"].as_str()), (400, Some("/datasets/1")), "{p}");
    let unknown = dataset_iri(P2, "never-published");
    let (status, p) = call(&c, "POST", "/api/v1/access-requests", &alice, Some(request(vec![&a, &unknown]))).await;
    assert_eq!((status, p["errors"][0]["pointer"].as_str()), (409, Some("/datasets/1")), "{p}");
    // ... and a refused request leaves nothing standing (its part at P1 was withdrawn)
    // (the compensating withdrawal reaches the read models within moments: seen lagging once
    // under a loaded machine)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, listed) = call(&c, "GET", "/api/v1/access-requests?status=requested", &alice, None).await;
        if listed["requests"] == json!([]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // a provider may not write a researcher's events itself
    let mut forged = example("access.requested");
    forged["source"] = json!(format!("urn:cireg:provider:{P1}"));
    forged["data"]["datasets"] = json!(["a"]);
    assert_eq!(c.post_event_with(&forged, &p1).await.0, 403);

    // alice asks P1 for `a` and P2 for `c` in one request
    let (status, r) = call(&c, "POST", "/api/v1/access-requests", &alice, Some(request(vec![&a, &cc]))).await;
    assert_eq!(status, 201, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(statuses(&r), [(a.clone(), "requested".into()), (cc.clone(), "requested".into())].into());
    assert_eq!(r["researcher"], "alice");
    assert_eq!(fhir_uids(&c, &alice, "").await.1, 0, "nothing before a decision");
    let path = format!("/api/v1/access-requests/{id}");
    // each data holder sees its own part; another researcher nothing
    let (_, seen) = call(&c, "GET", &path, &p1, None).await;
    assert_eq!(statuses(&seen).into_keys().collect::<Vec<_>>(), std::slice::from_ref(&a));
    let (_, listed) = call(&c, "GET", "/api/v1/access-requests?status=requested", &p2, None).await;
    assert_eq!(listed["requests"].as_array().unwrap().len(), 1);
    assert_eq!(statuses(&listed["requests"][0]).into_keys().collect::<Vec<_>>(), std::slice::from_ref(&cc));
    assert_eq!(call(&c, "GET", &path, &bob, None).await.0, 404);
    let (_, none) = call(&c, "GET", "/api/v1/access-requests", &bob, None).await;
    assert_eq!(none["requests"], json!([]));

    // a provider decides only on its own datasets
    let approve = |dataset: &str, until: String| json!({"dataset": dataset, "decision": "approved", "until": until});
    let decisions = format!("{path}/decisions");
    let (status, p) = call(&c, "POST", &decisions, &p2, Some(approve(&a, in_seconds(3600)))).await;
    assert_eq!(status, 403, "{p}");
    let (status, p) = call(&c, "POST", &decisions, &p1, Some(approve(&cc, in_seconds(3600)))).await;
    assert_eq!(status, 403, "{p}");
    let (status, p) = call(&c, "POST", &decisions, &p1, Some(json!({"dataset": a, "decision": "approved"}))).await;
    assert_eq!((status, p["errors"][0]["pointer"].as_str()), (400, Some("")), "an approval needs until: {p}");
    let (status, p) = call(&c, "POST", &decisions, &p1, Some(approve(&a, in_seconds(-60)))).await;
    assert_eq!((status, p["errors"][0]["pointer"].as_str()), (400, Some("/until")), "{p}");

    // P1 approves `a`: alice reads its studies, and no other (FHIR and SPARQL)
    let (status, r) = call(&c, "POST", &decisions, &p1, Some(approve(&a, in_seconds(3600)))).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(statuses(&r)[&a], "approved");
    assert_eq!(fhir_uids(&c, &alice, "").await, (uids_of(&["a"]), 2));
    let study_class = "https://w3id.org/cireg/imaging#ImagingStudy";
    let all_studies = format!("SELECT ?g WHERE {{ GRAPH ?g {{ ?s a <{study_class}> }} }}");
    let body = sparql(&c, &alice, &[("query", &all_studies)]).await;
    assert_eq!(body.matches("/studies/").count(), 2, "{body}");
    assert_eq!(fhir_uids(&c, &bob, "").await.1, 0, "the permit is alice's");
    // decided once: 409, with where the request stands
    let (status, p) = call(&c, "POST", &decisions, &p1, Some(approve(&a, in_seconds(7200)))).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["errors"][0]["pointer"], "/dataset");
    assert_eq!(statuses(&p["request"])[&a], "approved", "{p}");

    // P2 asks a question, alice answers, P2 rejects
    let ask = json!({"dataset": cc, "decision": "information-requested", "question": "Which scanners?"});
    assert_eq!(call(&c, "POST", &decisions, &p2, Some(ask)).await.0, 200);
    let answers = format!("{path}/answers");
    assert_eq!(call(&c, "POST", &answers, &bob, Some(json!({"answer": "x"}))).await.0, 404);
    let (status, r) = call(&c, "POST", &answers, &alice, Some(json!({"answer": "Siemens and GE"}))).await;
    assert_eq!((status, statuses(&r)[&cc].as_str()), (200, "requested"), "{r}");
    assert_eq!(call(&c, "POST", &answers, &alice, Some(json!({"answer": "again"}))).await.0, 409);
    let reject = json!({"dataset": cc, "decision": "rejected", "reason": "Outside the consented purposes."});
    assert_eq!(call(&c, "POST", &decisions, &p2, Some(reject)).await.0, 200);
    let (_, r) = call(&c, "GET", &path, &alice, None).await;
    assert_eq!(statuses(&r), [(a.clone(), "approved".into()), (cc.clone(), "rejected".into())].into());
    let steps: Vec<&str> = r["parts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap())
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["requested", "approved", "requested", "information-requested", "answered", "rejected"]);
    assert_eq!(fhir_uids(&c, &alice, "").await.0, uids_of(&["a"]), "a rejection grants nothing");

    // a revocation stops access at once
    let revocations = format!("{path}/revocations");
    let revoke = json!({"dataset": a, "reason": "Ethics approval suspended."});
    assert_eq!(call(&c, "POST", &revocations, &p2, Some(revoke.clone())).await.0, 403);
    assert_eq!(call(&c, "POST", &revocations, &p1, Some(revoke.clone())).await.0, 200);
    assert_eq!(fhir_uids(&c, &alice, "").await, (BTreeSet::new(), 0));
    assert!(!sparql(&c, &alice, &[("query", &all_studies)]).await.contains("/studies/"));
    assert_eq!(call(&c, "POST", &revocations, &p1, Some(revoke)).await.0, 409, "revoked once");

    // an approval that runs out stops access with its time
    let (status, r) = call(&c, "POST", "/api/v1/access-requests", &alice, Some(request(vec![&b]))).await;
    assert_eq!(status, 201, "{r}");
    let short = format!("/api/v1/access-requests/{}", r["id"].as_str().unwrap());
    assert_eq!(call(&c, "POST", &format!("{short}/decisions"), &p1, Some(approve(&b, in_seconds(3)))).await.0, 200);
    assert_eq!(fhir_uids(&c, &alice, "").await.0, uids_of(&["b"]));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(fhir_uids(&c, &alice, "").await, (BTreeSet::new(), 0));
    let (_, expired) = call(&c, "GET", "/api/v1/access-requests?status=expired", &alice, None).await;
    assert_eq!(expired["requests"].as_array().unwrap().len(), 1, "{expired}");

    // the researcher withdraws: nothing is left open, and a second withdrawal is a conflict
    let (status, r) = call(&c, "POST", &format!("{short}/withdrawal"), &alice, None).await;
    assert_eq!((status, statuses(&r)[&b].as_str()), (200, "withdrawn"), "{r}");
    assert_eq!(call(&c, "POST", &format!("{short}/withdrawal"), &alice, None).await.0, 409);
    // parameters a listing does not know are named
    let (status, p) = call(&c, "GET", "/api/v1/access-requests?status=pending", &alice, None).await;
    assert_eq!((status, p["errors"][0]["pointer"].as_str()), (400, Some("status")));
    assert_eq!(reqwest::get(c.url("/api/v1/access-requests")).await.unwrap().status(), 401);

    // the page for people: the dataset page leads to it, with the dataset in the form
    let page = reqwest::Client::new()
        .get(c.url(&format!("/datasets/{P1}/a")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let link = format!("/access?dataset={}", url::form_urlencoded::byte_serialize(a.as_bytes()).collect::<String>());
    assert!(page.contains(&link), "the dataset page links to {link}");
    let form = reqwest::get(c.url(&link)).await.unwrap();
    assert_eq!(form.status(), 200);
    let form = form.text().await.unwrap();
    assert!(form.contains(&format!(">{a}</textarea>")), "the form names the dataset");
    assert!(form.contains("/api/v1/access-requests"));
}

/// A researcher with approved access requests for exactly `datasets` (of `events()`).
async fn permitted_researcher(c: &Cireg, name: &str, datasets: &[&str]) -> String {
    let researcher = token(name, true, &[], Vec::new());
    if datasets.is_empty() {
        return researcher;
    }
    let provider_of = |d: &str| if d == "c" { P2 } else { P1 };
    let iris: Vec<String> = datasets.iter().map(|d| dataset_iri(provider_of(d), d)).collect();
    let body = json!({
        "title": "t", "purposes": ["https://w3id.org/dpv#AcademicResearch"], "description": "d",
        "ethicsApproval": "EC-1", "datasets": iris,
    });
    let (status, r) = call(c, "POST", "/api/v1/access-requests", &researcher, Some(body)).await;
    assert_eq!(status, 201, "{r}");
    let decisions = format!("/api/v1/access-requests/{}/decisions", r["id"].as_str().unwrap());
    for (d, iri) in datasets.iter().zip(&iris) {
        let holder = token("holder", false, &[provider_of(d)], Vec::new());
        let approval = json!({"dataset": iri, "decision": "approved", "until": in_seconds(3600)});
        let (status, r) = call(c, "POST", &decisions, &holder, Some(approval)).await;
        assert_eq!(status, 200, "{r}");
    }
    researcher
}

/// Property: for random permits (every subset of the datasets) and random queries (FHIR searches
/// by each parameter, reads and histories of any study, SPARQL naming any study's graph in every
/// way the language and the protocol allow), nothing of a study outside the permitted datasets
/// comes back, and every permitted study can be read.
#[tokio::test]
async fn whatever_is_asked_only_permitted_studies_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--public-base", BASE]);
    let (events, studies) = events();
    for e in &events {
        assert_eq!(c.post_event(e).await.0, 201);
    }
    c.wait_ready().await;
    let ids = resource_ids(&c).await;
    let names = ["a", "b", "c"];
    let mut researchers = Vec::new();
    for mask in 0..8usize {
        let chosen: Vec<&str> =
            names.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, d)| *d).collect();
        researchers.push((chosen.clone(), permitted_researcher(&c, &format!("r{mask}"), &chosen).await));
    }
    let study_class = "https://w3id.org/cireg/imaging#ImagingStudy";
    let mut rng = cireg_testkit::Rng(0x5eed_0fac_ce55);
    for case in 0..150 {
        let (chosen, researcher) = &researchers[rng.below(8) as usize];
        let (dataset, pseudonym, uid) = &studies[rng.below(studies.len() as u64) as usize];
        let id = &ids[uid];
        let permitted = chosen.contains(dataset);
        // the resource ids of the studies the researcher may not read
        let forbidden: Vec<&String> =
            studies.iter().filter(|(d, _, _)| !chosen.contains(d)).map(|(_, _, u)| &ids[u]).collect();
        let graph = format!("{BASE}/studies/{id}");
        let provider = if *dataset == "c" { P2 } else { P1 };
        let at = format!("case {case}: {chosen:?} asking about {uid} of {dataset}");
        match rng.below(4) {
            0 => {
                let query = [
                    String::new(),
                    format!("&dataset={}", dataset_iri(provider, dataset)),
                    format!("&dataset={provider}/{dataset}"),
                    format!("&patient={pseudonym}"),
                    format!("&identifier=urn:oid:{uid}"),
                    "&modality=MR".to_owned(),
                    "&_count=0".to_owned(),
                    "&_sort=-started".to_owned(),
                ][rng.below(8) as usize]
                    .clone();
                let (seen, total) = fhir_uids(&c, researcher, &query).await;
                let allowed: BTreeSet<String> =
                    studies.iter().filter(|(d, _, _)| chosen.contains(d)).map(|(_, _, u)| u.clone()).collect();
                assert!(seen.is_subset(&allowed), "{at}: search {query:?} showed {seen:?}");
                assert!(total <= allowed.len() as u64, "{at}: search {query:?} counted {total}");
                if query.is_empty() {
                    assert_eq!(seen, allowed, "{at}: every permitted study is found");
                }
            }
            1 => {
                let path = [
                    format!("/fhir/ImagingStudy/{id}"),
                    format!("/fhir/ImagingStudy/{id}/_history"),
                    format!("/fhir/ImagingStudy/{id}/_history/1"),
                ][rng.below(3) as usize]
                    .clone();
                let status = status_of(&c, researcher, &path).await;
                assert_eq!(status, if permitted { 200 } else { 404 }, "{at}: {path}");
            }
            _ => {
                let q = |text: String| vec![("query".to_owned(), text)];
                let params: Vec<(String, String)> = match rng.below(7) {
                    0 => q(format!("SELECT * WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")),
                    1 => q(format!("SELECT * FROM <{graph}> WHERE {{ ?s ?p ?o }}")),
                    2 => q(format!("SELECT * FROM NAMED <{graph}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}")),
                    3 => vec![
                        ("query".to_owned(), "SELECT * WHERE { ?s ?p ?o }".to_owned()),
                        ("default-graph-uri".to_owned(), graph.clone()),
                    ],
                    4 => vec![
                        ("query".to_owned(), "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }".to_owned()),
                        ("named-graph-uri".to_owned(), graph.clone()),
                    ],
                    5 => q(format!("SELECT ?g ?s WHERE {{ GRAPH ?g {{ ?s a <{study_class}> }} }}")),
                    _ => q(format!("DESCRIBE <{graph}>")),
                };
                let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let body = if params[0].1.starts_with("DESCRIBE") {
                    let r = reqwest::Client::new()
                        .get(c.url("/sparql"))
                        .query(&borrowed)
                        .bearer_auth(researcher)
                        .header("accept", "application/n-triples")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200, "{at}");
                    r.text().await.unwrap()
                } else {
                    sparql(&c, researcher, &borrowed).await
                };
                for other in &forbidden {
                    assert!(!body.contains(other.as_str()), "{at}: {params:?} showed study {other}: {body}");
                }
                if permitted && rng.below(2) == 0 {
                    // what is permitted is there, by name
                    let ask = format!("ASK {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}");
                    assert!(sparql(&c, researcher, &[("query", &ask)]).await.contains("true"), "{at}");
                }
            }
        }
    }
}
