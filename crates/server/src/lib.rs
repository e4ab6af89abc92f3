//! The HTTP surface (axum): ingest, SPARQL, catalogue, schemas, health, metrics and a landing
//! page. Handlers translate HTTP to calls into `cireg-ingest` and `cireg-views`, nothing more.

mod catalog;
mod events;
mod negotiate;
mod pages;
mod problem;
mod read;
mod search;
mod state;
mod stream;
mod web;

pub use state::{router, serve, AppState};
