//! Vocabularies: how codes become IRIs, and the namespaces the registry writes.

use crate::Coding;

pub const EUCAIM: &str = "https://hyperontology.eucaim.cancerimage.eu/";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
pub const RADLEX: &str = "http://radlex.org/RID/";
pub const NCIT: &str = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl";
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
pub const CIREG_CODE: &str = "urn:cireg:code";
pub const DPV: &str = "https://w3id.org/dpv#";
/// Identifier system of DICOM UIDs written as `urn:oid:…` (FHIR ImagingStudy.identifier).
pub const DICOM_UID: &str = "urn:dicom:uid";

/// The identifier system of a provider's pseudonymous subject ids.
pub fn subject_system(provider: &str) -> String {
    format!("urn:cireg:provider:{provider}:subject")
}

/// The provider a [`subject_system`] names.
pub fn provider_of_subject_system(system: &str) -> Option<&str> {
    system.strip_prefix("urn:cireg:provider:")?.strip_suffix(":subject")
}

/// The IRI of a coded concept, in the form each code system publishes its concepts under.
pub fn coding_iri(coding: &Coding) -> String {
    let code = &coding.code;
    match coding.system.as_str() {
        EUCAIM => format!("{EUCAIM}#{code}"),
        SNOMED => format!("http://snomed.info/id/{code}"),
        DCM => format!("{DCM}/{code}"),
        RADLEX => format!("http://radlex.org/RID/{code}"),
        NCIT => format!("{NCIT}#{code}"),
        ICD10 => format!("http://id.who.int/icd/release/10/{code}"),
        DPV => format!("{DPV}{code}"),
        other => format!("{other}:{code}"),
    }
}

/// EU country authority IRI of an ISO 3166-1 alpha-3 code.
pub fn country_iri(code: &str) -> String {
    format!("http://publications.europa.eu/resource/authority/country/{code}")
}

/// EU access-right authority IRI (PUBLIC, RESTRICTED, NON_PUBLIC).
pub fn access_rights_iri(code: &str) -> String {
    format!("http://publications.europa.eu/resource/authority/access-right/{code}")
}

/// EU file-type authority IRI.
pub fn file_type_iri(code: &str) -> String {
    format!("http://publications.europa.eu/resource/authority/file-type/{code}")
}

/// EU publisher-type vocabulary IRI.
pub fn publisher_type_iri(code: &str) -> String {
    format!("http://purl.org/adms/publishertype/{code}")
}

/// IANA media type IRI.
pub fn media_type_iri(media_type: &str) -> String {
    format!("http://www.iana.org/assignments/media-types/{media_type}")
}

/// The HealthDCAT-AP coding-system concept (healthdcatap:hasCodingSystem) of a code system, where
/// that vocabulary has one.
pub fn coding_system_iri(system: &str) -> Option<String> {
    let code = match system {
        SNOMED => "SNOMED-CT",
        DCM => "DICOM-CT",
        NCIT => "NCIT",
        ICD10 => "ICD-10",
        _ => return None,
    };
    Some(format!("https://hdeu-dcat.data.health.europa.eu/resource/authority/coding-system/{code}"))
}

/// HealthDCAT-AP health category IRI.
pub fn health_category_iri(code: &str) -> String {
    format!("https://hdeu-dcat.data.health.europa.eu/resource/authority/healthcategories/{code}")
}

/// HealthDCAT-AP health theme IRI.
pub fn health_theme_iri(code: &str) -> String {
    format!("https://hdeu-dcat.data.health.europa.eu/resource/authority/health-theme/{code}")
}

/// EU language authority IRI of a three-letter code.
pub fn language_iri(code: &str) -> String {
    format!("http://publications.europa.eu/resource/authority/language/{code}")
}

/// EU frequency authority IRI.
pub fn frequency_iri(code: &str) -> String {
    format!("http://publications.europa.eu/resource/authority/frequency/{code}")
}

/// EUCAIM access-condition IRI (DOWNLOAD, IN_SITU_PROCESSING, REMOTE_PROCESSING).
pub fn access_condition_iri(code: &str) -> String {
    format!("https://eucaim.github.io/eucaim_dcat_ap/releases/controlled-vocabularies/access-conditions/#{code}")
}
