//! `POST /events`: the CloudEvents HTTP binding, structured mode, single and batch, for callers
//! whose bearer token names the providers they publish for (each event's provider is checked
//! against it), within the per-caller rate limit.

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use cireg_ingest::{IngestError, Sender};
use serde_json::{json, Value};

use crate::{problem::problem, problem::ProblemResponse, AppState};

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Behind [`crate::auth::require_publisher`], which found the caller.
pub async fn post_events(
    State(state): State<AppState>,
    Extension(caller): Extension<cireg_auth::Caller>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if state.central {
        return problem(
            403,
            "central-node",
            "The central node takes no events",
            "this is the central node: it shows the catalogues of the national nodes, folded from their logs; publish to your national node",
        )
        .into_response();
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return crate::problem::body_rejected(rejection).into_response(),
    };
    // the rate limit's key: who authenticated (a token without a subject counts as its providers)
    let key = if caller.subject.is_empty() {
        caller.providers.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
    } else {
        caller.subject
    };
    let sender = Sender::Providers(caller.providers);
    let media = content_type(&headers);
    // binary mode (CloudEvents HTTP binding): the attributes in ce-* headers, the data the body
    if headers.contains_key("ce-specversion") && !media.starts_with("application/cloudevents") {
        return match binary_event(&headers, &media, &body) {
            Ok(event) => single(&state, &sender, &key, &event).await,
            Err(problem) => *problem,
        };
    }
    match media.as_str() {
        "application/cloudevents+json" | "application/json" => single(&state, &sender, &key, &body).await,
        "application/cloudevents-batch+json" => batch(&state, &sender, &key, &body).await,
        other => {
            let detail = format!("Content-Type {other:?} is not accepted: use application/cloudevents+json (one event), application/cloudevents-batch+json (an array), or binary mode (ce-* headers) with a JSON body");
            problem(415, "unsupported-media-type", "Unsupported media type", detail).into_response()
        }
    }
}

/// The structured event a binary-mode request carries: every `ce-<attribute>` header as the
/// attribute (percent-decoded, as the HTTP binding encodes them), `Content-Type` as
/// `datacontenttype`, and the body, which must be JSON, as `data`. The event is then checked like
/// any other; a header that cannot be read is named in the problem.
fn binary_event(headers: &HeaderMap, media: &str, body: &[u8]) -> Result<Vec<u8>, Box<Response>> {
    let refuse = |status: u16, pointer: String, detail: String| {
        Box::new(
            problem(status, "invalid-event", "The event is not valid", detail.clone())
                .at(pointer, detail)
                .into_response(),
        )
    };
    if media != "application/json" && !media.ends_with("+json") {
        let detail = format!(
            "binary mode: the data of cireg's events is JSON, so Content-Type must be application/json, not {media:?} (or send the event in structured mode as application/cloudevents+json)"
        );
        let refusal =
            problem(415, "unsupported-media-type", "Unsupported media type", detail).at("/datacontenttype", "not JSON");
        return Err(Box::new(refusal.into_response()));
    }
    let mut event = serde_json::Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else { continue };
        let value = value.to_str().ok().and_then(percent_decoded).ok_or_else(|| {
            refuse(400, format!("/{attribute}"), format!("header {name}: not percent-encoded UTF-8 text"))
        })?;
        event.insert(attribute.to_owned(), Value::String(value));
    }
    event.insert("datacontenttype".into(), Value::String(media.to_owned()));
    let data: Value = serde_json::from_slice(body).map_err(|e| {
        refuse(
            400,
            "/data".into(),
            format!(
                "binary mode: the body is the event's data and is not JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    event.insert("data".into(), data);
    serde_json::to_vec(&Value::Object(event)).map_err(|e| refuse(400, String::new(), e.to_string()))
}

/// `%XX` sequences decoded (CloudEvents' HTTP binding percent-encodes header values); `None` when
/// one is malformed or the result is not UTF-8.
fn percent_decoded(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn single(state: &AppState, sender: &Sender, key: &str, body: &[u8]) -> Response {
    match state.ingest.submit_limited(body, sender, key).await {
        Ok(accepted) => {
            let status = if accepted.duplicate { StatusCode::OK } else { StatusCode::CREATED };
            (status, Json(accepted)).into_response()
        }
        Err(e) => error_response(&e),
    }
}

fn error_response(e: &IngestError) -> Response {
    let problem = ProblemResponse(e.problem());
    match e {
        IngestError::Unavailable(_) => problem.retry_after(5),
        IngestError::RateLimited(wait) => problem.retry_after(wait.as_secs()),
        IngestError::Rejected { .. } => problem.into_response(),
    }
}

/// Events of a batch in flight at once.
const BATCH_WINDOW: usize = 32;
/// How far past the first event not yet started a batch looks for events that may start.
const BATCH_LOOKAHEAD: usize = 256;

/// How an event of a batch may overlap others: study and consent events of one pseudonymous
/// subject (`source` and `subject`) keep their order among themselves and may overlap those of
/// other subjects; any other event (providers, datasets, or one that cannot be read) waits for
/// every event before it, and every event after it waits for it.
fn overlap_key(event: &Value) -> Option<String> {
    let kind = event.get("type").and_then(Value::as_str)?;
    let keyed = kind.starts_with("eu.cancerimage.study.") || kind.starts_with("eu.cancerimage.subject.");
    let source = event.get("source").and_then(Value::as_str)?;
    let subject = event.get("subject").and_then(Value::as_str)?;
    keyed.then(|| format!("{source}\n{subject}"))
}

/// A batch is taken in order, in a window of [`BATCH_WINDOW`] events whose appends overlap:
/// events of different subjects' studies in any order, the rest as [`overlap_key`] says; each
/// event stands or falls on its own. 200 when all were accepted, 207 with each event's outcome
/// otherwise (in the batch's order).
async fn batch(state: &AppState, sender: &Sender, key: &str, body: &[u8]) -> Response {
    let events: Vec<Value> = match serde_json::from_slice(body) {
        Ok(Value::Array(events)) => events,
        Ok(_) => {
            return problem(400, "invalid-event", "The batch is not valid", "a batch is a JSON array of events")
                .at("", "expected an array")
                .into_response();
        }
        Err(e) => {
            let detail = format!("not JSON (line {}, column {}): {e}", e.line(), e.column());
            return problem(400, "invalid-event", "The batch is not valid", detail)
                .at("", e.to_string())
                .into_response();
        }
    };
    if events.is_empty() {
        return problem(400, "invalid-event", "The batch is not valid", "the batch is empty").into_response();
    }
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut results: Vec<Value> = vec![Value::Null; events.len()];
    let mut all_ok = true;
    let mut in_flight = FuturesUnordered::new();
    // the keys of the events in flight, and how many in flight are barriers (no key)
    let mut keys: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut barriers = 0usize;
    let mut record = |(i, overlap, outcome): (usize, Option<String>, Result<cireg_ingest::Accepted, IngestError>),
                      keys: &mut std::collections::HashMap<String, usize>,
                      barriers: &mut usize| {
        match overlap {
            Some(k) => {
                if let Some(n) = keys.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        keys.remove(&k);
                    }
                }
            }
            None => *barriers -= 1,
        }
        results[i] = match outcome {
            Ok(a) => {
                json!({"index": i, "status": if a.duplicate { 200 } else { 201 }, "id": a.id, "sequence": a.sequence, "duplicate": a.duplicate})
            }
            Err(e) => {
                all_ok = false;
                let mut p = e.problem();
                for v in &mut p.errors {
                    v.pointer = format!("/{i}{}", v.pointer);
                }
                json!({"index": i, "status": p.status, "problem": p})
            }
        };
    };
    // an event held back (its subject's earlier event is in flight) does not hold back later
    // events of other subjects: up to BATCH_LOOKAHEAD events past the first not started are looked at
    let overlaps: Vec<Option<String>> = events.iter().map(overlap_key).collect();
    let mut started = vec![false; events.len()];
    let mut first = 0;
    loop {
        let mut held: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let mut j = first;
        while j < events.len() && j < first + BATCH_LOOKAHEAD && in_flight.len() < BATCH_WINDOW && barriers == 0 {
            if started[j] {
                j += 1;
                continue;
            }
            let may_start = match &overlaps[j] {
                // everything before it done, and nothing after it starts before it
                None => in_flight.is_empty() && held.is_empty(),
                Some(k) => !keys.contains_key(k) && !held.contains(k.as_str()),
            };
            if may_start {
                started[j] = true;
                let overlap = overlaps[j].clone();
                match &overlap {
                    Some(k) => *keys.entry(k.clone()).or_default() += 1,
                    None => barriers += 1,
                }
                let bytes = serde_json::to_vec(&events[j]).unwrap_or_default();
                let i = j;
                // a task of its own, so the batch's validation runs on every core, not just on
                // the request's
                let (ingest, sender, key) = (state.ingest.clone(), sender.clone(), key.to_owned());
                let task = tokio::spawn(async move { ingest.submit_limited(&bytes, &sender, &key).await });
                in_flight.push(async move {
                    let outcome = task.await.unwrap_or_else(|e| {
                        Err(IngestError::Unavailable(format!("the event's ingest stopped before its outcome: {e}")))
                    });
                    (i, overlap, outcome)
                });
            }
            match &overlaps[j] {
                None => break,
                Some(k) if !may_start => {
                    held.insert(k);
                }
                Some(_) => {}
            }
            j += 1;
        }
        while first < events.len() && started[first] {
            first += 1;
        }
        match in_flight.next().await {
            Some(done) => record(done, &mut keys, &mut barriers),
            None if first == events.len() => break,
            // nothing in flight and nothing started: cannot happen (the first event not started
            // may always start then), but never spin
            None => break,
        }
    }
    while let Some(done) = in_flight.next().await {
        record(done, &mut keys, &mut barriers);
    }
    let status = if all_ok { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    (status, Json(json!({ "results": results }))).into_response()
}
