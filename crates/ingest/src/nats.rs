//! The NATS ways in.
//!
//! - Durable: a provider publishes onto the JetStream submission stream, subject
//!   `cireg.submit.<provider>.<anything>`. The submission is kept even while cireg is down; cireg
//!   takes submissions in order, and publishes each outcome on
//!   `cireg.outcome.<provider>.<event-id>` (also kept for a week in a stream of its own).
//! - At once: a NATS request to `cireg.ingest.<provider>`; the outcome is the reply (and is also
//!   published on the outcome subject).
//!
//! An outcome is the [`crate::Accepted`] JSON, or RFC 9457 problem details as over HTTP.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy},
    stream::{self, RetentionPolicy, StorageType},
    AckKind,
};
use bytes::Bytes;
use cireg_model::{Problem, ProviderId};
use futures::StreamExt;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{Ingest, IngestError, Sender};

pub const SUBMISSIONS_STREAM: &str = "CIREG_SUBMISSIONS";
pub const OUTCOMES_STREAM: &str = "CIREG_OUTCOMES";
const SUBMISSIONS_CONSUMER: &str = "cireg-ingest";

/// The outcome of one submission as JSON bytes, and whether it is final (an unavailable log is
/// not: the submission stays to be tried again).
fn outcome(result: &Result<crate::Accepted, IngestError>) -> (Bytes, bool) {
    let (json, is_final) = match result {
        Ok(accepted) => (serde_json::to_vec(accepted), true),
        Err(e) => (serde_json::to_vec(&e.problem()), !matches!(e, IngestError::Unavailable(_))),
    };
    (Bytes::from(json.unwrap_or_default()), is_final)
}

fn token_or(s: Option<&str>, fallback: &str) -> String {
    match s {
        Some(s)
            if !s.is_empty()
                && s.len() <= 128
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            s.to_owned()
        }
        _ => fallback.to_owned(),
    }
}

/// The provider named by the second token of `cireg.submit.<provider>…` / `cireg.ingest.<provider>`.
fn provider_of(subject: &str) -> Option<ProviderId> {
    subject.split('.').nth(2).and_then(ProviderId::parse)
}

/// Validates and appends one message's event as the provider its subject names. `limited`: the
/// per-provider rate limit applies (requests; durable submissions are taken one at a time anyway).
async fn handle(
    ingest: &Ingest,
    subject: &str,
    payload: &[u8],
    msg_id: Option<&str>,
    limited: bool,
) -> (String, Bytes, bool) {
    let result = match provider_of(subject) {
        Some(provider) if limited => {
            let caller = provider.to_string();
            ingest.submit_limited(payload, &Sender::Providers(vec![provider]), &caller).await
        }
        Some(provider) => ingest.submit(payload, &Sender::Providers(vec![provider])).await,
        None => Err(IngestError::Rejected {
            rejection: cireg_model::Rejection::Forbidden(format!("{subject} does not name a provider")),
            event_id: None,
        }),
    };
    let event_id = match &result {
        Ok(a) => Some(a.id.clone()),
        Err(IngestError::Rejected { event_id, .. }) => event_id.clone(),
        Err(_) => None,
    };
    let provider = subject.split('.').nth(2).unwrap_or("_");
    let outcome_subject = format!(
        "cireg.outcome.{}.{}",
        token_or(Some(provider), "_"),
        token_or(event_id.as_deref().or(msg_id), "_unknown")
    );
    let (body, is_final) = outcome(&result);
    (outcome_subject, body, is_final)
}

/// Creates the submission and outcome streams if missing, with `replicas` (an existing one is
/// scaled to it).
pub async fn ensure_streams(js: &jetstream::Context, replicas: usize) -> Result<(), String> {
    let submissions = js
        .get_or_create_stream(stream::Config {
            name: SUBMISSIONS_STREAM.to_owned(),
            description: Some("cireg: events submitted by providers, not yet validated".to_owned()),
            subjects: vec!["cireg.submit.>".to_owned()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("submission stream: {e}"))?;
    let outcomes = js
        .get_or_create_stream(stream::Config {
            name: OUTCOMES_STREAM.to_owned(),
            description: Some("cireg: the outcome of every submission, kept for a week".to_owned()),
            subjects: vec!["cireg.outcome.>".to_owned()],
            storage: StorageType::File,
            num_replicas: replicas,
            max_age: Duration::from_secs(7 * 24 * 3600),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("outcome stream: {e}"))?;
    for stream in [submissions, outcomes] {
        let config = stream.cached_info().config.clone();
        if config.num_replicas != replicas {
            let name = config.name.clone();
            js.update_stream(&stream::Config { num_replicas: replicas, ..config })
                .await
                .map_err(|e| format!("scaling {name} to {replicas} replicas: {e}"))?;
        }
    }
    Ok(())
}

/// Takes submissions from the submission stream, in order, until `shutdown`.
pub async fn run_submissions(
    ingest: Ingest,
    client: async_nats::Client,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(SUBMISSIONS_STREAM).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .get_or_create_consumer(
            SUBMISSIONS_CONSUMER,
            pull::Config {
                durable_name: Some(SUBMISSIONS_CONSUMER.to_owned()),
                ack_policy: AckPolicy::Explicit,
                // one at a time, so submissions are validated in the order they were sent
                max_ack_pending: 1,
                ack_wait: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    info!("taking submissions from {SUBMISSIONS_STREAM}");
    loop {
        let next = tokio::select! {
            m = messages.next() => m,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(message) = next else { return Err("submission consumer ended".to_owned()) };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "submission consumer error");
                continue;
            }
        };
        let msg_id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
        let (outcome_subject, body, is_final) =
            handle(&ingest, message.subject.as_str(), &message.payload, msg_id.as_deref(), false).await;
        if is_final {
            if let Err(e) = client.publish(outcome_subject, body).await {
                warn!(error = %e, "could not publish an outcome");
            }
            if let Err(e) = message.ack().await {
                warn!(error = %e, "could not acknowledge a submission; it will be redelivered and answered as a duplicate");
            }
        } else {
            let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await;
        }
    }
}

/// Subscribes to `cireg.ingest.*` (in the queue group shared by every cireg node) and waits until
/// the server has the subscription, so requests sent after this returns find a responder.
pub async fn subscribe_requests(client: &async_nats::Client) -> Result<async_nats::Subscriber, String> {
    let requests =
        client.queue_subscribe("cireg.ingest.*", "cireg-ingest".to_owned()).await.map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
    Ok(requests)
}

/// Answers the requests of `requests` (see [`subscribe_requests`]) until `shutdown`.
pub async fn run_requests(
    ingest: Ingest,
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    info!("answering requests on cireg.ingest.*");
    loop {
        let next = tokio::select! {
            m = requests.next() => m,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(message) = next else { return Ok(()) };
        let (outcome_subject, body, _) = handle(&ingest, message.subject.as_str(), &message.payload, None, true).await;
        if let Some(reply) = message.reply {
            if let Err(e) = client.publish(reply, body.clone()).await {
                warn!(error = %e, "could not reply");
            }
        }
        let _ = client.publish(outcome_subject, body).await;
    }
}

/// Parses an outcome: `Ok` for an accepted event, `Err` with the problem otherwise.
pub fn parse_outcome(bytes: &[u8]) -> Result<Result<crate::Accepted, Problem>, serde_json::Error> {
    if let Ok(accepted) = serde_json::from_slice::<crate::Accepted>(bytes) {
        return Ok(Ok(accepted));
    }
    serde_json::from_slice::<Problem>(bytes).map(Err)
}
