//! The FHIR API of the study-level views: `/fhir/metadata`, ImagingStudy read, vread, history and
//! search, in R5 (default), R4 or R4B as the `Accept` header's `fhirVersion` asks. Errors are
//! OperationOutcomes. Study data is pseudonymised personal data: every handler but
//! `/fhir/metadata` needs a bearer token (401 without one), and shows only the studies of the
//! datasets the caller may read (crate::access); a study of another dataset is not found.

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use cireg_auth::Caller;
use cireg_fhir::{BundleKind, Entry, FhirVersion, Issue, Link, SearchParamInfo, StudyView, Subset};
use cireg_model::{study_subject, Aggregate, AggregateState, Event, ProviderId, StudyStatus};
use cireg_views::{
    IndexedStudy, Page, ReadModels, StudyAccess, StudyIndex, StudyLookup, StudyQuery, SEARCH_PARAMETERS,
};
use serde_json::Value;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::AppState;

/// An OperationOutcome response in `version`.
fn outcome(version: FhirVersion, status: u16, code: &'static str, diagnostics: String, expression: &str) -> Response {
    let issue = Issue {
        severity: if status >= 500 { "fatal" } else { "error" },
        code,
        diagnostics,
        expression: if expression.is_empty() { Vec::new() } else { vec![expression.to_owned()] },
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match cireg_fhir::operation_outcome(version, &[issue]) {
        Ok(body) => fhir_json(version, status, &body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The OperationOutcome of a FHIR request that ran past the node's time limit (503), in the
/// version the request asked for.
pub(crate) fn past_time_limit(headers: &HeaderMap, limit: std::time::Duration) -> Response {
    let version = negotiate(headers, None).unwrap_or(FhirVersion::R5);
    outcome(
        version,
        503,
        "timeout",
        format!(
            "the request ran longer than {} s and was stopped; narrow the search or page with _count",
            limit.as_secs_f32()
        ),
        "",
    )
}

fn fhir_json(version: FhirVersion, status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, version.content_type())], bytes).into_response()
}

fn internal(version: FhirVersion, e: impl std::fmt::Display) -> Response {
    outcome(version, 500, "exception", e.to_string(), "")
}

/// The FHIR version an `Accept` header (or `_format`) asks for; `Err` is the 406 to answer.
// the error is the HTTP answer itself
#[allow(clippy::result_large_err)]
fn negotiate(headers: &HeaderMap, format: Option<&str>) -> Result<FhirVersion, Response> {
    let not_acceptable = |detail: String| outcome(FhirVersion::R5, 406, "not-supported", detail, "");
    if let Some(f) = format {
        if !matches!(f, "json" | "application/json" | "application/fhir+json") {
            return Err(not_acceptable(format!("_format={f}: this server speaks FHIR JSON only")));
        }
    }
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(FhirVersion::R5);
    };
    let mut refused = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        if !matches!(media.as_str(), "application/fhir+json" | "application/json" | "*/*" | "application/*") {
            refused.push(media);
            continue;
        }
        let mut version = Some(FhirVersion::R5);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("fhirVersion") {
                    version = FhirVersion::from_mime_parameter(v);
                    if version.is_none() {
                        refused.push(format!("{media}; fhirVersion={}", v.trim()));
                    }
                }
            }
        }
        if let Some(v) = version {
            return Ok(v);
        }
    }
    Err(not_acceptable(format!(
        "cannot answer {}: this server speaks application/fhir+json with fhirVersion=5.0 (the default), 4.0 or 4.3",
        refused.join(", ")
    )))
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
}

/// The version to answer in and the query's parameters (`Err`: the 406 to give instead).
#[allow(clippy::result_large_err)]
fn version_and_parameters(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(FhirVersion, Vec<(String, String)>), Response> {
    let pairs = query_pairs(query);
    let format = pairs.iter().find(|(k, _)| k == "_format").map(|(_, v)| v.as_str());
    Ok((negotiate(headers, format)?, pairs))
}

/// What every handler of study data starts with: the version, the query's parameters, and what
/// the caller's token lets it read (`Err`: the response to give instead: 401 without a valid
/// token, 403 for a token that reads no study data at all).
async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(FhirVersion, Vec<(String, String)>, Caller, StudyAccess), Response> {
    let (version, pairs) = version_and_parameters(headers, query)?;
    match crate::access::study_reader(state, headers).await {
        Ok((caller, access)) => Ok((version, pairs, caller, access)),
        Err(refusal) => {
            let code = match refusal.status() {
                401 => "login",
                403 => "forbidden",
                _ => "transient",
            };
            let mut response = outcome(version, refusal.status(), code, refusal.detail().to_owned(), "");
            if let Some(challenge) = refusal.challenge(crate::auth::token_given(headers)) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
            }
            Err(response)
        }
    }
}

/// Writes the audit record of a read before its answer leaves (`Err`: the 503 to answer instead).
async fn audited(state: &AppState, version: FhirVersion, read: crate::audit::Read<'_>) -> Result<(), Response> {
    crate::audit::record(state, read).await.map_err(|why| outcome(version, 503, "transient", why, ""))
}

/// A request as the audit trail names it: the path and the parameters.
fn request_text(path: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(pairs);
    format!("{path}?{}", query.finish())
}

/// The study `id` names, or the OperationOutcome to answer: 410 when it was retracted (or its
/// dataset withdrawn), 404 when it never was, was erased, or is of a dataset `access` does not
/// reach.
#[allow(clippy::result_large_err)]
fn find(
    index: &StudyIndex,
    id: &str,
    version: FhirVersion,
    access: &StudyAccess,
) -> Result<Arc<IndexedStudy>, Response> {
    match index.get(id, access) {
        Err(e) => Err(outcome(version, 503, "transient", format!("the store could not be read: {e}"), "")),
        Ok(StudyLookup::Found(s)) => Ok(s),
        Ok(StudyLookup::Gone) => Err(outcome(
            version,
            410,
            "deleted",
            format!("ImagingStudy/{id} was retracted or its dataset withdrawn"),
            "",
        )),
        Ok(StudyLookup::NotFound) => Err(outcome(
            version,
            404,
            "not-found",
            format!("no ImagingStudy/{id} among the studies this token may read"),
            "",
        )),
    }
}

/// `GET /fhir/metadata`: public (it describes the API, not the data).
pub async fn metadata(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let version = match version_and_parameters(&headers, q.as_deref()) {
        Ok((version, _)) => version,
        Err(r) => return r,
    };
    let params: Vec<SearchParamInfo> = SEARCH_PARAMETERS
        .iter()
        .filter(|(_, type_, _)| *type_ != "special" && *type_ != "number")
        .map(|(name, type_, documentation)| SearchParamInfo { name, type_, documentation })
        .collect();
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    let base = format!("{}/fhir", state.base.as_str());
    match cireg_fhir::capability_statement(version, &base, env!("CARGO_PKG_VERSION"), &now, &params) {
        Ok(body) => fhir_json(version, StatusCode::OK, &body),
        Err(e) => internal(version, e),
    }
}

/// The ImagingStudy of an indexed study.
fn resource(version: FhirVersion, s: &IndexedStudy, subset: &Subset) -> Result<Value, cireg_fhir::FhirError> {
    resource_at(version, s, &s.projected.study, s.projected.version, s.last_updated_text(), subset)
}

fn resource_at(
    version: FhirVersion,
    s: &IndexedStudy,
    study: &cireg_model::Study,
    version_id: u64,
    last_updated: &str,
    subset: &Subset,
) -> Result<Value, cireg_fhir::FhirError> {
    let p = &s.projected;
    let view = StudyView {
        id: &p.id,
        provider: &p.provider,
        subject: &p.subject,
        dataset_iri: &s.dataset_iri,
        study,
        version: version_id,
        last_updated,
        subsetted: subset.is_subsetted(),
    };
    let mut resource = cireg_fhir::imaging_study(version, &view)?;
    cireg_fhir::subset(&mut resource, subset);
    Ok(resource)
}

fn study_url(state: &AppState, id: &str) -> String {
    format!("{}/fhir/ImagingStudy/{id}", state.base.as_str())
}

/// The index, or the OperationOutcome to answer when it cannot be read.
async fn index(state: &AppState, version: FhirVersion) -> Result<Arc<ReadModels>, Response> {
    state.study_index().await.map_err(|e| outcome(version, 503, "transient", format!("the study index: {e}"), ""))
}

fn http_date(rfc3339: &str) -> Option<HeaderValue> {
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    HeaderValue::from_str(&t.format(&format).ok()?).ok()
}

/// `GET /fhir/ImagingStudy/{id}`.
pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let (version, pairs, caller, access) = match begin(&state, &headers, q.as_deref()).await {
        Ok(begun) => begun,
        Err(r) => return r,
    };
    let subset = match subset_of(&pairs) {
        Ok(s) => s,
        Err((param, detail)) => return outcome(version, 400, "invalid", detail, &param),
    };
    let index = match index(&state, version).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let s = match find(index.studies(), &id, version, &access) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let etag = format!("W/\"{}\"", s.projected.version);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = match resource(version, &s, &subset) {
        Ok(b) => b,
        Err(e) => return internal(version, e),
    };
    let read = crate::audit::Read {
        kind: "fhir-read",
        request: request_text(&format!("/fhir/ImagingStudy/{id}"), &pairs),
        datasets: [s.dataset_iri.clone()].into(),
        providers: Default::default(),
        results: Some(1),
        caller: &caller,
    };
    if let Err(r) = audited(&state, version, read).await {
        return r;
    }
    let mut response = fhir_json(version, StatusCode::OK, &body);
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = http_date(s.last_updated_text()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// `_summary` and `_elements` of a read or search; `Err` is (parameter, what is wrong).
fn subset_of(pairs: &[(String, String)]) -> Result<Subset, (String, String)> {
    let mut subset = Subset::Full;
    for (k, v) in pairs {
        match k.as_str() {
            "_summary" => {
                subset = match v.as_str() {
                    "true" => Subset::Summary,
                    "false" | "data" => Subset::Full,
                    "text" => Subset::Elements(Vec::new()),
                    // count is a search's business; on a read it is the whole resource
                    "count" => subset,
                    other => {
                        return Err((k.clone(), format!("_summary={other}: use true, false, text, data or count")))
                    }
                }
            }
            "_elements" => {
                let names: Vec<String> = v.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect();
                if names.iter().any(|n| !n.chars().all(|c| c.is_ascii_alphanumeric())) {
                    return Err((k.clone(), format!("{v:?} is not a list of element names")));
                }
                subset = Subset::Elements(names);
            }
            _ => {}
        }
    }
    Ok(subset)
}

/// `GET /fhir/ImagingStudy`: search.
pub async fn search(State(state): State<AppState>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    match begin(&state, &headers, q.as_deref()).await {
        Ok((version, pairs, caller, access)) => search_pairs(state, headers, version, pairs, caller, access).await,
        Err(r) => r,
    }
}

/// `POST /fhir/ImagingStudy/_search`: search with the parameters in a form body.
pub async fn search_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    match begin(&state, &headers, q.as_deref()).await {
        Ok((version, mut pairs, caller, access)) => {
            pairs.extend(url::form_urlencoded::parse(&body).into_owned());
            search_pairs(state, headers, version, pairs, caller, access).await
        }
        Err(r) => r,
    }
}

async fn search_pairs(
    state: AppState,
    headers: HeaderMap,
    version: FhirVersion,
    pairs: Vec<(String, String)>,
    caller: Caller,
    access: StudyAccess,
) -> Response {
    let mut query = match StudyQuery::parse(&pairs, &state.base, strict(&headers)) {
        Ok(q) => q.with_access(access.clone()),
        Err(e) => return outcome(version, 400, "invalid", format!("{}: {}", e.parameter, e.detail), &e.parameter),
    };
    let subset = match subset_of(&pairs) {
        Ok(s) => s,
        Err((param, detail)) => return outcome(version, 400, "invalid", detail, &param),
    };
    let count_only = pairs.iter().any(|(k, v)| k == "_summary" && v == "count");
    if count_only {
        query.count = 0;
    }
    let index = match index(&state, version).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let page = {
        let q = query.clone();
        let index = index.clone();
        // a first search over a million studies takes a moment: not on the async threads
        match tokio::task::spawn_blocking(move || index.studies().search(&q)).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return outcome(version, 503, "transient", format!("the store could not be read: {e}"), ""),
            Err(e) => return internal(version, e),
        }
    };
    let cireg_views::StudyPage { total, studies, next, previous } = page;
    let base_url = format!("{}/fhir/ImagingStudy", state.base.as_str());
    let link = |extra: Option<(&str, String)>| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query.used {
            s.append_pair(k, v);
        }
        if !query.used.iter().any(|(k, _)| k == "_count") {
            s.append_pair("_count", &query.count.to_string());
        }
        if let Some((k, v)) = extra {
            s.append_pair(k, &v);
        }
        format!("{base_url}?{}", s.finish())
    };
    let this = match &query.page {
        Page::First => link(None),
        Page::After(c) => link(Some(("_after", c.to_string()))),
        Page::Before(c) => link(Some(("_before", c.to_string()))),
    };
    let mut links = vec![Link { relation: "self", url: this }];
    if let Some(c) = next {
        links.push(Link { relation: "next", url: link(Some(("_after", c.to_string()))) });
    }
    if let Some(c) = previous {
        links.push(Link { relation: "previous", url: link(Some(("_before", c.to_string()))) });
    }
    let mut entries = Vec::with_capacity(studies.len());
    for s in &studies {
        match resource(version, s, &subset) {
            Ok(resource) => {
                entries.push(Entry { full_url: study_url(&state, &s.projected.id), resource, request: None })
            }
            Err(e) => return internal(version, e),
        }
    }
    let body = match cireg_fhir::bundle(version, BundleKind::Searchset, Some(total), &links, entries) {
        Ok(body) => body,
        Err(e) => return internal(version, e),
    };
    // what was read: the studies shown, or for a count alone (_summary=count, _count=0), how
    // many of those it may read
    let counted = query.count == 0;
    if !studies.is_empty() || (counted && total > 0) {
        let (datasets, providers, results) = if counted {
            match access {
                StudyAccess::All => (Default::default(), Default::default(), total),
                StudyAccess::Only { datasets, providers } => (datasets, providers, total),
            }
        } else {
            (studies.iter().map(|s| s.dataset_iri.clone()).collect(), Default::default(), studies.len() as u64)
        };
        let read = crate::audit::Read {
            kind: "fhir-search",
            request: request_text("/fhir/ImagingStudy", &pairs),
            datasets,
            providers,
            results: Some(results),
            caller: &caller,
        };
        if let Err(r) = audited(&state, version, read).await {
            return r;
        }
    }
    fhir_json(version, StatusCode::OK, &body)
}

/// One version of a study, folded from its events in the log.
struct StudyVersion {
    version: u64,
    last_updated: String,
    study: Option<cireg_model::Study>,
    retracted: bool,
}

/// Every version of a study, oldest first, from the log.
async fn versions(state: &AppState, s: &IndexedStudy) -> Result<Vec<StudyVersion>, String> {
    let p = &s.projected;
    let provider = ProviderId::parse(&p.provider).ok_or("a stored study names no valid provider")?;
    let subject = study_subject(&provider, &p.subject, &p.study.study_instance_uid);
    let events = state.ingest.log().read_subject(&subject).await.map_err(|e| e.to_string())?;
    let mut aggregate = Aggregate::default();
    let mut out = Vec::new();
    for stored in events {
        let event = Event::parse_stored(&stored.payload).map_err(|e| e.to_string())?;
        aggregate.apply(stored.seq, &event);
        let last_updated = OffsetDateTime::from_unix_timestamp_nanos(stored.appended_at_nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| event.time.clone());
        let (study, retracted) = match &aggregate.state {
            AggregateState::Study { study, status, .. } => (Some((**study).clone()), *status == StudyStatus::Retracted),
            _ => (None, false),
        };
        out.push(StudyVersion { version: aggregate.version, last_updated, study, retracted });
    }
    Ok(out)
}

/// `GET /fhir/ImagingStudy/{id}/_history`.
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    history_inner(state, headers, id, None, q).await
}

/// `GET /fhir/ImagingStudy/{id}/_history/{vid}`.
pub async fn vread(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, vid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    history_inner(state, headers, id, Some(vid), q).await
}

async fn history_inner(
    state: AppState,
    headers: HeaderMap,
    id: String,
    vid: Option<String>,
    q: Option<String>,
) -> Response {
    let (version, pairs, caller, access) = match begin(&state, &headers, q.as_deref()).await {
        Ok(begun) => begun,
        Err(r) => return r,
    };
    let index = match index(&state, version).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let s = match find(index.studies(), &id, version, &access) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let all = match versions(&state, &s).await {
        Ok(v) => v,
        Err(e) => return outcome(version, 503, "transient", format!("the event log could not be read: {e}"), ""),
    };
    let full = Subset::Full;
    let read = |results: u64| crate::audit::Read {
        kind: "fhir-history",
        request: request_text(
            &match &vid {
                Some(v) => format!("/fhir/ImagingStudy/{id}/_history/{v}"),
                None => format!("/fhir/ImagingStudy/{id}/_history"),
            },
            &pairs,
        ),
        datasets: [s.dataset_iri.clone()].into(),
        providers: Default::default(),
        results: Some(results),
        caller: &caller,
    };
    if let Some(vid) = &vid {
        let Some(v) = vid.parse::<u64>().ok().and_then(|n| all.iter().find(|v| v.version == n)) else {
            return outcome(version, 404, "not-found", format!("ImagingStudy/{id} has no version {vid}"), "");
        };
        let Some(study) = v.study.as_ref().filter(|_| !v.retracted) else {
            return outcome(version, 410, "deleted", format!("version {vid} of ImagingStudy/{id} is a retraction"), "");
        };
        return match resource_at(version, &s, study, v.version, &v.last_updated, &full) {
            Ok(body) => {
                if let Err(r) = audited(&state, version, read(1)).await {
                    return r;
                }
                let mut response = fhir_json(version, StatusCode::OK, &body);
                if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", v.version)) {
                    response.headers_mut().insert(header::ETAG, etag);
                }
                response
            }
            Err(e) => internal(version, e),
        };
    }
    let mut entries = Vec::new();
    for v in all.iter().rev() {
        let Some(study) = v.study.as_ref().filter(|_| !v.retracted) else { continue };
        let resource = match resource_at(version, &s, study, v.version, &v.last_updated, &full) {
            Ok(r) => r,
            Err(e) => return internal(version, e),
        };
        let (method, url) =
            if v.version == 1 { ("POST", "ImagingStudy".to_owned()) } else { ("PUT", format!("ImagingStudy/{id}")) };
        entries.push(Entry {
            full_url: format!("{}/_history/{}", study_url(&state, &id), v.version),
            resource,
            request: Some((method, url)),
        });
    }
    let links = [Link { relation: "self", url: format!("{}/_history", study_url(&state, &id)) }];
    let total = entries.len() as u64;
    let body = match cireg_fhir::bundle(version, BundleKind::History, Some(total), &links, entries) {
        Ok(body) => body,
        Err(e) => return internal(version, e),
    };
    if total > 0 {
        if let Err(r) = audited(&state, version, read(total)).await {
            return r;
        }
    }
    fhir_json(version, StatusCode::OK, &body)
}

/// Anything else under `/fhir`.
pub async fn unknown(uri: axum::http::Uri) -> Response {
    outcome(
        FhirVersion::R5,
        404,
        "not-supported",
        format!("{} is not part of this server's FHIR API: see /fhir/metadata", uri.path()),
        "",
    )
}
