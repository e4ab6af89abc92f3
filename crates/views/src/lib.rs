#![doc = include_str!("../README.md")]

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
