//! A provider publishes to cireg over NATS with async-nats, then reads its studies back over HTTP.
//!
//! ```sh
//! CIREG_NATS=nats://127.0.0.1:4222 CIREG_NATS_USER=<provider> CIREG_NATS_PASSWORD=... \
//! CIREG_PROVIDER=<provider> CIREG_URL=http://127.0.0.1:8080 CIREG_TOKEN=<bearer token> \
//! cargo run --release   # in a copy of examples/rust
//! ```
//!
//! The provider and its dataset go in at once (request/reply on `cireg.ingest.<provider>`), the
//! studies through the durable submission stream (`cireg.submit.<provider>.<event-id>`, outcomes
//! on `cireg.outcome.<provider>.<event-id>`). Replies come under `_INBOX.<provider>`, the only
//! inbox the deployed NATS configuration lets a provider's user read.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: Option<&str>) -> Result<String, Error> {
    match (std::env::var(name), default) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(default)) => Ok(default.to_owned()),
        (Err(_), None) => Err(format!("set {name}").into()),
    }
}

/// A structured-mode CloudEvent with a new id.
fn event(provider: &str, kind: &str, subject: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": format!("urn:cireg:provider:{provider}"),
        "type": kind,
        "subject": subject,
        "time": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// A DICOM UID under 2.25 (a UUID as a decimal number).
fn uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

fn study(dataset: &str) -> Value {
    json!({
        "dataset": dataset,
        "studyInstanceUid": uid(),
        "started": "2024-06-03T11:20:00+02:00",
        "description": "MRI breast bilateral",
        "modalities": ["MR"],
        "numberOfSeries": 1,
        "numberOfInstances": 144,
        "series": [{
            "uid": uid(),
            "number": 1,
            "modality": "MR",
            "bodySite": {"code": "76752008", "display": "Breast"},
            "numberOfInstances": 144,
            "description": "Ax DCE dynamic"
        }]
    })
}

/// An outcome is the accepted event (with its log sequence) or problem details.
fn check(outcome: &Value, already_ok: bool) -> Result<(), Error> {
    if outcome.get("sequence").is_some() || (already_ok && outcome["status"] == 409) {
        return Ok(());
    }
    let errors: Vec<String> = outcome["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{}: {}", e["pointer"], e["detail"]))
        .collect();
    Err(format!("refused: {} {}: {} {errors:?}", outcome["status"], outcome["title"], outcome["detail"]).into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let provider = env("CIREG_PROVIDER", None)?;
    let dataset = env("CIREG_DATASET", Some("example-breast-mri"))?;
    let count: usize = env("CIREG_STUDIES", Some("5"))?.parse()?;
    // the provider's and the dataset's documents (examples/data): replace them with yours
    let provider_doc: Value = serde_json::from_str(include_str!("../data/provider.json"))?;
    let dataset_doc: Value = serde_json::from_str(include_str!("../data/dataset.json"))?;

    let mut options = async_nats::ConnectOptions::new().custom_inbox_prefix(format!("_INBOX.{provider}"));
    if let Ok(user) = std::env::var("CIREG_NATS_USER") {
        options = options.user_and_password(user, std::env::var("CIREG_NATS_PASSWORD").unwrap_or_default());
    }
    let client = options.connect(env("CIREG_NATS", Some("nats://127.0.0.1:4222"))?).await?;

    // at once: request/reply (409 when run before: the provider and dataset exist already)
    for ev in [
        event(&provider, "eu.cancerimage.provider.registered.v1", &provider, provider_doc),
        event(&provider, "eu.cancerimage.dataset.published.v1", &dataset, dataset_doc),
    ] {
        let reply = client.request(format!("cireg.ingest.{provider}"), serde_json::to_vec(&ev)?.into()).await?;
        let outcome: Value = serde_json::from_slice(&reply.payload)?;
        check(&outcome, true)?;
        println!("{}: {}", ev["type"], outcome.get("sequence").unwrap_or(&json!("already there")));
    }

    // durable: subscribe to the outcomes first, then submit
    let mut outcomes = client.subscribe(format!("cireg.outcome.{provider}.>")).await?;
    let jetstream = async_nats::jetstream::new(client.clone());
    let studies: Vec<Value> = (0..count)
        .map(|_| {
            let pseudonym = format!("EX-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
            event(&provider, "eu.cancerimage.study.registered.v1", &pseudonym, study(&dataset))
        })
        .collect();
    for ev in &studies {
        let id = ev["id"].as_str().unwrap_or_default();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        // the first await sends, the second waits for JetStream to say the submission is kept
        jetstream
            .publish_with_headers(format!("cireg.submit.{provider}.{id}"), headers, serde_json::to_vec(ev)?.into())
            .await?
            .await?;
    }
    let mut heard = HashMap::new();
    while studies.iter().any(|ev| !heard.contains_key(ev["id"].as_str().unwrap_or_default())) {
        let message = tokio::time::timeout(Duration::from_secs(60), outcomes.next())
            .await?
            .ok_or("the outcome subscription ended")?;
        let id = message.subject.rsplit('.').next().unwrap_or_default().to_owned();
        heard.insert(id, serde_json::from_slice::<Value>(&message.payload)?);
    }
    for ev in &studies {
        check(heard.get(ev["id"].as_str().unwrap_or_default()).unwrap_or(&Value::Null), false)?;
    }
    println!("{} studies registered through the submission stream", studies.len());
    client.drain().await?;

    // read back over HTTP with the provider's bearer token
    let Ok(token) = std::env::var("CIREG_TOKEN") else { return Ok(()) };
    let url = env("CIREG_URL", Some("http://127.0.0.1:8080"))?;
    let http = reqwest::Client::new();
    for ev in &studies {
        let uid = ev["data"]["studyInstanceUid"].as_str().unwrap_or_default();
        let mut found = false;
        for _ in 0..60 {
            let bundle: Value = http
                .get(format!("{url}/fhir/ImagingStudy"))
                .query(&[("identifier", uid)])
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if bundle["total"] == 1 {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !found {
            return Err(format!("study {uid} not found in FHIR").into());
        }
    }
    println!("every study found in FHIR ({})", studies.len());
    Ok(())
}
