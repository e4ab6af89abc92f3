//! Search for people and programs: the JSON search API (`/api/v1/datasets`), its OpenAPI
//! description, EUCAIM's federated-search mediator (`/api/eucaim/search`), and the shared parsing
//! of search parameters (the web page uses the same ones, so its URLs are API queries too).

// parameter checks return the HTTP answer itself, built once per request: boxing it buys nothing
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use cireg_views::{SearchIndex, SearchQuery, Sort};

use crate::{
    problem::{bad_parameter, problem},
    AppState,
};

/// Results per page when the client does not say, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

/// Parses search parameters: repeated facet parameters are alternatives (OR).
pub fn parse_query(query: Option<&str>) -> Result<SearchQuery, Response> {
    let mut q = SearchQuery { page: 1, page_size: DEFAULT_PAGE_SIZE, ..SearchQuery::default() };
    let number = |name: &str, v: &str, max: u64| -> Result<u64, Response> {
        v.parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| bad_parameter(name, format!("{v:?} is not a whole number from 0 to {max}")).into_response())
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let v = v.trim().to_owned();
        if v.is_empty() {
            continue; // an empty form field means "any"
        }
        match k.as_ref() {
            "q" => q.text = v,
            "cancer" => q.cancer.push(v),
            "modality" => q.modality.push(v),
            "bodyPart" => q.body_part.push(v),
            "country" => q.country.push(v),
            "provider" => q.provider.push(v),
            "node" => q.node.push(v),
            "access" => q.access.push(v),
            "sex" => q.sex.push(v),
            "size" => {
                if !cireg_views::SIZE_CLASSES.iter().any(|(n, _, _)| *n == v) {
                    let known: Vec<&str> = cireg_views::SIZE_CLASSES.iter().map(|(n, _, _)| *n).collect();
                    return Err(bad_parameter("size", format!("{v:?}: one of {}", known.join(", "))).into_response());
                }
                q.size.push(v)
            }
            "ageMin" => q.age_min = Some(number("ageMin", &v, 150)? as u32),
            "ageMax" => q.age_max = Some(number("ageMax", &v, 150)? as u32),
            "sort" => {
                q.sort = match v.as_str() {
                    "relevance" => Sort::Relevance,
                    "size" => Sort::Size,
                    "title" => Sort::Title,
                    _ => return Err(bad_parameter("sort", format!("{v:?}: relevance, size or title")).into_response()),
                }
            }
            "page" => q.page = number("page", &v, u32::MAX.into())?.max(1) as usize,
            "pageSize" => {
                let n = number("pageSize", &v, MAX_PAGE_SIZE as u64)?;
                if n == 0 {
                    return Err(bad_parameter("pageSize", "from 1 to 100").into_response());
                }
                q.page_size = n as usize
            }
            _ => {}
        }
    }
    if let (Some(lo), Some(hi)) = (q.age_min, q.age_max) {
        if lo > hi {
            return Err(bad_parameter("ageMin", format!("{lo} is above ageMax {hi}")).into_response());
        }
    }
    Ok(q)
}

/// The current search index, or the 500 to send.
pub async fn index(state: &AppState) -> Result<Arc<SearchIndex>, Response> {
    state
        .search_index()
        .await
        .map_err(|e| problem(500, "internal", "Could not read the datasets", e.to_string()).into_response())
}

/// `GET /api/v1/datasets`: one page of results with every facet's counts.
pub async fn datasets(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = match parse_query(query.as_deref()) {
        Ok(q) => q,
        Err(response) => return response,
    };
    match index(&state).await {
        Ok(index) => Json(index.search(&q)).into_response(),
        Err(response) => response,
    }
}

/// `GET /api/v1/nodes`: on the central node, the national nodes as last seen (whether their
/// logs can be reached, when they were last confirmed, what JetStream has yet to copy); empty
/// on a national node.
pub async fn nodes(State(state): State<AppState>) -> Response {
    let nodes = state.nodes.read().map(|n| n.clone()).unwrap_or_default();
    Json(serde_json::json!({ "nodes": nodes })).into_response()
}

/// `GET /api/v1/datasets/{provider}/{id}`: one dataset as search sees it.
pub async fn dataset(State(state): State<AppState>, Path((provider, id)): Path<(String, String)>) -> Response {
    match index(&state).await {
        Ok(index) => match index.get(&provider, &id) {
            Some(doc) => Json(doc).into_response(),
            None => problem(404, "not-found", "Not found", format!("no live dataset {provider}/{id}")).into_response(),
        },
        Err(response) => response,
    }
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../../../api/openapi.json")).into_response()
}

/// `POST /api/eucaim/search`: EUCAIM's mediator AST in, `{"collections": [...]}` out.
pub async fn eucaim(
    State(state): State<AppState>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return crate::problem::body_rejected(rejection).into_response(),
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_parameter("", format!("not JSON: {e}")).into_response(),
    };
    let query = match cireg_views::EucaimQuery::parse(&value) {
        Ok(q) => q,
        Err(e) => {
            return problem(
                400,
                "bad-query",
                "The query is not a valid EUCAIM AST",
                format!("{}: {}", e.pointer, e.detail),
            )
            .at(e.pointer, e.detail)
            .into_response();
        }
    };
    match index(&state).await {
        Ok(index) => Json(cireg_views::eucaim_search(&index, &query)).into_response(),
        Err(response) => response,
    }
}
