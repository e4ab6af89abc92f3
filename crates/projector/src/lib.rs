#![doc = include_str!("../README.md")]

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
