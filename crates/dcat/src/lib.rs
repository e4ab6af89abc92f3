//! How registry documents become DCAT-AP 3 / HealthDCAT-AP / EUCAIM RDF. Both the SHACL gate in
//! `ingest` (before an event is appended) and the projector (after) use this one mapping, so what
//! is validated is exactly what is stored.
//!
//! - `iris.rs`: the IRIs the registry mints, from the configured public base.
//! - `ns.rs`: the namespaces it writes.
//! - `mapping.rs`: dataset, provider and catalogue as triples.
//! - `labels.rs`: labels of the vocabulary concepts it links to.

mod iris;
mod labels;
mod mapping;
pub mod ns;

pub use iris::{slug, BaseError, PublicBase};
pub use labels::label;
pub use mapping::{
    aggregate_graph, catalog_graph, dataset_graph, datetime_literal, iri, pointer_for_property, provider_graph, term,
    CatalogExtent, CatalogInfo, GraphBuilder, Origin,
};
