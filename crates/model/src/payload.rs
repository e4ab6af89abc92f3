//! Typed payloads (the CloudEvents `data`) of each event type. Names follow the EUCAIM DCAT-AP v2
//! profile; see `schemas/defs.v1.json` for the contract and the projector for the RDF mapping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{EventType, Rejection};

/// Text per BCP 47 language tag.
pub type LangMap = BTreeMap<String, String>;

/// The English text of `texts`, else the first language's, for pages and search.
pub fn english(texts: &LangMap) -> String {
    texts.get("en").or_else(|| texts.values().next()).cloned().unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coding {
    pub system: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub name: LangMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<LangMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub contact_point: Contact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<LangMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<LangMap>,
    pub access_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub licence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_size: Option<u64>,
    /// ELI IRIs; when absent the dataset's applicable legislation applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applicable_legislation: Vec<String>,
    /// EUCAIM access condition: DOWNLOAD, IN_SITU_PROCESSING or REMOTE_PROCESSING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_condition: Option<String>,
    /// EU language authority codes (ENG, SPA, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeRange {
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A dataset as published (and as it stands after updates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    pub title: LangMap,
    pub description: LangMap,
    pub version: String,
    pub keywords: BTreeMap<String, Vec<String>>,
    pub condition: Coding,
    pub image_modalities: Vec<Coding>,
    pub body_parts: Vec<Coding>,
    pub equipment_manufacturers: Vec<String>,
    pub birth_sex: Vec<Coding>,
    pub number_of_subjects: u64,
    pub number_of_studies: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_series: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_range: Option<AgeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquisition_period: Option<Period>,
    pub collection_methods: Vec<Coding>,
    pub countries: Vec<String>,
    pub access_rights: String,
    pub applicable_legislation: Vec<String>,
    pub contact_point: Contact,
    pub publisher: Agent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<LangMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_page: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synthetic: bool,
    /// HealthDCAT-AP health category codes (healthdcatap:healthCategory), e.g. `NCDS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_categories: Vec<String>,
    /// HealthDCAT-AP health theme codes (healthdcatap:healthTheme), e.g. `CANCER_DISEASE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_themes: Vec<String>,
    /// dct:type: EUCAIM dataset types or DPV data categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset_types: Vec<Coding>,
    /// eucaim:interoperabilityLevel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interoperability_level: Option<Coding>,
    /// healthdcatap:hasStructuredData.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_data: Option<bool>,
    /// The health data access body (healthdcatap:hdab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdab: Option<Agent>,
    /// geodcatap:custodian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian: Option<Agent>,
    /// dpv:hasPurpose, DPV purpose IRIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<String>,
    /// dpv:hasLegalBasis, DPV legal-basis IRIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legal_bases: Vec<String>,
    /// dpv:hasPersonalData, DPV personal-data category IRIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal_data: Vec<String>,
    /// healthdcatap:retentionPeriod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_period: Option<Period>,
    /// healthdcatap:populationCoverage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population_coverage: Option<LangMap>,
    /// foaf:page: documentation web pages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documentation: Vec<String>,
    /// dct:language: EU language authority codes (ENG, SPA, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    /// dct:accrualPeriodicity: EU frequency authority code (e.g. IRREG, ANNUAL, NEVER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    /// dqv:hasQualityAnnotation: web pages of quality certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality_certificates: Vec<String>,
    /// adms:sample: sample distributions (a few subjects, to try the data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Distribution>,
    /// healthdcatap:analytics: distributions of aggregate statistics about the dataset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analytics: Vec<Distribution>,
    pub distributions: Vec<Distribution>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    pub name: LangMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<LangMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub country: String,
    pub contact_point: Contact,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DistributionRemoval {
    pub distribution_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deprecation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<LangMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub reason: LangMap,
}

/// A SNOMED CT concept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnomedCode {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// An instance (image) of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesInstance {
    pub uid: String,
    pub sop_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// One DICOM series of a study.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// DICOM modality code (DCM).
    pub modality: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_site: Option<SnomedCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laterality: Option<SnomedCode>,
    pub number_of_instances: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<SeriesInstance>,
}

/// One imaging study of a pseudonymous subject (the event's `subject`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Study {
    /// The provider's dataset the study belongs to.
    pub dataset: String,
    pub study_instance_uid: String,
    /// RFC 3339 date-time.
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// DICOM modality codes (DCM).
    pub modalities: Vec<String>,
    pub number_of_series: u64,
    pub number_of_instances: u64,
    pub series: Vec<Series>,
}

impl Study {
    /// The study's resource id (FHIR `ImagingStudy.id`, the last segment of its IRI): the same
    /// on every node and after every rebuild, at most 64 characters like a FHIR id must be, and
    /// without the pseudonym in the clear. Derived from the provider, the pseudonym and the Study
    /// Instance UID, so two providers (or subjects) that send the same UID stay apart.
    pub fn resource_id(provider: &str, pseudonym: &str, study_uid: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(provider)
            .chain_update([0])
            .chain_update(pseudonym)
            .chain_update([0])
            .chain_update(study_uid)
            .finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StudyRetraction {
    pub study_instance_uid: String,
}

/// A researcher's request for access to some datasets of one data holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequest {
    /// The subject of the researcher's token.
    pub researcher: String,
    pub title: String,
    /// DPV purpose IRIs.
    pub purposes: Vec<String>,
    pub description: String,
    pub ethics_approval: String,
    /// Ids of the data holder's datasets.
    pub datasets: Vec<String>,
}

/// What a data holder decides on one dataset of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Approved,
    Rejected,
    InformationRequested,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessDecision {
    pub dataset: String,
    pub decision: Verdict,
    /// Approved: the end of the permit (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessAnswer {
    pub researcher: String,
    pub answer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessWithdrawal {
    pub researcher: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRevocation {
    pub dataset: String,
    pub reason: String,
}

/// The typed `data` of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    ProviderRegistered(Provider),
    DatasetPublished(Box<Dataset>),
    /// A JSON Merge Patch (RFC 7396) of the dataset document.
    DatasetUpdated(serde_json::Map<String, Value>),
    DistributionAdded(Distribution),
    DistributionRemoved(DistributionRemoval),
    DatasetDeprecated(Deprecation),
    DatasetWithdrawn(Withdrawal),
    StudyRegistered(Box<Study>),
    /// The whole study as it now stands.
    StudyUpdated(Box<Study>),
    StudyRetracted(StudyRetraction),
    /// Carries nothing but the pseudonym (the event's `subject`).
    ConsentWithdrawn,
    AccessRequested(Box<AccessRequest>),
    AccessDecided(AccessDecision),
    AccessAnswered(AccessAnswer),
    AccessWithdrawn(AccessWithdrawal),
    AccessRevoked(AccessRevocation),
}

impl Payload {
    pub(crate) fn from_data(event_type: EventType, data: Value) -> Result<Self, Rejection> {
        fn typed<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, Rejection> {
            serde_json::from_value(data).map_err(|e| Rejection::invalid("/data", e.to_string()))
        }
        Ok(match event_type {
            EventType::ProviderRegistered => Payload::ProviderRegistered(typed(data)?),
            EventType::DatasetPublished => Payload::DatasetPublished(Box::new(typed(data)?)),
            EventType::DatasetUpdated => match data {
                Value::Object(patch) => Payload::DatasetUpdated(patch),
                _ => return Err(Rejection::invalid("/data", "must be an object")),
            },
            EventType::DistributionAdded => Payload::DistributionAdded(typed(data)?),
            EventType::DistributionRemoved => Payload::DistributionRemoved(typed(data)?),
            EventType::DatasetDeprecated => Payload::DatasetDeprecated(typed(data)?),
            EventType::DatasetWithdrawn => Payload::DatasetWithdrawn(typed(data)?),
            EventType::StudyRegistered => Payload::StudyRegistered(Box::new(typed(data)?)),
            EventType::StudyUpdated => Payload::StudyUpdated(Box::new(typed(data)?)),
            EventType::StudyRetracted => Payload::StudyRetracted(typed(data)?),
            EventType::ConsentWithdrawn => Payload::ConsentWithdrawn,
            EventType::AccessRequested => Payload::AccessRequested(Box::new(typed(data)?)),
            EventType::AccessDecided => Payload::AccessDecided(typed(data)?),
            EventType::AccessAnswered => Payload::AccessAnswered(typed(data)?),
            EventType::AccessWithdrawn => Payload::AccessWithdrawn(typed(data)?),
            EventType::AccessRevoked => Payload::AccessRevoked(typed(data)?),
        })
    }

    /// The researcher a researcher's event (see [`EventType::is_researchers`]) speaks for.
    pub fn researcher(&self) -> Option<&str> {
        match self {
            Payload::AccessRequested(r) => Some(&r.researcher),
            Payload::AccessAnswered(a) => Some(&a.researcher),
            Payload::AccessWithdrawn(w) => Some(&w.researcher),
            _ => None,
        }
    }

    /// The Study Instance UID a study event is about.
    pub fn study_uid(&self) -> Option<&str> {
        match self {
            Payload::StudyRegistered(s) | Payload::StudyUpdated(s) => Some(&s.study_instance_uid),
            Payload::StudyRetracted(r) => Some(&r.study_instance_uid),
            _ => None,
        }
    }
}

/// Applies a JSON Merge Patch (RFC 7396) to `target`.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(map) = target {
                for (key, value) in patch {
                    if value.is_null() {
                        map.remove(key);
                    } else {
                        merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"list": [1, 2]});
        merge_patch(&mut doc, &json!({"list": [3]}));
        assert_eq!(doc, json!({"list": [3]}));
    }
}
