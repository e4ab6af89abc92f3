//! Read models over the store: what the world sees. Nothing here writes.
//!
//! - `catalog.rs`: the DCAT-AP catalogue document, its paging index, and single resources.
//! - `search.rs`: faceted search over the live datasets (web page, JSON API, EUCAIM mediator).
//! - `feed.rs`: the change feed (LDES / ActivityStreams) over the log's dataset events.
//! - `sparql.rs`: SPARQL evaluation over the graphs a caller may see, with a time limit.
//! - `studies.rs`: the study index and FHIR search semantics behind the ImagingStudy API.
//! - `live.rs`: all read models kept up to date from the projector's change journal.
//! - `summary.rs`: counts for the landing page and metrics.

mod access;
mod catalog;
mod eucaim;
mod feed;
mod live;
mod search;
mod sorted;
mod sparql;
mod studies;
mod summary;

pub use access::{AccessBook, AccessPart, Permit};
pub use catalog::{
    graph_about, parse_instant, resource_triples, write_catalog, write_resource, CatalogIndex, CatalogPage, IndexEntry,
    NodeStatus, PageLinks,
};
pub use cireg_dcat::{label as vocabulary_label, CatalogInfo};
pub use eucaim::{eucaim_search, AstError, EucaimAnswer, EucaimQuery};
pub use feed::{activity_iri, write_feed, FeedPage};
pub use live::{Progress as ReadModelsProgress, ReadModels};
pub use search::{
    access_label, country_name, FacetCount, Label, SearchDoc, SearchIndex, SearchQuery, SearchResults, Sort, FACETS,
    SIZE_CLASSES,
};
pub use sparql::{
    evaluate, resident_bytes, write_results, GraphScope, ParsedQuery, QueryError, QueryLimits, QueryStores,
    ResultsFormat, SparqlRequest,
};
pub use studies::{
    Cursor, DateParam, IndexedStudy, Page, SearchParamError, StudyAccess, StudyIndex, StudyLookup, StudyPage,
    StudyQuery, StudySort, DEFAULT_COUNT, MAX_COUNT, SEARCH_PARAMETERS,
};
pub use summary::{summary, Summary};
