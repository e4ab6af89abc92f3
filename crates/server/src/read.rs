//! The read endpoints: SPARQL protocol, catalogue, schemas, health and metrics.

use std::sync::atomic::Ordering;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use cireg_views::{GraphScope, ParsedQuery, QueryError, QueryStores, ResultsFormat, SparqlRequest, StudyAccess};
use oxigraph::{io::RdfFormat, sparql::results::QueryResultsFormat};

use crate::{
    admission::{CallerKey, ClientAddr, NotAdmitted},
    negotiate::negotiate,
    problem::{bad_parameter, problem},
    AppState,
};

pub(crate) fn accept(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

fn form_pairs(input: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(input.as_bytes()).into_owned().collect()
}

/// Builds a query request from protocol parameters; `update` is refused: changes only come as
/// events.
// the error is the HTTP answer itself, built once per request: boxing it buys nothing
#[allow(clippy::result_large_err)]
fn sparql_request(pairs: Vec<(String, String)>, direct_query: Option<String>) -> Result<SparqlRequest, Response> {
    let (mut default_graph_uris, mut named_graph_uris) = (Vec::new(), Vec::new());
    let mut query = direct_query;
    for (k, v) in pairs {
        match k.as_str() {
            "query" if query.is_some() => return Err(bad_parameter("query", "given more than once").into_response()),
            "query" => query = Some(v),
            "update" | "using-graph-uri" | "using-named-graph-uri" => return Err(update_refused()),
            "default-graph-uri" => default_graph_uris.push(v),
            "named-graph-uri" => named_graph_uris.push(v),
            _ => {}
        }
    }
    let text = query
        .ok_or_else(|| bad_parameter("query", "missing: give a SPARQL query in the query parameter").into_response())?;
    let query = ParsedQuery::parse(&text).map_err(query_error)?;
    Ok(SparqlRequest { query, default_graph_uris, named_graph_uris })
}

fn update_refused() -> Response {
    problem(
        403,
        "read-only",
        "SPARQL Update is not accepted",
        "this endpoint is read-only: the registry changes only through events (POST /events or NATS)",
    )
    .into_response()
}

/// The graphs the caller may query (the catalogue's for anyone, and the studies' of the datasets
/// it may read: crate::access) and whom its evaluation counts for. A token that fails is refused, not read as
/// anonymous.
#[allow(clippy::result_large_err)]
async fn sparql_scope(state: &AppState, headers: &HeaderMap, client: ClientAddr) -> Result<SparqlCaller, Response> {
    let caller = crate::auth::caller(state, headers).await.map_err(|refusal| refusal.problem(true))?;
    let access = caller.as_ref().map(|c| crate::access::access_now(state, c));
    let scope = match &access {
        None => GraphScope::Public,
        Some(StudyAccess::All) => GraphScope::WithStudies,
        Some(access) if access.is_nothing() => GraphScope::Public,
        Some(access) => {
            // the study graphs of the datasets it may read, as the study index holds them now
            let index = state.study_index().await.map_err(|e| {
                problem(503, "unavailable", "Not ready", format!("the study index cannot be read: {e}")).into_response()
            })?;
            GraphScope::WithStudiesOf(std::sync::Arc::new(index.studies().study_graphs(access).into_iter().collect()))
        }
    };
    let key = CallerKey::of(caller.as_ref(), || crate::admission::client_ip(&state.trusted_proxies, headers, &client));
    // a query that can reach study graphs is a read of them, for the audit trail
    let reader = match (caller, access) {
        (Some(caller), Some(access)) if scope != GraphScope::Public => Some((caller, access)),
        _ => None,
    };
    Ok(SparqlCaller { scope, key, reader })
}

/// Who asks a SPARQL query, and what it may read.
struct SparqlCaller {
    scope: GraphScope,
    key: CallerKey,
    /// A caller that may read study graphs, with its access (for the audit record).
    reader: Option<(cireg_auth::Caller, StudyAccess)>,
}

pub async fn sparql_get(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let scope = match sparql_scope(&state, &headers, client).await {
        Ok(scope) => scope,
        Err(r) => return r,
    };
    match sparql_request(form_pairs(query.as_deref().unwrap_or_default()), None) {
        Ok(request) => run_sparql(state, &headers, scope, request).await,
        Err(r) => r,
    }
}

pub async fn sparql_post(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let scope = match sparql_scope(&state, &headers, client).await {
        Ok(scope) => scope,
        Err(r) => return r,
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return crate::problem::body_rejected(rejection).into_response(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = match String::from_utf8(body.to_vec()) {
        Ok(t) => t,
        Err(_) => return bad_parameter("body", "not UTF-8").into_response(),
    };
    let request = match content_type.as_str() {
        "application/x-www-form-urlencoded" => sparql_request(form_pairs(&text), None),
        "application/sparql-query" => sparql_request(form_pairs(query.as_deref().unwrap_or_default()), Some(text)),
        "application/sparql-update" => Err(update_refused()),
        other => Err(problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            format!("Content-Type {other:?}: send application/sparql-query or application/x-www-form-urlencoded"),
        )
        .into_response()),
    };
    match request {
        Ok(request) => run_sparql(state, &headers, scope, request).await,
        Err(r) => r,
    }
}

const SOLUTION_FORMATS: [(&str, QueryResultsFormat); 6] = [
    ("application/sparql-results+json", QueryResultsFormat::Json),
    ("application/sparql-results+xml", QueryResultsFormat::Xml),
    ("text/csv", QueryResultsFormat::Csv),
    ("text/tab-separated-values", QueryResultsFormat::Tsv),
    ("application/json", QueryResultsFormat::Json),
    ("application/xml", QueryResultsFormat::Xml),
];

fn graph_formats() -> [(&'static str, RdfFormat); 6] {
    [
        ("text/turtle", RdfFormat::Turtle),
        ("application/n-triples", RdfFormat::NTriples),
        ("application/ld+json", RdfFormat::JsonLd { profile: Default::default() }),
        ("application/rdf+xml", RdfFormat::RdfXml),
        ("application/x-turtle", RdfFormat::Turtle),
        ("application/json", RdfFormat::JsonLd { profile: Default::default() }),
    ]
}

async fn run_sparql(
    state: AppState,
    headers: &HeaderMap,
    SparqlCaller { scope, key: caller, reader }: SparqlCaller,
    request: SparqlRequest,
) -> Response {
    let graph = request.query.is_graph();
    let accept = accept(headers);
    let (format, media) = if graph {
        let formats = graph_formats();
        match negotiate(accept, &formats.map(|(m, f)| (m, (f, m))), (RdfFormat::Turtle, "text/turtle")) {
            Some((f, m)) => (ResultsFormat::Graph(f), m),
            None => return not_acceptable(&formats.map(|(m, _)| m)),
        }
    } else {
        match negotiate(
            accept,
            &SOLUTION_FORMATS.map(|(m, f)| (m, (f, m))),
            (QueryResultsFormat::Json, "application/sparql-results+json"),
        ) {
            Some((f, m)) => (ResultsFormat::Solutions(f), m),
            None => return not_acceptable(&SOLUTION_FORMATS.map(|(m, _)| m)),
        }
    };
    let stores = QueryStores { public: state.public_store.clone(), full: state.store.clone() };
    let base = state.base.clone();
    let (timeout, max_results) = (state.sparql_timeout, state.sparql_max_results);
    let memory_limit = state.sparql_memory_limit;
    // A slot per running evaluation, at most a share of them per caller; the slot is held until
    // the evaluation has really stopped (the evaluator checks its cancellation in every
    // operator, so that is at most moments after the time limit).
    let slot = match state.admission.admit(&caller, timeout).await {
        Ok(slot) => slot,
        Err(refused) => return not_admitted(refused),
    };
    if let Some((reader, access)) = &reader {
        // which graphs a solution came from is not known: the record names what the query could
        // reach (every study: no dataset named)
        let (datasets, providers) = match access {
            StudyAccess::All => Default::default(),
            StudyAccess::Only { datasets, providers } => (datasets.clone(), providers.clone()),
        };
        let read = crate::audit::Read {
            kind: "sparql",
            request: {
                let mut text = request.query.to_string();
                for (name, graphs) in
                    [("default-graph-uri", &request.default_graph_uris), ("named-graph-uri", &request.named_graph_uris)]
                {
                    graphs.iter().for_each(|g| text.push_str(&format!("\n# {name}={g}")));
                }
                text
            },
            datasets,
            providers,
            results: None,
            caller: reader,
        };
        if let Err(why) = crate::audit::record(&state, read).await {
            return problem(503, "unavailable", "Audit trail unavailable", why).into_response();
        }
    }
    let evaluation = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let limits = cireg_views::QueryLimits { time: timeout, memory: memory_limit };
        cireg_views::evaluate(&stores, &base, &scope, &request, limits, |results| {
            cireg_views::write_results(results, format, Vec::new(), max_results)
        })
    });
    let outcome = match tokio::time::timeout(timeout + std::time::Duration::from_millis(500), evaluation).await {
        Ok(joined) => joined,
        Err(_) => return query_error(QueryError::Timeout(timeout)),
    };
    match outcome {
        Ok(Ok(body)) => {
            let media = match media {
                "application/json" if graph => "application/ld+json",
                "application/json" => "application/sparql-results+json",
                "application/xml" => "application/sparql-results+xml",
                "application/x-turtle" => "text/turtle",
                m => m,
            };
            let content_type = content_type(media);
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Ok(Err(QueryError::Timeout(_))) => query_error(QueryError::Timeout(timeout)),
        Ok(Err(e)) => query_error(e),
        Err(e) => problem(500, "internal", "Internal error", e.to_string()).into_response(),
    }
}

/// The answer to a request that may not start an evaluation now.
pub(crate) fn not_admitted(refused: NotAdmitted) -> Response {
    match refused {
        NotAdmitted::OverShare { share } => problem(
            429,
            "too-many-requests",
            "Too many of your requests are running",
            format!("you already have {share} expensive request(s) running here; wait for them to finish"),
        )
        .retry_after(1),
        NotAdmitted::Busy => {
            problem(503, "busy", "Too many queries are running", "every query slot is taken; try again shortly")
                .retry_after(1)
        }
    }
}

/// The Content-Type header value for `media`: text types say their charset.
pub(crate) fn content_type(media: &str) -> String {
    if media.starts_with("text/") {
        format!("{media}; charset=utf-8")
    } else {
        media.to_owned()
    }
}

pub(crate) fn not_acceptable(offers: &[&str]) -> Response {
    problem(406, "not-acceptable", "No acceptable result format", format!("Accept one of: {}", offers.join(", ")))
        .into_response()
}

fn query_error(e: QueryError) -> Response {
    match e {
        QueryError::Syntax(msg) => bad_parameter("query", msg).into_response(),
        QueryError::Parameter(name, msg) => bad_parameter(name, msg).into_response(),
        QueryError::Timeout(t) => problem(
            503,
            "query-timeout",
            "The query took too long",
            format!("the query ran longer than {} s and was cancelled; narrow it down or add a LIMIT", t.as_secs_f32()),
        )
        .into_response(),
        QueryError::Memory(_) => problem(
            503,
            "query-memory",
            "The node ran short of memory during the query",
            "the node's memory passed its limit while the query ran, and it was cancelled; narrow it down or add a LIMIT",
        )
        .retry_after(5),
        QueryError::TooLarge(limit) => problem(
            400,
            "result-too-large",
            "The query returns too many results",
            format!(
                "the query returns more than {limit} results: add a LIMIT (and page with OFFSET) or narrow it down"
            ),
        )
        .into_response(),
        QueryError::Evaluation(msg) => problem(500, "query-failed", "The query failed", msg).into_response(),
    }
}

pub(crate) fn rdf_formats() -> [(&'static str, RdfFormat, &'static str); 4] {
    [
        ("text/turtle", RdfFormat::Turtle, "ttl"),
        ("application/ld+json", RdfFormat::JsonLd { profile: Default::default() }, "jsonld"),
        ("application/rdf+xml", RdfFormat::RdfXml, "rdf"),
        ("application/n-triples", RdfFormat::NTriples, "nt"),
    ]
}

pub async fn schema_index() -> Response {
    let files: Vec<_> = cireg_model::schema_files()
        .iter()
        .map(|f| serde_json::json!({"file": f.file_name, "id": f.id, "href": format!("schemas/{}", f.file_name)}))
        .collect();
    Json(files).into_response()
}

pub async fn schema_file(Path(file): Path<String>) -> Response {
    match cireg_model::schema_files().iter().find(|f| f.file_name == file) {
        Some(f) => ([(header::CONTENT_TYPE, "application/schema+json")], f.contents).into_response(),
        None => {
            problem(404, "not-found", "No such schema", format!("{file}: see /schemas for the list")).into_response()
        }
    }
}

pub async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Ready once the projector has applied everything the log held when asked, and the read models
/// were built since the start.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let applied = *state.applied.borrow();
    if let Some(why) = state.ingest.log().failure() {
        let body = serde_json::json!({"ready": false, "applied": applied, "error": why});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let models = state.read_models.is_ready();
    match state.ingest.log().last_seq().await {
        Ok(last) if applied >= last && !models => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "applied": applied, "log": last, "readModels": "building"})),
        )
            .into_response(),
        Ok(last) if applied >= last => {
            Json(serde_json::json!({"ready": true, "applied": applied, "log": last, "readModels": "built"}))
                .into_response()
        }
        Ok(last) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "applied": applied, "log": last})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "applied": applied, "error": e.to_string()})),
        )
            .into_response(),
    }
}

/// Prometheus text exposition format.
pub async fn metrics(
    State(state): State<AppState>,
    axum::Extension(http): axum::Extension<std::sync::Arc<crate::metrics::HttpMetrics>>,
) -> Response {
    use std::fmt::Write;
    let s = state.ingest.stats();
    let applied = *state.applied.borrow();
    let last = state.ingest.log().last_seq().await.ok();
    let summary = state.summary().await;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    counter(
        "cireg_ingest_accepted_total",
        "Events appended to the log.",
        "counter",
        s.accepted.load(Ordering::Relaxed),
    );
    counter(
        "cireg_ingest_duplicates_total",
        "Re-sent events answered with their original sequence.",
        "counter",
        s.duplicates.load(Ordering::Relaxed),
    );
    counter("cireg_ingest_invalid_total", "Events refused as invalid.", "counter", s.invalid.load(Ordering::Relaxed));
    counter(
        "cireg_ingest_conflicts_total",
        "Events refused for a lifecycle or concurrency conflict.",
        "counter",
        s.conflicts.load(Ordering::Relaxed),
    );
    counter(
        "cireg_ingest_forbidden_total",
        "Events refused because the sender may not send them.",
        "counter",
        s.forbidden.load(Ordering::Relaxed),
    );
    counter(
        "cireg_ingest_profile_violations_total",
        "Dataset events refused because the dataset would break the application profile (SHACL).",
        "counter",
        s.profile_violations.load(Ordering::Relaxed),
    );
    counter(
        "cireg_ingest_unavailable_total",
        "Events not appended because the log was unavailable.",
        "counter",
        s.unavailable.load(Ordering::Relaxed),
    );
    counter(
        "cireg_ingest_rate_limited_total",
        "Events refused because their caller sent more than its rate allows.",
        "counter",
        s.rate_limited.load(Ordering::Relaxed),
    );
    counter(
        "cireg_auth_failures_total",
        "Requests refused because their Authorization header did not verify.",
        "counter",
        state.auth_failures.load(Ordering::Relaxed),
    );
    counter("cireg_projector_applied_sequence", "Last log sequence applied to the store.", "gauge", applied);
    counter(
        "cireg_ingest_cached_aggregates",
        "Aggregates ingest keeps in memory (bounded by --aggregate-cache).",
        "gauge",
        state.ingest.cached_aggregates() as u64,
    );
    counter(
        "cireg_read_models_sequence",
        "Last log sequence whose changes the read models (catalogue paging, search, studies) include.",
        "gauge",
        state.read_models.checkpoint(),
    );
    if let Some(last) = last {
        counter("cireg_log_last_sequence", "Last sequence in the event log.", "gauge", last);
        counter(
            "cireg_projector_lag_events",
            "Events in the log not yet applied to the store.",
            "gauge",
            last.saturating_sub(applied),
        );
    }
    counter("cireg_catalog_datasets", "Live datasets in the catalogue.", "gauge", summary.datasets);
    counter("cireg_catalog_providers", "Registered providers.", "gauge", summary.providers);
    let slots = state.admission.usage();
    counter(
        "cireg_evaluation_slots",
        "Slots for expensive evaluations (SPARQL queries, catalogue replays at an instant).",
        "gauge",
        slots.slots as u64,
    );
    counter("cireg_evaluation_slots_busy", "Evaluation slots taken now.", "gauge", slots.busy as u64);
    counter(
        "cireg_evaluation_refused_over_share_total",
        "Evaluations refused because their caller already ran its share of the slots (429).",
        "counter",
        slots.refused_over_share,
    );
    counter(
        "cireg_evaluation_refused_busy_total",
        "Evaluations refused because no slot became free in time (503).",
        "counter",
        slots.refused_busy,
    );
    http.write(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// `GET /datasets/{provider}/{dataset}`, `…/distributions/{distribution}`, `/providers/{provider}`:
/// every IRI the registry mints dereferences, in the format the `Accept` header asks for.
pub async fn dataset(
    State(state): State<AppState>,
    Path((provider, dataset)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if wants_html(&headers) {
        // people get the dataset page: labels for every code, links onward
        let index = match crate::search::index(&state).await {
            Ok(index) => index,
            Err(response) => return response,
        };
        if let Some(doc) = index.get(&provider, &dataset) {
            return crate::web::dataset_page(&state, doc);
        }
    }
    let iri = state.base.dataset(&provider, &dataset);
    resource(state, &headers, iri.clone(), iri).await
}

/// `?format=ttl|jsonld|rdf|nt` on a minted resource: a link a browser can follow to the RDF (a
/// link cannot set `Accept`), turned into the `Accept` header the handlers negotiate on.
pub async fn format_parameter(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let format = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "format").map(|(_, v)| v.into_owned())
    });
    if let Some(format) = format {
        let Some((media, _, _)) = rdf_formats().into_iter().find(|(_, _, ext)| *ext == format) else {
            return bad_parameter("format", format!("{format:?}: one of ttl, jsonld, rdf, nt")).into_response();
        };
        request.headers_mut().insert(header::ACCEPT, header::HeaderValue::from_static(media));
    }
    next.run(request).await
}

/// What a document that exists as RDF and as an HTML page answers: `Ok(Some(rdf))`, `Ok(None)`
/// for the page (a browser asks for HTML first; a client that does not say gets Turtle), or the
/// 406 to send.
// the error is the HTTP answer itself
#[allow(clippy::result_large_err)]
pub(crate) fn rdf_or_html(headers: &HeaderMap) -> Result<Option<(RdfFormat, &'static str)>, Response> {
    let formats = rdf_formats();
    let mut offers: Vec<(&str, Option<(RdfFormat, &'static str)>)> =
        formats.iter().map(|(m, f, _)| (*m, Some((*f, *m)))).collect();
    offers.push(("text/html", None));
    negotiate(accept(headers), &offers, Some((RdfFormat::Turtle, "text/turtle"))).ok_or_else(|| {
        let mut media: Vec<&str> = formats.iter().map(|(m, _, _)| *m).collect();
        media.push("text/html");
        not_acceptable(&media)
    })
}

/// The RDF format the client asks for (Turtle when it does not say), or the 406 to send.
#[allow(clippy::result_large_err)]
pub(crate) fn rdf_only(headers: &HeaderMap) -> Result<(RdfFormat, &'static str), Response> {
    let formats = rdf_formats();
    let offers = formats.map(|(m, f, _)| (m, (f, m)));
    negotiate(accept(headers), &offers, (RdfFormat::Turtle, "text/turtle"))
        .ok_or_else(|| not_acceptable(&formats.map(|(m, _, _)| m)))
}

/// True when the client prefers HTML over every RDF format offered.
fn wants_html(headers: &HeaderMap) -> bool {
    matches!(rdf_or_html(headers), Ok(None))
}

pub async fn distribution(
    State(state): State<AppState>,
    Path((provider, dataset, distribution)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let graph = state.base.dataset(&provider, &dataset);
    let iri = state.base.distribution(&provider, &dataset, &distribution);
    resource(state, &headers, graph, iri).await
}

/// `GET /datasets/{provider}/{dataset}/samples/{id}` and `…/analytics/{id}`.
pub async fn dataset_part(
    State(state): State<AppState>,
    Path((provider, dataset, folder, id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let kind = match folder.as_str() {
        "samples" => "sample",
        "analytics" => "analytics",
        _ => return problem(404, "not-found", "Not found", format!("datasets have no {folder}")).into_response(),
    };
    let graph = state.base.dataset(&provider, &dataset);
    let iri = state.base.part(&provider, &dataset, kind, &id);
    resource(state, &headers, graph, iri).await
}

/// `GET /manufacturers/{slug}`: an imaging equipment manufacturer the datasets name.
pub async fn manufacturer(State(state): State<AppState>, Path(slug): Path<String>, headers: HeaderMap) -> Response {
    let iri = state.base.manufacturer(&slug);
    described_in_some_graph(state, &headers, iri, format!("no dataset names the manufacturer {slug}")).await
}

/// `GET /nodes/{domain}`: on the central node, a national node (the agent that published its
/// records), as the datasets' graphs describe it.
pub async fn node(State(state): State<AppState>, Path(domain): Path<String>, headers: HeaderMap) -> Response {
    let iri = state.base.node(&domain);
    described_in_some_graph(state, &headers, iri, format!("no dataset came from a node {domain}")).await
}

/// A resource that no graph of its own holds but the datasets' graphs describe: answered from the
/// first graph that does; 404 with `missing` when none does.
async fn described_in_some_graph(state: AppState, headers: &HeaderMap, iri: String, missing: String) -> Response {
    let not_found = || problem(404, "not-found", "Not found", missing.clone());
    let Ok(subject) = oxigraph::model::NamedNode::new(iri.clone()) else { return not_found().into_response() };
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || cireg_views::graph_about(&store, &subject)).await {
        Ok(Ok(Some(graph))) => resource(state, headers, graph.into_string(), iri).await,
        Ok(Ok(None)) => not_found().into_response(),
        Ok(Err(e)) => problem(500, "internal", "Could not read the resource", e.to_string()).into_response(),
        Err(e) => problem(500, "internal", "Could not read the resource", e.to_string()).into_response(),
    }
}

/// `GET /records/{provider}/{dataset}`: the catalogue record of a dataset.
pub async fn record(
    State(state): State<AppState>,
    Path((provider, dataset)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let graph = state.base.dataset(&provider, &dataset);
    let iri = state.base.record(&provider, &dataset);
    resource(state, &headers, graph, iri).await
}

pub async fn provider(State(state): State<AppState>, Path(provider): Path<String>, headers: HeaderMap) -> Response {
    let iri = state.base.provider(&provider);
    resource(state, &headers, iri.clone(), iri).await
}

async fn resource(state: AppState, headers: &HeaderMap, graph: String, subject: String) -> Response {
    let (Ok(graph), Ok(subject)) =
        (oxigraph::model::NamedNode::new(graph), oxigraph::model::NamedNode::new(subject.clone()))
    else {
        return problem(404, "not-found", "Not found", format!("{subject} is not an IRI this registry mints"))
            .into_response();
    };
    let chosen = match rdf_or_html(headers) {
        Ok(chosen) => chosen,
        Err(not_acceptable) => return not_acceptable,
    };
    let store = state.store.clone();
    let name = subject.as_str().to_owned();
    let Some((format, media)) = chosen else {
        let triples =
            tokio::task::spawn_blocking(move || cireg_views::resource_triples(&store, &graph, &subject)).await;
        return match triples {
            Ok(Ok(triples)) if !triples.is_empty() => crate::pages::resource(&state, &name, &triples),
            Ok(Ok(_)) => problem(
                404,
                "not-found",
                "Not found",
                format!("the registry holds nothing about {name} (never published, or withdrawn)"),
            )
            .into_response(),
            Ok(Err(e)) => problem(500, "internal", "Could not read the resource", e.to_string()).into_response(),
            Err(e) => problem(500, "internal", "Could not read the resource", e.to_string()).into_response(),
        };
    };
    let body =
        tokio::task::spawn_blocking(move || cireg_views::write_resource(&store, &graph, &subject, format, Vec::new()))
            .await;
    match body {
        Ok(Ok(Some(body))) => {
            let content_type = content_type(media);
            ([(header::CONTENT_TYPE, content_type), (header::VARY, "Accept".to_owned())], body).into_response()
        }
        Ok(Ok(None)) => problem(
            404,
            "not-found",
            "Not found",
            format!("the registry holds nothing about {name} (never published, or withdrawn)"),
        )
        .into_response(),
        Ok(Err(e)) => problem(500, "internal", "Could not write the resource", e.to_string()).into_response(),
        Err(e) => problem(500, "internal", "Could not write the resource", e.to_string()).into_response(),
    }
}
