//! The HTTP surface (axum): ingest, SPARQL, catalogue, FHIR study views, schemas, health, metrics
//! and a landing page. Handlers translate HTTP to calls into `cireg-ingest`, `cireg-views` and
//! `cireg-fhir`, and say who may call what (`auth`: bearer tokens checked by `cireg-auth`).

mod access;
mod admin;
mod admission;
mod audit;
mod auth;
mod catalog;
mod events;
mod fhir;
mod limits;
mod listen;
mod negotiate;
mod pages;
mod problem;
mod read;
mod requests;
mod search;
mod state;
mod stream;
mod web;

pub use admin::Backups;
pub use admission::Admission;
pub use limits::RequestLimits;
pub use listen::ConnectionLimits;
pub use state::{router, serve, AppState};
