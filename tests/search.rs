//! Black-box: the search API, EUCAIM's mediator API and the pages, over the demo catalogue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::Cireg;

async fn get_json(c: &Cireg, path: &str) -> (u16, Value) {
    let r = reqwest::get(c.url(path)).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn search(c: &Cireg, query: &str) -> Value {
    let (status, body) = get_json(c, &format!("/api/v1/datasets?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn ids(v: &Value) -> BTreeSet<String> {
    v["results"].as_array().unwrap().iter().map(|d| d["iri"].as_str().unwrap().to_owned()).collect()
}

fn facet_count(v: &Value, facet: &str, value: &str) -> Option<u64> {
    v["facets"][facet]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["value"] == json!(value))
        .map(|f| f["count"].as_u64().unwrap())
}

async fn demo() -> (tempfile::TempDir, Cireg) {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo"]);
    c.wait_ready().await;
    (dir, c)
}

#[tokio::test]
async fn the_search_api_filters_and_counts_facets() {
    let (_dir, c) = demo().await;
    let all = search(&c, "pageSize=100").await;
    assert_eq!(all["total"], json!(40));
    let docs = all["results"].as_array().unwrap().clone();
    assert_eq!(docs.len(), 40);
    // every facet counts what the results hold
    let with = |pred: &dyn Fn(&Value) -> bool| docs.iter().filter(|d| pred(d)).count() as u64;
    let mr = with(&|d| d["modalities"].as_array().unwrap().iter().any(|m| m["code"] == json!("MR")));
    assert_eq!(facet_count(&all, "modality", "MR"), Some(mr));
    let glio = with(&|d| d["cancer"]["code"] == json!("393563007"));
    assert_eq!(facet_count(&all, "cancer", "393563007"), Some(glio));
    assert!(glio > 0);

    // one facet value: only those datasets; the same facet still counts its other values
    let only_mr = search(&c, "modality=MR&pageSize=100").await;
    assert_eq!(only_mr["total"], json!(mr));
    assert!(only_mr["results"].as_array().unwrap().iter().all(|d| d["modalities"].to_string().contains("\"MR\"")));
    assert_eq!(facet_count(&only_mr, "modality", "CT"), facet_count(&all, "modality", "CT"), "disjunctive facet");
    // two values of one facet: OR; two facets: AND
    let mr_or_ct = search(&c, "modality=MR&modality=CT&pageSize=100").await;
    let ct = with(&|d| d["modalities"].to_string().contains("\"CT\""));
    let either =
        with(&|d| d["modalities"].to_string().contains("\"CT\"") || d["modalities"].to_string().contains("\"MR\""));
    assert_eq!(mr_or_ct["total"], json!(either));
    assert!(either > mr && either > ct);
    let mr_in_spain = search(&c, "modality=MR&country=ESP&pageSize=100").await;
    let expected =
        with(&|d| d["modalities"].to_string().contains("\"MR\"") && d["countries"].to_string().contains("\"ESP\""));
    assert_eq!(mr_in_spain["total"], json!(expected));
    // the country facet now counts within MR datasets
    assert_eq!(facet_count(&mr_in_spain, "country", "ESP"), Some(expected));

    // free text: whole or beginning of words, in the title, condition, keywords…
    let g = search(&c, "q=glioblastoma&pageSize=100").await;
    assert_eq!(g["total"], json!(glio));
    assert_eq!(ids(&search(&c, "q=GLIOB&pageSize=100").await), ids(&g));
    assert_eq!(search(&c, "q=glioblastoma+zzzz").await["total"], json!(0));
    // age ranges overlap; sizes by individuals
    let children = search(&c, "ageMax=12&pageSize=100").await;
    assert!(children["total"].as_u64().unwrap() > 0);
    assert!(children["results"].as_array().unwrap().iter().all(|d| d["ageRange"][0].as_u64().unwrap() <= 12));
    let big = search(&c, "size=500-999&pageSize=100").await;
    assert!(big["results"].as_array().unwrap().iter().all(|d| (500..1000).contains(&d["subjects"].as_u64().unwrap())));
    // sorting by size, paging
    let by_size = search(&c, "sort=size&pageSize=5").await;
    let sizes: Vec<u64> =
        by_size["results"].as_array().unwrap().iter().map(|d| d["subjects"].as_u64().unwrap()).collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    let page2 = search(&c, "sort=size&pageSize=5&page=2").await;
    assert!(ids(&by_size).is_disjoint(&ids(&page2)));

    // bad parameters are named
    for (query, name) in [
        ("pageSize=500", "pageSize"),
        ("sort=random", "sort"),
        ("ageMin=old", "ageMin"),
        ("size=huge", "size"),
        ("ageMin=50&ageMax=10", "ageMin"),
    ] {
        let (status, p) = get_json(&c, &format!("/api/v1/datasets?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(p["errors"][0]["pointer"], json!(name), "{query}: {p}");
    }
    // one dataset
    let first = &docs[0];
    let (status, one) = get_json(
        &c,
        &format!("/api/v1/datasets/{}/{}", first["provider"].as_str().unwrap(), first["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&one, first);
    assert_eq!(get_json(&c, "/api/v1/datasets/nobody/nothing").await.0, 404);
}

async fn eucaim(c: &Cireg, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(c.url("/api/eucaim/search")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn the_eucaim_mediator_answers_its_ast() {
    let (_dir, c) = demo().await;
    // female MR datasets: the same as the search API's
    let (status, answer) = eucaim(
        &c,
        json!({"ast": {"operand": "AND", "children": [
            {"key": "RID10311", "type": "EQUALS", "value": "RID10312"},
            {"key": "SNOMEDCT263495000", "type": "EQUALS", "value": "248152002"}
        ]}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let collections = answer["collections"].as_array().unwrap();
    let api = search(&c, "modality=MR&sex=248152002&pageSize=100").await;
    let got: BTreeSet<String> = collections.iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, ids(&api));
    assert!(!got.is_empty());
    for col in collections {
        assert!(col["modality"].as_array().unwrap().contains(&json!("MR")), "{col}");
        assert!(col["gender"].as_array().unwrap().contains(&json!("female")), "{col}");
        for key in ["name", "studies_count", "subjects_count", "age_range", "body_parts", "description"] {
            assert!(!col[key].is_null(), "{key} missing in {col}");
        }
    }
    // OR, IN, BETWEEN, comparisons
    let (_, a) = eucaim(
        &c,
        json!({"ast": {"operand": "OR", "children": [
            {"key": "SNOMEDCT439401001", "type": "IN", "value": ["393563007", "432328008"]}
        ]}}),
    )
    .await;
    let api = search(&c, "cancer=393563007&cancer=432328008&pageSize=100").await;
    assert_eq!(a["collections"].as_array().unwrap().len() as u64, api["total"].as_u64().unwrap());
    let (_, young) = eucaim(&c, json!({"ast": {"key": "SNOMEDCT423493009", "type": "LOWER_THAN", "value": 13}})).await;
    let young = young["collections"].as_array().unwrap();
    assert!(!young.is_empty());
    assert!(young.iter().all(|c| c["age_range"]["min"].as_u64().unwrap() < 13));
    let (_, band) =
        eucaim(&c, json!({"ast": {"key": "SNOMEDCT423493009", "type": "BETWEEN", "value": {"min": 20, "max": 30}}}))
            .await;
    assert!(band["collections"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["age_range"]["min"].as_u64().unwrap() <= 30 && c["age_range"]["max"].as_u64().unwrap() >= 20));
    let (_, siemens) = eucaim(&c, json!({"ast": {"key": "C25392", "type": "CONTAINS", "value": "siemens"}})).await;
    assert!(!siemens["collections"].as_array().unwrap().is_empty());

    // malformed: a clear 400 naming the node
    let (status, p) = eucaim(
        &c,
        json!({"ast": {"operand": "AND", "children": [{"key": "RID10311", "type": "SOUNDS_LIKE", "value": "MR"}]}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["pointer"], json!("/ast/children/0/type"), "{p}");
    let (status, p) = eucaim(&c, json!({"ast": {"key": "HAIR_COLOUR", "type": "EQUALS", "value": "red"}})).await;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["pointer"], json!("/ast/key"), "{p}");
    let r = reqwest::Client::new().post(c.url("/api/eucaim/search")).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn openapi_documents_every_search_parameter() {
    let (_dir, c) = demo().await;
    let (status, spec) = get_json(&c, "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], json!("3.1.0"));
    for path in ["/api/v1/datasets", "/api/v1/datasets/{provider}/{id}", "/api/v1/nodes", "/api/eucaim/search"] {
        assert!(spec["paths"][path].is_object(), "{path} undocumented");
    }
    let documented: BTreeSet<&str> = spec["paths"]["/api/v1/datasets"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let accepted = [
        "q", "cancer", "modality", "bodyPart", "country", "provider", "node", "access", "sex", "size", "ageMin",
        "ageMax", "sort", "page", "pageSize",
    ];
    assert_eq!(documented, accepted.into_iter().collect());
    // every documented parameter is really taken: a bad value is refused or a value changes the answer
    let results = search(&c, "pageSize=100").await;
    let keys: BTreeSet<String> = results.as_object().unwrap().keys().cloned().collect();
    let required: BTreeSet<String> = spec["components"]["schemas"]["SearchResults"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert!(required.is_subset(&keys), "{required:?} vs {keys:?}");
    for facet in results["facets"].as_object().unwrap().keys() {
        assert!(documented.contains(facet.as_str()), "facet {facet} is not a documented parameter");
    }
}

#[tokio::test]
async fn pages_show_figures_search_and_datasets() {
    let (_dir, c) = demo().await;
    let html = |path: &str| {
        let url = c.url(path);
        async move {
            let r = reqwest::Client::new().get(&url).header("accept", "text/html").send().await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
            r.text().await.unwrap()
        }
    };
    let landing = html("/").await;
    assert_eq!(landing.matches("<svg").count(), 4, "four charts");
    assert!(landing.contains("Imaging studies per modality") && landing.contains("Datasets per country"));
    assert!(landing.contains("<b>40</b>Datasets"), "{landing}");
    // nothing loaded from elsewhere: every link and source is this registry's
    for attr in ["href=\"", "src=\""] {
        for rest in landing.split(attr).skip(1) {
            let target = rest.split('"').next().unwrap();
            assert!(target.starts_with('/') || target.starts_with('#') || target.starts_with(&c.base), "{target}");
        }
    }
    assert!(!landing.contains("<script src") && !landing.contains("<link"), "no external scripts or styles");

    let page = html("/search?q=glioblastoma&modality=MR").await;
    let api = search(&c, "q=glioblastoma&modality=MR&pageSize=100").await;
    let total = api["total"].as_u64().unwrap();
    assert!(page.contains(&format!("<strong>{total}</strong> dataset")), "{page}");
    for d in api["results"].as_array().unwrap().iter().take(20) {
        assert!(page.contains(&d["title"].as_str().unwrap().replace('&', "&amp;")));
    }
    assert!(page.contains(r#"name="modality" value="MR" checked"#));

    let d = &api["results"][0];
    let dataset = html(&format!("/datasets/{}/{}", d["provider"].as_str().unwrap(), d["id"].as_str().unwrap())).await;
    assert!(dataset.contains(d["cancer"]["label"].as_str().unwrap()), "labels for codes");
    assert!(dataset.contains("Requesting access"));
    assert!(dataset.contains(d["accessUrls"][0].as_str().unwrap()));
    assert!(dataset.contains("DESCRIBE"));
    // everything the catalogue knows, with labels from the vocabularies
    for needle in [
        "Health data access body",
        "Data access committee of the",
        "Other health data from medical devices",
        "Cancer <span class=\"count\">(CANCER_DISEASE)",
        "Retention",
        "https://w3id.org/dpv#ResearchAndDevelopment",
        "<h2>Distributions</h2>",
        "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
    ] {
        assert!(dataset.contains(needle), "{needle} missing from the dataset page");
    }
    // its DCAT-AP in every format, by links a browser can follow
    for (format, media) in [
        ("ttl", "text/turtle"),
        ("jsonld", "application/ld+json"),
        ("rdf", "application/rdf+xml"),
        ("nt", "application/n-triples"),
    ] {
        let path =
            format!("/datasets/{}/{}?format={format}", d["provider"].as_str().unwrap(), d["id"].as_str().unwrap());
        assert!(dataset.contains(&path.replace('&', "&amp;")), "{path}");
        let r = reqwest::Client::new().get(c.url(&path)).header("accept", "text/html").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(media), "{format}");
    }
    let r = reqwest::get(c.url(&format!(
        "/datasets/{}/{}?format=pdf",
        d["provider"].as_str().unwrap(),
        d["id"].as_str().unwrap()
    )))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
}
