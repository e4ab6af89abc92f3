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
