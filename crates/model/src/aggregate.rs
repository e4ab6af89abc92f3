//! Lifecycle rules. An aggregate is one provider or one dataset; its state is the fold of its
//! events in log order. The ingest path asks [`Aggregate::decide`] before appending; the projector
//! folds with [`Aggregate::apply`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{payload::merge_patch, schema::patched_dataset, Deprecation, Event, Payload, Provider, Rejection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetStatus {
    Live,
    Deprecated,
    Withdrawn,
}

/// What an aggregate is after its events so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AggregateState {
    /// No event yet.
    Empty,
    Provider {
        provider: Provider,
        registered: String,
        modified: String,
    },
    Dataset {
        status: DatasetStatus,
        /// The dataset document (the published `data` with every later change applied).
        document: Value,
        /// `time` of the publishing event.
        issued: String,
        /// `time` of the latest event.
        modified: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deprecation: Option<Deprecation>,
    },
}

/// What to do with an event that passed the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Append it; the log must still be at `expected_last_seq` for this aggregate.
    Append { expected_last_seq: u64 },
    /// It is a re-send of the event already at this log sequence: answer with that, append nothing.
    Duplicate { seq: u64 },
}

/// One aggregate folded from its events.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// Number of events folded: the version a sender names in `expectedversion`.
    pub version: u64,
    /// Log sequence of the last event folded (0 when none).
    pub last_seq: u64,
    pub state: AggregateState,
    /// Event id → (log sequence, the event as stored), to recognise re-sends.
    seen: HashMap<String, (u64, Value)>,
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate { version: 0, last_seq: 0, state: AggregateState::Empty, seen: HashMap::new() }
    }
}

impl Aggregate {
    /// An aggregate whose events were folded earlier (the projector keeps the state, not the
    /// event ids, since it never has to recognise re-sends).
    pub fn restore(version: u64, last_seq: u64, state: AggregateState) -> Self {
        Aggregate { version, last_seq, state, seen: HashMap::new() }
    }

    /// Folds one stored event. Events in the log passed [`Aggregate::decide`] when they were
    /// appended, so this never refuses; it ignores what cannot apply.
    pub fn apply(&mut self, seq: u64, event: &Event) {
        self.version += 1;
        self.last_seq = seq;
        self.seen.insert(event.id.clone(), (seq, event.raw.clone()));
        let time = event.time.clone();
        match (&mut self.state, &event.payload) {
            (state, Payload::ProviderRegistered(p)) => {
                let registered = match state {
                    AggregateState::Provider { registered, .. } => registered.clone(),
                    _ => time.clone(),
                };
                *state = AggregateState::Provider { provider: p.clone(), registered, modified: time };
            }
            (state @ AggregateState::Empty, Payload::DatasetPublished(_)) => {
                *state = AggregateState::Dataset {
                    status: DatasetStatus::Live,
                    document: event.raw.get("data").cloned().unwrap_or_default(),
                    issued: time.clone(),
                    modified: time,
                    deprecation: None,
                };
            }
            (AggregateState::Dataset { document, modified, status, deprecation, .. }, payload) => {
                *modified = time;
                match payload {
                    // checked by `decide` before it was appended: fold without validating again
                    Payload::DatasetUpdated(patch) => merge_patch(document, &Value::Object(patch.clone())),
                    Payload::DistributionAdded(_) => {
                        if let (Some(Value::Array(list)), Some(d)) =
                            (document.get_mut("distributions"), event.raw.get("data"))
                        {
                            list.push(d.clone());
                        }
                    }
                    Payload::DistributionRemoved(r) => {
                        if let Some(Value::Array(list)) = document.get_mut("distributions") {
                            list.retain(|d| d.get("id").and_then(Value::as_str) != Some(&r.distribution_id));
                        }
                    }
                    Payload::DatasetDeprecated(d) => {
                        *status = DatasetStatus::Deprecated;
                        *deprecation = Some(d.clone());
                    }
                    Payload::DatasetWithdrawn(_) => *status = DatasetStatus::Withdrawn,
                    Payload::DatasetPublished(_) | Payload::ProviderRegistered(_) => {}
                }
            }
            _ => {}
        }
    }

    /// Decides whether `event` may be appended after the events folded so far.
    /// `provider_registered` says whether the sending provider has registered itself.
    pub fn decide(&self, event: &Event, provider_registered: bool) -> Result<Decision, Rejection> {
        if let Some((seq, raw)) = self.seen.get(&event.id) {
            return if *raw == event.raw {
                Ok(Decision::Duplicate { seq: *seq })
            } else {
                Err(Rejection::conflict_at(
                    "/id",
                    format!("event id {} was already used for a different event (log sequence {seq})", event.id),
                ))
            };
        }
        if let Some(expected) = event.expected_version {
            if expected != self.version {
                return Err(Rejection::conflict_at(
                    "/expectedversion",
                    format!(
                        "the event expects version {expected} of {}, but it is at version {}: \
                         another change landed first; re-read and retry",
                        event.aggregate, self.version
                    ),
                ));
            }
        }
        let name = &event.aggregate;
        match (&self.state, &event.payload) {
            (_, Payload::ProviderRegistered(_)) => {}
            (_, Payload::DatasetPublished(_)) if !provider_registered => {
                return Err(Rejection::conflict(format!(
                    "provider {} is not registered: send eu.cancerimage.provider.registered.v1 first",
                    event.provider
                )));
            }
            (AggregateState::Empty, Payload::DatasetPublished(dataset)) => {
                let mut ids = std::collections::HashSet::new();
                for (i, d) in dataset.distributions.iter().enumerate() {
                    if !ids.insert(&d.id) {
                        return Err(Rejection::invalid(
                            format!("/data/distributions/{i}/id"),
                            format!("distribution id {} appears twice", d.id),
                        ));
                    }
                }
            }
            (AggregateState::Empty, _) => {
                return Err(Rejection::conflict(format!(
                    "dataset {name} of provider {} has not been published",
                    event.provider
                )));
            }
            (AggregateState::Dataset { status: DatasetStatus::Withdrawn, .. }, _) => {
                return Err(Rejection::conflict(format!(
                    "dataset {name} was withdrawn: nothing may follow a withdrawal"
                )));
            }
            (AggregateState::Dataset { .. }, Payload::DatasetPublished(_)) => {
                return Err(Rejection::conflict(format!(
                    "dataset {name} is already published: send eu.cancerimage.dataset.updated.v1 to change it"
                )));
            }
            (AggregateState::Dataset { document, .. }, Payload::DatasetUpdated(patch)) => {
                patched_dataset(document, &Value::Object(patch.clone()))?;
            }
            (AggregateState::Dataset { document, .. }, Payload::DistributionAdded(d)) => {
                if distribution_ids(document).any(|id| id == d.id) {
                    return Err(Rejection::conflict_at(
                        "/data/id",
                        format!("dataset {name} already has a distribution {}", d.id),
                    ));
                }
            }
            (AggregateState::Dataset { document, .. }, Payload::DistributionRemoved(r)) => {
                let ids: Vec<&str> = distribution_ids(document).collect();
                if !ids.contains(&r.distribution_id.as_str()) {
                    return Err(Rejection::conflict_at(
                        "/data/distributionId",
                        format!("dataset {name} has no distribution {}", r.distribution_id),
                    ));
                }
                if ids.len() == 1 {
                    return Err(Rejection::conflict_at(
                        "/data/distributionId",
                        format!(
                            "{} is the last distribution of {name}: a dataset keeps at least one",
                            r.distribution_id
                        ),
                    ));
                }
            }
            (AggregateState::Dataset { status: DatasetStatus::Deprecated, .. }, Payload::DatasetDeprecated(_)) => {
                return Err(Rejection::conflict(format!("dataset {name} is already deprecated")));
            }
            (AggregateState::Dataset { .. }, Payload::DatasetDeprecated(_) | Payload::DatasetWithdrawn(_)) => {}
            (AggregateState::Provider { .. }, _) => {
                return Err(Rejection::conflict(format!("{name} is a provider, not a dataset")));
            }
        }
        Ok(Decision::Append { expected_last_seq: self.last_seq })
    }
}

fn distribution_ids(document: &Value) -> impl Iterator<Item = &str> {
    document
        .get("distributions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("id").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate_event;
    use serde_json::json;

    fn example(t: &str) -> Value {
        let path = format!("{}/../../schemas/examples/eu.cancerimage.{t}.v1.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn event(v: Value) -> Event {
        validate_event(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn with_id(mut v: Value, id: &str) -> Value {
        v["id"] = json!(id);
        v.as_object_mut().unwrap().remove("expectedversion");
        v
    }

    #[test]
    fn lifecycle_rules() {
        let mut agg = Aggregate::default();
        let update = event(with_id(example("dataset.updated"), "u1"));
        assert!(matches!(agg.decide(&update, true), Err(Rejection::Conflict { .. })), "update before publish");

        let publish = event(example("dataset.published"));
        assert!(matches!(agg.decide(&publish, false), Err(Rejection::Conflict { .. })), "unregistered provider");
        assert_eq!(agg.decide(&publish, true), Ok(Decision::Append { expected_last_seq: 0 }));
        agg.apply(7, &publish);
        assert_eq!(agg.decide(&publish, true), Ok(Decision::Duplicate { seq: 7 }), "re-send");
        let second = event(with_id(example("dataset.published"), "p2"));
        assert!(matches!(agg.decide(&second, true), Err(Rejection::Conflict { .. })), "second publish");

        assert_eq!(agg.decide(&update, true), Ok(Decision::Append { expected_last_seq: 7 }));
        agg.apply(9, &update);
        let AggregateState::Dataset { document, .. } = &agg.state else { panic!() };
        assert_eq!(document["numberOfSubjects"], json!(436));

        let stale = event(example("dataset.updated")); // expectedversion 1, aggregate at 2
        let Err(Rejection::Conflict { pointer, .. }) = agg.decide(&stale, true) else { panic!() };
        assert_eq!(pointer.as_deref(), Some("/expectedversion"));

        let remove_last = event(json!({
            "specversion": "1.0", "id": "r1", "source": "urn:cireg:provider:synthetic-breast-consortium",
            "type": "eu.cancerimage.dataset.distribution.removed.v1", "subject": "breast-mri-screening-2024",
            "time": "2026-11-04T10:00:00Z", "data": {"distributionId": "dicom"}
        }));
        assert!(agg.decide(&remove_last, true).is_err(), "last distribution stays");

        let withdraw = event(example("dataset.withdrawn"));
        agg.apply(10, &withdraw);
        let again = event(with_id(example("dataset.updated"), "u2"));
        assert!(matches!(agg.decide(&again, true), Err(Rejection::Conflict { .. })), "after withdrawal");
    }

    #[test]
    fn reused_id_with_other_content_conflicts() {
        let mut agg = Aggregate::default();
        let publish = event(example("dataset.published"));
        agg.apply(1, &publish);
        let mut changed = example("dataset.published");
        changed["data"]["version"] = json!("9");
        let Err(Rejection::Conflict { pointer, .. }) = agg.decide(&event(changed), true) else { panic!() };
        assert_eq!(pointer.as_deref(), Some("/id"));
    }
}
