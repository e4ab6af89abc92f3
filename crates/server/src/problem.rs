use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use cireg_model::Problem;

/// RFC 9457 problem details as an HTTP response.
pub struct ProblemResponse(pub Problem);

impl IntoResponse for ProblemResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}

pub fn problem(status: u16, kind: &str, title: &str, detail: impl Into<String>) -> ProblemResponse {
    ProblemResponse(Problem::new(status, kind, title, Some(detail.into())))
}

impl ProblemResponse {
    /// The problem, naming where it is: a parameter's name or a JSON pointer into the body.
    pub fn at(mut self, pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        self.0.errors.push(cireg_model::Violation { pointer: pointer.into(), detail: detail.into() });
        self
    }

    /// The response, telling the client to try again in `seconds` (`Retry-After`; at least 1).
    pub fn retry_after(self, seconds: u64) -> Response {
        let mut response = self.into_response();
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds.max(1)));
        response
    }
}

/// A 400 naming the parameter that is wrong.
pub fn bad_parameter(name: &str, detail: impl Into<String>) -> ProblemResponse {
    let detail = detail.into();
    problem(400, "bad-parameter", "A request parameter is not valid", format!("{name}: {detail}")).at(name, detail)
}

/// A request body that could not be read (too large, broken connection) as problem details.
pub fn body_rejected(rejection: axum::extract::rejection::BytesRejection) -> ProblemResponse {
    let status = rejection.status().as_u16();
    let kind = if status == 413 { "body-too-large" } else { "bad-body" };
    problem(status, kind, "The request body was not accepted", rejection.body_text())
}
