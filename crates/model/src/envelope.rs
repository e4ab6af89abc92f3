use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{payload::Payload, Rejection};

/// Every aggregate's log subject starts with this; the next token is the provider.
pub const SUBJECT_PREFIX: &str = "cireg.events";

const SOURCE_PREFIX: &str = "urn:cireg:provider:";

/// A provider id: lowercase letters, digits and '-'; one NATS subject token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        ok.then(|| ProviderId(s.to_owned()))
    }

    /// The provider named by a CloudEvents `source` of the form `urn:cireg:provider:<id>`.
    pub fn from_source(source: &str) -> Option<Self> {
        source.strip_prefix(SOURCE_PREFIX).and_then(Self::parse)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn source(&self) -> String {
        format!("{SOURCE_PREFIX}{}", self.0)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The event types cireg understands (CloudEvents `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ProviderRegistered,
    DatasetPublished,
    DatasetUpdated,
    DistributionAdded,
    DistributionRemoved,
    DatasetDeprecated,
    DatasetWithdrawn,
    StudyRegistered,
    StudyUpdated,
    StudyRetracted,
    ConsentWithdrawn,
    AccessRequested,
    AccessDecided,
    AccessAnswered,
    AccessWithdrawn,
    AccessRevoked,
}

/// What kind of aggregate an event type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateKind {
    Provider,
    Dataset,
    /// A pseudonymous subject (patient): its consent.
    Subject,
    /// One imaging study of a subject.
    Study,
    /// One access request at one data holder (a request for datasets of several providers is
    /// one aggregate per provider, under the same request id).
    Access,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::ProviderRegistered,
        EventType::DatasetPublished,
        EventType::DatasetUpdated,
        EventType::DistributionAdded,
        EventType::DistributionRemoved,
        EventType::DatasetDeprecated,
        EventType::DatasetWithdrawn,
        EventType::StudyRegistered,
        EventType::StudyUpdated,
        EventType::StudyRetracted,
        EventType::ConsentWithdrawn,
        EventType::AccessRequested,
        EventType::AccessDecided,
        EventType::AccessAnswered,
        EventType::AccessWithdrawn,
        EventType::AccessRevoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ProviderRegistered => "eu.cancerimage.provider.registered.v1",
            EventType::DatasetPublished => "eu.cancerimage.dataset.published.v1",
            EventType::DatasetUpdated => "eu.cancerimage.dataset.updated.v1",
            EventType::DistributionAdded => "eu.cancerimage.dataset.distribution.added.v1",
            EventType::DistributionRemoved => "eu.cancerimage.dataset.distribution.removed.v1",
            EventType::DatasetDeprecated => "eu.cancerimage.dataset.deprecated.v1",
            EventType::DatasetWithdrawn => "eu.cancerimage.dataset.withdrawn.v1",
            EventType::StudyRegistered => "eu.cancerimage.study.registered.v1",
            EventType::StudyUpdated => "eu.cancerimage.study.updated.v1",
            EventType::StudyRetracted => "eu.cancerimage.study.retracted.v1",
            EventType::ConsentWithdrawn => "eu.cancerimage.subject.consent.withdrawn.v1",
            EventType::AccessRequested => "eu.cancerimage.access.requested.v1",
            EventType::AccessDecided => "eu.cancerimage.access.decided.v1",
            EventType::AccessAnswered => "eu.cancerimage.access.answered.v1",
            EventType::AccessWithdrawn => "eu.cancerimage.access.withdrawn.v1",
            EventType::AccessRevoked => "eu.cancerimage.access.revoked.v1",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The kind of aggregate events of this type belong to.
    pub fn aggregate_kind(self) -> AggregateKind {
        match self {
            EventType::ProviderRegistered => AggregateKind::Provider,
            EventType::DatasetPublished
            | EventType::DatasetUpdated
            | EventType::DistributionAdded
            | EventType::DistributionRemoved
            | EventType::DatasetDeprecated
            | EventType::DatasetWithdrawn => AggregateKind::Dataset,
            EventType::StudyRegistered | EventType::StudyUpdated | EventType::StudyRetracted => AggregateKind::Study,
            EventType::ConsentWithdrawn => AggregateKind::Subject,
            EventType::AccessRequested
            | EventType::AccessDecided
            | EventType::AccessAnswered
            | EventType::AccessWithdrawn
            | EventType::AccessRevoked => AggregateKind::Access,
        }
    }

    /// Whether events of this type speak for a researcher (an access request, an answer, a
    /// withdrawal): the registry writes them from a researcher's verified token, and no provider
    /// may send them.
    pub fn is_researchers(self) -> bool {
        matches!(self, EventType::AccessRequested | EventType::AccessAnswered | EventType::AccessWithdrawn)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The log subject of the provider's own aggregate: `cireg.events.<provider>.provider`.
/// Keeping the provider in the token after the prefix lets NATS permissions confine a provider to
/// its own aggregates.
pub fn provider_subject(provider: &ProviderId) -> String {
    format!("{SUBJECT_PREFIX}.{provider}.provider")
}

/// The log subject of a dataset: `cireg.events.<provider>.dataset.<dataset-id>`.
pub fn dataset_subject(provider: &ProviderId, dataset: &str) -> String {
    format!("{SUBJECT_PREFIX}.{provider}.dataset.{dataset}")
}

/// The log subject of a pseudonymous subject's consent: `cireg.events.<provider>.subject.<pseudonym>`.
pub fn consent_subject(provider: &ProviderId, pseudonym: &str) -> String {
    format!("{SUBJECT_PREFIX}.{provider}.subject.{pseudonym}")
}

/// The log subject of one study: `cireg.events.<provider>.subject.<pseudonym>.study.<uid>`, with
/// the UID's dots as `_` (a dot separates NATS subject tokens). Under the consent subject, so
/// that [`subject_studies_filter`] erases all of a subject's studies at once.
pub fn study_subject(provider: &ProviderId, pseudonym: &str, study_uid: &str) -> String {
    format!("{}.study.{}", consent_subject(provider, pseudonym), study_uid.replace('.', "_"))
}

/// The log subject of an access request at a data holder: `cireg.events.<provider>.access.<request-id>`.
/// Under the provider's prefix, so its systems (and only they) may follow the requests for its
/// datasets.
pub fn access_subject(provider: &ProviderId, request: &str) -> String {
    format!("{SUBJECT_PREFIX}.{provider}.access.{request}")
}

/// The log filter matching every study of a pseudonymous subject (and not the consent record).
pub fn subject_studies_filter(provider: &ProviderId, pseudonym: &str) -> String {
    format!("{}.>", consent_subject(provider, pseudonym))
}

/// The CloudEvents attributes as sent, before the payload is typed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Envelope {
    id: String,
    source: String,
    #[serde(rename = "type")]
    type_: String,
    subject: String,
    time: String,
    #[serde(default)]
    expectedversion: Option<u64>,
    data: Value,
}

/// A validated event: envelope attributes plus its typed payload. `raw` is the event exactly as
/// the provider sent it (what the log stores).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub provider: ProviderId,
    pub event_type: EventType,
    /// The CloudEvents `subject`: a dataset id, the provider id for provider events, the
    /// pseudonymous subject id for study and consent events.
    pub aggregate: String,
    /// The CloudEvents `time` (RFC 3339) as sent.
    pub time: String,
    pub expected_version: Option<u64>,
    pub payload: Payload,
    pub raw: Value,
}

impl Event {
    /// Types an event that already passed [`crate::validate_event`]'s schema check.
    pub(crate) fn from_valid_json(raw: Value) -> Result<Self, Rejection> {
        let env: Envelope = serde_json::from_value(raw.clone())
            .map_err(|e| Rejection::invalid("", format!("not a CloudEvent: {e}")))?;
        let provider = ProviderId::from_source(&env.source)
            .ok_or_else(|| Rejection::invalid("/source", "source must be urn:cireg:provider:<provider-id>"))?;
        let event_type = EventType::parse(&env.type_)
            .ok_or_else(|| Rejection::invalid("/type", format!("unknown event type {}", env.type_)))?;
        if event_type.aggregate_kind() == AggregateKind::Provider && env.subject != provider.as_str() {
            return Err(Rejection::invalid(
                "/subject",
                format!("a provider event's subject must be the provider id {provider}"),
            ));
        }
        let payload = Payload::from_data(event_type, env.data)?;
        Ok(Event {
            id: env.id,
            provider,
            event_type,
            aggregate: env.subject,
            time: env.time,
            expected_version: env.expectedversion,
            payload,
            raw,
        })
    }

    /// Reads an event back from the log. The log only holds validated events, so a failure here
    /// means the log was written by something else.
    pub fn parse_stored(bytes: &[u8]) -> Result<Self, Rejection> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| Rejection::invalid("", format!("stored event is not JSON: {e}")))?;
        Self::from_valid_json(raw)
    }

    /// The log subject of this event's aggregate.
    pub fn subject(&self) -> String {
        let p = &self.provider;
        match (self.event_type.aggregate_kind(), &self.payload) {
            (AggregateKind::Provider, _) => provider_subject(p),
            (AggregateKind::Dataset, _) => dataset_subject(p, &self.aggregate),
            (AggregateKind::Subject, _) => consent_subject(p, &self.aggregate),
            (AggregateKind::Access, _) => access_subject(p, &self.aggregate),
            (AggregateKind::Study, payload) => {
                study_subject(p, &self.aggregate, payload.study_uid().unwrap_or_default())
            }
        }
    }

    /// What readers may call the aggregate: the dataset, provider or subject id, and for a study
    /// its UID.
    pub fn aggregate_name(&self) -> String {
        match self.payload.study_uid() {
            Some(uid) => format!("study {uid} of subject {}", self.aggregate),
            None => self.aggregate.clone(),
        }
    }

    /// The event as stored in the log (compact JSON of what the provider sent).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.raw).unwrap_or_default()
    }
}
