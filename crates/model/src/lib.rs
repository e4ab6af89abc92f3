#![doc = include_str!("../README.md")]

mod aggregate;
mod envelope;
mod error;
mod payload;
mod problem;
mod schema;
pub mod vocab;

pub use aggregate::{
    AccessStep, Aggregate, AggregateState, DatasetAccess, DatasetStatus, Decision, Related, StudyStatus,
};
pub use envelope::{
    access_subject, consent_subject, dataset_subject, provider_subject, study_subject, subject_studies_filter,
    AggregateKind, Event, EventType, ProviderId, SUBJECT_PREFIX,
};
pub use error::{ProfileViolation, Rejection, Violation};
pub use payload::{
    english, AccessAnswer, AccessDecision, AccessRequest, AccessRevocation, AccessWithdrawal, AgeRange, Agent, Coding,
    Contact, Dataset, Deprecation, Distribution, DistributionRemoval, LangMap, Payload, Period, Provider, Series,
    SeriesInstance, SnomedCode, Study, StudyRetraction, Verdict, Withdrawal,
};
pub use problem::{Problem, PROBLEM_BASE};
pub use schema::{schema_files, validate_dataset_document, validate_event, SchemaFile};
