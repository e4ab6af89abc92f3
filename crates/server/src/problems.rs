//! The problem types (RFC 9457 §3.1.1 recommends that a `type` dereference to documentation):
//! every problem this node answers over HTTP has the type `<public base>/problems/<kind>`, and
//! that page says what the error means and how to fix it. Inside the registry (and in NATS
//! replies, which have no public base to speak of) a type stays `urn:cireg:problem:<kind>`; the
//! HTTP layer turns one into the other on the way out.

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::{problem::problem, web::escape, AppState};

/// One problem type: its kind (the last segment of its URL), the statuses it comes with, its
/// title, what it means and what to do.
pub struct ProblemType {
    pub kind: &'static str,
    pub statuses: &'static str,
    pub title: &'static str,
    pub meaning: &'static str,
    pub fix: &'static str,
}

const fn t(
    kind: &'static str,
    statuses: &'static str,
    title: &'static str,
    meaning: &'static str,
    fix: &'static str,
) -> ProblemType {
    ProblemType { kind, statuses, title, meaning, fix }
}

/// Every kind the registry answers with (a test reads the sources for any other).
pub const PROBLEM_TYPES: &[ProblemType] = &[
    t("invalid-event", "400", "The event is not valid",
      "The event (or a batch, or a binary-mode request) does not match its type's JSON Schema, or a study does not add up (series UIDs, modalities, counts). Nothing was appended.",
      "Each entry of <code>errors</code> names the place with a JSON pointer into what you sent and says what is wrong there. Check events offline with <code>cireg validate</code>; the schemas are under <a href=\"/schemas\">/schemas</a>, with a valid example of each type."),
    t("conflict", "409", "The event conflicts with the current state",
      "The event is valid but does not fit where its aggregate stands: publishing a dataset that exists, updating one that was never published or was withdrawn, a study of a subject whose consent was withdrawn, a decision on an access request that is not waiting for one, or another writer changed the aggregate first (optimistic concurrency).",
      "Read the <code>detail</code> (and the pointer in <code>errors</code>, when there is one); fetch the aggregate's current state and send the event that fits it. A re-send of the same event id is never a conflict: it answers with the original sequence."),
    t("forbidden", "403", "Not allowed",
      "The caller is known, but may not do this: a token publishing for a provider it does not name, a provider deciding on another provider's dataset, a researcher's event sent by a provider, or a token without the role an endpoint needs.",
      "Use a token whose claims name the provider (or hold the role) the request needs; the README's Security section says which claim gives what."),
    t("profile-violation", "422", "The dataset would not conform to the application profile",
      "The dataset as the event would leave it breaks a constraint of DCAT-AP 3.0.1, HealthDCAT-AP R8 at its access level, or the EUCAIM Mandatory properties. Nothing was appended.",
      "<code>shaclResults</code> gives, per violation, the focus node, path, message, constraint and the JSON pointer into your event; add or correct those properties. <code>cireg validate</code> checks an event against the profile offline."),
    t("unauthorized", "401", "Authentication required",
      "The request has no bearer token, or one that did not verify (signature, issuer, audience, expiry).",
      "Send <code>Authorization: Bearer &lt;token&gt;</code> with a token from the node's identity provider; <code>WWW-Authenticate</code> says <code>invalid_token</code> when the token itself was refused."),
    t("auth-unavailable", "503", "Credentials cannot be checked now",
      "The node could not fetch its identity provider's keys to check the token.",
      "Send the request again after <code>Retry-After</code> seconds; if it lasts, the node's operator should check its <code>--jwks</code> URL."),
    t("rate-limited", "429", "Too many events from this caller",
      "The caller sent more events than its rate allows.",
      "Wait <code>Retry-After</code> seconds and send the same events again (same ids: nothing is applied twice)."),
    t("too-many-requests", "429", "Too many of your requests are running",
      "The caller already runs its share of the node's evaluation slots (SPARQL queries, replays of the catalogue's past).",
      "Wait for your running requests to finish (or <code>Retry-After</code> seconds) before sending more."),
    t("busy", "503", "Too many queries are running",
      "Every evaluation slot stayed taken by other callers while this request waited.",
      "Send it again after <code>Retry-After</code> seconds."),
    t("log-unavailable", "503", "The event log is unavailable",
      "The event log (NATS JetStream, or the embedded file) could not be reached or written; nothing was appended.",
      "Send the same event again after <code>Retry-After</code> seconds; the id makes the retry safe."),
    t("insufficient-storage", "507", "The node's disk is full",
      "The node has no space left to append the event (or to write a backup). Nothing was written.",
      "Send the event again later; the node's operator must free space."),
    t("unavailable", "503", "Not available now",
      "The node is starting or catching up (not ready), or a part a read needs, such as the audit trail every study-level read is recorded in, cannot be written now.",
      "Send the request again after <code>Retry-After</code> seconds; <code>/readyz</code> says when the node is ready."),
    t("not-ready", "503", "Not ready",
      "The read models have not yet caught up with a change this request waits for.",
      "Read again in a moment; the change is in the log."),
    t("request-timeout", "503", "The request took too long",
      "Answering took longer than the node's request time limit.",
      "Ask for less (smaller pages, narrower searches) or send it again later."),
    t("body-timeout", "408", "The request body took too long",
      "The request's body did not arrive within the node's time limit.",
      "Send the request again, from a faster link or with a smaller body."),
    t("body-too-large", "413", "The request body is too large",
      "The body is larger than the endpoint accepts.",
      "Split a batch of events into smaller batches; send SPARQL queries of reasonable size."),
    t("bad-body", "400", "The request body was not accepted",
      "The body could not be read (a broken connection, a bad encoding).",
      "Send the request again with a complete body."),
    t("invalid-body", "400", "The request body is not valid",
      "A JSON body (for example of an access request or a decision) does not have the shape the endpoint documents.",
      "<code>errors</code> names each place with a JSON pointer; the <a href=\"/api/openapi.json\">OpenAPI document</a> describes every body."),
    t("bad-parameter", "400", "A request parameter is not valid",
      "A query or path parameter has a value the endpoint does not accept.",
      "<code>errors[].pointer</code> is the parameter's name and <code>detail</code> says what it accepts; the <a href=\"/api/openapi.json\">OpenAPI document</a> lists every parameter."),
    t("bad-query", "400", "The query is not a valid EUCAIM AST",
      "The body of <code>POST /api/eucaim/search</code> is not a query in EUCAIM's AST language.",
      "See the README's Searching section for the AST and the codes it takes."),
    t("unsupported-media-type", "415", "Unsupported media type",
      "The request's <code>Content-Type</code> is not one the endpoint reads (for events: <code>application/cloudevents+json</code>, <code>application/cloudevents-batch+json</code>, or binary mode with JSON data).",
      "Send the body with one of the content types the <code>detail</code> names."),
    t("not-acceptable", "406", "No acceptable format",
      "None of the formats the <code>Accept</code> header lists is one this resource is served in.",
      "Ask for one of the formats the <code>detail</code> names (for RDF: Turtle, JSON-LD, RDF/XML, N-Triples)."),
    t("not-found", "404", "Not found",
      "There is no such resource: no such schema, catalogue format, access request or page.",
      "Check the address; the <a href=\"/\">landing page</a> and the <a href=\"/api/openapi.json\">OpenAPI document</a> list what exists."),
    t("no-such-page", "404", "No such catalogue page",
      "The catalogue has no page with that number.",
      "Follow the <code>hydra:next</code> links from the first page instead of computing page numbers."),
    t("history-too-long", "422", "The catalogue at that instant is too costly to rebuild",
      "<code>?at=</code> names an instant further into the log than one request may replay.",
      "Ask for a later instant, or harvest the change feed (<code>/feed</code>) instead."),
    t("query-timeout", "503", "The query took too long",
      "The SPARQL query ran past the endpoint's time limit and was stopped.",
      "Make the query cheaper (bind more, add <code>LIMIT</code>) or run it against your own copy of the catalogue."),
    t("query-memory", "503", "The node ran short of memory during the query",
      "The node's memory passed its limit while the query ran, and the query was stopped.",
      "Make the query smaller (fewer intermediate results), or send it again later."),
    t("result-too-large", "400", "The query returns too many results",
      "The query's answer has more solutions (or triples) than one query may return.",
      "Add <code>LIMIT</code> and <code>OFFSET</code> and read the answer in pages."),
    t("read-only", "403", "SPARQL Update is not accepted",
      "The endpoint answers queries only; the catalogue changes through events.",
      "Publish events (<code>POST /events</code>) to change what the catalogue says."),
    t("query-failed", "500", "The query failed",
      "The query could not be evaluated for a reason of the node's own.",
      "Send it again; if it fails again, tell the node's operator, with the time of the request."),
    t("internal", "500", "An internal error",
      "The node could not read or write what the request needed. The request changed nothing.",
      "Send it again later; if it lasts, tell the node's operator, with the time of the request."),
    t("central-node", "403", "The central node takes no events",
      "This node shows the catalogues of the national nodes, folded from their logs; it is not a place to publish or request access.",
      "Publish to (or request access at) the national node that holds the dataset."),
    t("no-backups", "404", "This node keeps no backups",
      "The node was started without a backup directory.",
      "Its operator starts it with <code>--backup-dir</code>."),
    t("backup-running", "409", "A backup is being written",
      "Another backup is being written now.",
      "Wait for it to finish, then ask again."),
    t("backup-exists", "409", "A backup of this second exists",
      "A backup with this second's name was written already.",
      "Ask again a second later."),
    t("backup-failed", "500", "The backup could not be written",
      "Writing the backup failed; nothing partial is kept.",
      "See the node's log for the cause (often the disk), then ask again."),
];

/// The documentation page of a kind, if it is one.
pub fn problem_type(kind: &str) -> Option<&'static ProblemType> {
    PROBLEM_TYPES.iter().find(|t| t.kind == kind)
}

/// Middleware: the `type` of every problem answered (a problem document, or the problems inside
/// a batch's 207) becomes `<base>/problems/<kind>`.
pub async fn dereferenceable(State(base): State<std::sync::Arc<str>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let problem_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !problem_json && response.status().as_u16() != 207 {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // problem documents are small and already whole in memory
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return problem(500, "internal", "An internal error", "the answer could not be read").into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    with_urls(&mut value, &base);
    let bytes = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(length) = HeaderValue::from_str(&bytes.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, length);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Every `"type": "urn:cireg:problem:<kind>"` in `value` as `<base>/problems/<kind>`.
fn with_urls(value: &mut Value, base: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "type" => {
                        if let Some(kind) = s.strip_prefix(cireg_model::PROBLEM_BASE) {
                            *s = format!("{base}/problems/{kind}");
                        }
                    }
                    _ => with_urls(v, base),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| with_urls(v, base)),
        _ => {}
    }
}

/// `GET /problems`: every problem type, with links to their pages.
pub async fn index(State(state): State<AppState>) -> Response {
    let mut body = String::from(
        "<h1>Problem types</h1><p>Every refusal of this node is an RFC 9457 problem document whose <code>type</code> is one of these addresses. Each page says what the problem means and how to fix it. Over NATS, replies carry the same kinds as <code>urn:cireg:problem:&lt;kind&gt;</code>.</p><table><thead><tr><th>type</th><th>status</th><th>title</th></tr></thead><tbody>",
    );
    for t in PROBLEM_TYPES {
        body.push_str(&format!(
            "<tr><td><a href=\"{base}/problems/{kind}\">{kind}</a></td><td>{status}</td><td>{title}</td></tr>",
            base = escape(state.base.as_str()),
            kind = t.kind,
            status = t.statuses,
            title = escape(t.title),
        ));
    }
    body.push_str("</tbody></table><p>Event schemas: <a href=\"/schemas\">/schemas</a>. The application profile's shapes are those of DCAT-AP 3.0.1, HealthDCAT-AP R8 and the registry's own for the EUCAIM properties (the README's Publishing section).</p>");
    crate::web::plain_page(&state, "Problem types", &body)
}

/// `GET /problems/{kind}`: what one problem type means and how to fix it.
pub async fn page(State(state): State<AppState>, Path(kind): Path<String>) -> Response {
    let Some(t) = problem_type(&kind) else {
        return problem(404, "not-found", "Not found", format!("no problem type {kind:?}: see /problems"))
            .into_response();
    };
    let body = format!(
        "<h1>{title}</h1><p><code>{base}/problems/{kind}</code> · HTTP {status}</p><h2>What it means</h2><p>{meaning}</p><h2>How to fix it</h2><p>{fix}</p><p><a href=\"/problems\">All problem types</a> · <a href=\"/schemas\">Event schemas</a> · <a href=\"/api/openapi.json\">API</a></p>",
        title = escape(t.title),
        base = escape(state.base.as_str()),
        kind = t.kind,
        status = t.statuses,
        meaning = t.meaning,
        fix = t.fix,
    );
    crate::web::plain_page(&state, t.title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind a problem is made with in the registry's sources has a page: a kind literal
    /// after a status in `problem(…)` / `Problem::new(…)`, and the kinds chosen in variables.
    #[test]
    fn every_kind_in_the_sources_has_a_page() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for krate in ["model", "ingest", "server", "views", "auth"] {
            let mut stack = vec![crates.join(krate).join("src")];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        files.push(path);
                    }
                }
            }
        }
        let mut kinds = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for start in ["problem(", "Problem::new("] {
                for (i, _) in text.match_indices(start) {
                    // the second argument, when it is a string literal
                    let args = &text[i + start.len()..];
                    let Some(comma) = args.find(',') else { continue };
                    // the first argument is a status: a number or a variable's name
                    let first = args[..comma].trim();
                    if first.is_empty() || !first.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        continue;
                    }
                    let rest = args[comma + 1..].trim_start();
                    if let Some(literal) = rest.strip_prefix('"') {
                        if let Some(end) = literal.find('"') {
                            kinds.push((literal[..end].to_owned(), file.display().to_string()));
                        }
                    }
                }
            }
        }
        // chosen in variables (auth.rs's refusals, problem.rs's body rejections)
        for kind in ["unauthorized", "forbidden", "auth-unavailable", "body-too-large", "bad-body"] {
            kinds.push((kind.to_owned(), "variables".to_owned()));
        }
        assert!(kinds.len() > 30, "the scan found too few kinds: {kinds:?}");
        for (kind, file) in kinds {
            assert!(problem_type(&kind).is_some(), "{kind} (in {file}) has no problem type page");
        }
    }

    #[test]
    fn types_inside_documents_and_batches_become_urls() {
        let mut batch = serde_json::json!([
            {"index": 0, "status": 201},
            {"index": 1, "status": 400, "problem": {"type": "urn:cireg:problem:invalid-event", "title": "x"}},
        ]);
        with_urls(&mut batch, "https://reg.example");
        assert_eq!(batch[1]["problem"]["type"], "https://reg.example/problems/invalid-event");
        let mut other = serde_json::json!({"type": "eu.cancerimage.dataset.published.v1"});
        with_urls(&mut other, "https://reg.example");
        assert_eq!(other["type"], "eu.cancerimage.dataset.published.v1");
    }
}
