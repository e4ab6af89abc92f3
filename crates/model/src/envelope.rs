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
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::ProviderRegistered,
        EventType::DatasetPublished,
        EventType::DatasetUpdated,
        EventType::DistributionAdded,
        EventType::DistributionRemoved,
        EventType::DatasetDeprecated,
        EventType::DatasetWithdrawn,
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
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether events of this type belong to a dataset aggregate (else to the provider).
    pub fn is_dataset_event(self) -> bool {
        !matches!(self, EventType::ProviderRegistered)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The log subject of an aggregate: `cireg.events.<provider>.provider` for the provider itself,
/// `cireg.events.<provider>.dataset.<dataset-id>` for one of its datasets. Keeping the provider in
/// the second token lets NATS permissions confine a provider to its own aggregates.
pub fn subject_for(provider: &ProviderId, event_type: EventType, aggregate: &str) -> String {
    if event_type.is_dataset_event() {
        format!("{SUBJECT_PREFIX}.{provider}.dataset.{aggregate}")
    } else {
        format!("{SUBJECT_PREFIX}.{provider}.provider")
    }
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
    /// The aggregate id: a dataset id, or the provider id for provider events.
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
        if !event_type.is_dataset_event() && env.subject != provider.as_str() {
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
        subject_for(&self.provider, self.event_type, &self.aggregate)
    }

    /// The event as stored in the log (compact JSON of what the provider sent).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.raw).unwrap_or_default()
    }
}
