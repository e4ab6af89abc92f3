//! Who is calling: the bearer token of the `Authorization` header, checked by `cireg-auth`.
//! Anonymous callers read the catalogue; providers' tokens write; researchers' tokens also read
//! study-level data. A refusal says what was wrong with the token, never the token.

use std::sync::atomic::Ordering;

use axum::{
    http::{header, HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
};
use cireg_auth::{AuthError, Caller};

use crate::{problem::problem, AppState};

/// Why a request is refused for who it comes from.
pub(crate) enum Refusal {
    /// No credentials, or credentials that did not verify (401).
    Unauthenticated(String),
    /// Verified, but not allowed to do this (403).
    Forbidden(String),
    /// The keys cannot be had (503).
    Unavailable(String),
}

impl Refusal {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Refusal::Unauthenticated(_) => 401,
            Refusal::Forbidden(_) => 403,
            Refusal::Unavailable(_) => 503,
        }
    }

    pub(crate) fn detail(&self) -> &str {
        match self {
            Refusal::Unauthenticated(d) | Refusal::Forbidden(d) | Refusal::Unavailable(d) => d,
        }
    }

    /// The `WWW-Authenticate` challenge of RFC 6750 for a 401, with `invalid_token` when a token
    /// was given and failed.
    pub(crate) fn challenge(&self, token_given: bool) -> Option<HeaderValue> {
        match self {
            Refusal::Unauthenticated(_) if token_given => {
                Some(HeaderValue::from_static(r#"Bearer realm="cireg", error="invalid_token""#))
            }
            Refusal::Unauthenticated(_) => Some(HeaderValue::from_static(r#"Bearer realm="cireg""#)),
            _ => None,
        }
    }

    /// As RFC 9457 problem details.
    pub(crate) fn problem(&self, token_given: bool) -> Response {
        let (kind, title) = match self {
            Refusal::Unauthenticated(_) => ("unauthorized", "Authentication required"),
            Refusal::Forbidden(_) => ("forbidden", "Not allowed"),
            Refusal::Unavailable(_) => ("auth-unavailable", "Credentials cannot be checked now"),
        };
        let mut response = problem(self.status(), kind, title, self.detail()).into_response();
        if let Some(challenge) = self.challenge(token_given) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Whether the request carries an `Authorization` header at all.
pub(crate) fn token_given(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
}

/// The caller the request's bearer token names; `None` for an anonymous request (no
/// `Authorization` header). A header that is there but wrong is refused, never read as anonymous.
pub(crate) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let result = verify(state, value).await;
    if result.is_err() {
        state.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
    result.map(Some)
}

async fn verify(state: &AppState, value: &HeaderValue) -> Result<Caller, Refusal> {
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| Refusal::Unauthenticated("the Authorization header must be `Bearer <token>`".to_owned()))?;
    let Some(verifier) = &state.auth else {
        return Err(Refusal::Unauthenticated(
            "this node has no token keys configured (cireg serve --jwks), so it accepts no token".to_owned(),
        ));
    };
    verifier.verify(token).await.map_err(|e| match e {
        AuthError::Token(reason) => Refusal::Unauthenticated(reason),
        AuthError::Unavailable(reason) => Refusal::Unavailable(reason),
    })
}

/// The caller, who must operate the node (backups).
pub(crate) async fn operator(state: &AppState, headers: &HeaderMap) -> Result<Caller, Refusal> {
    with_role(state, headers, |c| c.operator, |claims| &claims.operator_role, "operating the node is for its operators")
        .await
}

/// The caller, who must hold the role `held` reads from its token; `role` names it in the
/// configuration, `who` says who the request is for.
async fn with_role(
    state: &AppState,
    headers: &HeaderMap,
    held: fn(&Caller) -> bool,
    role: fn(&cireg_auth::Claims) -> &String,
    who: &str,
) -> Result<Caller, Refusal> {
    match caller(state, headers).await? {
        Some(caller) if held(&caller) => Ok(caller),
        Some(_) => Err(Refusal::Forbidden(format!(
            "{who}: the token does not grant the role {}",
            state.auth.as_ref().map(|a| role(&a.config().claims).as_str()).unwrap_or_default()
        ))),
        None => Err(Refusal::Unauthenticated(format!("{who}: send Authorization: Bearer <token>"))),
    }
}

/// Middleware of the write routes: the caller must hold a token naming at least one provider;
/// checked before the body is read, so an unauthenticated upload costs nothing. The handler finds
/// the [`Caller`] in the request's extensions.
pub(crate) async fn require_publisher(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match publisher(&state, request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(refusal) => refusal.problem(token_given(request.headers())),
    }
}

/// The caller, who must hold a token naming at least one provider (writing events).
async fn publisher(state: &AppState, headers: &HeaderMap) -> Result<Caller, Refusal> {
    match caller(state, headers).await? {
        Some(caller) if !caller.providers.is_empty() => Ok(caller),
        Some(_) => Err(Refusal::Forbidden(format!(
            "the token names no provider to publish for (claim {})",
            state.auth.as_ref().map(|a| a.config().claims.provider_claim.as_str()).unwrap_or_default()
        ))),
        None => Err(Refusal::Unauthenticated(
            "publishing needs a bearer token naming the providers you publish for: send Authorization: Bearer <token>"
                .to_owned(),
        )),
    }
}
