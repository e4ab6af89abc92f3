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
    match content_type(&headers).as_str() {
        "application/cloudevents+json" | "application/json" => single(&state, &sender, &key, &body).await,
        "application/cloudevents-batch+json" => batch(&state, &sender, &key, &body).await,
        other => {
            let detail = if headers.contains_key("ce-id") || headers.contains_key("ce-type") {
                "binary-mode CloudEvents (ce-* headers) are not accepted: send the event in structured mode as application/cloudevents+json".to_owned()
            } else {
                format!("Content-Type {other:?} is not accepted: use application/cloudevents+json (one event) or application/cloudevents-batch+json (an array)")
            };
            problem(415, "unsupported-media-type", "Unsupported media type", detail).into_response()
        }
    }
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

/// A batch is taken in order; each event stands or falls on its own. 200 when all were accepted,
/// 207 with each event's outcome otherwise.
async fn batch(state: &AppState, sender: &Sender, key: &str, body: &[u8]) -> Response {
    let events: Vec<Value> = match serde_json::from_slice(body) {
        Ok(Value::Array(events)) => events,
        Ok(_) => {
            let mut p = cireg_model::Problem::new(
                400,
                "invalid-event",
                "The batch is not valid",
                Some("a batch is a JSON array of events".into()),
            );
            p.errors.push(cireg_model::Violation { pointer: String::new(), detail: "expected an array".into() });
            return ProblemResponse(p).into_response();
        }
        Err(e) => {
            let mut p = cireg_model::Problem::new(
                400,
                "invalid-event",
                "The batch is not valid",
                Some(format!("not JSON (line {}, column {}): {e}", e.line(), e.column())),
            );
            p.errors.push(cireg_model::Violation { pointer: String::new(), detail: e.to_string() });
            return ProblemResponse(p).into_response();
        }
    };
    if events.is_empty() {
        return problem(400, "invalid-event", "The batch is not valid", "the batch is empty").into_response();
    }
    let mut results = Vec::with_capacity(events.len());
    let mut all_ok = true;
    for (i, event) in events.iter().enumerate() {
        let bytes = serde_json::to_vec(event).unwrap_or_default();
        match state.ingest.submit_limited(&bytes, sender, key).await {
            Ok(a) => results.push(json!({"index": i, "status": if a.duplicate { 200 } else { 201 }, "id": a.id, "sequence": a.sequence, "duplicate": a.duplicate})),
            Err(e) => {
                all_ok = false;
                let mut p = e.problem();
                for v in &mut p.errors {
                    v.pointer = format!("/{i}{}", v.pointer);
                }
                results.push(json!({"index": i, "status": p.status, "problem": p}));
            }
        }
    }
    let status = if all_ok { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    (status, Json(json!({ "results": results }))).into_response()
}
