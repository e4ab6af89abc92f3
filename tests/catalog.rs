//! Black-box: the catalogue as harvesters see it. Paging both ways, `modified_since`, the change
//! feed, the catalogue as of a past time, every minted IRI dereferenced, the SHACL gate over HTTP,
//! and independent judges (rdflib, pySHACL) over the demo catalogue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use oxigraph::{
    io::{RdfFormat, RdfParser},
    model::{Graph, NamedNode, NamedOrBlankNode, Term, Triple},
};
use serde_json::{json, Value};
use support::{example, repo_root, Cireg};

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const HYDRA: &str = "http://www.w3.org/ns/hydra/core#";
const AS: &str = "https://www.w3.org/ns/activitystreams#";
const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

fn iri(s: &str) -> NamedNode {
    NamedNode::new(s).unwrap()
}

async fn get_graph(url: &str, accept: &str) -> Graph {
    let r = reqwest::Client::new().get(url).header("accept", accept).send().await.unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    let format = RdfFormat::from_media_type(accept).unwrap();
    let mut graph = Graph::new();
    for quad in RdfParser::from_format(format).for_slice(&body) {
        let quad = quad.unwrap_or_else(|e| panic!("{url} ({accept}) does not parse: {e}"));
        graph.insert(&Triple::new(quad.subject, quad.predicate, quad.object));
    }
    graph
}

fn objects(g: &Graph, s: &NamedNode, p: &str) -> Vec<Term> {
    g.objects_for_subject_predicate(s, &iri(p)).map(|t| t.into_owned()).collect()
}

fn object_iri(g: &Graph, s: &NamedNode, p: &str) -> Option<String> {
    objects(g, s, p).into_iter().find_map(|t| match t {
        Term::NamedNode(n) => Some(n.into_string()),
        _ => None,
    })
}

fn datasets_in(g: &Graph, c: &Cireg) -> Vec<String> {
    let catalog = iri(&format!("{}/catalog", c.base));
    objects(g, &catalog, &format!("{DCAT}dataset"))
        .into_iter()
        .map(|t| match t {
            Term::NamedNode(n) => n.into_string(),
            other => panic!("dcat:dataset {other}"),
        })
        .collect()
}

/// The page's IRI in the graph: the subject typed hydra:PagedCollection.
fn page_node(g: &Graph) -> NamedNode {
    let t = iri(&format!("{HYDRA}PagedCollection"));
    match g.subjects_for_predicate_object(&iri(RDF_TYPE), &t).next() {
        Some(oxigraph::model::NamedOrBlankNodeRef::NamedNode(n)) => n.into_owned(),
        other => panic!("no hydra:PagedCollection: {other:?}"),
    }
}

/// Walks the catalogue from page 1 following `link`, returns every dataset seen (with repeats).
async fn walk(c: &Cireg, first: &str, link: &str) -> (Vec<String>, u64, usize) {
    let mut url = c.url(first);
    let mut seen = Vec::new();
    let mut pages = 0;
    let total;
    loop {
        let g = get_graph(&url, "text/turtle").await;
        pages += 1;
        seen.extend(datasets_in(&g, c));
        let page = page_node(&g);
        let totals = objects(&g, &page, &format!("{HYDRA}totalItems"));
        let Some(Term::Literal(l)) = totals.first() else { panic!("no hydra:totalItems") };
        let page_total: u64 = l.value().parse().unwrap();
        match object_iri(&g, &page, &format!("{HYDRA}{link}")) {
            // links are minted under the public base; fetch them where the test server listens
            Some(next) => url = next.replacen(&c.base, &c.listen, 1),
            None => {
                total = page_total;
                break;
            }
        }
        assert!(pages < 100, "paging does not end");
    }
    (seen, total, pages)
}

fn demo() -> (tempfile::TempDir, Cireg) {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo"]);
    (dir, c)
}

#[tokio::test]
async fn paging_both_ways_counts_every_dataset_once() {
    let (_dir, c) = demo();
    c.wait_ready().await;
    // the whole catalogue streams: written as it is read, so no length is known up front
    let r = reqwest::get(c.url("/catalog.nt")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none(), "{:?}", r.headers());
    let whole = get_graph(&c.url("/catalog"), "application/n-triples").await;
    let all: BTreeSet<String> = datasets_in(&whole, &c).into_iter().collect();
    assert_eq!(all.len(), 40);
    // the catalogue covers the countries its datasets cover (the demo names none of its own)
    let catalog = iri(&format!("{}/catalog", c.base));
    let spatial = objects(&whole, &catalog, "http://purl.org/dc/terms/spatial");
    assert_eq!(spatial.len(), 13, "{spatial:?}");

    for link in ["next", "nextPage"] {
        let (seen, total, pages) = walk(&c, "/catalog?page=1&pageSize=7", link).await;
        assert_eq!(total, 40, "{link}");
        assert_eq!(pages, 6, "{link}: 40 datasets at 7 a page");
        assert_eq!(seen.len(), 40, "{link}: a dataset on two pages: {seen:?}");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all, "{link}");
    }

    // every page carries the catalogue and the pages' own dataset graphs, and nothing of others
    let g = get_graph(&c.url("/catalog.ttl?page=6&pageSize=7"), "text/turtle").await;
    let on_page = datasets_in(&g, &c);
    assert_eq!(on_page.len(), 5);
    let described: BTreeSet<String> = g
        .subjects_for_predicate_object(&iri(RDF_TYPE), &iri(&format!("{DCAT}Dataset")))
        .map(|s| s.to_string().trim_matches(['<', '>']).to_owned())
        .collect();
    assert_eq!(described, on_page.into_iter().collect());
    let page = page_node(&g);
    assert!(object_iri(&g, &page, &format!("{HYDRA}next")).is_none());
    assert!(object_iri(&g, &page, &format!("{HYDRA}previous")).unwrap().contains("page=5"));
    assert!(object_iri(&g, &page, &format!("{HYDRA}last")).unwrap().contains("page=6"));
    assert!(page.as_str().starts_with(&format!("{}/catalog.ttl?", c.base)), "{page}");

    // bad parameters are named; a page past the end is a 404
    for (query, param) in [
        ("page=0", "page"),
        ("page=x", "page"),
        ("pageSize=5000", "pageSize"),
        ("modified_since=yesterday", "modified_since"),
        ("at=soon", "at"),
    ] {
        let r = reqwest::get(c.url(&format!("/catalog?{query}"))).await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["pointer"], json!(param), "{query}: {p}");
    }
    let r = reqwest::get(c.url("/catalog?page=7&pageSize=7")).await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn modified_since_selects_what_changed() {
    let (_dir, c) = demo();
    c.wait_ready().await;
    // the records carry the log's clock: everything the demo loaded is older than `since`
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let since = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let g = get_graph(&c.url("/catalog"), "text/turtle").await;
    let all = datasets_in(&g, &c);
    assert_eq!(all.len(), 40);
    let empty = get_graph(&c.url(&format!("/catalog?modified_since={since}")), "text/turtle").await;
    assert!(datasets_in(&empty, &c).is_empty());
    // change two datasets (the provider's `time` says 2020: the record still says now)
    let mut changed = BTreeSet::new();
    for (n, dataset) in all.iter().take(2).enumerate() {
        let rest = dataset.strip_prefix(&format!("{}/datasets/", c.base)).unwrap();
        let (provider, id) = rest.split_once('/').unwrap();
        let update = json!({
            "specversion": "1.0", "id": format!("since-{n}"), "type": "eu.cancerimage.dataset.updated.v1",
            "source": format!("urn:cireg:provider:{provider}"), "subject": id, "time": "2020-01-01T00:00:00Z",
            "datacontenttype": "application/json", "data": { "version": "9.9.9" }
        });
        let (status, body) = c.post_event(&update).await;
        assert_eq!(status, 201, "{body}");
        changed.insert(dataset.clone());
    }
    c.wait_ready().await;
    let g = get_graph(&c.url(&format!("/catalog?modified_since={since}")), "text/turtle").await;
    assert_eq!(datasets_in(&g, &c).into_iter().collect::<BTreeSet<_>>(), changed);
    // paging keeps the filter in its links; a date alone means its midnight (UTC)
    let (seen, total, _) =
        walk(&c, &format!("/catalog?page=1&pageSize=1&modified_since={}", since.replace('+', "%2B")), "next").await;
    assert_eq!(total, 2);
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), changed);
    let g = get_graph(&c.url("/catalog?modified_since=2000-01-01"), "text/turtle").await;
    assert_eq!(datasets_in(&g, &c).len(), 40);
    let g = get_graph(&c.url("/catalog?modified_since=2999-01-01"), "text/turtle").await;
    assert!(datasets_in(&g, &c).is_empty());
}

/// Activities of the feed, from `from` to the end: (log sequence, type, dataset).
async fn read_feed(c: &Cireg, from: u64) -> Vec<(u64, String, String)> {
    let mut url = c.url(&format!("/feed?from={from}&limit=25"));
    let mut out = Vec::new();
    for _ in 0..100 {
        let g = get_graph(&url, "text/turtle").await;
        let stream = iri(&format!("{}/feed", c.base));
        let mut page = Vec::new();
        for member in objects(&g, &stream, "https://w3id.org/tree#member") {
            let Term::NamedNode(a) = member else { panic!("member {member}") };
            let seq: u64 = a.as_str().rsplit('/').next().unwrap().parse().unwrap();
            let kind = object_iri(&g, &a, RDF_TYPE).unwrap().trim_start_matches(AS).to_owned();
            let object = object_iri(&g, &a, &format!("{AS}object")).unwrap();
            assert!(!objects(&g, &a, &format!("{AS}published")).is_empty());
            page.push((seq, kind, object));
        }
        // RDF has no order: sort the page, and pages must follow each other in log order
        page.sort();
        if let (Some(last), Some(first)) = (out.last(), page.first()) {
            let (last, first): (&(u64, String, String), &(u64, String, String)) = (last, first);
            assert!(last.0 < first.0, "page starting at {} comes after {}", first.0, last.0);
        }
        out.extend(page);
        let this = iri(&url.replacen(&c.listen, &c.base, 1));
        match object_iri(&g, &this, &format!("{HYDRA}next")) {
            Some(next) => url = next.replacen(&c.base, &c.listen, 1),
            None => return out,
        }
    }
    panic!("the feed does not end");
}

#[tokio::test]
async fn change_feed_and_catalogue_as_of_a_past_time() {
    let (_dir, c) = demo();
    c.wait_ready().await;
    let feed = read_feed(&c, 1).await;
    let creates = feed.iter().filter(|(_, k, _)| k == "Create").count();
    assert_eq!(creates, 40, "{feed:?}");
    assert!(feed.iter().any(|(_, k, _)| k == "Update"));
    // from a midpoint: exactly the rest
    let mid = feed[feed.len() / 2].0;
    let rest = read_feed(&c, mid).await;
    assert_eq!(rest, feed.iter().filter(|(s, _, _)| *s >= mid).cloned().collect::<Vec<_>>());
    // each activity dereferences
    let (seq, _, dataset) = &feed[0];
    let g = get_graph(&c.url(&format!("/feed/{seq}")), "application/ld+json").await;
    assert_eq!(
        object_iri(&g, &iri(&format!("{}/feed/{seq}", c.base)), &format!("{AS}object")).as_deref(),
        Some(dataset.as_str())
    );

    // a withdrawal: a deletion in the feed, gone from the catalogue, still there as of before
    let before = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (provider, id) = {
        let rest = dataset.strip_prefix(&format!("{}/datasets/", c.base)).unwrap();
        let (p, d) = rest.split_once('/').unwrap();
        (p.to_owned(), d.to_owned())
    };
    let withdrawal = json!({
        "specversion": "1.0", "id": "catalog-test-withdrawal", "type": "eu.cancerimage.dataset.withdrawn.v1",
        "source": format!("urn:cireg:provider:{provider}"), "subject": id, "time": "2026-11-29T10:00:00Z",
        "datacontenttype": "application/json", "data": { "reason": { "en": "test" } }
    });
    let (status, body) = c.post_event(&withdrawal).await;
    assert_eq!(status, 201, "{body}");
    c.wait_ready().await;
    let after = read_feed(&c, feed.last().unwrap().0 + 1).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!((after[0].1.as_str(), after[0].2.as_str()), ("Delete", dataset.as_str()));
    let now = datasets_in(&get_graph(&c.url("/catalog"), "text/turtle").await, &c);
    assert_eq!(now.len(), 39);
    assert!(!now.contains(dataset));
    let then = datasets_in(&get_graph(&c.url(&format!("/catalog?at={before}")), "text/turtle").await, &c);
    assert_eq!(then.len(), 40);
    assert!(then.contains(dataset));
    let long_ago = datasets_in(&get_graph(&c.url("/catalog?at=2000-01-01"), "text/turtle").await, &c);
    assert!(long_ago.is_empty());
}

#[tokio::test]
async fn every_minted_iri_dereferences() {
    let (_dir, c) = demo();
    c.wait_ready().await;
    let g = get_graph(&c.url("/catalog.nt"), "application/n-triples").await;
    let mut minted = BTreeSet::new();
    for t in g.iter() {
        let mut terms = vec![t.subject.into_owned().into(), t.object.into_owned()];
        terms.retain(|t: &Term| matches!(t, Term::NamedNode(_)));
        for t in terms {
            if let Term::NamedNode(n) = t {
                if n.as_str().starts_with(&c.base) {
                    // fragments are parts of the document they are in
                    minted.insert(n.as_str().split('#').next().unwrap().to_owned());
                }
            }
        }
    }
    let kinds = [
        "/catalog",
        "/datasets/",
        "/distributions/",
        "/samples/",
        "/analytics/",
        "/records/",
        "/manufacturers/",
        "/sparql",
    ];
    for kind in kinds {
        assert!(minted.iter().any(|m| m.contains(kind)), "no minted IRI of kind {kind}");
    }
    let client = reqwest::Client::new();
    for m in &minted {
        let url = m.replacen(&c.base, &c.listen, 1);
        if m.ends_with("/sparql") {
            // the service IRI is the endpoint: it answers a query
            let r = client.get(format!("{url}?query=ASK%7B%7D")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{m}");
            continue;
        }
        let g = get_graph(&url, "text/turtle").await;
        let node = iri(m);
        assert!(
            g.triples_for_subject(&NamedOrBlankNode::from(node.clone())).next().is_some(),
            "{m} dereferences to a document that says nothing about it"
        );
        let r = client.get(&url).header("accept", "text/html,application/xhtml+xml,*/*;q=0.8").send().await.unwrap();
        assert_eq!(r.status(), 200, "{m} as HTML");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{m}");
        // and a browser can follow a link to its RDF
        let r = client.get(format!("{url}?format=jsonld")).header("accept", "text/html").send().await.unwrap();
        assert_eq!(r.status(), 200, "{m}?format=jsonld");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/ld+json"), "{m}");
    }
}

#[tokio::test]
async fn the_shacl_gate_refuses_a_dataset_that_breaks_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &[]);
    let (status, body) = c.post_event(&example("provider.registered")).await;
    assert_eq!(status, 201, "{body}");
    let mut bad = example("dataset.published");
    bad["data"].as_object_mut().unwrap().remove("healthCategories");
    let (status, body) = c.post_event(&bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], json!(format!("{}/problems/profile-violation", c.base)));
    let results = body["shaclResults"].as_array().unwrap();
    assert!(
        results.iter().any(|r| r["path"].as_str().is_some_and(|p| p.ends_with("#healthCategory"))
            && r["constraint"] == json!("sh:MinCountConstraintComponent")
            && r["pointer"] == json!("/data/healthCategories")
            && r["focusNode"]
                .as_str()
                .unwrap()
                .ends_with("/datasets/synthetic-breast-consortium/breast-mri-screening-2024")),
        "{body:#}"
    );
    assert!(body["errors"].as_array().unwrap().iter().any(|e| e["pointer"] == json!("/data/healthCategories")));
    // nothing was appended: the valid dataset is then the log's second event
    let (status, body) = c.post_event(&example("dataset.published")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sequence"], json!(2));
    // an update that would break the profile is refused too, and the dataset stays as it was
    let mut update = example("dataset.updated");
    update["id"] = json!("gate-update");
    update["data"] = json!({ "hdab": null });
    let (status, body) = c.post_event(&update).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["shaclResults"].as_array().unwrap().iter().any(|r| r["pointer"] == json!("/data/hdab")), "{body:#}");
    assert_eq!(c.metric("cireg_ingest_profile_violations_total").await, 2);
}

#[tokio::test]
async fn independent_judges_accept_the_demo_catalogue() {
    let (_dir, c) = demo();
    c.wait_ready().await;
    let python = std::env::var("CIREG_PYTHON").unwrap_or_else(|_| "/var/tmp/cireg-pyenv/bin/python".to_owned());
    let probe = std::process::Command::new(&python).args(["-c", "import pyshacl, rdflib"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs Python with pyshacl and rdflib at {python} (set CIREG_PYTHON): scripts/test.sh installs them \
         ({probe:?})"
    );
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tests/python/judge.py"))
        .arg(&c.listen)
        .arg(repo_root().join("shapes"))
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{report}");
    assert!(report.contains("40 datasets"), "{report}");
    assert!(report.contains("pySHACL RESTRICTED") && report.contains("pySHACL PUBLIC"), "{report}");
}
