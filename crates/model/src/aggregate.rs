//! Lifecycle rules. An aggregate is one provider or one dataset; its state is the fold of its
//! events in log order. The ingest path asks [`Aggregate::decide`] before appending; the projector
//! folds with [`Aggregate::apply`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    payload::merge_patch, schema::patched_dataset, AccessRequest, AggregateKind, Deprecation, Event, Payload, Provider,
    Rejection, Study, Verdict,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetStatus {
    Live,
    Deprecated,
    Withdrawn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudyStatus {
    Available,
    /// Retracted by its provider: gone from the views; nothing may follow.
    Retracted,
}

/// Where one dataset of an access request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum DatasetAccess {
    /// Waiting for the data holder's decision.
    Requested,
    /// The data holder asked the researcher something (at `asked`); waiting for the answer.
    InformationRequested {
        question: String,
        asked: String,
    },
    /// The permit: the researcher reads the dataset's study-level data from `from` until `until`
    /// (RFC 3339), under `conditions`.
    Approved {
        from: String,
        until: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conditions: Option<String>,
    },
    Rejected {
        reason: String,
        decided: String,
    },
    /// The researcher withdrew the request (an approval given ended then).
    Withdrawn {
        withdrawn: String,
    },
    /// The data holder ended an approval before its time.
    Revoked {
        reason: String,
        revoked: String,
    },
}

impl DatasetAccess {
    /// The state's name, as the API and the pages show it.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetAccess::Requested => "requested",
            DatasetAccess::InformationRequested { .. } => "information-requested",
            DatasetAccess::Approved { .. } => "approved",
            DatasetAccess::Rejected { .. } => "rejected",
            DatasetAccess::Withdrawn { .. } => "withdrawn",
            DatasetAccess::Revoked { .. } => "revoked",
        }
    }

    /// Waiting for the data holder (a decision may come).
    pub fn is_open(&self) -> bool {
        matches!(self, DatasetAccess::Requested | DatasetAccess::InformationRequested { .. })
    }

    fn describe(&self) -> String {
        match self {
            DatasetAccess::Approved { until, .. } => format!("approved until {until}"),
            other => other.name().to_owned(),
        }
    }
}

/// One step of an access request, for the people following it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessStep {
    /// `time` of the event.
    pub time: String,
    /// What happened: requested, approved, rejected, information-requested, answered, withdrawn,
    /// revoked.
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The question, answer, reason or conditions that came with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
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
    /// A pseudonymous subject that withdrew consent (the only event a subject has).
    Subject {
        /// `time` of the withdrawal.
        consent_withdrawn: String,
    },
    Study {
        status: StudyStatus,
        /// The pseudonymous subject id.
        subject: String,
        study: Box<Study>,
        /// `time` of the registering event.
        registered: String,
        /// `time` of the latest event.
        modified: String,
    },
    /// An access request at one data holder.
    Access {
        request: Box<AccessRequest>,
        /// `time` of the request.
        requested: String,
        /// `time` of the latest event.
        modified: String,
        /// Each dataset asked for, by id.
        datasets: BTreeMap<String, DatasetAccess>,
        steps: Vec<AccessStep>,
    },
}

/// What the rules of one aggregate need to know of others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// The sending provider has registered itself.
    pub provider_registered: bool,
    /// For study events: the status of the study's dataset (`None`: not published).
    pub dataset: Option<DatasetStatus>,
    /// For study events: the subject withdrew consent.
    pub consent_withdrawn: bool,
    /// For an access request: the status of each dataset asked for (`None`: not published).
    pub requested: BTreeMap<String, Option<DatasetStatus>>,
}

impl Default for Related {
    fn default() -> Self {
        Related {
            provider_registered: true,
            dataset: Some(DatasetStatus::Live),
            consent_withdrawn: false,
            requested: BTreeMap::new(),
        }
    }
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
    /// Event id → (log sequence, digest of the event as stored), to recognise re-sends. A digest,
    /// not the event: the ingest cache holds up to 100,000 aggregates, and a study event kept as a
    /// `Value` was ~50 KB of heap each (the growth `cireg load` measured).
    seen: HashMap<String, (u64, EventDigest)>,
}

/// SHA-256 of an event's JSON in a canonical form (object members by key, whatever order they
/// came in): equal digests for events equal as JSON values, as the re-send check compared them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDigest([u8; 32]);

impl EventDigest {
    pub fn of(value: &Value) -> Self {
        use sha2::{Digest, Sha256};
        fn feed(h: &mut Sha256, v: &Value) {
            // a tag per kind and a length before each string: no two values feed the same bytes
            match v {
                Value::Null => h.update([0]),
                Value::Bool(b) => h.update([1, u8::from(*b)]),
                Value::Number(n) => {
                    let text = n.to_string();
                    h.update([2]);
                    h.update((text.len() as u64).to_le_bytes());
                    h.update(text);
                }
                Value::String(s) => {
                    h.update([3]);
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s);
                }
                Value::Array(items) => {
                    h.update([4]);
                    h.update((items.len() as u64).to_le_bytes());
                    items.iter().for_each(|i| feed(h, i));
                }
                Value::Object(members) => {
                    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
                    sorted.sort_unstable_by_key(|(k, _)| *k);
                    h.update([5]);
                    h.update((sorted.len() as u64).to_le_bytes());
                    for (k, v) in sorted {
                        h.update((k.len() as u64).to_le_bytes());
                        h.update(k);
                        feed(h, v);
                    }
                }
            }
        }
        let mut h = Sha256::new();
        feed(&mut h, value);
        EventDigest(h.finalize().into())
    }
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
        self.seen.insert(event.id.clone(), (seq, EventDigest::of(&event.raw)));
        let time = event.time.clone();
        match (&mut self.state, &event.payload) {
            (state @ AggregateState::Empty, Payload::StudyRegistered(study)) => {
                *state = AggregateState::Study {
                    status: StudyStatus::Available,
                    subject: event.aggregate.clone(),
                    study: study.clone(),
                    registered: time.clone(),
                    modified: time,
                };
            }
            (AggregateState::Study { study, modified, .. }, Payload::StudyUpdated(new)) => {
                *study = new.clone();
                *modified = time;
            }
            (AggregateState::Study { status, modified, .. }, Payload::StudyRetracted(_)) => {
                *status = StudyStatus::Retracted;
                *modified = time;
            }
            (state @ AggregateState::Empty, Payload::ConsentWithdrawn) => {
                *state = AggregateState::Subject { consent_withdrawn: time };
            }
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
                    _ => {}
                }
            }
            (state @ AggregateState::Empty, Payload::AccessRequested(request)) => {
                *state = AggregateState::Access {
                    datasets: request.datasets.iter().map(|d| (d.clone(), DatasetAccess::Requested)).collect(),
                    steps: vec![AccessStep { time: time.clone(), step: "requested".into(), dataset: None, text: None }],
                    request: request.clone(),
                    requested: time.clone(),
                    modified: time,
                };
            }
            (AggregateState::Access { datasets, steps, modified, .. }, payload) => {
                apply_access(datasets, steps, &time, payload);
                *modified = time;
            }
            _ => {}
        }
    }

    /// Decides whether `event` may be appended after the events folded so far, given what the
    /// rules need to know of other aggregates.
    pub fn decide(&self, event: &Event, related: &Related) -> Result<Decision, Rejection> {
        if let Some((seq, digest)) = self.seen.get(&event.id) {
            return if *digest == EventDigest::of(&event.raw) {
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
        match event.event_type.aggregate_kind() {
            AggregateKind::Study => self.decide_study(event, related)?,
            AggregateKind::Subject => {
                if let AggregateState::Subject { consent_withdrawn } = &self.state {
                    return Err(Rejection::conflict(format!(
                        "subject {} already withdrew consent at {consent_withdrawn}",
                        event.aggregate
                    )));
                }
            }
            AggregateKind::Provider | AggregateKind::Dataset => self.decide_dataset(event, related)?,
            AggregateKind::Access => self.decide_access(event, related)?,
        }
        Ok(Decision::Append { expected_last_seq: self.last_seq })
    }

    fn decide_study(&self, event: &Event, related: &Related) -> Result<(), Rejection> {
        let name = event.aggregate_name();
        let (provider, pseudonym) = (&event.provider, &event.aggregate);
        if related.consent_withdrawn {
            return Err(Rejection::conflict(format!(
                "subject {pseudonym} of provider {provider} withdrew consent: no study of the subject is accepted"
            )));
        }
        let new_study = match &event.payload {
            Payload::StudyRegistered(s) | Payload::StudyUpdated(s) => Some(s),
            _ => None,
        };
        if let Some(study) = new_study {
            match related.dataset {
                None => {
                    return Err(Rejection::conflict_at(
                        "/data/dataset",
                        format!("dataset {} of provider {provider} has not been published", study.dataset),
                    ))
                }
                Some(DatasetStatus::Withdrawn) => {
                    return Err(Rejection::conflict_at(
                        "/data/dataset",
                        format!("dataset {} was withdrawn: it takes no studies", study.dataset),
                    ))
                }
                Some(_) => {}
            }
            check_study(study)?;
        }
        match (&self.state, &event.payload) {
            (AggregateState::Empty, Payload::StudyRegistered(_)) => Ok(()),
            (AggregateState::Empty, _) => Err(Rejection::conflict(format!("{name} has not been registered"))),
            (AggregateState::Study { status: StudyStatus::Retracted, .. }, _) => {
                Err(Rejection::conflict(format!("{name} was retracted: nothing may follow a retraction")))
            }
            (AggregateState::Study { .. }, Payload::StudyRegistered(_)) => Err(Rejection::conflict(format!(
                "{name} is already registered: send eu.cancerimage.study.updated.v1 to change it"
            ))),
            (AggregateState::Study { study, .. }, Payload::StudyUpdated(new)) if new.dataset != study.dataset => {
                Err(Rejection::conflict_at(
                    "/data/dataset",
                    format!("{name} belongs to dataset {}: a study cannot move to another dataset", study.dataset),
                ))
            }
            (AggregateState::Study { .. }, _) => Ok(()),
            _ => Err(Rejection::conflict(format!("{name} is not a study"))),
        }
    }

    fn decide_dataset(&self, event: &Event, related: &Related) -> Result<(), Rejection> {
        let name = &event.aggregate;
        match (&self.state, &event.payload) {
            (_, Payload::ProviderRegistered(_)) => {}
            (_, Payload::DatasetPublished(_)) if !related.provider_registered => {
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
            (AggregateState::Subject { .. } | AggregateState::Study { .. } | AggregateState::Access { .. }, _) => {
                return Err(Rejection::conflict(format!("{name} is not a dataset")));
            }
            // study and consent events never reach a dataset aggregate (their subjects differ)
            (AggregateState::Dataset { .. }, _) => {
                return Err(Rejection::conflict(format!("{} is not an event of dataset {name}", event.event_type)));
            }
        }
        Ok(())
    }
}

impl Aggregate {
    fn decide_access(&self, event: &Event, related: &Related) -> Result<(), Rejection> {
        let (id, provider) = (&event.aggregate, &event.provider);
        let (request, datasets) = match (&self.state, &event.payload) {
            (AggregateState::Empty, Payload::AccessRequested(request)) => {
                for (i, dataset) in request.datasets.iter().enumerate() {
                    let pointer = format!("/data/datasets/{i}");
                    match related.requested.get(dataset).copied().flatten() {
                        Some(DatasetStatus::Live | DatasetStatus::Deprecated) => {}
                        Some(DatasetStatus::Withdrawn) => {
                            return Err(Rejection::conflict_at(
                                pointer,
                                format!("dataset {dataset} of provider {provider} was withdrawn"),
                            ))
                        }
                        None => {
                            return Err(Rejection::conflict_at(
                                pointer,
                                format!("provider {provider} has published no dataset {dataset}"),
                            ))
                        }
                    }
                }
                return Ok(());
            }
            (AggregateState::Empty, _) => {
                return Err(Rejection::conflict(format!("provider {provider} has no access request {id}")))
            }
            (AggregateState::Access { request, datasets, .. }, _) => (request, datasets),
            _ => return Err(Rejection::conflict(format!("{id} is not an access request"))),
        };
        // each refusal names where the request stands
        let states = || {
            let each: Vec<String> = datasets.iter().map(|(d, a)| format!("{d}: {}", a.describe())).collect();
            format!("access request {id} at provider {provider} stands at {}", each.join("; "))
        };
        let dataset_of = |dataset: &str| {
            datasets.get(dataset).ok_or_else(|| {
                Rejection::conflict_at("/data/dataset", format!("dataset {dataset} is not part of it: {}", states()))
            })
        };
        if let Some(researcher) = event.payload.researcher() {
            if researcher != request.researcher {
                return Err(Rejection::Forbidden(format!(
                    "access request {id} is another researcher's: only its requester answers or withdraws it"
                )));
            }
        }
        match &event.payload {
            Payload::AccessRequested(_) => Err(Rejection::conflict(format!(
                "access request {id} already exists: {}; choose another request id",
                states()
            ))),
            Payload::AccessDecided(decision) => {
                if !dataset_of(&decision.dataset)?.is_open() {
                    return Err(Rejection::conflict_at(
                        "/data/dataset",
                        format!(
                            "dataset {} has been decided, and only a dataset waiting for a decision can be: {}",
                            decision.dataset,
                            states()
                        ),
                    ));
                }
                if decision.decision == Verdict::Approved {
                    let until = decision.until.as_deref().unwrap_or_default();
                    if !is_after(until, &event.time) {
                        return Err(Rejection::invalid(
                            "/data/until",
                            format!("an approval ends after it is given ({}); {until} does not", event.time),
                        ));
                    }
                }
                Ok(())
            }
            Payload::AccessAnswered(_) => {
                if datasets.values().any(|a| matches!(a, DatasetAccess::InformationRequested { .. })) {
                    Ok(())
                } else {
                    Err(Rejection::conflict(format!("no question is open: {}", states())))
                }
            }
            Payload::AccessWithdrawn(_) => {
                if datasets.values().any(|a| a.is_open() || matches!(a, DatasetAccess::Approved { .. })) {
                    Ok(())
                } else {
                    Err(Rejection::conflict(format!("nothing is left to withdraw: {}", states())))
                }
            }
            Payload::AccessRevoked(revocation) => match dataset_of(&revocation.dataset)? {
                DatasetAccess::Approved { .. } => Ok(()),
                _ => Err(Rejection::conflict_at(
                    "/data/dataset",
                    format!("only an approved dataset can be revoked: {}", states()),
                )),
            },
            _ => Err(Rejection::conflict(format!("{} is not an event of an access request", event.event_type))),
        }
    }
}

/// Folds one event of an access request (checked by `decide_access` when it was appended).
fn apply_access(
    datasets: &mut BTreeMap<String, DatasetAccess>,
    steps: &mut Vec<AccessStep>,
    time: &str,
    payload: &Payload,
) {
    let step = |name: &str, dataset: Option<&String>, text: Option<&String>| AccessStep {
        time: time.to_owned(),
        step: name.to_owned(),
        dataset: dataset.cloned(),
        text: text.cloned(),
    };
    match payload {
        Payload::AccessDecided(d) => {
            let (new, text) = match d.decision {
                Verdict::Approved => (
                    DatasetAccess::Approved {
                        from: time.to_owned(),
                        until: d.until.clone().unwrap_or_default(),
                        conditions: d.conditions.clone(),
                    },
                    d.conditions.as_ref(),
                ),
                Verdict::Rejected => (
                    DatasetAccess::Rejected { reason: d.reason.clone().unwrap_or_default(), decided: time.to_owned() },
                    d.reason.as_ref(),
                ),
                Verdict::InformationRequested => (
                    DatasetAccess::InformationRequested {
                        question: d.question.clone().unwrap_or_default(),
                        asked: time.to_owned(),
                    },
                    d.question.as_ref(),
                ),
            };
            steps.push(step(new.name(), Some(&d.dataset), text));
            datasets.insert(d.dataset.clone(), new);
        }
        Payload::AccessAnswered(a) => {
            for access in datasets.values_mut() {
                if matches!(access, DatasetAccess::InformationRequested { .. }) {
                    *access = DatasetAccess::Requested;
                }
            }
            steps.push(step("answered", None, Some(&a.answer)));
        }
        Payload::AccessWithdrawn(w) => {
            for access in datasets.values_mut() {
                if access.is_open() || matches!(access, DatasetAccess::Approved { .. }) {
                    *access = DatasetAccess::Withdrawn { withdrawn: time.to_owned() };
                }
            }
            steps.push(step("withdrawn", None, w.reason.as_ref()));
        }
        Payload::AccessRevoked(r) => {
            datasets.insert(
                r.dataset.clone(),
                DatasetAccess::Revoked { reason: r.reason.clone(), revoked: time.to_owned() },
            );
            steps.push(step("revoked", Some(&r.dataset), Some(&r.reason)));
        }
        _ => {}
    }
}

/// Whether RFC 3339 instant `a` is after `b` (false when either does not parse).
fn is_after(a: &str, b: &str) -> bool {
    let parse = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok();
    matches!((parse(a), parse(b)), (Some(a), Some(b)) if a > b)
}

/// What the schema cannot say about a study: its series are distinct and add up.
fn check_study(study: &Study) -> Result<(), Rejection> {
    let mut violations = Vec::new();
    let mut uids = std::collections::HashSet::new();
    for (i, series) in study.series.iter().enumerate() {
        if !uids.insert(&series.uid) {
            violations.push(crate::Violation {
                pointer: format!("/data/series/{i}/uid"),
                detail: format!("series {} appears twice", series.uid),
            });
        }
        if !study.modalities.contains(&series.modality) {
            violations.push(crate::Violation {
                pointer: format!("/data/series/{i}/modality"),
                detail: format!("{} is not among the study's modalities {:?}", series.modality, study.modalities),
            });
        }
    }
    if study.series.len() as u64 > study.number_of_series {
        violations.push(crate::Violation {
            pointer: "/data/numberOfSeries".to_owned(),
            detail: format!(
                "{} series are listed but numberOfSeries is {}",
                study.series.len(),
                study.number_of_series
            ),
        });
    }
    let instances: u64 = study.series.iter().map(|s| s.number_of_instances).sum();
    if instances > study.number_of_instances {
        violations.push(crate::Violation {
            pointer: "/data/numberOfInstances".to_owned(),
            detail: format!(
                "the series hold {instances} instances but numberOfInstances is {}",
                study.number_of_instances
            ),
        });
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Rejection::Invalid(violations))
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
    fn event_digests_are_equal_exactly_for_equal_json() {
        let a = json!({"id": "e1", "data": {"x": [1, "two", null, true], "y": 1.5}});
        let reordered: Value =
            serde_json::from_str(r#"{"data": {"y": 1.5, "x": [1, "two", null, true]}, "id": "e1"}"#).unwrap();
        assert_eq!(a, reordered);
        assert_eq!(EventDigest::of(&a), EventDigest::of(&reordered), "member order is not content");
        for different in [
            json!({"id": "e1", "data": {"x": [1, "two", null, false], "y": 1.5}}),
            json!({"id": "e1", "data": {"x": [1, "two", null, true], "y": 1.0}}),
            json!({"id": "e1", "data": {"x": [1, "two", null, true], "y": 1.5, "z": null}}),
            json!({"id": "e1", "data": {"x": [1, "two", null, true, null], "y": 1.5}}),
            json!({"id": "e1", "data": {"x": ["1", "two", null, true], "y": 1.5}}),
            // the same characters split differently between keys and values
            json!({"id": "e1", "data": {"x": [1, "tw", "o", null, true], "y": 1.5}}),
            json!({"i": "de1", "data": {"x": [1, "two", null, true], "y": 1.5}}),
        ] {
            assert_ne!(a, different);
            assert_ne!(EventDigest::of(&a), EventDigest::of(&different), "{different}");
        }
    }

    #[test]
    fn lifecycle_rules() {
        let mut agg = Aggregate::default();
        let update = event(with_id(example("dataset.updated"), "u1"));
        assert!(
            matches!(agg.decide(&update, &Related::default()), Err(Rejection::Conflict { .. })),
            "update before publish"
        );

        let publish = event(example("dataset.published"));
        assert!(
            matches!(
                agg.decide(&publish, &Related { provider_registered: false, ..Related::default() }),
                Err(Rejection::Conflict { .. })
            ),
            "unregistered provider"
        );
        assert_eq!(agg.decide(&publish, &Related::default()), Ok(Decision::Append { expected_last_seq: 0 }));
        agg.apply(7, &publish);
        assert_eq!(agg.decide(&publish, &Related::default()), Ok(Decision::Duplicate { seq: 7 }), "re-send");
        let second = event(with_id(example("dataset.published"), "p2"));
        assert!(matches!(agg.decide(&second, &Related::default()), Err(Rejection::Conflict { .. })), "second publish");

        assert_eq!(agg.decide(&update, &Related::default()), Ok(Decision::Append { expected_last_seq: 7 }));
        agg.apply(9, &update);
        let AggregateState::Dataset { document, .. } = &agg.state else { panic!() };
        assert_eq!(document["numberOfSubjects"], json!(436));

        let stale = event(example("dataset.updated")); // expectedversion 1, aggregate at 2
        let Err(Rejection::Conflict { pointer, .. }) = agg.decide(&stale, &Related::default()) else { panic!() };
        assert_eq!(pointer.as_deref(), Some("/expectedversion"));

        let remove_last = event(json!({
            "specversion": "1.0", "id": "r1", "source": "urn:cireg:provider:synthetic-breast-consortium",
            "type": "eu.cancerimage.dataset.distribution.removed.v1", "subject": "breast-mri-screening-2024",
            "time": "2026-11-04T10:00:00Z", "data": {"distributionId": "dicom"}
        }));
        assert!(agg.decide(&remove_last, &Related::default()).is_err(), "last distribution stays");

        let withdraw = event(example("dataset.withdrawn"));
        agg.apply(10, &withdraw);
        let again = event(with_id(example("dataset.updated"), "u2"));
        assert!(matches!(agg.decide(&again, &Related::default()), Err(Rejection::Conflict { .. })), "after withdrawal");
    }

    #[test]
    fn reused_id_with_other_content_conflicts() {
        let mut agg = Aggregate::default();
        let publish = event(example("dataset.published"));
        agg.apply(1, &publish);
        let mut changed = example("dataset.published");
        changed["data"]["version"] = json!("9");
        let Err(Rejection::Conflict { pointer, .. }) = agg.decide(&event(changed), &Related::default()) else {
            panic!()
        };
        assert_eq!(pointer.as_deref(), Some("/id"));
    }
}

#[cfg(test)]
mod study_tests {
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

    #[test]
    fn study_lifecycle_rules() {
        let register = event(example("study.registered"));
        let mut agg = Aggregate::default();
        let unpublished = Related { dataset: None, ..Related::default() };
        let Err(Rejection::Conflict { pointer, .. }) = agg.decide(&register, &unpublished) else { panic!() };
        assert_eq!(pointer.as_deref(), Some("/data/dataset"));
        let withdrawn = Related { dataset: Some(DatasetStatus::Withdrawn), ..Related::default() };
        assert!(agg.decide(&register, &withdrawn).is_err(), "a withdrawn dataset takes no studies");
        let no_consent = Related { consent_withdrawn: true, ..Related::default() };
        assert!(agg.decide(&register, &no_consent).is_err(), "consent withdrawn");
        let retract = event(example("study.retracted"));
        assert!(agg.decide(&retract, &Related::default()).is_err(), "retract before register");

        assert_eq!(agg.decide(&register, &Related::default()), Ok(Decision::Append { expected_last_seq: 0 }));
        agg.apply(3, &register);
        let AggregateState::Study { status, subject, .. } = &agg.state else { panic!("{:?}", agg.state) };
        assert_eq!((*status, subject.as_str()), (StudyStatus::Available, "BRMR-000123"));
        let mut again = example("study.registered");
        again["id"] = json!("other");
        assert!(agg.decide(&event(again), &Related::default()).is_err(), "registered twice");

        let mut moved = example("study.updated");
        moved["data"]["dataset"] = json!("another-dataset");
        let Err(Rejection::Conflict { pointer, .. }) = agg.decide(&event(moved), &Related::default()) else { panic!() };
        assert_eq!(pointer.as_deref(), Some("/data/dataset"));
        let update = event(example("study.updated"));
        assert_eq!(agg.decide(&update, &Related::default()), Ok(Decision::Append { expected_last_seq: 3 }));
        agg.apply(4, &update);
        agg.apply(5, &retract);
        let AggregateState::Study { status: StudyStatus::Retracted, .. } = &agg.state else { panic!() };
        let mut after = example("study.updated");
        after["id"] = json!("after");
        after.as_object_mut().unwrap().remove("expectedversion");
        assert!(agg.decide(&event(after), &Related::default()).is_err(), "nothing after a retraction");
    }

    #[test]
    fn a_study_must_add_up() {
        let mut v = example("study.registered");
        v["data"]["series"][1]["uid"] = v["data"]["series"][0]["uid"].clone();
        v["data"]["series"][0]["modality"] = json!("CT");
        v["data"]["numberOfSeries"] = json!(1);
        v["data"]["numberOfInstances"] = json!(10);
        let Err(Rejection::Invalid(found)) = Aggregate::default().decide(&event(v), &Related::default()) else {
            panic!()
        };
        let pointers: Vec<&str> = found.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/data/series/0/modality", "/data/series/1/uid", "/data/numberOfSeries", "/data/numberOfInstances"]
        );
    }

    #[test]
    fn consent_is_withdrawn_once() {
        let withdraw = event(example("subject.consent.withdrawn"));
        assert_eq!(withdraw.subject(), "cireg.events.synthetic-breast-consortium.subject.BRMR-000123");
        let register = event(example("study.registered"));
        assert!(register
            .subject()
            .starts_with(&crate::subject_studies_filter(&register.provider, "BRMR-000123")[..60]));
        assert!(register.subject().ends_with(".study.2_25_178063125098516432178954231457806613211"));
        let mut agg = Aggregate::default();
        agg.apply(1, &withdraw);
        let mut again = example("subject.consent.withdrawn");
        again["id"] = json!("again");
        assert!(agg.decide(&event(again), &Related::default()).is_err());
    }
}

#[cfg(test)]
mod access_tests {
    use super::*;
    use crate::validate_event;
    use serde_json::json;

    fn example(t: &str) -> Value {
        let path = format!("{}/../../schemas/examples/eu.cancerimage.access.{t}.v1.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn event(mut v: Value, id: &str, data: Value) -> Event {
        v["id"] = json!(id);
        // a null removes the member
        if let (Value::Object(fields), Some(Value::Object(d))) = (data, v.get_mut("data")) {
            for (k, x) in fields {
                if x.is_null() {
                    d.remove(&k);
                } else {
                    d.insert(k, x);
                }
            }
        }
        validate_event(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn published(datasets: &[&str]) -> Related {
        Related {
            requested: datasets.iter().map(|d| (d.to_string(), Some(DatasetStatus::Live))).collect(),
            ..Related::default()
        }
    }

    fn status(agg: &Aggregate, dataset: &str) -> &'static str {
        let AggregateState::Access { datasets, .. } = &agg.state else { panic!("{:?}", agg.state) };
        datasets[dataset].name()
    }

    fn conflict_pointer(r: Result<Decision, Rejection>) -> Option<String> {
        match r {
            Err(Rejection::Conflict { pointer, .. }) => pointer,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    const DS: &str = "breast-mri-screening-2024";

    #[test]
    fn a_request_names_published_datasets_only() {
        let both = json!({"datasets": [DS, "other"]});
        let request = event(example("requested"), "r1", both);
        let agg = Aggregate::default();
        assert_eq!(conflict_pointer(agg.decide(&request, &published(&[DS]))).as_deref(), Some("/data/datasets/1"));
        let withdrawn = Related {
            requested: [
                (DS.to_owned(), Some(DatasetStatus::Live)),
                ("other".to_owned(), Some(DatasetStatus::Withdrawn)),
            ]
            .into(),
            ..Related::default()
        };
        assert_eq!(conflict_pointer(agg.decide(&request, &withdrawn)).as_deref(), Some("/data/datasets/1"));
        assert!(agg.decide(&request, &published(&[DS, "other"])).is_ok());
        let decide_first = event(example("decided"), "d1", json!({}));
        assert!(agg.decide(&decide_first, &Related::default()).is_err(), "no request yet");
    }

    #[test]
    fn decisions_follow_the_lifecycle() {
        let mut agg = Aggregate::default();
        let request = event(example("requested"), "r1", json!({"datasets": [DS, "other"]}));
        agg.apply(1, &request);
        assert_eq!((status(&agg, DS), status(&agg, "other")), ("requested", "requested"));
        let again = event(example("requested"), "r2", json!({}));
        assert!(conflict_pointer(agg.decide(&again, &published(&[DS]))).is_none(), "a request exists once");

        // a question, an answer, then an approval
        let ask = event(
            example("decided"),
            "d1",
            json!({"decision": "information-requested", "question": "Which scanner?", "until": null, "conditions": null}),
        );
        assert!(agg.decide(&ask, &Related::default()).is_ok());
        agg.apply(2, &ask);
        assert_eq!(status(&agg, DS), "information-requested");
        let answer = event(example("answered"), "a1", json!({}));
        agg.apply(3, &answer);
        assert_eq!(status(&agg, DS), "requested");
        let no_question = event(example("answered"), "a2", json!({}));
        assert!(conflict_pointer(agg.decide(&no_question, &Related::default())).is_none(), "nothing was asked");

        let approve = event(example("decided"), "d2", json!({}));
        assert!(agg.decide(&approve, &Related::default()).is_ok());
        agg.apply(4, &approve);
        let AggregateState::Access { datasets, steps, .. } = &agg.state else { panic!() };
        assert!(matches!(&datasets[DS], DatasetAccess::Approved { from, until, .. }
            if from == "2026-11-12T14:30:00Z" && until == "2027-12-31T23:59:59Z"));
        assert_eq!(
            steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
            ["requested", "information-requested", "answered", "approved"]
        );

        // decided once: 409 naming where the request stands
        let twice = event(example("decided"), "d3", json!({}));
        let Err(Rejection::Conflict { detail, pointer }) = agg.decide(&twice, &Related::default()) else { panic!() };
        assert_eq!(pointer.as_deref(), Some("/data/dataset"));
        assert!(
            detail.contains("approved until 2027-12-31T23:59:59Z") && detail.contains("other: requested"),
            "{detail}"
        );
        let unknown = event(example("decided"), "d4", json!({"dataset": "not-asked"}));
        assert_eq!(conflict_pointer(agg.decide(&unknown, &Related::default())).as_deref(), Some("/data/dataset"));

        // an approval must end after it is given
        let past = event(example("decided"), "d5", json!({"dataset": "other", "until": "2026-11-01T00:00:00Z"}));
        let Err(Rejection::Invalid(v)) = agg.decide(&past, &Related::default()) else { panic!() };
        assert_eq!(v[0].pointer, "/data/until");

        // revocation: only of an approved dataset
        let revoke_other = event(example("revoked"), "v1", json!({"dataset": "other"}));
        assert!(agg.decide(&revoke_other, &Related::default()).is_err());
        let revoke = event(example("revoked"), "v2", json!({}));
        assert!(agg.decide(&revoke, &Related::default()).is_ok());
        agg.apply(5, &revoke);
        assert_eq!(status(&agg, DS), "revoked");

        // withdrawal ends what is open; then nothing is left
        let withdraw = event(example("withdrawn"), "w1", json!({}));
        agg.apply(6, &withdraw);
        assert_eq!((status(&agg, DS), status(&agg, "other")), ("revoked", "withdrawn"));
        let again = event(example("withdrawn"), "w2", json!({}));
        assert!(agg.decide(&again, &Related::default()).is_err());
    }

    #[test]
    fn only_the_requester_answers_or_withdraws() {
        let mut agg = Aggregate::default();
        agg.apply(1, &event(example("requested"), "r1", json!({})));
        let other = event(example("withdrawn"), "w1", json!({"researcher": "mallory"}));
        assert!(matches!(agg.decide(&other, &Related::default()), Err(Rejection::Forbidden(_))));
        let own = event(example("withdrawn"), "w2", json!({}));
        assert!(agg.decide(&own, &Related::default()).is_ok());
        agg.apply(2, &own);
        assert_eq!(status(&agg, DS), "withdrawn");
    }
}
