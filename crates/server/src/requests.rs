//! Access requests over HTTP (`/api/v1/access-requests`): a researcher asks data holders for
//! access to datasets, each data holder decides per dataset, the researcher answers questions or
//! withdraws, a data holder revokes. Every step is an event of the log (`eu.cancerimage.access.*`),
//! validated by its schema and the request's lifecycle rules like any other; this module only
//! turns a person's request into those events and the read model back into answers. A request
//! for datasets of several providers is one event (and one aggregate) per provider, under one
//! request id.

#![allow(clippy::result_large_err)]

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use cireg_auth::Caller;
use cireg_ingest::{IngestError, Sender};
use cireg_model::{DatasetAccess, Problem, ProviderId, Rejection};
use cireg_views::{AccessBook, AccessPart};
use serde_json::{json, Map, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    auth::Refusal,
    problem::{bad_parameter, problem, ProblemResponse},
    AppState,
};

/// How long a change waits for the read models to show it before it is answered (so that the
/// next read, and the permits, include it).
const SHOWN_WAIT: Duration = Duration::from_secs(5);

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// A fresh id (an event's, or a request's): unique per process and instant, not a secret.
fn fresh_id(prefix: &str, salt: &str) -> String {
    use sha2::{Digest, Sha256};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(OffsetDateTime::now_utc().unix_timestamp_nanos().to_le_bytes())
        .chain_update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The caller, who must hold a token.
async fn caller(state: &AppState, headers: &HeaderMap, what: &str) -> Result<Caller, Response> {
    match crate::auth::caller(state, headers).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => {
            Err(Refusal::Unauthenticated(format!("{what} needs a bearer token: send Authorization: Bearer <token>"))
                .problem(false))
        }
        Err(refusal) => Err(refusal.problem(crate::auth::token_given(headers))),
    }
}

fn forbidden(detail: impl Into<String>) -> Response {
    Refusal::Forbidden(detail.into()).problem(true)
}

/// A request body as axum read it (too large or cut off: a problem, not axum's text).
type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// A JSON object body, or the 400 that says why not.
fn object_body(body: &[u8]) -> Result<Map<String, Value>, Response> {
    let invalid = |pointer: &str, detail: String| {
        problem(400, "invalid-body", "The request body is not valid", detail.clone())
            .at(pointer, detail)
            .into_response()
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(invalid("", "the body must be a JSON object".into())),
        Err(e) => Err(invalid("", format!("not JSON (line {}, column {}): {e}", e.line(), e.column()))),
    }
}

fn body_error(pointer: &str, detail: impl Into<String>) -> Response {
    let detail = detail.into();
    problem(400, "invalid-body", "The request body is not valid", format!("{pointer}: {detail}"))
        .at(pointer, detail)
        .into_response()
}

/// Whether the caller sees a part: its researcher, its data holder, or an operator.
fn sees(caller: &Caller, part: &AccessPart) -> bool {
    caller.operator
        || (!caller.subject.is_empty() && part.request.researcher == caller.subject)
        || caller.providers.iter().any(|p| p.as_str() == part.provider)
}

/// The dataset IRI's (provider, dataset id), if it names a dataset of this node.
fn dataset_of<'a>(state: &AppState, iri: &'a str) -> Option<(ProviderId, &'a str)> {
    let provider = state.base.dataset_provider(iri)?;
    let prefix = state.base.dataset(provider, "");
    let id = iri.strip_prefix(&prefix).filter(|id| !id.is_empty() && !id.contains('/'))?;
    Some((ProviderId::parse(provider)?, id))
}

/// Whether an approval has run out at `now`.
fn expired(access: &DatasetAccess, now: &OffsetDateTime) -> bool {
    match access {
        DatasetAccess::Approved { until, .. } => OffsetDateTime::parse(until, &Rfc3339).is_ok_and(|u| u <= *now),
        _ => false,
    }
}

/// The status shown for a dataset: its state, with an approval that ran out as `expired`.
fn status_of(access: &DatasetAccess, now: &OffsetDateTime) -> &'static str {
    if expired(access, now) {
        "expired"
    } else {
        access.name()
    }
}

/// A request as `caller` may see it (`None`: nothing of it).
fn view(state: &AppState, caller: &Caller, id: &str, parts: &BTreeMap<String, AccessPart>) -> Option<Value> {
    let now = OffsetDateTime::now_utc();
    let seen: Vec<&AccessPart> = parts.values().filter(|p| sees(caller, p)).collect();
    let first = seen.first()?;
    let mut datasets = Vec::new();
    for part in &seen {
        for (dataset, access) in &part.datasets {
            let mut d = json!({
                "dataset": state.base.dataset(&part.provider, dataset),
                "provider": part.provider,
                "status": status_of(access, &now),
            });
            let fields = match serde_json::to_value(access) {
                Ok(Value::Object(o)) => o,
                _ => Map::new(),
            };
            for (k, v) in fields.into_iter().filter(|(k, _)| k != "status") {
                d[k] = v;
            }
            datasets.push(d);
        }
    }
    let modified = seen.iter().map(|p| p.modified.as_str()).max().unwrap_or_default();
    let parts: Vec<Value> = seen
        .iter()
        .map(|p| json!({"provider": p.provider, "version": p.version, "requested": p.requested, "steps": p.steps}))
        .collect();
    Some(json!({
        "id": id,
        "location": format!("{}/api/v1/access-requests/{id}", state.base.as_str()),
        "researcher": first.request.researcher,
        "title": first.request.title,
        "purposes": first.request.purposes,
        "description": first.request.description,
        "ethicsApproval": first.request.ethics_approval,
        "requested": first.requested,
        "modified": modified,
        "datasets": datasets,
        "parts": parts,
    }))
}

/// The access book as of what the projector had applied when called (read-your-writes), or the
/// 503 of models still being built.
async fn fresh_book(state: &AppState) -> Result<std::sync::Arc<AccessBook>, Response> {
    match state.study_index().await {
        Ok(models) => Ok(models.access()),
        Err(e) => Err(problem(503, "not-ready", "Not ready", e.to_string()).retry_after(5)),
    }
}

/// The read models' access book once it includes log sequence `seq` (waiting up to
/// [`SHOWN_WAIT`]).
async fn book_at(state: &AppState, seq: u64) -> std::sync::Arc<AccessBook> {
    let mut progress = state.read_models.progress();
    let _ = tokio::time::timeout(SHOWN_WAIT, progress.wait_for(|p| p.ready && p.checkpoint >= seq)).await;
    state.read_models.access()
}

/// The problem of a refused step, its pointers moved from the event onto the request body (the
/// event's `/data/x` is the body's `/x`; `rename` maps what the body names differently).
fn step_refused(e: &IngestError, rename: impl Fn(&str) -> Option<String>) -> Problem {
    let mut p = e.problem();
    for v in &mut p.errors {
        v.pointer = rename(&v.pointer).unwrap_or_else(|| match v.pointer.strip_prefix("/data") {
            Some(rest) => rest.to_owned(),
            None if v.pointer == "/subject" => "/id".to_owned(),
            None => v.pointer.clone(),
        });
    }
    p.event_id = None;
    if p.status == 400 {
        // the body was the caller's, the event the registry's
        p.type_ = p.type_.replace("invalid-event", "invalid-body");
        p.title = "The request body is not valid".to_owned();
    }
    p
}

/// A refusal as a response; a 409 also carries the request as it stands (`request`).
fn refused(p: Problem, current: Option<Value>, unavailable: bool) -> Response {
    let status = p.status;
    if let (409, Some(current)) = (status, current) {
        let mut body = serde_json::to_value(&p).unwrap_or_default();
        body["request"] = current;
        return (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_vec(&body).unwrap_or_default(),
        )
            .into_response();
    }
    if unavailable {
        return ProblemResponse(p).retry_after(5);
    }
    ProblemResponse(p).into_response()
}

/// The event of one step, as the registry writes it.
fn event(provider: &ProviderId, request: &str, kind: &str, data: Value) -> Vec<u8> {
    let event = json!({
        "specversion": "1.0",
        "id": fresh_id("", request),
        "source": provider.source(),
        "type": format!("eu.cancerimage.access.{kind}.v1"),
        "subject": request,
        "time": now(),
        "datacontenttype": "application/json",
        "data": data,
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

fn central_refusal() -> Response {
    problem(
        403,
        "central-node",
        "The central node takes no events",
        "this is the central node: access to a dataset is requested at the national node that holds it",
    )
    .into_response()
}

/// `POST /api/v1/access-requests`: a researcher's request. Body: `title`, `purposes` (DPV
/// purpose IRIs), `description`, `ethicsApproval`, `datasets` (dataset IRIs of this node), and
/// optionally `id` (the request id; chosen by the registry when absent). 201 with the request.
pub async fn create(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return crate::problem::body_rejected(rejection).into_response(),
    };
    let caller = match caller(&state, &headers, "requesting access").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if state.central {
        return central_refusal();
    }
    if !caller.researcher || caller.subject.is_empty() {
        let role = state.auth.as_ref().map(|a| a.config().claims.researcher_role.clone()).unwrap_or_default();
        return forbidden(format!("access is requested by researchers: the token needs the role {role} and a subject"));
    }
    let mut body = match object_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = match body.remove("id") {
        None => fresh_id("ar-", &caller.subject),
        // one subject token, like a provider id
        Some(Value::String(id)) if ProviderId::parse(&id).is_some() => id,
        Some(_) => return body_error("/id", "a request id is lowercase letters, digits and '-', at most 63"),
    };
    if state.read_models.access().request(&id).is_some() {
        return refused(
            Problem::new(409, "conflict", "The request exists", Some(format!("access request {id} exists already"))),
            None,
            false,
        );
    }
    // the datasets, grouped by data holder; each remembers where the body named it
    let Some(Value::Array(iris)) = body.remove("datasets") else {
        return body_error("/datasets", "the datasets asked for: an array of dataset IRIs of this node");
    };
    let mut by_provider: BTreeMap<ProviderId, Vec<(String, usize)>> = BTreeMap::new();
    for (i, iri) in iris.iter().enumerate() {
        let Some((provider, dataset)) = iri.as_str().and_then(|iri| dataset_of(&state, iri)) else {
            return body_error(
                &format!("/datasets/{i}"),
                format!("not a dataset IRI of this node ({}/datasets/<provider>/<dataset>)", state.base.as_str()),
            );
        };
        by_provider.entry(provider).or_default().push((dataset.to_owned(), i));
    }
    if by_provider.is_empty() {
        return body_error("/datasets", "name at least one dataset");
    }
    let mut appended: Vec<(ProviderId, u64)> = Vec::new();
    for (provider, datasets) in &by_provider {
        let mut data = body.clone();
        data.insert("researcher".into(), json!(caller.subject));
        data.insert("datasets".into(), json!(datasets.iter().map(|(d, _)| d).collect::<Vec<_>>()));
        let bytes = event(provider, &id, "requested", Value::Object(data));
        match state.ingest.submit_limited(&bytes, &Sender::Researcher(caller.subject.clone()), &caller.subject).await {
            Ok(accepted) => appended.push((provider.clone(), accepted.sequence)),
            Err(e) => {
                // the parts already recorded are withdrawn, so that no half of a request stands
                for (provider, _) in &appended {
                    let data =
                        json!({"researcher": caller.subject, "reason": "the request could not be recorded whole"});
                    let undo = event(provider, &id, "withdrawn", data);
                    if let Err(e) = state.ingest.submit(&undo, &Sender::Researcher(caller.subject.clone())).await {
                        tracing::warn!(request = %id, %provider, problem = ?e.problem(), "withdrawing a part of a refused request failed");
                    }
                }
                let rename = |pointer: &str| {
                    let index: usize = pointer.strip_prefix("/data/datasets/")?.parse().ok()?;
                    Some(format!("/datasets/{}", datasets.get(index)?.1))
                };
                return refused(step_refused(&e, rename), None, matches!(e, IngestError::Unavailable(_)));
            }
        }
    }
    let last = appended.iter().map(|(_, s)| *s).max().unwrap_or(0);
    let book = book_at(&state, last).await;
    let location = format!("{}/api/v1/access-requests/{id}", state.base.as_str());
    let answer = book.request(&id).and_then(|parts| view(&state, &caller, &id, parts)).unwrap_or_else(
        || json!({"id": id, "location": location, "note": "recorded; not yet shown by the read models"}),
    );
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(answer)).into_response()
}

/// Statuses a listing can filter by.
const STATUSES: [&str; 7] =
    ["requested", "information-requested", "approved", "expired", "rejected", "withdrawn", "revoked"];

/// `GET /api/v1/access-requests`: the requests the caller sees (a researcher its own, a data
/// holder those for its datasets, an operator all), filtered by `status`, `dataset` (IRI),
/// `provider` and `researcher`; oldest first.
pub async fn list(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let caller = match caller(&state, &headers, "listing access requests").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !(caller.operator || caller.researcher || !caller.providers.is_empty()) {
        return forbidden("access requests are for researchers, the data holders asked and the node's operators");
    }
    let (mut statuses, mut datasets, mut providers, mut researchers) = (vec![], vec![], vec![], vec![]);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "status" => match STATUSES.iter().find(|s| **s == v) {
                Some(s) => statuses.push(*s),
                None => {
                    return bad_parameter("status", format!("{v:?} is not one of {}", STATUSES.join(", ")))
                        .into_response()
                }
            },
            "dataset" => datasets.push(v.into_owned()),
            "provider" => providers.push(v.into_owned()),
            "researcher" => researchers.push(v.into_owned()),
            other => {
                return bad_parameter(other, "unknown parameter: use status, dataset, provider or researcher")
                    .into_response()
            }
        }
    }
    let book = match fresh_book(&state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut out = Vec::new();
    for (id, parts) in book.requests() {
        let Some(mut v) = view(&state, &caller, id, parts) else { continue };
        if !researchers.is_empty() && !researchers.iter().any(|r| v["researcher"] == json!(r)) {
            continue;
        }
        let entries = v["datasets"].as_array().cloned().unwrap_or_default();
        let matching = entries.iter().any(|d| {
            (statuses.is_empty() || statuses.iter().any(|s| d["status"] == json!(s)))
                && (datasets.is_empty() || datasets.iter().any(|x| d["dataset"] == json!(x)))
                && (providers.is_empty() || providers.iter().any(|x| d["provider"] == json!(x)))
        });
        if !matching {
            continue;
        }
        // the steps are for one request's page, not for lists
        if let Some(parts) = v.get_mut("parts").and_then(Value::as_array_mut) {
            for p in parts {
                if let Some(o) = p.as_object_mut() {
                    o.remove("steps");
                }
            }
        }
        out.push(v);
    }
    Json(json!({ "requests": out })).into_response()
}

/// `GET /api/v1/access-requests/{id}`: one request as the caller may see it (404 when it sees
/// nothing of it).
pub async fn get_one(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let caller = match caller(&state, &headers, "reading an access request").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let book = match fresh_book(&state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match book.request(&id).and_then(|parts| view(&state, &caller, &id, parts)) {
        Some(v) => Json(v).into_response(),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    problem(404, "not-found", "No such access request", format!("no access request {id} that this token may see"))
        .into_response()
}

/// Refuses a member of `body` not among `names`.
fn fields(body: &Map<String, Value>, names: &[&str]) -> Result<(), Response> {
    if let Some(other) = body.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(body_error(&format!("/{other}"), format!("unknown member: use {}", names.join(", "))));
    }
    Ok(())
}

/// `POST /api/v1/access-requests/{id}/decisions`: a data holder decides on one of its datasets.
/// Body: `dataset` (IRI), `decision` (approved, rejected, information-requested), `until`
/// (approved), `conditions`, `reason` (rejected), `question` (information-requested).
pub async fn decide(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> Response {
    provider_step(
        state,
        headers,
        id,
        body,
        "decided",
        &["dataset", "decision", "until", "conditions", "reason", "question"],
    )
    .await
}

/// `POST /api/v1/access-requests/{id}/revocations`: a data holder ends an approval of one of its
/// datasets. Body: `dataset` (IRI), `reason`.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> Response {
    provider_step(state, headers, id, body, "revoked", &["dataset", "reason"]).await
}

async fn provider_step(
    state: AppState,
    headers: HeaderMap,
    id: String,
    body: Body,
    kind: &str,
    allowed: &[&str],
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return crate::problem::body_rejected(rejection).into_response(),
    };
    let caller = match caller(&state, &headers, "deciding on an access request").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if state.central {
        return central_refusal();
    }
    if caller.providers.is_empty() {
        return forbidden("decisions on access requests are the data holders': the token names no provider");
    }
    let mut body = match object_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = fields(&body, allowed) {
        return r;
    }
    let Some(Value::String(iri)) = body.get("dataset").cloned() else {
        return body_error("/dataset", "the dataset decided on: a dataset IRI of this node");
    };
    let Some((provider, dataset)) = dataset_of(&state, &iri) else {
        return body_error("/dataset", format!("{iri} is not a dataset IRI of this node"));
    };
    if !caller.providers.contains(&provider) {
        return forbidden(format!(
            "dataset {iri} is provider {provider}'s: a provider decides only on its own datasets"
        ));
    }
    let book = match fresh_book(&state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let current = book.request(&id).and_then(|parts| view(&state, &caller, &id, parts));
    if book.request(&id).and_then(|parts| parts.get(provider.as_str())).is_none() {
        return not_found(&id);
    }
    body.insert("dataset".into(), json!(dataset));
    let bytes = event(&provider, &id, kind, Value::Object(body));
    let key = caller.subject.clone();
    match state.ingest.submit_limited(&bytes, &Sender::Providers(caller.providers.clone()), &key).await {
        Ok(accepted) => answered(&state, &caller, &id, accepted.sequence).await,
        Err(e) => {
            let rename = |pointer: &str| (pointer == "/data/dataset").then(|| "/dataset".to_owned());
            refused(step_refused(&e, rename), current, matches!(e, IngestError::Unavailable(_)))
        }
    }
}

/// The request as it stands once the models show log sequence `seq`.
async fn answered(state: &AppState, caller: &Caller, id: &str, seq: u64) -> Response {
    let book = book_at(state, seq).await;
    match book.request(id).and_then(|parts| view(state, caller, id, parts)) {
        Some(v) => Json(v).into_response(),
        None => Json(json!({"id": id, "note": "recorded; not yet shown by the read models"})).into_response(),
    }
}

/// `POST /api/v1/access-requests/{id}/answers`: the researcher answers the open questions.
/// Body: `answer`.
pub async fn answer(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> Response {
    researcher_step(state, headers, id, body, "answered", &["answer"]).await
}

/// `POST /api/v1/access-requests/{id}/withdrawal`: the researcher withdraws the request at
/// every data holder. Body: optional `reason`.
pub async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    researcher_step(state, headers, id, body, "withdrawn", &["reason"]).await
}

async fn researcher_step(
    state: AppState,
    headers: HeaderMap,
    id: String,
    body: Body,
    kind: &str,
    allowed: &[&str],
) -> Response {
    let body = match body {
        // a withdrawal may come without a body
        Ok(b) if b.is_empty() && kind == "withdrawn" => Bytes::from_static(b"{}"),
        Ok(b) => b,
        Err(rejection) => return crate::problem::body_rejected(rejection).into_response(),
    };
    let caller = match caller(&state, &headers, "changing an access request").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut body = match object_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = fields(&body, allowed) {
        return r;
    }
    let book = match fresh_book(&state).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(parts) = book.request(&id) else { return not_found(&id) };
    let current = view(&state, &caller, &id, parts);
    if caller.subject.is_empty() || !parts.values().any(|p| p.request.researcher == caller.subject) {
        return if current.is_some() {
            forbidden(format!("access request {id} is another researcher's: only its requester may do this"))
        } else {
            not_found(&id)
        };
    }
    // the parts this step applies to: those with an open question, or anything left to withdraw
    let applies = |part: &AccessPart| {
        part.datasets.values().any(|a| match kind {
            "answered" => matches!(a, DatasetAccess::InformationRequested { .. }),
            _ => a.is_open() || matches!(a, DatasetAccess::Approved { .. }),
        })
    };
    let targets: Vec<ProviderId> =
        parts.values().filter(|p| applies(p)).filter_map(|p| ProviderId::parse(&p.provider)).collect();
    if targets.is_empty() {
        let detail = match kind {
            "answered" => format!("no question is open on access request {id}"),
            _ => format!("nothing is left to withdraw of access request {id}"),
        };
        return refused(Problem::from_rejection(&Rejection::conflict(detail), None), current, false);
    }
    body.insert("researcher".into(), json!(caller.subject));
    let mut last = 0;
    for provider in targets {
        let bytes = event(&provider, &id, kind, Value::Object(body.clone()));
        match state.ingest.submit_limited(&bytes, &Sender::Researcher(caller.subject.clone()), &caller.subject).await {
            Ok(accepted) => last = last.max(accepted.sequence),
            Err(e) => return refused(step_refused(&e, |_| None), current, matches!(e, IngestError::Unavailable(_))),
        }
    }
    answered(&state, &caller, &id, last).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_tokens_and_differ() {
        let a = fresh_id("ar-", "alice");
        let b = fresh_id("ar-", "alice");
        assert_ne!(a, b);
        assert!(ProviderId::parse(&a).is_some(), "{a} is a subject token");
        assert_eq!(a.len(), 3 + 24);
    }

    #[test]
    fn an_approval_that_ran_out_shows_as_expired() {
        let approved = DatasetAccess::Approved {
            from: "2026-01-01T00:00:00Z".into(),
            until: "2026-02-01T00:00:00Z".into(),
            conditions: None,
        };
        let jan = OffsetDateTime::parse("2026-01-15T00:00:00Z", &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let feb = OffsetDateTime::parse("2026-02-01T00:00:00Z", &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(status_of(&approved, &jan), "approved");
        assert_eq!(status_of(&approved, &feb), "expired");
        assert_eq!(status_of(&DatasetAccess::Requested, &feb), "requested");
    }
}
