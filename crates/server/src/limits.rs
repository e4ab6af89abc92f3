//! Every request's cost is bounded: its body must arrive within a time limit, and its answer
//! must start within one; past either the client gets a clear problem (408, 503; an
//! OperationOutcome for FHIR) and the work is dropped. SPARQL has its own limit (its evaluation
//! is cancelled inside the evaluator), `POST /events` too (appends are not abandoned midway).

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::HeaderMap,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::problem::problem;

/// How long a request may take.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Time for the whole request body to arrive.
    pub body_timeout: Duration,
    /// Time for a read request's answer to start (a streamed body must also end within it,
    /// counted from when the answer starts).
    pub request_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { body_timeout: Duration::from_secs(30), request_timeout: Duration::from_secs(30) }
    }
}

/// Middleware: reads the request body whole within the body time limit and at most `max` bytes,
/// then hands it on. A slow-body client gets 408, an oversized body 413, before any handler runs.
pub async fn body_within(
    State((limits, max)): State<(RequestLimits, usize)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, max)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) if is_length_limit(&e) => problem(
            413,
            "body-too-large",
            "The request body was not accepted",
            format!("the body is larger than {max} bytes"),
        )
        .into_response(),
        Ok(Err(e)) => {
            problem(400, "bad-body", "The request body was not accepted", format!("the body could not be read: {e}"))
                .into_response()
        }
        Err(_) => problem(
            408,
            "body-timeout",
            "The request body took too long",
            format!("the whole body must arrive within {} s", limits.body_timeout.as_secs_f32()),
        )
        .into_response(),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Middleware of the read routes: the answer must start within the request time limit; past it
/// the handler is dropped (with whatever it was waiting for) and the client gets a 503.
pub async fn answer_within(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let fhir = request.uri().path().starts_with("/fhir");
    let headers: Option<HeaderMap> = fhir.then(|| request.headers().clone());
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => match headers {
            Some(headers) => crate::fhir::past_time_limit(&headers, limits.request_timeout),
            None => problem(
                503,
                "request-timeout",
                "The request took too long",
                format!(
                    "the answer did not start within {} s and the request was stopped; narrow it down (a page, a filter) or try again later",
                    limits.request_timeout.as_secs_f32()
                ),
            )
            .into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{middleware::from_fn_with_state, routing::get, Router};
    use futures::StreamExt;
    use tower::ServiceExt;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    }

    async fn json(response: Response) -> (u16, serde_json::Value) {
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn an_answer_that_does_not_start_in_time_is_a_503() {
        let limits = RequestLimits { body_timeout: Duration::from_secs(1), request_timeout: Duration::from_millis(50) };
        let app = Router::new()
            .route("/slow", get(slow))
            .route("/fhir/ImagingStudy", get(slow))
            .route("/quick", get(|| async { "quick" }))
            .layer(from_fn_with_state(limits, answer_within));
        let get = |path: &str| axum::http::Request::get(path).body(Body::empty()).unwrap();
        let (status, body) = json(app.clone().oneshot(get("/slow")).await.unwrap()).await;
        assert_eq!((status, body["type"].as_str()), (503, Some("urn:cireg:problem:request-timeout")));
        let (status, body) = json(app.clone().oneshot(get("/fhir/ImagingStudy")).await.unwrap()).await;
        assert_eq!((status, body["resourceType"].as_str()), (503, Some("OperationOutcome")));
        assert_eq!(body["issue"][0]["code"], "timeout");
        assert_eq!(app.oneshot(get("/quick")).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn a_body_that_is_slow_or_too_large_is_refused_before_the_handler() {
        let limits =
            RequestLimits { body_timeout: Duration::from_millis(100), request_timeout: Duration::from_secs(1) };
        let app = Router::new()
            .route("/echo", axum::routing::post(|body: axum::body::Bytes| async move { body }))
            .layer(from_fn_with_state((limits, 16usize), body_within));
        let post = |body: Body| axum::http::Request::post("/echo").body(body).unwrap();
        // one chunk, then nothing more for ever
        let stalled = futures::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"ASK"))])
            .chain(futures::stream::pending());
        let (status, body) = json(app.clone().oneshot(post(Body::from_stream(stalled))).await.unwrap()).await;
        assert_eq!((status, body["type"].as_str()), (408, Some("urn:cireg:problem:body-timeout")));
        let (status, body) = json(app.clone().oneshot(post(Body::from(vec![b'x'; 17]))).await.unwrap()).await;
        assert_eq!((status, body["type"].as_str()), (413, Some("urn:cireg:problem:body-too-large")));
        let response = app.oneshot(post(Body::from("ASK {}"))).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(axum::body::to_bytes(response.into_body(), 64).await.unwrap(), "ASK {}");
    }
}
