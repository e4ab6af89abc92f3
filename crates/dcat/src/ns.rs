//! RDF namespaces the mapping writes.

pub const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";
pub const RDFS: &str = "http://www.w3.org/2000/01/rdf-schema#";
pub const XSD: &str = "http://www.w3.org/2001/XMLSchema#";
pub const DCAT: &str = "http://www.w3.org/ns/dcat#";
pub const DCT: &str = "http://purl.org/dc/terms/";
pub const FOAF: &str = "http://xmlns.com/foaf/0.1/";
pub const VCARD: &str = "http://www.w3.org/2006/vcard/ns#";
pub const ADMS: &str = "http://www.w3.org/ns/adms#";
pub const DCATAP: &str = "http://data.europa.eu/r5r/";
pub const CV: &str = "http://data.europa.eu/m8g/";
pub const SKOS: &str = "http://www.w3.org/2004/02/skos/core#";
pub const DPV: &str = "https://w3id.org/dpv#";
pub const DQV: &str = "http://www.w3.org/ns/dqv#";
pub const OA: &str = "http://www.w3.org/ns/oa#";
pub const GEODCATAP: &str = "http://data.europa.eu/930/";
pub const HYDRA: &str = "http://www.w3.org/ns/hydra/core#";
pub const AS: &str = "https://www.w3.org/ns/activitystreams#";
pub const LDES: &str = "https://w3id.org/ldes#";
pub const TREE: &str = "https://w3id.org/tree#";
pub const PROV: &str = "http://www.w3.org/ns/prov#";
/// HealthDCAT-AP as the official R8 shapes check it (EUCAIM's documents write
/// `https://w3id.org/healthdcat-ap#`; the shapes are what harvesters validate against).
pub const HEALTHDCATAP: &str = "http://healthdataportal.eu/ns/health#";
/// EUCAIM hyperontology terms (properties and codes).
pub const EUCAIM: &str = "https://hyperontology.eucaim.cancerimage.eu/#";
/// The registry's own terms, for what no standard vocabulary has (number of series, synthetic).
pub const CIREG: &str = "urn:cireg:vocab#";
/// The class DCAT-AP expects of `dcatap:applicableLegislation` values.
pub const ELI_LEGAL_RESOURCE: &str = "http://data.europa.eu/eli/ontology#LegalResource";
/// The application profile the registry's catalogue records follow.
pub const DCAT_AP_3: &str = "http://data.europa.eu/r5r/";
pub const DATA_THEME_SCHEME: &str = "http://publications.europa.eu/resource/authority/data-theme";
pub const HEALTH_CATEGORY_SCHEME: &str = "https://hdeu-dcat.data.health.europa.eu/resource/authority/healthcategories";
pub const DATA_THEME_HEAL: &str = "http://publications.europa.eu/resource/authority/data-theme/HEAL";
pub const DATASET_STATUS: &str = "http://publications.europa.eu/resource/authority/dataset-status/";
