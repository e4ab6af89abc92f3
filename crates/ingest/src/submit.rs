use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use bytes::Bytes;
use cireg_log::{AppendRequest, Appended, EventLog, LogError};
use cireg_model::{
    consent_subject, dataset_subject, provider_subject, subject_studies_filter, validate_event, Aggregate,
    AggregateKind, AggregateState, DatasetStatus, Decision, Event, EventType, Payload, Problem, ProviderId, Rejection,
    Related,
};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::{
    gate::{GateError, ProfileGate},
    RateLimit,
};

/// Who sends: the transport's word on which providers the sender may speak for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// The registry's own operator, inside the process (the demo loader): the event's `source`
    /// is trusted. No transport ever sends as the operator.
    Operator,
    /// A credential that may publish for these providers: a bearer token's provider claim over
    /// HTTP, the provider a NATS user may publish as (the subject it could publish on).
    Providers(Vec<ProviderId>),
    /// The registry, for the researcher of this token subject: the events of an access request
    /// that speak for the researcher ([`EventType::is_researchers`]), and only those.
    Researcher(String),
}

/// An event that is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub id: String,
    /// Its log sequence.
    pub sequence: u64,
    /// True when this was a re-send of an event already in the log.
    pub duplicate: bool,
}

#[derive(Debug)]
pub enum IngestError {
    Rejected {
        rejection: Rejection,
        event_id: Option<String>,
    },
    /// The log cannot take the event now; nothing was appended; send it again later.
    Unavailable(String),
    /// The caller sent more than its rate allows; nothing was looked at; send again after this.
    RateLimited(std::time::Duration),
}

impl IngestError {
    pub fn problem(&self) -> Problem {
        match self {
            IngestError::Rejected { rejection, event_id } => Problem::from_rejection(rejection, event_id.as_deref()),
            IngestError::Unavailable(detail) if cireg_log::is_disk_full(detail) => Problem::new(
                507,
                "insufficient-storage",
                "The node's disk is full; nothing was appended, send the event again later",
                Some(detail.clone()),
            ),
            IngestError::Unavailable(detail) => Problem::new(
                503,
                "log-unavailable",
                "The event log is unavailable; nothing was appended, send the event again later",
                Some(detail.clone()),
            ),
            IngestError::RateLimited(wait) => Problem::new(
                429,
                "rate-limited",
                "Too many events from this caller",
                Some(format!(
                    "this caller sent more events than its rate allows; nothing was looked at, send again in {} s",
                    wait.as_secs().max(1)
                )),
            ),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub invalid: AtomicU64,
    pub conflicts: AtomicU64,
    pub forbidden: AtomicU64,
    pub profile_violations: AtomicU64,
    pub unavailable: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// Validates and appends events. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    log: Arc<dyn EventLog>,
    /// Aggregates folded from the log, keyed by subject, valid while their `last_seq` is the
    /// subject's last sequence in the log.
    cache: Arc<Mutex<AggregateCache>>,
    stats: Arc<IngestStats>,
    gate: Option<ProfileGate>,
    rate_limit: Option<Arc<RateLimit>>,
}

/// Aggregates kept by default (see [`Ingest::with_cache_capacity`]).
pub const DEFAULT_AGGREGATE_CACHE: usize = 100_000;

/// A bounded cache of recently used aggregates: two generations, each at most half the capacity.
/// New and re-used entries go to the young one; when it is full it becomes the old one and the
/// old one is dropped, so what was not used during a whole generation goes (least recently used,
/// approximately) and memory stays bounded by the capacity, with O(1) work per access.
struct AggregateCache {
    // shared, not copied, on each use: a dataset's state holds its whole record, and copying
    // it for every study event was a tenth of ingest's CPU (perf, 50k studies)
    young: HashMap<String, Arc<Aggregate>>,
    old: HashMap<String, Arc<Aggregate>>,
    half: usize,
}

impl AggregateCache {
    fn with_capacity(capacity: usize) -> Self {
        AggregateCache { young: HashMap::new(), old: HashMap::new(), half: (capacity / 2).max(1) }
    }

    fn get(&mut self, subject: &str) -> Option<Arc<Aggregate>> {
        if let Some(a) = self.young.get(subject) {
            return Some(a.clone());
        }
        let a = self.old.remove(subject)?;
        self.insert(subject.to_owned(), a.clone());
        Some(a)
    }

    fn insert(&mut self, subject: String, aggregate: Arc<Aggregate>) {
        if self.young.len() >= self.half && !self.young.contains_key(&subject) {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&subject);
        self.young.insert(subject, aggregate);
    }

    fn remove(&mut self, subject: &str) {
        self.young.remove(subject);
        self.old.remove(subject);
    }

    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.young.retain(|s, _| keep(s));
        self.old.retain(|s, _| keep(s));
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

fn event_id_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    serde_json::from_slice::<IdOnly>(bytes).ok()?.id?.as_str().map(str::to_owned)
}

impl Ingest {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        let cache = Arc::new(Mutex::new(AggregateCache::with_capacity(DEFAULT_AGGREGATE_CACHE)));
        Ingest { log, cache, stats: Arc::default(), gate: None, rate_limit: None }
    }

    /// Keeps at most `capacity` recently used aggregates in memory (each saves reading its
    /// subject's events from the log on its next change).
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = Arc::new(Mutex::new(AggregateCache::with_capacity(capacity)));
        self
    }

    /// Aggregates in the cache now.
    pub fn cached_aggregates(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Checks every dataset change against the application profile before appending it.
    pub fn with_gate(mut self, gate: ProfileGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Limits how many events each caller may send (see [`Ingest::submit_limited`]).
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(Arc::new(limit));
        self
    }

    /// [`Ingest::submit`] within `caller`'s rate (see [`Ingest::with_rate_limit`]): the way of
    /// transports, keyed by who authenticated (the operator's demo loader is never limited).
    pub async fn submit_limited(&self, bytes: &[u8], sender: &Sender, caller: &str) -> Result<Accepted, IngestError> {
        if let Some(Err(wait)) = self.rate_limit.as_ref().map(|l| l.check(caller)) {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(IngestError::RateLimited(wait));
        }
        self.submit(bytes, sender).await
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Validates `bytes` as one event and appends it. Nothing is appended unless everything
    /// passes.
    pub async fn submit(&self, bytes: &[u8], sender: &Sender) -> Result<Accepted, IngestError> {
        let result = self.submit_inner(bytes, sender).await;
        let counter = match &result {
            Ok(a) if a.duplicate => &self.stats.duplicates,
            Ok(_) => &self.stats.accepted,
            Err(IngestError::Rejected { rejection: Rejection::Invalid(_), .. }) => &self.stats.invalid,
            Err(IngestError::Rejected { rejection: Rejection::Conflict { .. }, .. }) => &self.stats.conflicts,
            Err(IngestError::Rejected { rejection: Rejection::Forbidden(_), .. }) => &self.stats.forbidden,
            Err(IngestError::Rejected { rejection: Rejection::Profile(_), .. }) => &self.stats.profile_violations,
            Err(IngestError::Unavailable(_)) => &self.stats.unavailable,
            Err(IngestError::RateLimited(_)) => &self.stats.rate_limited,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn submit_inner(&self, bytes: &[u8], sender: &Sender) -> Result<Accepted, IngestError> {
        let event = validate_event(bytes)
            .map_err(|rejection| IngestError::Rejected { rejection, event_id: event_id_of(bytes) })?;
        let reject = |rejection: Rejection| IngestError::Rejected { rejection, event_id: Some(event.id.clone()) };
        match sender {
            Sender::Providers(_) if event.event_type.is_researchers() => {
                return Err(reject(Rejection::Forbidden(format!(
                    "{} speaks for a researcher: the registry writes it from the researcher's own request \
                     (POST /api/v1/access-requests), and no provider may send it",
                    event.event_type
                ))))
            }
            Sender::Researcher(subject) if event.payload.researcher() != Some(subject.as_str()) => {
                return Err(reject(Rejection::Forbidden(format!(
                    "a researcher sends only the events of its own access requests, not {}",
                    event.event_type
                ))))
            }
            _ => {}
        }
        if let Sender::Providers(allowed) = sender {
            if !allowed.contains(&event.provider) {
                let allowed: Vec<&str> = allowed.iter().map(ProviderId::as_str).collect();
                return Err(reject(Rejection::Forbidden(format!(
                    "the event's source names provider {}, but the credential it came with may publish for {}",
                    event.provider,
                    if allowed.is_empty() { "no provider".to_owned() } else { allowed.join(", ") }
                ))));
            }
        }
        let subject = event.subject();
        if let Some(accepted) = self.append_optimistically(&event, &subject).await? {
            self.erase_withdrawn_subject(event.event_type.aggregate_kind(), &event.provider, &event.aggregate).await?;
            return Ok(accepted);
        }
        // the aggregate and what its rules need of others are read at once (round trips to the
        // log overlap)
        let (aggregate, related) = futures::try_join!(self.aggregate(&subject), self.related(&event))?;
        let (kind, provider, pseudonym) =
            (event.event_type.aggregate_kind(), event.provider.clone(), event.aggregate.clone());
        let accepted = match aggregate.decide(&event, &related).map_err(reject)? {
            Decision::Duplicate { seq } => Accepted { id: event.id.clone(), sequence: seq, duplicate: true },
            Decision::Append { expected_last_seq } => {
                self.check_profile(&event, &aggregate).await?;
                self.append(event, subject, Arc::unwrap_or_clone(aggregate), expected_last_seq).await?
            }
        };
        self.erase_withdrawn_subject(kind, &provider, &pseudonym).await?;
        Ok(accepted)
    }

    /// The fast path of study events, the bulk of a registry's traffic: decided on the aggregates
    /// as this process last saw them (a study not in the cache is taken to be new) and appended
    /// with the subject's sequence they imply, so the log itself checks that the study did not
    /// change meanwhile. Only an append is decided this way: anything else (a rejection, a
    /// re-sent event, a conflict in the log, an aggregate not in the cache) returns `None`, and
    /// the event is decided again on what the log holds now. Related aggregates (the subject's
    /// consent, the dataset) come from the cache when it has them; the consent is read from the
    /// log again after every append, as on the other path, and a study that landed after its
    /// subject withdrew is erased.
    async fn append_optimistically(&self, event: &Event, subject: &str) -> Result<Option<Accepted>, IngestError> {
        if event.event_type.aggregate_kind() != AggregateKind::Study {
            return Ok(None);
        }
        let cached = self.cache.lock().ok().and_then(|mut c| c.get(subject));
        let aggregate = match cached {
            Some(a) => Arc::unwrap_or_clone(a),
            None if event.event_type == EventType::StudyRegistered => Aggregate::default(),
            None => return Ok(None),
        };
        let Some(dataset) = (match &event.payload {
            Payload::StudyRegistered(study) | Payload::StudyUpdated(study) => Some(&study.dataset),
            _ => None,
        }) else {
            return Ok(None);
        };
        let (consent, dataset) =
            (consent_subject(&event.provider, &event.aggregate), dataset_subject(&event.provider, dataset));
        let (consent, dataset) =
            futures::try_join!(self.aggregate_as_seen(&consent), self.aggregate_as_seen(&dataset))?;
        let related = Related {
            consent_withdrawn: matches!(consent.state, AggregateState::Subject { .. }),
            dataset: match dataset.state {
                AggregateState::Dataset { status, .. } => Some(status),
                _ => None,
            },
            ..Related::default()
        };
        let Ok(Decision::Append { expected_last_seq }) = aggregate.decide(event, &related) else { return Ok(None) };
        match self.append_to_log(event, subject, aggregate, expected_last_seq).await {
            Ok(Appended::New(seq)) => Ok(Some(Accepted { id: event.id.clone(), sequence: seq, duplicate: false })),
            // the log knows the id: whether it is the same event is for the aggregate to say
            Ok(Appended::Duplicate(_)) | Err(LogError::Conflict { .. }) => Ok(None),
            Err(e) => Err(IngestError::Unavailable(e.to_string())),
        }
    }

    /// The aggregate on `subject` as this process last saw it, else as the log has it now.
    async fn aggregate_as_seen(&self, subject: &str) -> Result<Arc<Aggregate>, IngestError> {
        match self.cache.lock().ok().and_then(|mut c| c.get(subject)) {
            Some(a) => Ok(a),
            None => self.aggregate(subject).await,
        }
    }

    /// What the rules of `event`'s aggregate need to know of other aggregates.
    async fn related(&self, event: &Event) -> Result<Related, IngestError> {
        // the aggregates a rule may need, each read only when it does
        let read = |needed: bool, subject: String| async move {
            if needed {
                self.aggregate(&subject).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let dataset = match &event.payload {
            Payload::StudyRegistered(study) | Payload::StudyUpdated(study) => Some(&study.dataset),
            _ => None,
        };
        let requested = async {
            let mut statuses = BTreeMap::new();
            let Payload::AccessRequested(request) = &event.payload else { return Ok(statuses) };
            let read = futures::future::try_join_all(
                request.datasets.iter().map(|d| self.aggregate_as_read(dataset_subject(&event.provider, d))),
            )
            .await?;
            for (dataset, aggregate) in request.datasets.iter().zip(read) {
                let status = match aggregate.state {
                    AggregateState::Dataset { status, .. } => Some(status),
                    _ => None,
                };
                statuses.insert(dataset.clone(), status);
            }
            Ok::<BTreeMap<String, Option<DatasetStatus>>, IngestError>(statuses)
        };
        let (provider, consent, dataset, requested) = futures::try_join!(
            read(event.event_type == EventType::DatasetPublished, provider_subject(&event.provider)),
            read(
                event.event_type.aggregate_kind() == AggregateKind::Study,
                consent_subject(&event.provider, &event.aggregate)
            ),
            read(dataset.is_some(), dataset.map(|d| dataset_subject(&event.provider, d)).unwrap_or_default()),
            requested,
        )?;
        let mut related = Related { requested, ..Related::default() };
        if let Some(provider) = provider {
            related.provider_registered = matches!(provider.state, AggregateState::Provider { .. });
        }
        if let Some(consent) = consent {
            related.consent_withdrawn = matches!(consent.state, AggregateState::Subject { .. });
        }
        if let Some(dataset) = dataset {
            related.dataset = match dataset.state {
                AggregateState::Dataset { status, .. } => Some(status),
                _ => None,
            };
        }
        Ok(related)
    }

    /// Erases from the log every study of a subject that withdrew consent: after the withdrawal
    /// is appended (and again when it is re-sent, so that a crash between the two is mended by the
    /// provider's retry), and after a study lands whose subject withdrew consent meanwhile.
    async fn erase_withdrawn_subject(
        &self,
        kind: AggregateKind,
        provider: &ProviderId,
        pseudonym: &str,
    ) -> Result<(), IngestError> {
        let withdrawn = match kind {
            AggregateKind::Subject => true,
            AggregateKind::Study => {
                let consent = consent_subject(provider, pseudonym);
                self.log.last_seq_of_subject(&consent).await.map_err(|e| IngestError::Unavailable(e.to_string()))? > 0
            }
            _ => false,
        };
        if !withdrawn {
            return Ok(());
        }
        let filter = subject_studies_filter(provider, pseudonym);
        let purged = self.log.purge_subject(&filter).await.map_err(|e| IngestError::Unavailable(e.to_string()))?;
        let prefix = filter.trim_end_matches('>');
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|subject| !subject.starts_with(prefix));
            // the consent as this process last saw it may predate the withdrawal (it came
            // through another process): read it from the log next time
            cache.remove(&consent_subject(provider, pseudonym));
        }
        if purged > 0 {
            tracing::info!(%provider, purged, "erased the studies of a subject that withdrew consent");
        }
        Ok(())
    }

    /// Runs the profile gate on the dataset as `event` would leave it.
    async fn check_profile(&self, event: &Event, aggregate: &Aggregate) -> Result<(), IngestError> {
        let Some(gate) = &self.gate else { return Ok(()) };
        let changes_content = matches!(
            event.event_type,
            EventType::DatasetPublished
                | EventType::DatasetUpdated
                | EventType::DistributionAdded
                | EventType::DistributionRemoved
        );
        if !changes_content {
            return Ok(());
        }
        let mut prospective = aggregate.clone();
        prospective.apply(aggregate.last_seq + 1, event);
        let (gate, provider, id) = (gate.clone(), event.provider.to_string(), event.aggregate.clone());
        let outcome = tokio::task::spawn_blocking(move || gate.check(&provider, &id, &prospective.state))
            .await
            .map_err(|e| IngestError::Unavailable(format!("profile validation did not finish: {e}")))?;
        match outcome {
            Ok(()) => Ok(()),
            Err(GateError::Rejected(rejection)) => {
                Err(IngestError::Rejected { rejection, event_id: Some(event.id.clone()) })
            }
            Err(GateError::Engine(e)) => {
                Err(IngestError::Unavailable(format!("profile validation failed to run: {e}")))
            }
        }
    }

    async fn append(
        &self,
        event: Event,
        subject: String,
        aggregate: Aggregate,
        expected_last_seq: u64,
    ) -> Result<Accepted, IngestError> {
        match self.append_to_log(&event, &subject, aggregate, expected_last_seq).await {
            Ok(Appended::New(seq)) => Ok(Accepted { id: event.id, sequence: seq, duplicate: false }),
            Ok(Appended::Duplicate(seq)) => Ok(Accepted { id: event.id, sequence: seq, duplicate: true }),
            Err(LogError::Conflict { .. }) => Err(IngestError::Rejected {
                rejection: Rejection::conflict(format!(
                    "another change to {} landed while this one was checked; nothing was appended: \
                         re-read it and send the change again",
                    event.aggregate_name()
                )),
                event_id: Some(event.id),
            }),
            Err(e) => Err(IngestError::Unavailable(e.to_string())),
        }
    }

    /// Appends `event` to `subject` if the subject's last sequence is still `expected_last_seq`;
    /// the cache then holds `aggregate` with the event applied, or, after a conflict, nothing.
    async fn append_to_log(
        &self,
        event: &Event,
        subject: &str,
        mut aggregate: Aggregate,
        expected_last_seq: u64,
    ) -> Result<Appended, LogError> {
        let request = AppendRequest {
            subject: subject.to_owned(),
            event_id: event.id.clone(),
            payload: Bytes::from(event.to_bytes()),
            expected_last_subject_seq: expected_last_seq,
        };
        let appended = self.log.append(request).await;
        match &appended {
            Ok(Appended::New(seq)) => {
                aggregate.apply(*seq, event);
                self.remember(subject.to_owned(), aggregate);
            }
            Err(LogError::Conflict { .. }) => self.forget(subject),
            _ => {}
        }
        appended
    }

    /// [`Ingest::aggregate`] of an owned subject (for futures that outlive the caller's strings).
    async fn aggregate_as_read(&self, subject: String) -> Result<Arc<Aggregate>, IngestError> {
        self.aggregate(&subject).await
    }

    /// The aggregate on `subject` as the log has it now.
    async fn aggregate(&self, subject: &str) -> Result<Arc<Aggregate>, IngestError> {
        let unavailable = |e: LogError| IngestError::Unavailable(e.to_string());
        let last = self.log.last_seq_of_subject(subject).await.map_err(unavailable)?;
        if last == 0 {
            // remembered too: most subjects never withdraw consent, and their studies ask
            let absent = Arc::new(Aggregate::default());
            self.remember_shared(subject.to_owned(), absent.clone());
            return Ok(absent);
        }
        if let Some(cached) = self.cache.lock().ok().and_then(|mut c| c.get(subject)) {
            if cached.last_seq == last {
                return Ok(cached);
            }
        }
        debug!(subject, "folding aggregate from the log");
        let mut aggregate = Aggregate::default();
        for stored in self.log.read_subject(subject).await.map_err(unavailable)? {
            match Event::parse_stored(&stored.payload) {
                Ok(event) => aggregate.apply(stored.seq, &event),
                Err(e) => {
                    return Err(IngestError::Unavailable(format!(
                        "log sequence {} on {subject} is unreadable: {e}",
                        stored.seq
                    )))
                }
            }
        }
        let aggregate = Arc::new(aggregate);
        self.remember_shared(subject.to_owned(), aggregate.clone());
        Ok(aggregate)
    }

    fn remember(&self, subject: String, aggregate: Aggregate) {
        self.remember_shared(subject, Arc::new(aggregate));
    }

    fn remember_shared(&self, subject: String, aggregate: Arc<Aggregate>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(subject, aggregate);
        }
    }

    fn forget(&self, subject: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregate_cache_stays_bounded_and_keeps_what_is_used() {
        let mut cache = AggregateCache::with_capacity(4);
        for i in 0..1000 {
            cache.insert(format!("s{i}"), Arc::default());
            // s0 is used all the time: it is never the one dropped
            assert!(cache.get("s0").is_some(), "after {i} inserts");
            assert!(cache.len() <= 4, "{} entries after {i} inserts", cache.len());
        }
        assert!(cache.get("s999").is_some(), "the newest entry is kept");
        assert!(cache.get("s500").is_none(), "an entry unused for generations is gone");
        cache.remove("s0");
        assert!(cache.get("s0").is_none());
        cache.insert("a.x".into(), Arc::default());
        cache.insert("b.x".into(), Arc::default());
        cache.retain(|s| !s.starts_with("a."));
        assert!(cache.get("a.x").is_none() && cache.get("b.x").is_some());
    }

    #[test]
    fn a_full_disk_is_507_and_other_log_failures_503() {
        // as the embedded log reports a failed commit on a full disk (seen in the fault campaign)
        let full = IngestError::Unavailable(
            LogError::Storage("I/O error: No space left on device (os error 28)".into()).to_string(),
        );
        assert_eq!(full.problem().status, 507);
        assert!(full.problem().type_.ends_with("insufficient-storage"), "{}", full.problem().type_);
        let down = IngestError::Unavailable(LogError::Unavailable("no responders".into()).to_string());
        assert_eq!(down.problem().status, 503);
    }
}
