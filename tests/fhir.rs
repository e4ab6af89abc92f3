//! Black-box: imaging study events and the FHIR ImagingStudy API (R5 and R4B) of the real binary:
//! each search parameter and prefix against the result set it must give, paging, versions,
//! errors, consent withdrawal (HTTP with the embedded log, NATS with JetStream, and after a
//! rebuild), and every resource judged by fhir.resources and HL7's R4 JSON schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{json, Value};
use support::{example, repo_root, Cireg};

const PROVIDER: &str = "synthetic-breast-consortium";
const DATASET: &str = "breast-mri-screening-2024";
const SECOND: &str = "second-cohort";
const MR_BREAST: (&str, &str) = ("MR", "76752008");
const CT_CHEST: (&str, &str) = ("CT", "51185008");
const CT_LUNG: (&str, &str) = ("CT", "39607008");
const PT_LUNG: (&str, &str) = ("PT", "39607008");
const MG_BREAST: (&str, &str) = ("MG", "76752008");

/// A test study: (pseudonym, started, dataset, series as (modality, body site)).
type TestStudy = (String, &'static str, &'static str, Vec<(&'static str, &'static str)>);

/// The studies of the test, by number k.
fn studies() -> Vec<TestStudy> {
    let mut s = vec![
        ("P01".to_owned(), "2023-01-15T10:00:00Z", DATASET, vec![MR_BREAST]),
        ("P01".to_owned(), "2024-03-14T08:42:00Z", DATASET, vec![MR_BREAST, MR_BREAST]),
        ("P02".to_owned(), "2024-03-14T15:00:00+01:00", DATASET, vec![MR_BREAST, CT_CHEST]),
        ("P03".to_owned(), "2024-06-30T23:59:59Z", DATASET, vec![CT_LUNG]),
        ("P04".to_owned(), "2024-12-31T12:00:00Z", DATASET, vec![PT_LUNG, CT_LUNG]),
        ("P05".to_owned(), "2025-01-01T00:00:00Z", DATASET, vec![MG_BREAST]),
    ];
    for k in 6..12 {
        let dataset = if k >= 9 { SECOND } else { DATASET };
        s.push((format!("P{k:02}"), ["2022-05-02T09:00:00Z", "2022-05-03T09:00:00Z"][k % 2], dataset, vec![MR_BREAST]));
    }
    s
}

fn uid(k: usize) -> String {
    format!("2.25.{}", 10_000 + k)
}

fn series_uid(k: usize, n: usize) -> String {
    format!("2.25.{}", 20_000 + 10 * k + n)
}

fn study_event(k: usize, id: &str, kind: &str) -> Value {
    let (pseudonym, started, dataset, series) = &studies()[k];
    let mut modalities: Vec<&str> = series.iter().map(|(m, _)| *m).collect();
    modalities.dedup();
    let series: Vec<Value> = series
        .iter()
        .enumerate()
        .map(|(n, (modality, site))| {
            json!({"uid": series_uid(k, n), "number": n + 1, "modality": modality,
                   "bodySite": {"code": site}, "numberOfInstances": 10})
        })
        .collect();
    json!({
        "specversion": "1.0", "id": id, "source": format!("urn:cireg:provider:{PROVIDER}"),
        "type": format!("eu.cancerimage.study.{kind}.v1"), "subject": pseudonym, "time": "2026-11-07T08:00:00Z",
        "data": {
            "dataset": dataset, "studyInstanceUid": uid(k), "started": started, "description": format!("study {k}"),
            "modalities": modalities, "numberOfSeries": series.len(), "numberOfInstances": 10 * series.len(),
            "series": series,
        }
    })
}

fn consent_withdrawal(pseudonym: &str) -> Value {
    json!({
        "specversion": "1.0", "id": format!("withdraw-{pseudonym}"), "source": format!("urn:cireg:provider:{PROVIDER}"),
        "type": "eu.cancerimage.subject.consent.withdrawn.v1", "subject": pseudonym, "time": "2026-11-08T08:00:00Z",
        "data": {}
    })
}

fn second_dataset() -> Value {
    let mut e = example("dataset.published");
    e["id"] = json!("publish-second");
    e["subject"] = json!(SECOND);
    e
}

/// Responses kept for the Python judges.
struct Saved(PathBuf, usize);

impl Saved {
    fn keep(&mut self, fhir_version: &str, resource: &Value) {
        self.1 += 1;
        let file = self.0.join(format!("{:03}.json", self.1));
        std::fs::write(file, serde_json::to_vec(&json!({"fhirVersion": fhir_version, "resource": resource})).unwrap())
            .unwrap();
    }
}

struct Fhir<'a> {
    c: &'a Cireg,
    client: reqwest::Client,
    /// Where every FHIR response goes for the judges, when they are to see them.
    saved: Option<std::sync::Mutex<Saved>>,
}

impl Fhir<'_> {
    /// GET with `Accept: application/fhir+json; fhirVersion=<version>`: (status, content type, body).
    async fn get_as(&self, path: &str, version: &str) -> (u16, String, Value) {
        let r = self
            .client
            .get(self.c.url(path))
            .header("accept", format!("application/fhir+json; fhirVersion={version}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = r.json().await.unwrap_or(Value::Null);
        if let (Some(saved), Some(_)) = (&self.saved, body.get("resourceType")) {
            // what answered, as Content-Type says
            let answered = content_type.rsplit("fhirVersion=").next().unwrap_or(version).to_owned();
            saved.lock().unwrap().keep(&answered, &body);
        }
        (status, content_type, body)
    }

    async fn search(&self, query: &str) -> Value {
        let (status, _, body) = self.get_as(&format!("/fhir/ImagingStudy?{query}"), "5.0").await;
        assert_eq!(status, 200, "{query}: {body}");
        body
    }

    /// The study numbers k of every match (following `next` links).
    async fn matches(&self, query: &str) -> BTreeSet<usize> {
        let mut found = BTreeSet::new();
        let mut url = format!("/fhir/ImagingStudy?{query}&_count=50");
        loop {
            let (status, _, page) = self.get_as(&url, "5.0").await;
            assert_eq!(status, 200, "{query}: {page}");
            for e in page["entry"].as_array().cloned().unwrap_or_default() {
                let value = e["resource"]["identifier"][0]["value"].as_str().unwrap().to_owned();
                let k: usize = value.strip_prefix("urn:oid:2.25.").unwrap().parse::<usize>().unwrap() - 10_000;
                assert!(found.insert(k), "{query}: study {k} twice");
            }
            let next = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").cloned();
            match next {
                Some(l) => {
                    url = l["url"].as_str().unwrap().split_once("/fhir/").map(|(_, p)| format!("/fhir/{p}")).unwrap()
                }
                None => return found,
            }
        }
    }

    async fn id_of(&self, k: usize) -> String {
        let page = self.search(&format!("identifier=urn:dicom:uid|urn:oid:{}", uid(k))).await;
        page["entry"][0]["resource"]["id"].as_str().unwrap().to_owned()
    }
}

fn set(ks: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
    ks.into_iter().collect()
}

async fn post_ok(c: &Cireg, event: &Value) {
    let (status, body) = c.post_event(event).await;
    assert!(status == 201 || status == 200, "{event}: {status} {body}");
}

/// Waits until the projection has applied everything appended so far.
async fn settle(c: &Cireg) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.wait_ready().await;
}

fn judge(dir: &Path) {
    let python = std::env::var("CIREG_PYTHON").unwrap_or_else(|_| "/var/tmp/cireg-pyenv/bin/python".to_owned());
    let schema_dir = std::env::var("CIREG_FHIR_SCHEMA_DIR").unwrap_or_else(|_| "/var/tmp/cireg-fhir-schema".to_owned());
    let schema = Path::new(&schema_dir).join("fhir.schema.json");
    assert!(
        Path::new(&python).exists() && schema.exists(),
        "this test needs Python with fhir.resources and jsonschema at {python} and HL7's R4 schema at {}: \
         scripts/test.sh installs them (scripts/ensure-python.sh)",
        schema.display()
    );
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tests/python/fhir_judge.py"))
        .arg(dir)
        .arg(&schema)
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(out.status.success(), "the FHIR judges disagree:\n{report}");
}

#[tokio::test]
async fn imaging_study_search_read_history_and_consent_withdrawal() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--public-base", "https://registry.example.eu"]);
    let saved_dir = dir.path().join("responses");
    std::fs::create_dir_all(&saved_dir).unwrap();
    let saved = Some(std::sync::Mutex::new(Saved(saved_dir.clone(), 0)));
    let f = Fhir { c: &c, client: support::researcher_client(), saved };

    post_ok(&c, &example("provider.registered")).await;
    post_ok(&c, &example("dataset.published")).await;
    post_ok(&c, &second_dataset()).await;
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(2);
    for k in 0..12 {
        post_ok(&c, &study_event(k, &format!("study-{k}"), "registered")).await;
    }
    // the rules: a study of an unpublished dataset, a second registration, an inconsistent study
    let mut orphan = study_event(0, "orphan", "registered");
    orphan["data"]["dataset"] = json!("no-such-dataset");
    orphan["data"]["studyInstanceUid"] = json!("2.25.999");
    let (status, p) = c.post_event(&orphan).await;
    assert_eq!((status, p["errors"][0]["pointer"].clone()), (409, json!("/data/dataset")), "{p}");
    let (status, _) = c.post_event(&study_event(3, "again", "registered")).await;
    assert_eq!(status, 409);
    let mut wrong = study_event(3, "wrong", "updated");
    wrong["data"]["numberOfSeries"] = json!(0);
    let (status, p) = c.post_event(&wrong).await;
    assert_eq!((status, p["errors"][0]["pointer"].clone()), (400, json!("/data/numberOfSeries")), "{p}");
    // an update makes version 2; a retraction takes study 11 away
    let mut update = study_event(1, "update-1", "updated");
    update["data"]["description"] = json!("study 1, reviewed");
    post_ok(&c, &update).await;
    let retract = json!({
        "specversion": "1.0", "id": "retract-11", "source": format!("urn:cireg:provider:{PROVIDER}"),
        "type": "eu.cancerimage.study.retracted.v1", "subject": "P11", "time": "2026-11-07T09:00:00Z",
        "data": {"studyInstanceUid": uid(11)}
    });
    post_ok(&c, &retract).await;
    settle(&c).await;

    let all = set(0..11);
    let id3 = f.id_of(3).await;
    let cases: Vec<(String, BTreeSet<usize>)> = vec![
        ("".into(), all.clone()),
        ("started=2024".into(), set([1, 2, 3, 4])),
        ("started=eq2024-03-14".into(), set([1, 2])),
        ("started=2024-03-14T08:42Z".into(), set([1])),
        ("started=ne2024".into(), set([0, 5, 6, 7, 8, 9, 10])),
        ("started=gt2024-06-30".into(), set([4, 5])),
        ("started=sa2024".into(), set([5])),
        ("started=lt2024".into(), set([0, 6, 7, 8, 9, 10])),
        ("started=eb2023-01-15".into(), set([6, 7, 8, 9, 10])),
        ("started=ge2024-06-30".into(), set([3, 4, 5])),
        ("started=le2024-03-14".into(), set([0, 1, 2, 6, 7, 8, 9, 10])),
        ("started=ap2024-03-14".into(), set([1, 2])),
        ("started=ge2024&started=lt2025".into(), set([1, 2, 3, 4])),
        ("started=lt2023,ge2025".into(), set([5, 6, 7, 8, 9, 10])),
        ("modality=CT".into(), set([2, 3, 4])),
        ("modality=http://dicom.nema.org/resources/ontology/DCM|PT".into(), set([4])),
        ("modality=MG,PT".into(), set([4, 5])),
        ("modality=http://loinc.org|CT".into(), set([])),
        ("modality:not=MR".into(), set([3, 4, 5])),
        ("modality=MR&started=2024".into(), set([1, 2])),
        ("bodysite=39607008".into(), set([3, 4])),
        ("body-site=http://snomed.info/sct|76752008".into(), set([0, 1, 2, 5, 6, 7, 8, 9, 10])),
        ("patient=P01".into(), set([0, 1])),
        (format!("subject:identifier=urn:cireg:provider:{PROVIDER}:subject|P02"), set([2])),
        ("patient:identifier=urn:cireg:provider:other:subject|P01".into(), set([])),
        (format!("identifier=urn:dicom:uid|urn:oid:{}", uid(3)), set([3])),
        (format!("identifier={}", uid(3)), set([3])),
        (format!("identifier={},{}", uid(3), uid(5)), set([3, 5])),
        (format!("series={}", series_uid(4, 1)), set([4])),
        ("status=available".into(), all.clone()),
        ("status=cancelled".into(), set([])),
        (format!("dataset={PROVIDER}/{SECOND}"), set([9, 10])),
        (format!("dataset={}/datasets/{PROVIDER}/{SECOND}", c.base), set([9, 10])),
        (format!("_id={id3}"), set([3])),
        (format!("_id:not={id3}"), set([0, 1, 2, 4, 5, 6, 7, 8, 9, 10])),
        ("patient=P01&started=2024".into(), set([1])),
        (
            format!("_lastUpdated=ge{}", before.format(&time::format_description::well_known::Rfc3339).unwrap()),
            all.clone(),
        ),
        ("_lastUpdated=lt2000".into(), set([])),
        ("unknown-parameter=1".into(), all.clone()),
    ];
    for (query, want) in &cases {
        let query = query.replace('|', "%7C").replace('+', "%2B");
        assert_eq!(&f.matches(&query).await, want, "{query}");
    }

    // paging: small pages, both ways, each page found from its cursor
    let first = f.search("_count=4&_sort=started").await;
    assert_eq!(first["total"], json!(11));
    let started = |b: &Value| -> Vec<String> {
        b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["started"].as_str().unwrap().to_owned()).collect()
    };
    let mut seen = started(&first);
    let mut page = first.clone();
    let mut pages = vec![first.clone()];
    while let Some(next) = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
        let path = next["url"].as_str().unwrap().split_once("/fhir/").map(|(_, p)| format!("/fhir/{p}")).unwrap();
        page = f.get_as(&path, "5.0").await.2;
        seen.extend(started(&page));
        pages.push(page.clone());
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(seen.len(), 11);
    let instants: Vec<time::OffsetDateTime> = seen
        .iter()
        .map(|s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap())
        .collect();
    assert!(instants.windows(2).all(|w| w[0] <= w[1]), "sorted by started: {seen:?}");
    let prev = pages[2]["link"].as_array().unwrap().iter().find(|l| l["relation"] == "previous").unwrap();
    let path = prev["url"].as_str().unwrap().split_once("/fhir/").map(|(_, p)| format!("/fhir/{p}")).unwrap();
    assert_eq!(started(&f.get_as(&path, "5.0").await.2), started(&pages[1]), "previous of the last page");
    let desc = f.search("_sort=-started&_count=11").await;
    let mut reversed = seen.clone();
    reversed.reverse();
    assert_eq!(started(&desc), reversed);
    let by_update = f.search("_sort=-_lastUpdated&_count=1").await;
    assert_eq!(by_update["entry"][0]["resource"]["identifier"][0]["value"], json!(format!("urn:oid:{}", uid(1))));

    // totals, summaries, elements
    let count = f.search("modality=CT&_summary=count").await;
    assert_eq!((count["total"].clone(), count.get("entry")), (json!(3), None), "{count}");
    let zero = f.search("_count=0").await;
    assert_eq!((zero["total"].clone(), zero.get("entry")), (json!(11), None));
    let summary = f.search(&format!("_id={id3}&_summary=true")).await;
    let resource = &summary["entry"][0]["resource"];
    assert!(resource.get("series").is_some() && resource["series"][0].get("instance").is_none());
    assert_eq!(resource["meta"]["tag"][0]["code"], "SUBSETTED");
    let elements = f.search(&format!("_id={id3}&_elements=started")).await;
    let keys: BTreeSet<String> = elements["entry"][0]["resource"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["id", "meta", "resourceType", "started", "status", "subject"].map(String::from).into());

    // read, versions, history, conditional read
    let id1 = f.id_of(1).await;
    let (status, content_type, r5) = f.get_as(&format!("/fhir/ImagingStudy/{id1}"), "5.0").await;
    assert_eq!((status, content_type.as_str()), (200, "application/fhir+json; fhirVersion=5.0"));
    assert_eq!(r5["meta"]["versionId"], "2");
    assert_eq!(r5["description"], "study 1, reviewed");
    assert_eq!(r5["modality"][0]["coding"][0]["code"], "MR");
    let r = f.client.get(c.url(&format!("/fhir/ImagingStudy/{id1}"))).send().await.unwrap();
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    assert!(r.headers().contains_key("last-modified"));
    let r = f
        .client
        .get(c.url(&format!("/fhir/ImagingStudy/{id1}")))
        .header("if-none-match", "W/\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    for version in ["4.0", "4.3"] {
        let (status, content_type, r4) = f.get_as(&format!("/fhir/ImagingStudy/{id1}"), version).await;
        assert_eq!((status, content_type), (200, format!("application/fhir+json; fhirVersion={version}")));
        assert_eq!(r4["modality"][0]["code"], "MR", "R4: Coding");
        assert_eq!(r4["series"][0]["bodySite"]["code"], "76752008");
    }
    let posted: Value = f
        .client
        .post(c.url("/fhir/ImagingStudy/_search"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("modality=CT&started=2024")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["total"], json!(3), "POST _search: {posted}");
    let (_, _, r4_search) = f.get_as("/fhir/ImagingStudy?modality=CT", "4.0").await;
    assert_eq!(r4_search["total"], json!(3));
    let (status, _, history) = f.get_as(&format!("/fhir/ImagingStudy/{id1}/_history"), "5.0").await;
    assert_eq!((status, history["type"].clone(), history["total"].clone()), (200, json!("history"), json!(2)));
    assert_eq!(history["entry"][0]["resource"]["meta"]["versionId"], "2", "newest first");
    assert_eq!(history["entry"][1]["resource"]["description"], "study 1");
    let (_, _, r4_history) = f.get_as(&format!("/fhir/ImagingStudy/{id1}/_history"), "4.0").await;
    assert_eq!((r4_history["type"].clone(), r4_history["total"].clone()), (json!("history"), json!(2)));
    let (status, _, v1) = f.get_as(&format!("/fhir/ImagingStudy/{id1}/_history/1"), "5.0").await;
    assert_eq!((status, v1["meta"]["versionId"].clone()), (200, json!("1")));
    let (status, _, _) = f.get_as(&format!("/fhir/ImagingStudy/{id1}/_history/9"), "5.0").await;
    assert_eq!(status, 404);
    for (version, full) in [("5.0", "5.0.0"), ("4.0", "4.0.1"), ("4.3", "4.3.0")] {
        let (status, _, cs) = f.get_as("/fhir/metadata", version).await;
        assert_eq!(cs["fhirVersion"], full);
        assert_eq!((status, cs["resourceType"].clone()), (200, json!("CapabilityStatement")));
        let names: BTreeSet<&str> = cs["rest"][0]["resource"][0]["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in ["identifier", "patient", "started", "modality", "bodysite", "body-site", "dataset", "_lastUpdated"]
        {
            assert!(names.contains(name), "{name} in {names:?}");
        }
    }

    // errors: OperationOutcome with the right status, naming the parameter
    let (status, _, o) = f.get_as("/fhir/ImagingStudy?started=2024-13", "5.0").await;
    assert_eq!(
        (status, o["resourceType"].clone(), o["issue"][0]["expression"][0].clone()),
        (400, json!("OperationOutcome"), json!("started"))
    );
    let (status, _, o) = f.get_as("/fhir/ImagingStudy?_count=5000", "4.0").await;
    assert_eq!((status, o["issue"][0]["code"].clone()), (400, json!("invalid")));
    let strict = f
        .client
        .get(c.url("/fhir/ImagingStudy?unknown-parameter=1"))
        .header("prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(strict.status(), 400);
    let (status, _, o) = f.get_as("/fhir/ImagingStudy/no-such-study", "5.0").await;
    assert_eq!((status, o["issue"][0]["code"].clone()), (404, json!("not-found")));
    let id11 = {
        let p = f.search("_id=x").await;
        assert_eq!(p["total"], json!(0));
        // the retracted study's id, computed as the registry does
        let (_, _, hist) = f.get_as(&format!("/fhir/ImagingStudy/{}", f.id_of(10).await), "5.0").await;
        assert_eq!(hist["resourceType"], "ImagingStudy");
        cireg_model::Study::resource_id(PROVIDER, "P11", &uid(11))
    };
    let (status, _, o) = f.get_as(&format!("/fhir/ImagingStudy/{id11}"), "5.0").await;
    assert_eq!((status, o["issue"][0]["code"].clone()), (410, json!("deleted")));
    let (status, _, o) = f.get_as("/fhir/ImagingStudy", "3.0").await;
    assert_eq!((status, o["resourceType"].clone()), (406, json!("OperationOutcome")));
    let xml = f.client.get(c.url("/fhir/metadata")).header("accept", "application/fhir+xml").send().await.unwrap();
    assert_eq!(xml.status(), 406);
    let (status, _, _) = f.get_as("/fhir/Patient", "5.0").await;
    assert_eq!(status, 404);

    // the datasets' counts follow from their studies
    let counts =
        |d: &Value| (d["subjects"].as_u64().unwrap(), d["studies"].as_u64().unwrap(), d["series"].as_u64().unwrap());
    let dataset_url = c.url(&format!("/api/v1/datasets/{PROVIDER}/{DATASET}"));
    let d: Value = reqwest::get(&dataset_url).await.unwrap().json().await.unwrap();
    // studies 0..=8: subjects P01 (twice) to P08; series 1+2+2+1+2+1+1+1+1
    assert_eq!(counts(&d), (8, 9, 12), "{d}");
    let d2: Value =
        reqwest::get(c.url(&format!("/api/v1/datasets/{PROVIDER}/{SECOND}"))).await.unwrap().json().await.unwrap();
    assert_eq!(counts(&d2), (2, 2, 2), "the retracted study does not count: {d2}");

    // a researcher's SPARQL sees the study graphs (imaging vocabulary)
    let by_subject = "PREFIX img: <https://w3id.org/cireg/imaging#> \
        SELECT ?uid WHERE { GRAPH ?g { ?s a img:ImagingStudy ; img:subject 'P01' ; img:studyInstanceUID ?uid } }";
    let mut p01 = c.select_as_researcher(by_subject, "uid").await;
    p01.sort();
    assert_eq!(p01, vec![uid(0), uid(1)]);

    // consent withdrawal: P01's studies vanish from FHIR, SPARQL and the counts; none is accepted again
    let id0 = f.id_of(0).await;
    post_ok(&c, &consent_withdrawal("P01")).await;
    // a re-send is answered as a duplicate (and erases again)
    let (status, body) = c.post_event(&consent_withdrawal("P01")).await;
    assert_eq!((status, body["duplicate"].clone()), (200, json!(true)), "{body}");
    settle(&c).await;
    assert_eq!(f.matches("patient=P01").await, set([]));
    assert!(c.select_as_researcher(by_subject, "uid").await.is_empty());
    let (status, _, _) = f.get_as(&format!("/fhir/ImagingStudy/{id0}"), "5.0").await;
    assert_eq!(status, 404, "erased, not merely gone");
    let d: Value = reqwest::get(&dataset_url).await.unwrap().json().await.unwrap();
    assert_eq!(counts(&d), (7, 7, 9), "{d}");
    let (status, p) = c.post_event(&study_event(0, "study-0-again", "registered")).await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("withdrew consent"), "{p}");

    // every FHIR response of this test, to the independent judges
    let judged = f.saved.as_ref().map(|s| s.lock().unwrap().1).unwrap_or(0);
    assert!(judged > 50, "{judged} responses kept for the judges");
    judge(&saved_dir);

    // nothing of P01's studies is left in the store, and a rebuild from the log does not bring them back
    let mut c = c;
    c.stop();
    let data = c.data.clone();
    let dump = || support::run_cli(&["dump", "--data", data.to_str().unwrap()]).1;
    let gone = |dump: &str| !dump.contains(&uid(0)) && !dump.contains(&uid(1)) && !dump.contains("study 1, reviewed");
    let before_rebuild = dump();
    assert!(before_rebuild.contains(&uid(2)), "other studies stay");
    assert!(gone(&before_rebuild), "the store still holds a withdrawn subject's study");
    let (ok, out, err) = support::run_cli(&["rebuild", "--data", data.to_str().unwrap(), "--public-base", &c.base]);
    assert!(ok, "{out}\n{err}");
    let after_rebuild = dump();
    assert!(gone(&after_rebuild));
    assert_eq!(before_rebuild, after_rebuild, "the rebuilt store differs");
    c.restart();
    c.wait_ready().await;
    let f = Fhir { c: &c, client: support::researcher_client(), saved: None };
    assert_eq!(f.matches("").await, set(2..11));
}

#[tokio::test]
async fn consent_withdrawal_purges_jetstream_and_survives_a_rebuild() {
    use async_nats::jetstream;
    let nats = cireg_testkit::NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = Cireg::start(&data, &["--nats", &nats.url(), "--public-base", "https://registry.example.eu"]);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let send = |event: Value| {
        let client = client.clone();
        async move {
            let reply = tokio::time::timeout(
                Duration::from_secs(30),
                client.request(format!("cireg.ingest.{PROVIDER}"), serde_json::to_vec(&event).unwrap().into()),
            )
            .await
            .expect("an answer in time")
            .unwrap();
            serde_json::from_slice::<Value>(&reply.payload).unwrap()
        }
    };
    send(example("provider.registered")).await;
    send(example("dataset.published")).await;
    for k in [0, 1, 2] {
        let answer = send(study_event(k, &format!("study-{k}"), "registered")).await;
        assert!(answer["sequence"].is_u64(), "{answer}");
    }
    let stream = jetstream::new(client.clone()).get_stream("CIREG_EVENTS").await.unwrap();
    let p01 = |k: usize| format!("cireg.events.{PROVIDER}.subject.P01.study.{}", uid(k).replace('.', "_"));
    assert!(stream.get_last_raw_message_by_subject(&p01(0)).await.is_ok());
    let answer = send(consent_withdrawal("P01")).await;
    assert!(answer["sequence"].is_u64(), "{answer}");
    for k in [0, 1] {
        assert!(stream.get_last_raw_message_by_subject(&p01(k)).await.is_err(), "study {k} is still in JetStream");
    }
    let p02 = format!("cireg.events.{PROVIDER}.subject.P02.study.{}", uid(2).replace('.', "_"));
    assert!(stream.get_last_raw_message_by_subject(&p02).await.is_ok(), "another subject's study stays");
    let withdrawal =
        stream.get_last_raw_message_by_subject(&format!("cireg.events.{PROVIDER}.subject.P01")).await.unwrap();
    let recorded: Value = serde_json::from_slice(&withdrawal.payload).unwrap();
    assert_eq!(recorded["data"], json!({}), "the withdrawal carries nothing but the pseudonym");
    let answer = send(study_event(0, "study-0-again", "registered")).await;
    assert_eq!(answer["status"], json!(409), "{answer}");

    c.wait_ready().await;
    let f = Fhir { c: &c, client: support::researcher_client(), saved: None };
    assert_eq!(f.matches("").await, set([2]));
    c.stop();
    let (ok, out, err) = support::run_cli(&[
        "rebuild",
        "--data",
        data.to_str().unwrap(),
        "--nats",
        &nats.url(),
        "--public-base",
        &c.base,
    ]);
    assert!(ok, "{out}\n{err}");
    let dump = support::run_cli(&["dump", "--data", data.to_str().unwrap()]).1;
    assert!(!dump.contains(&uid(0)) && !dump.contains(&uid(1)) && dump.contains(&uid(2)));
    c.restart();
    c.wait_ready().await;
    let f = Fhir { c: &c, client: support::researcher_client(), saved: None };
    assert_eq!(f.matches("").await, set([2]));
}
