//! `cireg publish`: a provider's tool. Sends events over HTTP or NATS and prints each answer.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use futures::StreamExt;

#[derive(clap::Args)]
pub struct PublishArgs {
    /// Files with one event, a JSON array of events, or one event per line.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The registry: http(s)://host:port (POST /events) or nats://host:port.
    #[arg(long, env = "CIREG_URL", default_value = "http://127.0.0.1:8080")]
    to: String,
    /// Over NATS: publish onto the durable submission stream and wait for the outcome, instead of
    /// a request that needs cireg to be up.
    #[arg(long)]
    submit: bool,
    /// How long to wait for each answer, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Over HTTP: the bearer token (a JWT naming the providers you publish for; see
    /// `cireg token` for development).
    #[arg(long, env = "CIREG_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    nats: crate::connect::NatsArgs,
}

fn provider_and_id(event: &[u8]) -> anyhow::Result<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(event).context("the event is not JSON")?;
    let provider = v["source"]
        .as_str()
        .and_then(cireg_model::ProviderId::from_source)
        .context("the event's source is not urn:cireg:provider:<id>, so there is no NATS subject to send it on")?;
    let id = v["id"].as_str().context("the event has no id")?.to_owned();
    Ok((provider.to_string(), id))
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let mut events = Vec::new();
    for file in &args.files {
        let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
        for e in crate::events_in(&bytes).map_err(anyhow::Error::msg)? {
            events.push((file.display().to_string(), e));
        }
    }
    let timeout = Duration::from_secs(args.timeout);
    let mut refused = 0;
    if args.to.starts_with("nats://") || args.to.starts_with("tls://") {
        // replies come under the provider's own inbox prefix: a provider's NATS user may only
        // receive there (deploy/nats)
        let inbox = match events.first() {
            Some((_, e)) => provider_and_id(e).ok().map(|(p, _)| format!("_INBOX.{p}")),
            None => None,
        };
        let client = args.nats.connect(&args.to, "cireg publish", inbox).await?;
        let js = async_nats::jetstream::new(client.clone());
        for (file, event) in events {
            let (provider, id) = provider_and_id(&event).with_context(|| file.clone())?;
            let answer = if args.submit {
                let mut outcomes = client.subscribe(format!("cireg.outcome.{provider}.{id}")).await?;
                let publish =
                    async_nats::jetstream::message::PublishMessage::build().payload(event.into()).message_id(&id);
                js.send_publish(format!("cireg.submit.{provider}.{id}"), publish)
                    .await?
                    .await
                    .context("submission not stored")?;
                let reply = tokio::time::timeout(timeout, outcomes.next())
                    .await
                    .context("no outcome in time (is cireg running?)")?;
                reply.context("outcome subscription closed")?.payload
            } else {
                let reply =
                    tokio::time::timeout(timeout, client.request(format!("cireg.ingest.{provider}"), event.into()))
                        .await
                        .context("no answer in time")?
                        .context("no answer (is cireg running with --nats?)")?;
                reply.payload
            };
            let text = String::from_utf8_lossy(&answer);
            if matches!(cireg_ingest::nats::parse_outcome(&answer), Ok(Err(_)) | Err(_)) {
                refused += 1;
            }
            println!("{file}: {text}");
        }
    } else {
        let url = format!("{}/events", args.to.trim_end_matches('/'));
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        for (file, event) in events {
            let mut request = http.post(&url).header("content-type", "application/cloudevents+json").body(event);
            if let Some(token) = &args.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.with_context(|| format!("POST {url}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                refused += 1;
            }
            println!("{file}: {} {text}", status.as_u16());
        }
    }
    if refused > 0 {
        bail!("{refused} event(s) refused");
    }
    Ok(())
}
