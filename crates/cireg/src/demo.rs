//! The demo catalogue as events: synthetic datasets over the nine cancer types, from five
//! made-up research projects in several countries. Deterministic: the same events every run.
//! Everything is labelled synthetic.

use serde_json::{json, Value};

struct Cancer {
    key: &'static str,
    name: &'static str,
    snomed: (&'static str, &'static str),
    body: &'static [(&'static str, &'static str)],
    modalities: &'static [&'static str],
    ages: (u32, u32),
    sex: &'static [&'static str],
}

const CANCERS: [Cancer; 9] = [
    Cancer {
        key: "breast",
        name: "breast cancer",
        snomed: ("254837009", "Malignant neoplasm of breast"),
        body: &[("76752008", "Breast structure")],
        modalities: &["MG", "MR", "US"],
        ages: (35, 80),
        sex: &["F"],
    },
    Cancer {
        key: "lung",
        name: "lung cancer",
        snomed: ("363358000", "Malignant tumor of lung"),
        body: &[("39607008", "Lung structure"), ("51185008", "Thoracic structure")],
        modalities: &["CT", "PT"],
        ages: (45, 85),
        sex: &["F", "M"],
    },
    Cancer {
        key: "prostate",
        name: "prostate cancer",
        snomed: ("399068003", "Malignant tumor of prostate"),
        body: &[("41216001", "Prostatic structure")],
        modalities: &["MR", "PT"],
        ages: (50, 85),
        sex: &["M"],
    },
    Cancer {
        key: "colon",
        name: "colon cancer",
        snomed: ("363406005", "Malignant neoplasm of colon"),
        body: &[("71854001", "Colon structure"), ("818983003", "Abdomen")],
        modalities: &["CT"],
        ages: (45, 85),
        sex: &["F", "M"],
    },
    Cancer {
        key: "rectum",
        name: "rectal cancer",
        snomed: ("363351006", "Malignant tumor of rectum"),
        body: &[("34402009", "Rectum structure")],
        modalities: &["MR", "CT"],
        ages: (40, 85),
        sex: &["F", "M"],
    },
    Cancer {
        key: "liver",
        name: "liver cancer",
        snomed: ("93870000", "Malignant neoplasm of liver"),
        body: &[("10200004", "Liver structure")],
        modalities: &["CT", "MR"],
        ages: (45, 85),
        sex: &["F", "M"],
    },
    Cancer {
        key: "glioblastoma",
        name: "glioblastoma",
        snomed: ("393563007", "Glioblastoma multiforme"),
        body: &[("12738006", "Brain structure")],
        modalities: &["MR"],
        ages: (30, 80),
        sex: &["F", "M"],
    },
    Cancer {
        key: "dipg",
        name: "diffuse intrinsic pontine glioma (DIPG)",
        snomed: ("C94764", "Diffuse Intrinsic Pontine Glioma"),
        body: &[("15926001", "Brain stem structure")],
        modalities: &["MR"],
        ages: (2, 12),
        sex: &["F", "M"],
    },
    Cancer {
        key: "neuroblastoma",
        name: "neuroblastoma",
        snomed: ("432328008", "Neuroblastoma"),
        body: &[("23451007", "Adrenal structure"), ("818983003", "Abdomen")],
        modalities: &["MR", "CT", "NM"],
        ages: (0, 10),
        sex: &["F", "M"],
    },
];

struct Project {
    id: &'static str,
    name: &'static str,
    country: &'static str,
    countries: &'static [&'static str],
}

const PROJECTS: [Project; 5] = [
    Project {
        id: "synthetic-iberia-imaging",
        name: "Iberian Oncology Imaging Network (synthetic)",
        country: "ESP",
        countries: &["ESP", "PRT"],
    },
    Project {
        id: "synthetic-nordic-cancer-atlas",
        name: "Nordic Cancer Imaging Atlas (synthetic)",
        country: "SWE",
        countries: &["SWE", "NOR", "FIN"],
    },
    Project {
        id: "synthetic-paediatric-onco",
        name: "European Paediatric Oncology Imaging (synthetic)",
        country: "ITA",
        countries: &["ITA", "FRA", "AUT"],
    },
    Project {
        id: "synthetic-ai-screening",
        name: "AI for Screening Consortium (synthetic)",
        country: "NLD",
        countries: &["NLD", "BEL"],
    },
    Project {
        id: "synthetic-central-europe-rad",
        name: "Central European Radiology Cohorts (synthetic)",
        country: "DEU",
        countries: &["DEU", "POL", "CZE"],
    },
];

const MANUFACTURERS: [&str; 5] =
    ["Siemens Healthineers", "GE HealthCare", "Philips", "Canon Medical Systems", "Fujifilm"];

fn modality_display(code: &str) -> &'static str {
    match code {
        "CT" => "Computed Tomography",
        "MR" => "Magnetic Resonance",
        "PT" => "Positron emission tomography",
        "MG" => "Mammography",
        "US" => "Ultrasound",
        "NM" => "Nuclear Medicine",
        _ => "Other",
    }
}

/// A small deterministic generator (SplitMix64), so the demo is the same on every machine.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// A number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn event(id: String, provider: &str, kind: &str, subject: &str, time: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("urn:cireg:provider:{provider}"),
        "type": format!("eu.cancerimage.{kind}.v1"),
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// The synthetic studies of one dataset, and what they add up to.
struct DemoStudies {
    events: Vec<Value>,
    subjects: u64,
    series: u64,
}

/// A DICOM UID under the UUID-derived root 2.25 (PS3.5 B.2), from the generator.
fn demo_uid(rng: &mut Rng) -> String {
    format!("2.25.{}", (u128::from(rng.next()) << 64 | u128::from(rng.next())).max(1))
}

/// Studies of 40 to 80 synthetic subjects, one or two each, within the acquisition years.
fn demo_studies(
    rng: &mut Rng,
    i: usize,
    provider: &str,
    dataset: &str,
    cancer: &Cancer,
    modalities: &[&str],
    (first_year, last_year): (u64, u64),
) -> DemoStudies {
    let subjects = rng.between(40, 80);
    let mut out = DemoStudies { events: Vec::new(), subjects, series: 0 };
    for n in 0..subjects {
        let pseudonym = format!("{}{i:02}-{n:04}", cancer.key.to_uppercase().chars().take(4).collect::<String>());
        for visit in 0..rng.between(1, 2) {
            let uid = demo_uid(rng);
            let year = rng.between(first_year, last_year);
            let started = format!(
                "{year}-{:02}-{:02}T{:02}:{:02}:00Z",
                rng.between(1, 12),
                rng.between(1, 28),
                rng.between(7, 18),
                rng.between(0, 59)
            );
            let in_study: Vec<&str> =
                modalities.iter().take(1 + (rng.next() % modalities.len() as u64) as usize).copied().collect();
            let n_series = rng.between(2, 6);
            let series: Vec<Value> = (0..n_series)
                .map(|k| {
                    let (site, display) = cancer.body[(k as usize) % cancer.body.len()];
                    json!({
                        "uid": demo_uid(rng),
                        "number": k + 1,
                        "modality": in_study[(k as usize) % in_study.len()],
                        "bodySite": { "code": site, "display": display },
                        "numberOfInstances": rng.between(20, 300),
                        "description": format!("Synthetic series {}", k + 1),
                    })
                })
                .collect();
            let instances: u64 = series.iter().filter_map(|s| s["numberOfInstances"].as_u64()).sum();
            out.series += n_series;
            out.events.push(event(
                format!("demo-study-{i:02}-{n:04}-{visit}"),
                provider,
                "study.registered",
                &pseudonym,
                "2026-02-15T10:00:00Z",
                json!({
                    "dataset": dataset,
                    "studyInstanceUid": uid,
                    "started": started,
                    "description": format!("Synthetic {} study", cancer.name),
                    "modalities": in_study,
                    "numberOfSeries": n_series,
                    "numberOfInstances": instances,
                    "series": series,
                }),
            ));
        }
    }
    out
}

/// Which cancer each of the datasets is about: every type at least twice, 40 in all.
fn cancer_of(i: usize) -> &'static Cancer {
    &CANCERS[i % CANCERS.len()]
}

/// The demo events, in the order to send them.
pub fn demo_events() -> Vec<Value> {
    let mut rng = Rng(20_261_128);
    let mut study_rng = Rng(5_000_000_001);
    let mut events = Vec::new();
    for (p, project) in PROJECTS.iter().enumerate() {
        events.push(event(
            format!("demo-provider-{p}"),
            project.id,
            "provider.registered",
            project.id,
            &format!("2026-01-0{}T08:00:00Z", p + 1),
            json!({
                "name": { "en": project.name },
                "description": { "en": "A made-up research project for the cireg demo. It holds no real data." },
                "homepage": format!("https://example.org/{}", project.id),
                "type": "Academia-ScientificOrganisation",
                "country": project.country,
                "contactPoint": { "name": "Data steward (synthetic)", "email": format!("steward@{}.example.org", project.id) },
            }),
        ));
    }
    const DATASETS: usize = 40;
    for i in 0..DATASETS {
        let cancer = cancer_of(i);
        let project = &PROJECTS[(i * 7 + i / 9) % PROJECTS.len()];
        // about 20,000 individuals and 200,000 series over the 40 datasets
        let mut subjects = rng.between(300, 700);
        let mut studies = subjects + rng.between(subjects / 4, subjects);
        let mut series = studies * rng.between(4, 8) + rng.between(0, 200);
        let modalities: Vec<Value> = cancer
            .modalities
            .iter()
            .take(1 + (rng.next() % cancer.modalities.len() as u64) as usize)
            .map(|m| json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": m, "display": modality_display(m)}))
            .collect();
        let condition = if cancer.snomed.0.starts_with('C') {
            json!({"system": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl", "code": cancer.snomed.0, "display": cancer.snomed.1})
        } else {
            json!({"system": "http://snomed.info/sct", "code": cancer.snomed.0, "display": cancer.snomed.1})
        };
        let sex: Vec<Value> = cancer
            .sex
            .iter()
            .map(|s| match *s {
                "F" => json!({"system": "http://snomed.info/sct", "code": "248152002", "display": "Female"}),
                _ => json!({"system": "http://snomed.info/sct", "code": "248153007", "display": "Male"}),
            })
            .collect();
        let start_year = 2012 + rng.between(0, 8);
        let end_year = start_year + rng.between(2, 5);
        let dataset_id = format!("{}-{}-{:02}", cancer.key, project.country.to_lowercase(), i + 1);
        // every tenth dataset lists its studies, and its counts are theirs
        let study_events = if i % 10 == 0 {
            let codes: Vec<&str> = modalities.iter().filter_map(|m| m["code"].as_str()).collect();
            let generated =
                demo_studies(&mut study_rng, i, project.id, &dataset_id, cancer, &codes, (start_year, end_year));
            subjects = generated.subjects;
            studies = generated.events.len() as u64;
            series = generated.series;
            generated.events
        } else {
            Vec::new()
        };
        let n_manufacturers = 1 + rng.between(0, 2) as usize;
        let manufacturers: Vec<&str> =
            (0..n_manufacturers).map(|k| MANUFACTURERS[(i + k) % MANUFACTURERS.len()]).collect();
        let access = if i % 10 == 3 { "PUBLIC" } else { "RESTRICTED" };
        let countries: Vec<&str> = project.countries.iter().take(1 + i % project.countries.len()).copied().collect();
        let data = json!({
            "title": {
                "en": format!("Synthetic {} imaging cohort {} ({})", cancer.name, i + 1, project.country),
            },
            "description": {
                "en": format!(
                    "SYNTHETIC DEMO DATA, describing no real patients. {} imaging of {} subjects with {}, collected {}–{} by {}.",
                    modalities.iter().filter_map(|m| m["code"].as_str()).collect::<Vec<_>>().join("/"),
                    subjects, cancer.name, start_year, end_year, project.name
                ),
            },
            "version": "1.0.0",
            "keywords": { "en": [cancer.name, "synthetic", "cancer imaging"] },
            "condition": condition,
            "imageModalities": modalities,
            "bodyParts": cancer.body.iter().map(|(c, d)| json!({"system": "http://snomed.info/sct", "code": c, "display": d})).collect::<Vec<_>>(),
            "equipmentManufacturers": manufacturers,
            "birthSex": sex,
            "numberOfSubjects": subjects,
            "numberOfStudies": studies,
            "numberOfSeries": series,
            "ageRange": { "min": cancer.ages.0, "max": cancer.ages.1 },
            "acquisitionPeriod": { "start": format!("{start_year}-01-01"), "end": format!("{end_year}-12-31") },
            "collectionMethods": [{ "system": "urn:cireg:code", "code": if i % 4 == 0 { "prospective" } else { "retrospective" } }],
            "countries": countries,
            "accessRights": access,
            "applicableLegislation": ["http://data.europa.eu/eli/reg/2016/679/oj"],
            "contactPoint": { "name": "Data access committee (synthetic)", "email": format!("access@{}.example.org", project.id) },
            "publisher": {
                "name": { "en": project.name },
                "homepage": format!("https://example.org/{}", project.id),
                "type": "Academia-ScientificOrganisation",
                "contactPoint": { "email": format!("steward@{}.example.org", project.id) },
            },
            "provenance": { "en": "Synthetic: generated by `cireg demo`." },
            "synthetic": true,
            "distributions": [{
                "id": "dicom",
                "title": { "en": "DICOM images (access on request)" },
                "accessUrl": format!("https://example.org/{}/datasets/{dataset_id}/access", project.id),
                "format": "DCM",
                "mediaType": "application/dicom",
                "licence": "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
                "accessCondition": if i % 3 == 0 { "DOWNLOAD" } else { "REMOTE_PROCESSING" },
            }],
        });
        // what the application profile (HealthDCAT-AP, EUCAIM) asks for besides the above
        let profile = json!({
            "healthCategories": ["EMRD", "RQSH"],
            "healthThemes": ["CANCER_DISEASE"],
            "datasetTypes": [{ "system": "https://w3id.org/dpv#", "code": "SyntheticData", "display": "Synthetic data" }],
            "interoperabilityLevel": { "system": "urn:cireg:code", "code": format!("tier-{}", 1 + i % 3), "display": format!("EUCAIM interoperability tier {}", 1 + i % 3) },
            "structuredData": false,
            "hdab": {
                "name": { "en": format!("Data access committee of the {}", project.name) },
                "contactPoint": { "email": format!("access@{}.example.org", project.id) },
            },
            "custodian": {
                "name": { "en": project.name },
                "contactPoint": { "url": format!("https://example.org/{}/contact", project.id) },
            },
            "purposes": ["https://w3id.org/dpv#ResearchAndDevelopment"],
            "legalBases": ["https://w3id.org/dpv/legal/eu/gdpr#A9-2-j"],
            "retentionPeriod": { "start": format!("{end_year}-12-31"), "end": format!("{}-12-31", end_year + 15) },
            "populationCoverage": { "en": format!("Synthetic {} patients aged {} to {}.", cancer.name, cancer.ages.0, cancer.ages.1) },
            "documentation": [format!("https://example.org/{}/datasets/{dataset_id}/documentation", project.id)],
            "languages": ["ENG"],
            "frequency": "NEVER",
        });
        let mut data = data;
        if let (Some(data), Value::Object(profile)) = (data.as_object_mut(), profile) {
            data.extend(profile);
            if i % 2 == 0 {
                data.insert(
                    "analytics".to_owned(),
                    json!([{
                        "id": "counts",
                        "title": { "en": "Studies and series per modality and body part (synthetic)" },
                        "accessUrl": format!("https://example.org/{}/datasets/{dataset_id}/analytics", project.id),
                        "format": "CSV",
                        "mediaType": "text/csv",
                        "licence": "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
                    }]),
                );
            }
            if i % 4 == 0 {
                data.insert(
                    "samples".to_owned(),
                    json!([{
                        "id": "five-subjects",
                        "title": { "en": "Five synthetic subjects to try the data" },
                        "accessUrl": format!("https://example.org/{}/datasets/{dataset_id}/sample", project.id),
                        "format": "ZIP",
                        "licence": "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
                        "accessCondition": "DOWNLOAD",
                    }]),
                );
            }
        }
        let day = 1 + i % 28;
        events.push(event(
            format!("demo-publish-{i:02}"),
            project.id,
            "dataset.published",
            &dataset_id,
            &format!("2026-02-{day:02}T10:00:00Z"),
            data,
        ));
        events.extend(study_events);
        // a later life for some of them
        if i % 5 == 1 {
            events.push(event(
                format!("demo-update-{i:02}"),
                project.id,
                "dataset.updated",
                &dataset_id,
                &format!("2026-03-{day:02}T10:00:00Z"),
                json!({ "version": "1.1.0", "numberOfSeries": series + 120 }),
            ));
        }
        if i % 8 == 2 {
            events.push(event(
                format!("demo-distribution-{i:02}"),
                project.id,
                "dataset.distribution.added",
                &dataset_id,
                &format!("2026-04-{day:02}T10:00:00Z"),
                json!({
                    "id": "nifti-sample",
                    "title": { "en": "NIfTI sample of ten synthetic subjects" },
                    "accessUrl": format!("https://example.org/{}/datasets/{dataset_id}/sample", project.id),
                    "format": "ZIP",
                    "licence": "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
                }),
            ));
        }
        if i == 17 {
            events.push(event(
                format!("demo-deprecate-{i:02}"),
                project.id,
                "dataset.deprecated",
                &dataset_id,
                "2026-05-01T10:00:00Z",
                json!({ "reason": { "en": "Superseded by a later release (synthetic)." } }),
            ));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn demo_events_are_valid_and_sized_as_promised() {
        let events = demo_events();
        let mut subjects = 0;
        let mut series = 0;
        let mut datasets = 0;
        let mut cancers = std::collections::BTreeSet::new();
        for e in &events {
            cireg_model::validate_event(&serde_json::to_vec(e).unwrap()).unwrap_or_else(|err| panic!("{e}: {err}"));
            if e["type"] == "eu.cancerimage.dataset.published.v1" {
                datasets += 1;
                subjects += e["data"]["numberOfSubjects"].as_u64().unwrap();
                series += e["data"]["numberOfSeries"].as_u64().unwrap();
                cancers.insert(e["data"]["condition"]["code"].as_str().unwrap().to_owned());
                assert!(e["data"]["title"]["en"].as_str().unwrap().contains("Synthetic"));
            }
        }
        assert_eq!(datasets, 40);
        let studies = events.iter().filter(|e| e["type"] == "eu.cancerimage.study.registered.v1").count();
        assert!((200..=700).contains(&studies), "{studies} studies");
        assert_eq!(cancers.len(), 9);
        assert!((15_000..=25_000).contains(&subjects), "{subjects} individuals");
        assert!((150_000..=260_000).contains(&series), "{series} series");
    }
}
