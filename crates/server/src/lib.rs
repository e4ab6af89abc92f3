#![doc = include_str!("../README.md")]

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
mod metrics;
mod negotiate;
mod pages;
mod problem;
mod problems;
mod read;
mod requests;
mod search;
mod state;
mod stream;
mod web;

pub use admin::Backups;
pub use admission::{Admission, SlotUsage};
pub use limits::RequestLimits;
pub use listen::ConnectionLimits;
pub use state::{router, serve, AppState};
