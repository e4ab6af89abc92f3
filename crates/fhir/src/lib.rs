#![doc = include_str!("../README.md")]

mod r4b;
mod r5;
mod shared;
mod subset;

use cireg_model::Study;
use serde_json::Value;

pub use subset::{subset, Subset};

/// The FHIR versions the API speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirVersion {
    R5,
    /// R4 (4.0.1), answered with R4B's types: ImagingStudy, Bundle and OperationOutcome are the
    /// same on the wire in R4 and R4B.
    R4,
    /// R4B (4.3.0).
    R4B,
}

impl FhirVersion {
    /// The version named by a `fhirVersion` MIME parameter (`5.0`, `4.0`, `4.3`, or a full
    /// version such as `4.0.1`).
    pub fn from_mime_parameter(value: &str) -> Option<Self> {
        let mut parts = value.trim().trim_matches('"').split('.');
        match (parts.next(), parts.next()) {
            (Some("5"), Some("0")) => Some(FhirVersion::R5),
            (Some("4"), Some("0")) => Some(FhirVersion::R4),
            (Some("4"), Some("3")) => Some(FhirVersion::R4B),
            _ => None,
        }
    }

    /// The `fhirVersion` MIME parameter of responses in this version.
    pub fn mime_parameter(self) -> &'static str {
        match self {
            FhirVersion::R5 => "5.0",
            FhirVersion::R4 => "4.0",
            FhirVersion::R4B => "4.3",
        }
    }

    /// The full version a CapabilityStatement names.
    pub fn full(self) -> &'static str {
        match self {
            FhirVersion::R5 => "5.0.0",
            FhirVersion::R4 => "4.0.1",
            FhirVersion::R4B => "4.3.0",
        }
    }

    /// `Content-Type` of JSON responses in this version.
    pub fn content_type(self) -> String {
        format!("application/fhir+json; fhirVersion={}", self.mime_parameter())
    }
}

/// Something the FHIR types refused: a study document that cannot be expressed (a defect, since
/// the schemas keep study documents within what FHIR allows).
#[derive(Debug, thiserror::Error)]
#[error("cannot express as FHIR: {0}")]
pub struct FhirError(String);

impl From<fhir_sdk::BuilderError> for FhirError {
    fn from(e: fhir_sdk::BuilderError) -> Self {
        FhirError::new(e)
    }
}

impl FhirError {
    fn new(e: impl std::fmt::Display) -> Self {
        FhirError(e.to_string())
    }
}

/// The extension that names the dataset (its DCAT IRI) a study belongs to.
pub const DATASET_EXTENSION: &str = "https://w3id.org/cireg/fhir/StructureDefinition/dataset";

/// One study as the API shows it.
#[derive(Debug, Clone, Copy)]
pub struct StudyView<'a> {
    /// The resource id.
    pub id: &'a str,
    pub provider: &'a str,
    /// The pseudonymous subject id.
    pub subject: &'a str,
    /// The DCAT IRI of the study's dataset.
    pub dataset_iri: &'a str,
    pub study: &'a Study,
    /// `meta.versionId`: the number of events the study has had.
    pub version: u64,
    /// `meta.lastUpdated`: when the log accepted its latest event (RFC 3339).
    pub last_updated: &'a str,
    /// The response leaves elements out (`_summary`, `_elements`): `meta.tag` says `SUBSETTED`.
    pub subsetted: bool,
}

/// An entry of a Bundle: a resource built by [`imaging_study`] (and possibly subsetted).
#[derive(Debug, Clone)]
pub struct Entry {
    pub full_url: String,
    pub resource: Value,
    /// In a history Bundle: the request that made this version (method, url).
    pub request: Option<(&'static str, String)>,
}

/// A link of a Bundle (`self`, `next`, `previous`).
#[derive(Debug, Clone)]
pub struct Link {
    pub relation: &'static str,
    pub url: String,
}

/// An `OperationOutcome` issue.
#[derive(Debug, Clone)]
pub struct Issue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: &'static str,
    /// An issue type code: `invalid`, `not-found`, `not-supported`, `processing`, `deleted`…
    pub code: &'static str,
    pub diagnostics: String,
    /// FHIRPath expressions or search parameter names the issue is about.
    pub expression: Vec<String>,
}

/// One search parameter the server supports, for the CapabilityStatement.
#[derive(Debug, Clone, Copy)]
pub struct SearchParamInfo {
    pub name: &'static str,
    /// `token`, `reference`, `date`, `uri`, `string`…
    pub type_: &'static str,
    pub documentation: &'static str,
}

/// The ImagingStudy resource of a study.
pub fn imaging_study(version: FhirVersion, view: &StudyView<'_>) -> Result<Value, FhirError> {
    match version {
        FhirVersion::R5 => r5::imaging_study(view),
        FhirVersion::R4 | FhirVersion::R4B => r4b::imaging_study(view),
    }
}

/// A `searchset` or `history` Bundle.
pub fn bundle(
    version: FhirVersion,
    kind: BundleKind,
    total: Option<u64>,
    links: &[Link],
    entries: Vec<Entry>,
) -> Result<Value, FhirError> {
    let total = total.map(|t| u32::try_from(t).unwrap_or(u32::MAX));
    let mut bundle = match version {
        FhirVersion::R5 => r5::bundle(kind, total, links, &entries)?,
        FhirVersion::R4 | FhirVersion::R4B => r4b::bundle(kind, total, links, &entries)?,
    };
    // the resources were built (and subsetted) as JSON already: put each in its typed, serialized
    // entry rather than parse it back into the generated types
    if let Some(Value::Array(slots)) = bundle.get_mut("entry") {
        for (slot, entry) in slots.iter_mut().zip(entries) {
            if let Value::Object(slot) = slot {
                slot.insert("fullUrl".into(), Value::String(entry.full_url));
                slot.insert("resource".into(), entry.resource);
            }
        }
    }
    Ok(bundle)
}

/// What a Bundle lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Searchset,
    History,
}

/// An `OperationOutcome`.
pub fn operation_outcome(version: FhirVersion, issues: &[Issue]) -> Result<Value, FhirError> {
    match version {
        FhirVersion::R5 => r5::operation_outcome(issues),
        FhirVersion::R4 | FhirVersion::R4B => r4b::operation_outcome(issues),
    }
}

/// The server's `CapabilityStatement`: ImagingStudy read, vread, history-instance and search
/// with exactly `params`.
pub fn capability_statement(
    version: FhirVersion,
    base: &str,
    software_version: &str,
    date: &str,
    params: &[SearchParamInfo],
) -> Result<Value, FhirError> {
    match version {
        FhirVersion::R5 => r5::capability_statement(version.full(), base, software_version, date, params),
        FhirVersion::R4 | FhirVersion::R4B => {
            r4b::capability_statement(version.full(), base, software_version, date, params)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example_study() -> Study {
        let path =
            format!("{}/../../schemas/examples/eu.cancerimage.study.registered.v1.json", env!("CARGO_MANIFEST_DIR"));
        let event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        serde_json::from_value(event["data"].clone()).unwrap()
    }

    fn view(study: &Study) -> StudyView<'_> {
        StudyView {
            id: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            provider: "synthetic-breast-consortium",
            subject: "BRMR-000123",
            dataset_iri: "https://registry.example.eu/datasets/synthetic-breast-consortium/breast-mri-screening-2024",
            study,
            version: 2,
            last_updated: "2026-11-07T09:00:01Z",
            subsetted: false,
        }
    }

    #[test]
    fn versions_from_mime_parameters() {
        assert_eq!(FhirVersion::from_mime_parameter("5.0"), Some(FhirVersion::R5));
        assert_eq!(FhirVersion::from_mime_parameter("4.0"), Some(FhirVersion::R4));
        assert_eq!(FhirVersion::from_mime_parameter("4.3"), Some(FhirVersion::R4B));
        assert_eq!(FhirVersion::from_mime_parameter("4.0.1"), Some(FhirVersion::R4));
        assert_eq!(FhirVersion::from_mime_parameter("3.0"), None);
        assert_eq!(FhirVersion::from_mime_parameter("6"), None);
    }

    #[test]
    fn an_imaging_study_in_both_versions() {
        let study = example_study();
        let r5 = imaging_study(FhirVersion::R5, &view(&study)).unwrap();
        assert_eq!(r5["resourceType"], "ImagingStudy");
        assert_eq!(r5["meta"]["versionId"], "2");
        assert_eq!(r5["identifier"][0]["value"], "urn:oid:2.25.178063125098516432178954231457806613211");
        assert_eq!(r5["modality"][0]["coding"][0]["code"], "MR", "R5: CodeableConcept");
        assert_eq!(r5["series"][0]["bodySite"]["concept"]["coding"][0]["code"], "76752008", "R5: CodeableReference");
        assert_eq!(r5["subject"]["identifier"]["value"], "BRMR-000123");
        assert_eq!(r5["series"][1]["instance"][0]["sopClass"]["code"], "urn:oid:1.2.840.10008.5.1.4.1.1.4");
        let r4 = imaging_study(FhirVersion::R4, &view(&study)).unwrap();
        assert_eq!(r4["modality"][0]["code"], "MR", "R4: Coding");
        assert_eq!(r4["series"][0]["bodySite"]["code"], "76752008", "R4: Coding");
        assert_eq!(r4["series"][0]["laterality"]["code"], "51440002");
        assert_eq!(r4["numberOfInstances"], 376);
    }

    #[test]
    fn a_bundle_carries_its_entries_and_links() {
        let study = example_study();
        let resource = imaging_study(FhirVersion::R5, &view(&study)).unwrap();
        let links = [Link { relation: "self", url: "https://x/fhir/ImagingStudy?_count=1".into() }];
        let entry = Entry { full_url: "u".into(), resource, request: None };
        let b = bundle(FhirVersion::R5, BundleKind::Searchset, Some(7), &links, vec![entry]).unwrap();
        assert_eq!(b["type"], "searchset");
        assert_eq!(b["total"], 7);
        assert_eq!(b["link"][0]["relation"], "self");
        assert_eq!(b["entry"][0]["search"]["mode"], "match");
        assert_eq!(b["entry"][0]["resource"]["resourceType"], "ImagingStudy");
        let o = operation_outcome(
            FhirVersion::R4B,
            &[Issue {
                severity: "error",
                code: "invalid",
                diagnostics: "bad".into(),
                expression: vec!["started".into()],
            }],
        )
        .unwrap();
        assert_eq!(o["issue"][0]["code"], "invalid");
    }
}
