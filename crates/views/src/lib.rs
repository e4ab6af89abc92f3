//! Read models over the store: what the world sees. Nothing here writes.
//!
//! - `catalog.rs`: the DCAT-AP catalogue document.
//! - `sparql.rs`: SPARQL evaluation over the public graphs, with a time limit.
//! - `summary.rs`: counts for the landing page and metrics.

mod catalog;
mod sparql;
mod summary;

pub use catalog::{write_catalog, write_resource, CatalogInfo};
pub use sparql::{evaluate, write_results, ParsedQuery, QueryError, ResultsFormat, SparqlRequest};
pub use summary::{summary, Summary};
