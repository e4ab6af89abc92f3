//! The harvestable catalogue over HTTP: `/catalog` (whole, streamed, or paged with Hydra),
//! `?modified_since=`, `?at=` (the catalogue as the log stood then), and the change feed `/feed`.

// parameter checks return the HTTP answer itself, built once per request: boxing it buys nothing
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use cireg_log::StoredEvent;
use cireg_projector::Projector;
use cireg_views::{parse_instant, CatalogIndex, CatalogPage, FeedPage, PageLinks};
use oxigraph::{io::RdfFormat, store::Store};
use time::OffsetDateTime;

use crate::{
    admission::{caller_key, CallerKey, ClientAddr},
    problem::{bad_parameter, problem},
    read::not_admitted,
    read::{content_type, rdf_formats, rdf_only, rdf_or_html},
    stream::streamed,
    AppState,
};

/// Datasets per page when the client does not say.
const DEFAULT_PAGE_SIZE: u64 = 100;
/// The most datasets one page may hold.
const MAX_PAGE_SIZE: u64 = 1000;
/// Log events per feed page when the client does not say, and the most it may ask for.
const DEFAULT_FEED_LIMIT: usize = 100;
const MAX_FEED_LIMIT: usize = 1000;

/// The catalogue's query parameters.
#[derive(Debug, Default)]
struct CatalogParams {
    page: Option<u64>,
    page_size: Option<u64>,
    modified_since: Option<(String, OffsetDateTime)>,
    at: Option<(String, OffsetDateTime)>,
}

fn instant(name: &str, value: &str) -> Result<(String, OffsetDateTime), Response> {
    parse_instant(value).map(|t| (value.to_owned(), t)).ok_or_else(|| {
        bad_parameter(
            name,
            format!("{value:?} is not an ISO 8601 date (2026-01-31) or date-time (2026-01-31T12:00:00Z)"),
        )
        .into_response()
    })
}

fn positive(name: &str, value: &str, max: u64) -> Result<u64, Response> {
    match value.parse::<u64>() {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(bad_parameter(name, format!("{value:?} is not a whole number from 1 to {max}")).into_response()),
    }
}

impl CatalogParams {
    fn parse(query: Option<&str>) -> Result<Self, Response> {
        let mut p = CatalogParams::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "page" => p.page = Some(positive("page", &v, u64::MAX)?),
                "pageSize" | "page_size" => p.page_size = Some(positive(&k, &v, MAX_PAGE_SIZE)?),
                "modified_since" | "modifiedSince" => p.modified_since = Some(instant(&k, &v)?),
                "at" => p.at = Some(instant("at", &v)?),
                // harvesters add their own parameters (cache busters, tokens): ignore them
                _ => {}
            }
        }
        Ok(p)
    }

    /// The URL of page `page` with the same selection.
    fn page_url(&self, path: &str, page: u64, size: u64) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("page", &page.to_string());
        if size != DEFAULT_PAGE_SIZE {
            q.append_pair("pageSize", &size.to_string());
        }
        if let Some((text, _)) = &self.modified_since {
            q.append_pair("modified_since", text);
        }
        if let Some((text, _)) = &self.at {
            q.append_pair("at", text);
        }
        format!("{path}?{}", q.finish())
    }
}

/// `GET /catalog`: the format by `Accept`.
pub async fn catalog(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match rdf_or_html(&headers) {
        Ok(Some((format, media))) => respond(state, format, media, "", query, (&headers, &client)).await,
        Ok(None) => html(state, query).await,
        Err(not_acceptable) => not_acceptable,
    }
}

/// The catalogue for a browser: one page of datasets with their titles, and links onward.
async fn html(state: AppState, query: Option<String>) -> Response {
    let params = match CatalogParams::parse(query.as_deref()) {
        Ok(p) => p,
        Err(response) => return response,
    };
    let index = match state.catalog_index().await {
        Ok(index) => index,
        Err(e) => return internal(e.to_string()),
    };
    let store = state.store.clone();
    let page = params.page.unwrap_or(1);
    let size = params.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    let since = params.modified_since.as_ref().map(|(_, t)| *t);
    let listing = tokio::task::spawn_blocking(move || -> std::io::Result<(Vec<(String, String)>, u64)> {
        let selected = index.select(since);
        let start = ((page.saturating_sub(1)) * size) as usize;
        let title = oxigraph::model::NamedNode::new_unchecked("http://purl.org/dc/terms/title");
        let rows = selected
            .iter()
            .skip(start)
            .take(size as usize)
            .map(|e| {
                let t = store
                    .quads_for_pattern(Some(e.dataset.as_ref().into()), Some(title.as_ref()), None, None)
                    .filter_map(Result::ok)
                    .find_map(|q| match q.object {
                        oxigraph::model::Term::Literal(l) => Some(l.value().to_owned()),
                        _ => None,
                    })
                    .unwrap_or_else(|| e.dataset.as_str().to_owned());
                (e.dataset.as_str().to_owned(), t)
            })
            .collect();
        Ok((rows, selected.len() as u64))
    })
    .await;
    match listing {
        Ok(Ok((rows, total))) => {
            let last = total.div_ceil(size).max(1);
            let path = state.base.catalog();
            let link = |p: u64| (p >= 1 && p <= last).then(|| params.page_url(&path, p, size));
            crate::pages::catalog(&state, &rows, page, last, total, link(page.wrapping_sub(1)), link(page + 1))
        }
        Ok(Err(e)) => internal(e.to_string()),
        Err(e) => internal(e.to_string()),
    }
}

/// `GET /catalog.ttl`.
pub async fn catalog_ttl(s: State<AppState>, c: ClientAddr, h: HeaderMap, q: RawQuery) -> Response {
    catalog_ext(s, c, h, q, "ttl").await
}

/// `GET /catalog.jsonld`.
pub async fn catalog_jsonld(s: State<AppState>, c: ClientAddr, h: HeaderMap, q: RawQuery) -> Response {
    catalog_ext(s, c, h, q, "jsonld").await
}

/// `GET /catalog.rdf`.
pub async fn catalog_rdf(s: State<AppState>, c: ClientAddr, h: HeaderMap, q: RawQuery) -> Response {
    catalog_ext(s, c, h, q, "rdf").await
}

/// `GET /catalog.nt`.
pub async fn catalog_nt(s: State<AppState>, c: ClientAddr, h: HeaderMap, q: RawQuery) -> Response {
    catalog_ext(s, c, h, q, "nt").await
}

/// The catalogue in the format of the extension.
async fn catalog_ext(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ext: &'static str,
) -> Response {
    match rdf_formats().into_iter().find(|(_, _, e)| *e == ext) {
        Some((media, format, _)) => respond(state, format, media, ext, query, (&headers, &client)).await,
        None => {
            problem(404, "not-found", "No such catalogue format", format!(".{ext}: use .ttl, .jsonld, .rdf or .nt"))
                .into_response()
        }
    }
}

async fn respond(
    state: AppState,
    format: RdfFormat,
    media: &'static str,
    ext: &str,
    query: Option<String>,
    (headers, client): (&HeaderMap, &ClientAddr),
) -> Response {
    let params = match CatalogParams::parse(query.as_deref()) {
        Ok(p) => p,
        Err(response) => return response,
    };
    // the store to answer from: the live one, or the log replayed up to `at`
    let (store, index) = match &params.at {
        None => match state.catalog_index().await {
            Ok(index) => (state.store.clone(), index),
            Err(e) => return internal(e.to_string()),
        },
        Some((_, at)) => match store_at(&state, *at, &caller_key(&state, headers, client).await).await {
            Ok(found) => found,
            Err(response) => return response,
        },
    };
    let selected_count = index.select(params.modified_since.as_ref().map(|(_, t)| *t)).len() as u64;
    let path = if ext.is_empty() { state.base.catalog() } else { format!("{}.{ext}", state.base.catalog()) };
    let (range, paging) = match params.page {
        None => (0..selected_count as usize, None),
        Some(page) => {
            let size = params.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
            let last = selected_count.div_ceil(size).max(1);
            if page > last {
                return problem(
                    404,
                    "no-such-page",
                    "No such catalogue page",
                    format!("page {page} is past the last page, {last} ({selected_count} datasets, {size} per page)"),
                )
                .into_response();
            }
            let start = ((page - 1) * size) as usize;
            let end = (start + size as usize).min(selected_count as usize);
            let links = PageLinks {
                this: params.page_url(&path, page, size),
                first: params.page_url(&path, 1, size),
                last: params.page_url(&path, last, size),
                next: (page < last).then(|| params.page_url(&path, page + 1, size)),
                previous: (page > 1).then(|| params.page_url(&path, page - 1, size)),
                total_items: selected_count,
                items_per_page: size,
            };
            (start..end, Some(links))
        }
    };
    let since = params.modified_since.as_ref().map(|(_, t)| *t);
    let (base, info, nodes) = (state.base.clone(), state.catalog.clone(), state.nodes.clone());
    let deadline = std::time::Instant::now() + state.limits.request_timeout;
    streamed(content_type(media), deadline, move |writer| {
        let selected = index.select(since);
        let nodes = nodes.read().map(|n| n.clone()).unwrap_or_default();
        let page = CatalogPage { index: &index, datasets: &selected[range], paging: paging.as_ref(), nodes: &nodes };
        cireg_views::write_catalog(&store, &base, &info, &page, format, writer)
    })
}

fn internal(detail: String) -> Response {
    problem(500, "internal", "Could not write the catalogue", detail).into_response()
}

/// Events per read while replaying the log.
const REPLAY_BATCH: usize = 1000;

/// A scratch in-memory store holding the public graphs as they stood after every event the log
/// had accepted by the end of `at`'s second: from the catalogue history (a snapshot and the
/// changes after it) when it kept that instant, else by replaying the log from sequence 1.
/// Either takes one of the caller's evaluation slots; a replay is rate-limited and replays at
/// most `history_max_events` events (a later instant of a longer log is refused).
async fn store_at(
    state: &AppState,
    at: OffsetDateTime,
    caller: &CallerKey,
) -> Result<(Store, Arc<CatalogIndex>), Response> {
    let unavailable =
        |detail: String| problem(503, "log-unavailable", "The event log could not be read", detail).into_response();
    // the end of `at`'s second: the history tells seconds apart, and a replay answers the same
    let limit = cireg_projector::second_of(at.unix_timestamp_nanos()) + 999_999_999;
    if let Some(history) = state.history.clone() {
        let _slot = state.admission.admit(caller, state.limits.request_timeout).await.map_err(not_admitted)?;
        let base = state.base.clone();
        let found = tokio::task::spawn_blocking(move || -> Result<Option<(Store, CatalogIndex)>, String> {
            let cireg_projector::Past::Kept { quads, .. } = history.at(limit).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let store = Store::new().map_err(|e| e.to_string())?;
            let mut loader = store.bulk_loader();
            loader.load_quads(quads).map_err(|e| e.to_string())?;
            loader.commit().map_err(|e| e.to_string())?;
            let index = CatalogIndex::build(&store, &base).map_err(|e| e.to_string())?;
            Ok(Some((store, index)))
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(internal)?;
        if let Some((store, index)) = found {
            return Ok((store, Arc::new(index)));
        }
    }
    if let Err(wait) = state.history_rate.check(caller.as_str()) {
        return Err(problem(
            429,
            "too-many-requests",
            "Too many replays of the past",
            format!("?at= rebuilds the catalogue from the log: try again in {} s", wait.as_secs().max(1)),
        )
        .retry_after(wait.as_secs()));
    }
    let _slot = state.admission.admit(caller, state.limits.request_timeout).await.map_err(not_admitted)?;
    let log = state.ingest.log().clone();
    let cap = state.history_max_events;
    if log.last_seq().await.map_err(|e| unavailable(e.to_string()))? > cap {
        let beyond = log.read_range(cap + 1, 1).await.map_err(|e| unavailable(e.to_string()))?;
        if beyond.first().is_some_and(|e| e.appended_at_nanos <= limit) {
            return Err(problem(
                422,
                "history-too-long",
                "The catalogue at that instant is too costly to rebuild",
                format!(
                    "the log held more than {cap} events at that instant, and this node replays at most {cap} for ?at=: ask for an earlier instant, or harvest the feed (/feed) and keep your own history"
                ),
            )
            .at("at", format!("more than {cap} events before it"))
            .into_response());
        }
    }
    let store = Store::new().map_err(|e| internal(e.to_string()))?;
    let projector = Projector::new(store.clone(), state.base.clone()).map_err(|e| internal(e.to_string()))?;
    let mut from = 1;
    loop {
        let batch = log.read_range(from, REPLAY_BATCH).await.map_err(|e| unavailable(e.to_string()))?;
        let Some(last) = batch.last().map(|e| e.seq) else { break };
        let full = batch.len() == REPLAY_BATCH;
        let keep: Vec<StoredEvent> = batch.into_iter().take_while(|e| e.appended_at_nanos <= limit).collect();
        let reached = keep.last().map(|e| e.seq) != Some(last);
        if !keep.is_empty() {
            let p = projector.clone();
            tokio::task::spawn_blocking(move || p.apply_batch(&keep))
                .await
                .map_err(|e| internal(e.to_string()))?
                .map_err(|e| internal(e.to_string()))?;
        }
        if reached || !full {
            break;
        }
        from = last + 1;
    }
    let (s, base) = (store.clone(), state.base.clone());
    let index = tokio::task::spawn_blocking(move || CatalogIndex::build(&s, &base))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| internal(e.to_string()))?;
    Ok((store, Arc::new(index)))
}

/// `GET /feed?from=<log sequence>&limit=<n>`: a page of the change feed.
pub async fn feed(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let (mut from, mut limit) = (1u64, DEFAULT_FEED_LIMIT);
    for (k, v) in url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "from" => match v.parse::<u64>() {
                Ok(seq) if seq >= 1 => from = seq,
                _ => return bad_parameter("from", format!("{v:?} is not a log sequence (1 or more)")).into_response(),
            },
            "limit" => match positive("limit", &v, MAX_FEED_LIMIT as u64) {
                Ok(l) => limit = l as usize,
                Err(response) => return response,
            },
            _ => {}
        }
    }
    let (format, media) = match rdf_only(&headers) {
        Ok(chosen) => chosen,
        Err(not_acceptable) => return not_acceptable,
    };
    let log = state.ingest.log().clone();
    let (events, last) = match tokio::try_join!(log.read_range(from, limit), log.last_seq()) {
        Ok(found) => found,
        Err(e) => {
            return problem(503, "log-unavailable", "The event log could not be read", e.to_string()).into_response()
        }
    };
    let feed_url = |from: u64| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("from", &from.to_string());
        if limit != DEFAULT_FEED_LIMIT {
            q.append_pair("limit", &limit.to_string());
        }
        format!("{}/feed?{}", state.base.as_str(), q.finish())
    };
    let next_from = events.last().map(|e| e.seq + 1).unwrap_or(from);
    let next = (next_from <= last && !events.is_empty()).then(|| feed_url(next_from));
    let this = feed_url(from);
    let base = state.base.clone();
    feed_response(base, events, this, next, format, media).await
}

/// Writes a feed page (or one activity) off the async threads.
async fn feed_response(
    base: cireg_projector::PublicBase,
    events: Vec<StoredEvent>,
    this: String,
    next: Option<String>,
    format: RdfFormat,
    media: &'static str,
) -> Response {
    let body = tokio::task::spawn_blocking(move || {
        cireg_views::write_feed(&base, &FeedPage { events: &events, this, next }, format, Vec::new())
    })
    .await;
    match body {
        Ok(Ok(body)) => {
            ([(header::CONTENT_TYPE, content_type(media)), (header::VARY, "Accept".to_owned())], body).into_response()
        }
        Ok(Err(e)) => internal(e.to_string()),
        Err(e) => internal(e.to_string()),
    }
}

/// `GET /feed/{seq}`: one activity of the feed.
pub async fn feed_activity(State(state): State<AppState>, headers: HeaderMap, Path(seq): Path<String>) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return bad_parameter("seq", format!("{seq:?} is not a log sequence (a whole number)")).into_response();
    };
    let (format, media) = match rdf_only(&headers) {
        Ok(chosen) => chosen,
        Err(not_acceptable) => return not_acceptable,
    };
    let events = match state.ingest.log().read_range(seq, 1).await {
        Ok(events) => events.into_iter().filter(|e| e.seq == seq).collect::<Vec<_>>(),
        Err(e) => {
            return problem(503, "log-unavailable", "The event log could not be read", e.to_string()).into_response()
        }
    };
    let is_dataset_event = events.first().is_some_and(|e| e.subject.contains(".dataset."));
    if !is_dataset_event {
        return problem(404, "not-found", "Not found", format!("the feed has no activity {seq}")).into_response();
    }
    let this = cireg_views::activity_iri(&state.base, seq);
    let base = state.base.clone();
    feed_response(base, events, this, None, format, media).await
}
