//! The JetStream log. Works with nats-server 2.9 and later: it uses streams, consumers, message
//! ids and expected-subject-sequence headers, and nothing newer (no KV, no multi-filter consumers).

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{self, pull, AckPolicy, DeliverPolicy},
    context::PublishErrorKind,
    stream::{self, DirectGetErrorKind, LastRawMessageErrorKind, StorageType},
};
use futures::StreamExt;

use crate::{AppendRequest, Appended, EventLog, Follower, LogError, StoredEvent};

/// The canonical event stream.
pub const EVENTS_STREAM: &str = "CIREG_EVENTS";

/// The subjects of the canonical stream: every aggregate subject.
pub const EVENTS_SUBJECTS: &str = "cireg.events.>";
/// The central node's stream (see [`JetStreamLog::open_central`]).
pub const CENTRAL_STREAM: &str = "CIREG_CENTRAL";
/// What the central node takes from a national node's log: its providers and datasets. Never
/// `cireg.events.<provider>.subject.>`, a pseudonymous subject's consent and studies.
pub const CATALOGUE_SUBJECTS: [&str; 2] = ["cireg.events.*.provider", "cireg.events.*.dataset.*"];
/// A national node's catalogue-level facts it computes itself (not events anyone sent): the
/// counts of each dataset's registered studies, `cireg.facts.<provider>.counts.<dataset>`, the
/// latest per dataset. The central node sources them beside the catalogue events.
pub const FACTS_STREAM: &str = "CIREG_FACTS";
/// The subjects of [`FACTS_STREAM`].
pub const FACTS_SUBJECTS: &str = "cireg.facts.>";
/// The facts the central node takes from a national node.
const COUNTS_FACTS: &str = "cireg.facts.*.counts.*";

/// Where the central stream keeps a national node's events: `cireg.nodes.<domain>.` in place of
/// `cireg.events.`, so that each event says which node it came from (JetStream rewrites the
/// subjects as it sources them).
pub const CENTRAL_SUBJECT_PREFIX: &str = "cireg.nodes";

/// The sources of one national node: each catalogue subject of its log, and each counts fact, put
/// under the node (`cireg.nodes.<domain>.<provider>.counts.<dataset>` for a fact). One source per
/// filter, never one with several: JetStream then names the filter in the subject of the consumer
/// it creates at the node (`$JS.<domain>.API.CONSUMER.CREATE.<stream>.<name>.<filter>`), so the
/// national NATS can allow exactly these consumers and nothing else
/// (`deploy/nats/federation/national.conf`).
fn central_sources(domain: &str) -> Vec<stream::Source> {
    let source = |stream: &str, filter: &str, rest: &str| stream::Source {
        name: stream.to_owned(),
        subject_transforms: vec![stream::SubjectTransform {
            source: filter.to_owned(),
            destination: format!("{CENTRAL_SUBJECT_PREFIX}.{domain}.{{{{wildcard(1)}}}}.{rest}"),
        }],
        external: Some(stream::External { api_prefix: format!("$JS.{domain}.API"), delivery_prefix: None }),
        ..Default::default()
    };
    vec![
        source(EVENTS_STREAM, CATALOGUE_SUBJECTS[0], "provider"),
        source(EVENTS_STREAM, CATALOGUE_SUBJECTS[1], "dataset.{{wildcard(2)}}"),
        source(FACTS_STREAM, COUNTS_FACTS, "counts.{{wildcard(2)}}"),
    ]
}

/// A subject of the central stream as its national log has it, and the node's domain.
pub fn national_subject(subject: &str) -> Option<(&str, String)> {
    let rest = subject.strip_prefix(CENTRAL_SUBJECT_PREFIX)?.strip_prefix('.')?;
    let (domain, rest) = rest.split_once('.')?;
    Some((domain, format!("{}.{rest}", EVENTS_SUBJECTS.trim_end_matches(".>"))))
}

/// Where a national node publishes the facts it computes (`FACTS_STREAM`).
#[derive(Clone)]
pub struct FactsPublisher {
    context: jetstream::Context,
}

impl FactsPublisher {
    /// Uses `client`'s JetStream, creating the facts stream if it does not exist.
    pub async fn open(client: async_nats::Client, options: &JetStreamOptions) -> Result<Self, LogError> {
        let context = jetstream::new(client);
        context
            .get_or_create_stream(stream::Config {
                name: FACTS_STREAM.to_owned(),
                description: Some("cireg facts a node computes: each dataset's study counts, the latest".to_owned()),
                subjects: vec![FACTS_SUBJECTS.to_owned()],
                storage: StorageType::File,
                num_replicas: options.replicas,
                // a fact replaces the one before it: only the latest per dataset is kept
                max_messages_per_subject: 1,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        Ok(FactsPublisher { context })
    }

    /// Publishes the study counts of dataset `dataset` of `provider` (JSON), waiting for the ack.
    pub async fn publish_counts(&self, provider: &str, dataset: &str, counts: Vec<u8>) -> Result<(), LogError> {
        let subject = format!("cireg.facts.{provider}.counts.{dataset}");
        self.context.publish(subject, counts.into()).await.map_err(unavailable)?.await.map_err(unavailable)?;
        Ok(())
    }
}

/// A national node's source of the central stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceActivity {
    /// The node's JetStream domain.
    pub domain: String,
    /// Messages the central stream has yet to copy from it.
    pub lag: u64,
    /// How long ago the source was last active (a message or a heartbeat over the leaf node
    /// connection); `None`: never since the stream was loaded.
    pub active: Option<Duration>,
}

/// How the JetStream log is set up.
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// Stream replicas (1 on a single server, 3 on a cluster).
    pub replicas: usize,
    /// How long JetStream itself remembers event ids; the ingest path also recognises re-sends of
    /// older events from the aggregate's history.
    pub duplicate_window: Duration,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions { replicas: 1, duplicate_window: Duration::from_secs(24 * 3600) }
    }
}

pub struct JetStreamLog {
    client: async_nats::Client,
    context: jetstream::Context,
    stream: stream::Stream,
    /// The central node's log: sourced from the national nodes' logs, never appended to here.
    read_only: bool,
    /// Whether a subject's last message may be read by direct get (which any replica answers):
    /// only when the stream has one replica, so that what it answers is never behind the leader.
    direct: bool,
}

fn unavailable<E: std::fmt::Display>(e: E) -> LogError {
    LogError::Unavailable(e.to_string())
}

impl JetStreamLog {
    /// Uses `client`'s JetStream, creating the event stream if it does not exist (and scaling it
    /// to `options.replicas` if it exists with another number).
    pub async fn open(client: async_nats::Client, options: &JetStreamOptions) -> Result<Self, LogError> {
        let context = jetstream::new(client.clone());
        let mut stream = context
            .get_or_create_stream(stream::Config {
                name: EVENTS_STREAM.to_owned(),
                description: Some("cireg canonical event log: validated provider events".to_owned()),
                subjects: vec![EVENTS_SUBJECTS.to_owned()],
                storage: StorageType::File,
                num_replicas: options.replicas,
                duplicate_window: options.duplicate_window,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        if stream.cached_info().config.num_replicas != options.replicas {
            let config = stream::Config { num_replicas: options.replicas, ..stream.cached_info().config.clone() };
            tracing::info!(replicas = options.replicas, "scaling the event stream");
            context.update_stream(&config).await.map_err(unavailable)?;
            stream = context.get_stream(EVENTS_STREAM).await.map_err(unavailable)?;
        }
        let config = &stream.cached_info().config;
        let direct = config.allow_direct && config.num_replicas <= 1;
        Ok(JetStreamLog { client, context, stream, direct, read_only: false })
    }

    /// The central node's log: the stream [`CENTRAL_STREAM`], which JetStream itself fills from
    /// the event streams of the national nodes (their JetStream domains, reached over leaf node
    /// connections) with their catalogue-level events only: providers and datasets, never a
    /// pseudonymous subject's consent or studies. Created, or its sources set, as `domains` say.
    /// Read-only: the national nodes are where events are published.
    pub async fn open_central(
        client: async_nats::Client,
        domains: &[String],
        options: &JetStreamOptions,
    ) -> Result<Self, LogError> {
        let context = jetstream::new(client.clone());
        let sources: Vec<stream::Source> = domains.iter().flat_map(|d| central_sources(d)).collect();
        let config = stream::Config {
            name: CENTRAL_STREAM.to_owned(),
            description: Some(format!(
                "cireg central log: the catalogue events of the national nodes {}",
                domains.join(", ")
            )),
            subjects: Vec::new(),
            sources: Some(sources.clone()),
            storage: StorageType::File,
            num_replicas: options.replicas,
            allow_direct: true,
            ..Default::default()
        };
        let mut stream = context.get_or_create_stream(config.clone()).await.map_err(unavailable)?;
        let existing = &stream.cached_info().config;
        if existing.sources.as_ref() != Some(&sources) || existing.num_replicas != options.replicas {
            tracing::info!(domains = ?domains, replicas = options.replicas, "setting the central stream's sources");
            context.update_stream(&config).await.map_err(unavailable)?;
            stream = context.get_stream(CENTRAL_STREAM).await.map_err(unavailable)?;
        }
        let direct = options.replicas <= 1;
        Ok(JetStreamLog { client, context, stream, direct, read_only: true })
    }

    /// On the central node: how each national node's source is doing, as JetStream sees it.
    pub async fn source_activity(&self) -> Result<Vec<SourceActivity>, LogError> {
        let stream = self.context.get_stream(CENTRAL_STREAM).await.map_err(unavailable)?;
        let info = stream.cached_info();
        // a node's three sources share its leaf node connection: it is as active as the most
        // recent of them, and its lag is theirs together
        let mut nodes: Vec<SourceActivity> = Vec::new();
        for s in &info.sources {
            // the node is named in the transforms' destinations (the info omits the API prefix)
            let Some((domain, _)) = s.subject_transforms.first().and_then(|t| national_subject(&t.destination)) else {
                continue;
            };
            match nodes.iter_mut().find(|n| n.domain == domain) {
                Some(node) => {
                    node.lag += s.lag;
                    node.active = match (node.active, s.active) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None => nodes.push(SourceActivity { domain: domain.to_owned(), lag: s.lag, active: s.active }),
            }
        }
        Ok(nodes)
    }

    /// Reads through an ordered consumer until `max` events, the sequence `last` (the end when the
    /// read began), or the end of what the consumer has pending.
    async fn read_ordered(
        &self,
        config: pull::OrderedConfig,
        max: usize,
        last: u64,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let consumer = self.stream.create_consumer(config).await.map_err(unavailable)?;
        let mut messages = consumer.messages().await.map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(message) =
            tokio::time::timeout(Duration::from_secs(10), messages.next()).await.map_err(unavailable)?
        {
            let message = message.map_err(unavailable)?;
            let pending = message.info().map_err(unavailable)?.pending;
            let event = stored(&message)?;
            let seq = event.seq;
            out.push(event);
            if out.len() >= max || seq >= last || pending == 0 {
                break;
            }
        }
        Ok(out)
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }
}

fn stored(message: &jetstream::Message) -> Result<StoredEvent, LogError> {
    let info = message.info().map_err(unavailable)?;
    let (subject, node) = match national_subject(&message.subject) {
        Some((domain, subject)) => (subject, Some(domain.to_owned())),
        None => (message.subject.to_string(), None),
    };
    Ok(StoredEvent {
        seq: info.stream_sequence,
        subject,
        payload: message.payload.clone(),
        appended_at_nanos: info.published.unix_timestamp_nanos(),
        node,
    })
}

#[async_trait::async_trait]
impl EventLog for JetStreamLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        if self.read_only {
            return Err(LogError::Unavailable(
                "the central node's log is filled from the national nodes' logs: publish there".into(),
            ));
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(request.payload)
            .message_id(&request.event_id)
            .expected_last_subject_sequence(request.expected_last_subject_seq);
        let ack = self.context.send_publish(request.subject.clone(), publish).await.map_err(unavailable)?.await;
        match ack {
            Ok(ack) if ack.duplicate => Ok(Appended::Duplicate(ack.sequence)),
            Ok(ack) => Ok(Appended::New(ack.sequence)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(LogError::Conflict { subject: request.subject, expected: request.expected_last_subject_seq })
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn last_seq(&self) -> Result<u64, LogError> {
        let info = self.stream.get_info().await.map_err(unavailable)?;
        Ok(info.state.last_sequence)
    }

    async fn last_seq_of_subject(&self, subject: &str) -> Result<u64, LogError> {
        // ingest reads several aggregates per event: a direct get costs the server a third of a
        // request to the JetStream API (`cireg bench` measures both)
        if self.direct {
            return match self.stream.direct_get_last_for_subject(subject).await {
                Ok(m) => Ok(m.sequence),
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(0),
                Err(e) => Err(unavailable(e)),
            };
        }
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn read_subject(&self, subject: &str) -> Result<Vec<StoredEvent>, LogError> {
        let last = self.last_seq_of_subject(subject).await?;
        if last == 0 {
            return Ok(Vec::new());
        }
        let config = pull::OrderedConfig {
            filter_subject: subject.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        self.read_ordered(config, usize::MAX, last).await
    }

    async fn read_range(&self, from_seq: u64, max: usize) -> Result<Vec<StoredEvent>, LogError> {
        let last = self.last_seq().await?;
        let from = from_seq.max(1);
        if from > last || max == 0 {
            return Ok(Vec::new());
        }
        let config = pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from },
            ..Default::default()
        };
        self.read_ordered(config, max, last).await
    }

    async fn purge_subject(&self, subject: &str) -> Result<u64, LogError> {
        let purged = self.stream.purge().filter(subject).await.map_err(unavailable)?;
        Ok(purged.purged)
    }

    async fn follow(&self, from_seq: u64, reader: &str) -> Result<Box<dyn Follower>, LogError> {
        // The store's checkpoint is the truth about where a reader stands, so the durable consumer
        // is recreated at that point on every start.
        let _ = self.stream.delete_consumer(reader).await;
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                durable_name: Some(reader.to_owned()),
                description: Some("cireg projector".to_owned()),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from_seq.max(1) },
                ack_policy: AckPolicy::All,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: 100_000,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let messages = consumer.stream().max_messages_per_batch(1000).messages().await.map_err(unavailable)?;
        Ok(Box::new(JetStreamFollower {
            messages,
            pending_ack: None,
            next: from_seq.max(1),
            stream: self.stream.clone(),
        }))
    }

    fn backend(&self) -> &'static str {
        "jetstream"
    }
}

struct JetStreamFollower {
    messages: consumer::pull::Stream,
    pending_ack: Option<jetstream::Message>,
    /// The next sequence this reader has not returned yet; redeliveries below it are dropped.
    next: u64,
    /// The stream, to tell a gap left by purged events from deliveries the consumer lost.
    stream: stream::Stream,
}

impl JetStreamFollower {
    /// Keeps `message` if it is new; returns how many more the consumer has pending after it.
    /// Refuses to go past events the stream holds but the consumer has not delivered.
    async fn take(&mut self, message: jetstream::Message, out: &mut Vec<StoredEvent>) -> Result<u64, LogError> {
        let pending = message.info().map_err(unavailable)?.pending;
        let event = stored(&message)?;
        if event.seq > self.next {
            // Purged events (an erasure) leave a gap. So does a restarted nats-server: what it
            // had delivered but not seen acknowledged comes again only after the ack wait, and
            // later events come first. Those must not be skipped: the reader starts again from
            // the store's checkpoint.
            match self.stream.get_first_raw_message_by_subject(EVENTS_SUBJECTS, self.next).await {
                Ok(first) if first.sequence < event.seq => {
                    return Err(LogError::Unavailable(format!(
                        "the log's consumer delivered {} before {}: following again",
                        event.seq, first.sequence
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        if event.seq >= self.next {
            self.next = event.seq + 1;
            out.push(event);
        }
        self.pending_ack = Some(message);
        Ok(pending)
    }
}

#[async_trait::async_trait]
impl Follower for JetStreamFollower {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<StoredEvent>, LogError> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(wait, self.messages.next()).await {
            Err(_) => return Ok(out),
            Ok(None) => return Err(LogError::Unavailable("the consumer's message stream ended".into())),
            Ok(Some(m)) => m.map_err(unavailable)?,
        };
        let mut pending = self.take(first, &mut out).await?;
        // Behind: the consumer says more are pending, so take them into this batch (they may still
        // be on the wire). Live: nothing pending, return at once.
        while out.len() < max.max(1) && pending > 0 {
            match tokio::time::timeout(Duration::from_secs(2), self.messages.next()).await {
                Ok(Some(m)) => pending = self.take(m.map_err(unavailable)?, &mut out).await?,
                _ => break,
            }
        }
        Ok(out)
    }

    async fn confirm(&mut self) -> Result<(), LogError> {
        if let Some(message) = self.pending_ack.take() {
            message.ack().await.map_err(unavailable)?;
        }
        Ok(())
    }
}
