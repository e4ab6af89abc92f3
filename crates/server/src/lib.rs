//! The HTTP surface (axum): ingest, SPARQL, catalogue, FHIR study views, schemas, health, metrics
//! and a landing page. Handlers translate HTTP to calls into `cireg-ingest`, `cireg-views` and
//! `cireg-fhir`, nothing more.

mod catalog;
mod events;
mod fhir;
mod negotiate;
mod pages;
mod problem;
mod read;
mod search;
mod state;
mod stream;
mod web;

pub use state::{router, serve, AppState};
