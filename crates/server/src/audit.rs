//! The audit trail of study-level reads: each FHIR read, history or search that served studies,
//! and each SPARQL query that could reach study graphs, is written to the trail before its answer
//! leaves (a read whose record cannot be written is refused with 503, never served unrecorded).
//! `GET /api/v1/audit` lists the records: a provider those touching its datasets, a researcher
//! its own, an operator all.

#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use axum::{
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use cireg_auth::Caller;
use cireg_log::{AuditFilter, AuditRecord};
use serde_json::json;
use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

use crate::{
    auth::Refusal,
    problem::{bad_parameter, problem},
    AppState,
};

/// Every instant of the trail is written (and every `since`/`until` compared) in this one form, so
/// that text order is time order.
const INSTANT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

fn instant(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(INSTANT).unwrap_or_default()
}

/// What was read, for one record.
pub(crate) struct Read<'a> {
    pub kind: &'static str,
    pub request: String,
    /// The IRIs of the datasets read.
    pub datasets: BTreeSet<String>,
    /// Providers read beyond those of `datasets` (a provider's own studies, by its token).
    pub providers: BTreeSet<String>,
    pub results: Option<u64>,
    pub caller: &'a Caller,
}

/// Writes the record of a read, waiting until it is durable. `Err`: why not, for the 503 to
/// answer instead.
pub(crate) async fn record(state: &AppState, read: Read<'_>) -> Result<(), String> {
    let mut providers = read.providers;
    providers.extend(read.datasets.iter().filter_map(|d| state.base.dataset_provider(d)).map(str::to_owned));
    let record = AuditRecord {
        id: String::new(),
        at: instant(OffsetDateTime::now_utc()),
        reader: read.caller.subject.clone(),
        kind: read.kind.to_owned(),
        request: read.request,
        datasets: read.datasets.into_iter().collect(),
        providers: providers.into_iter().collect(),
        results: read.results,
    };
    state.audit.append(record).await.map_err(|e| {
        tracing::error!(error = %e, "the audit trail cannot be written: refusing the study-level read");
        format!("the audit trail of study-level reads cannot be written now ({e}); try again later")
    })
}

/// Most records one listing returns, and how many when the caller does not say.
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 100;

/// `GET /api/v1/audit`: `provider`, `reader`, `since`, `until` (RFC 3339), `limit`; newest first.
pub async fn list(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let caller = match crate::auth::caller(&state, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return Refusal::Unauthenticated("the audit trail needs a bearer token".into()).problem(false),
        Err(refusal) => return refusal.problem(crate::auth::token_given(&headers)),
    };
    let mut filter = AuditFilter { limit: DEFAULT_LIMIT, ..AuditFilter::default() };
    let mut provider_asked = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "provider" => provider_asked.push(v.into_owned()),
            "reader" => filter.reader = Some(v.into_owned()),
            "since" | "until" => {
                let Ok(t) = OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339) else {
                    return bad_parameter(&k, format!("{v:?} is not an RFC 3339 date-time (2026-12-01T00:00:00Z)"))
                        .into_response();
                };
                if k == "since" {
                    filter.since = Some(instant(t));
                } else {
                    filter.until = Some(instant(t));
                }
            }
            "limit" => match v.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)) {
                Some(n) => filter.limit = n,
                None => {
                    return bad_parameter("limit", format!("{v:?} is not a whole number from 1 to {MAX_LIMIT}"))
                        .into_response()
                }
            },
            other => {
                return bad_parameter(other, "unknown parameter: use provider, reader, since, until or limit")
                    .into_response()
            }
        }
    }
    // who sees which records
    let own: Vec<String> = caller.providers.iter().map(|p| p.as_str().to_owned()).collect();
    if caller.operator {
        filter.providers = provider_asked;
    } else if !own.is_empty() {
        if let Some(other) = provider_asked.iter().find(|p| !own.contains(p)) {
            return Refusal::Forbidden(format!("the token may not see the reads of provider {other}'s data"))
                .problem(true);
        }
        filter.providers = if provider_asked.is_empty() { own } else { provider_asked };
    } else if caller.researcher || !caller.grants.is_empty() || caller.all_studies {
        if !provider_asked.is_empty() {
            return Refusal::Forbidden("a reader sees its own reads only: leave out provider".into()).problem(true);
        }
        if filter.reader.as_ref().is_some_and(|r| *r != caller.subject) {
            return Refusal::Forbidden("a reader sees its own reads only: leave out reader".into()).problem(true);
        }
        filter.reader = Some(caller.subject.clone());
    } else {
        return Refusal::Forbidden(
            "the audit trail is for the providers of the data read, its readers and the node's operators".into(),
        )
        .problem(true);
    }
    match state.audit.list(&filter).await {
        Ok(records) => Json(json!({ "records": records, "limit": filter.limit })).into_response(),
        Err(e) => {
            problem(503, "unavailable", "Audit trail unavailable", format!("the audit trail cannot be read: {e}"))
                .into_response()
        }
    }
}
