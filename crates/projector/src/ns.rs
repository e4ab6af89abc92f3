//! RDF namespaces the projection writes.

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
/// HealthDCAT-AP as the official R8 shapes check it (EUCAIM's documents write
/// `https://w3id.org/healthdcat-ap#`; the shapes are what harvesters validate against).
pub const HEALTHDCATAP: &str = "http://healthdataportal.eu/ns/health#";
/// EUCAIM hyperontology terms (properties and codes).
pub const EUCAIM: &str = "https://hyperontology.eucaim.cancerimage.eu/#";
/// The registry's own terms, for what no standard vocabulary has (number of series, synthetic).
pub const CIREG: &str = "urn:cireg:vocab#";
pub const DATA_THEME_HEAL: &str = "http://publications.europa.eu/resource/authority/data-theme/HEAL";
pub const DATASET_STATUS: &str = "http://publications.europa.eu/resource/authority/dataset-status/";

/// The graph that holds the projector's own bookkeeping (checkpoint, aggregate states). It is not
/// part of the catalogue and the SPARQL endpoint does not expose it.
pub const PROJECTION_GRAPH: &str = "urn:cireg:projection";

/// The predicate of the projector's checkpoint (last applied log sequence) in [`PROJECTION_GRAPH`].
pub const CHECKPOINT: &str = "urn:cireg:vocab#lastAppliedSequence";
