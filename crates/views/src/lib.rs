//! Read models over the store: what the world sees. Nothing here writes.
//!
//! - `catalog.rs`: the DCAT-AP catalogue document, its paging index, and single resources.
//! - `feed.rs`: the change feed (LDES / ActivityStreams) over the log's dataset events.
//! - `sparql.rs`: SPARQL evaluation over the public graphs, with a time limit.
//! - `summary.rs`: counts for the landing page and metrics.

mod catalog;
mod feed;
mod sparql;
mod summary;

pub use catalog::{
    graph_about, parse_instant, resource_triples, write_catalog, write_resource, CatalogCache, CatalogIndex,
    CatalogPage, IndexEntry, PageLinks,
};
pub use cireg_dcat::CatalogInfo;
pub use feed::{activity_iri, write_feed, FeedPage};
pub use sparql::{evaluate, write_results, ParsedQuery, QueryError, ResultsFormat, SparqlRequest};
pub use summary::{summary, Summary};
