//! Folds the event log into Oxigraph: one named graph per dataset and per provider, each replaced
//! whole when its aggregate changes, and the last applied log sequence written in the same
//! transaction, so a crash at any point neither loses nor doubles an event.
//!
//! Where a dataset (or provider) becomes triples is `cireg_dcat`, shared with the SHACL gate.
//! - `projection.rs`: the bookkeeping graph (checkpoint, aggregate states) and the batch fold.
//! - `runner.rs`: following the log live, and rebuilding from sequence 1.
//! - `journal.rs`: which aggregates each committed batch changed, for the read models.
//! - `history.rs`: what each batch changed in the public graphs, for the catalogue at an instant.

mod history;
mod journal;
pub mod ns;
mod projection;
mod runner;
mod study;

pub use cireg_dcat::{slug, BaseError, PublicBase};
pub use history::{second_of, CatalogueHistory, HistoryError, Past};
pub use journal::{ChangeJournal, Changes, DEFAULT_JOURNAL_BOUND};
pub use projection::{
    is_access_subject, is_dataset_subject, is_study_subject, projected_access, projected_access_requests,
    projected_dataset, projected_datasets, projected_studies, projected_study, stored_base, subject_parts,
    ProjectedAccess, ProjectedDataset, ProjectedStudy, ProjectionError, Projector, StudyCounts,
};
pub use runner::{rebuild, run, RunOptions};
pub use study::{study_graph, IMAGING};
