#![doc = include_str!("../README.md")]

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
