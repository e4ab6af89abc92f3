//! Property-based hostile input against the real binary (embedded log, demo data): random
//! mutations of the schema examples on `POST /events` (the event parser, the schemas, the rules
//! and the SHACL gate behind them), and random query strings on the FHIR search, the SPARQL
//! protocol, the catalogue, the feed and the search API. No answer is a 5xx or anything but the
//! documented statuses, and every refusal says what was wrong where: a JSON pointer at or around
//! the mutated part of an event, or the name of a parameter the request sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::{
    prelude::*,
    test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner},
};
use serde_json::{json, Map, Value};
use support::{example, Cireg};

const EXAMPLES: [&str; 11] = [
    "provider.registered",
    "dataset.published",
    "dataset.updated",
    "dataset.distribution.added",
    "dataset.distribution.removed",
    "dataset.deprecated",
    "dataset.withdrawn",
    "study.registered",
    "study.updated",
    "study.retracted",
    "subject.consent.withdrawn",
];

/// A runner of `cases` cases, seeded from `PROPERTIES_SEED` (to repeat a run) or the clock; the
/// seed is printed, and a failure prints the shrunk input (nothing is written into the checkout).
fn runner(test: &str, cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("PROPERTIES_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("{test}: PROPERTIES_SEED={seed}");
    let bytes: Vec<u8> = seed.to_le_bytes().iter().cycle().take(32).copied().collect();
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// At most 300 characters of `s`, for failure messages.
fn short(s: &str) -> String {
    let cut: String = s.chars().take(300).collect();
    if cut.len() < s.len() {
        format!("{cut}… ({} bytes)", s.len())
    } else {
        cut
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// An answer, with its body parsed when it is JSON.
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

/// Sends and reads the answer; no answer at all (a reset, a timeout) is a failure the property
/// reports with its input.
async fn send(request: reqwest::RequestBuilder) -> Result<Answer, TestCaseError> {
    let response = request
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {}", short(&e.to_string()))))?;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer { status, content_type, body, text })
}

/// The statuses a property's requests got, so that it can show it reached what it is about
/// (refusals and successes both), not only that nothing failed.
#[derive(Default)]
struct Seen(std::sync::Mutex<std::collections::BTreeMap<u16, usize>>);

impl Seen {
    fn count(&self, status: u16) {
        *self.0.lock().unwrap().entry(status).or_default() += 1;
    }

    /// Prints the tally and asserts that each status was seen at least so many times.
    fn assert_reached(&self, test: &str, expected: &[(u16, usize)]) {
        let seen = self.0.lock().unwrap();
        eprintln!("{test}: statuses {seen:?}");
        for (status, at_least) in expected {
            let n = seen.get(status).copied().unwrap_or_default();
            assert!(n >= *at_least, "{test}: fewer than {at_least} answers {status}: {seen:?}");
        }
    }
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Any JSON value, small: what a careless or hostile sender puts where something else belongs.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Strings, with the awkward ones over-represented.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::sample::select(vec![
            "",
            " ",
            "\u{0}",
            "\u{202e}x",
            "2024-13-45",
            "2024-02-30T25:61:00Z",
            "urn:cireg:provider:someone-else",
            "urn:cireg:provider:",
            "../../etc/passwd",
            "eu.cancerimage.dataset.published.v2",
            "1.2.3.",
            "MR",
            "-1",
            "1e400",
        ])
        .prop_map(str::to_owned),
        (1usize..10_000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Every JSON pointer into `value` (the root included).
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// None: the example as it is (with a fresh id).
    Keep,
    /// Put a value at the n-th pointer.
    Set(usize, Value),
    /// Remove the member (or item) at the n-th pointer.
    Remove(usize),
    /// Add a member to the n-th pointer's object (or the nearest object above it).
    Add(usize, String, Value),
    /// Cut the serialised event after this fraction (per mille) of its bytes.
    Truncate(u16),
    /// Overwrite one byte of the serialised event.
    Flip(u16, u8),
}

#[derive(Debug, Clone)]
struct EventCase {
    example: usize,
    mutation: Mutation,
    /// Also send it inside a batch (`application/cloudevents-batch+json`).
    batch: bool,
}

fn event_case() -> impl Strategy<Value = EventCase> {
    let mutation = prop_oneof![
        4 => (any::<usize>(), json_value()).prop_map(|(i, v)| Mutation::Set(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        2 => (any::<usize>(), text(), json_value()).prop_map(|(i, k, v)| Mutation::Add(i, k, v)),
        1 => (0u16..1000).prop_map(Mutation::Truncate),
        1 => (0u16..1000, any::<u8>()).prop_map(|(at, b)| Mutation::Flip(at, b)),
        1 => Just(Mutation::Keep),
    ];
    // study registrations are most of a registry's traffic: a third of the cases
    let study = EXAMPLES.iter().position(|e| *e == "study.registered").unwrap();
    let example = prop_oneof![2 => 0..EXAMPLES.len(), 1 => Just(study)];
    (example, mutation, prop::bool::weighted(0.2)).prop_map(|(example, mutation, batch)| EventCase {
        example,
        mutation,
        batch,
    })
}

fn parent(pointer: &str) -> Option<(&str, String)> {
    let (parent, last) = pointer.rsplit_once('/')?;
    Some((parent, last.replace("~1", "/").replace("~0", "~")))
}

/// Applies the mutation; returns the bytes to send and, for a structural mutation, the pointer
/// of what it changed.
fn mutate(mut event: Value, mutation: &Mutation) -> (Vec<u8>, Option<String>) {
    let mut all = Vec::new();
    pointers(&event, String::new(), &mut all);
    let serialised = |v: &Value| serde_json::to_vec(v).unwrap();
    match mutation {
        Mutation::Keep => (serialised(&event), None),
        Mutation::Set(i, value) => {
            let at = all[i % all.len()].clone();
            if at.is_empty() {
                event = value.clone();
            } else {
                *event.pointer_mut(&at).unwrap() = value.clone();
            }
            (serialised(&event), Some(at))
        }
        Mutation::Remove(i) => {
            let at = all[i % all.len()].clone();
            let Some((up, last)) = parent(&at) else { return (Vec::new(), Some(String::new())) };
            match event.pointer_mut(up).unwrap() {
                Value::Object(map) => {
                    map.remove(&last);
                }
                Value::Array(items) => {
                    items.remove(last.parse::<usize>().unwrap());
                }
                _ => unreachable!("a pointer's parent is a container"),
            }
            (serialised(&event), Some(up.to_owned()))
        }
        Mutation::Add(i, key, value) => {
            let mut at = all[i % all.len()].clone();
            while !event.pointer(&at).is_some_and(Value::is_object) {
                at = parent(&at).map(|(up, _)| up.to_owned()).unwrap_or_default();
            }
            let map: &mut Map<String, Value> = event.pointer_mut(&at).unwrap().as_object_mut().unwrap();
            let existed = map.insert(key.clone(), value.clone()).is_some();
            let member = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
            // a member that existed was replaced: the change is at the member itself
            (serialised(&event), Some(if existed { member } else { at }))
        }
        Mutation::Truncate(per_mille) => {
            let mut bytes = serialised(&event);
            bytes.truncate(bytes.len() * usize::from(*per_mille) / 1000);
            (bytes, None)
        }
        Mutation::Flip(at, byte) => {
            let mut bytes = serialised(&event);
            let i = bytes.len() * usize::from(*at) / 1000;
            bytes[i] = *byte;
            (bytes, None)
        }
    }
}

/// Whether a violation at `found` is about a change at `changed`: the same place, inside it, or
/// one of the objects that hold it (a missing member is reported at its object, a mismatch of
/// `oneOf`/`anyOf` at the value that has the alternatives).
fn related(changed: &str, found: &str) -> bool {
    changed == found || found.starts_with(&format!("{changed}/")) || changed.starts_with(&format!("{found}/"))
}

fn provider_of(event: &Value) -> Option<String> {
    event.get("source")?.as_str()?.strip_prefix("urn:cireg:provider:").map(str::to_owned)
}

/// Checks one answer to an event (alone or as a batch member, whose problem is `problem`).
fn check_event_answer(
    status: u16,
    problem: &Value,
    changed: Option<&str>,
    raw: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    check([200, 201, 400, 403, 409, 422].contains(&status), || format!("status {status}: {}", raw()))?;
    if status < 400 {
        return Ok(());
    }
    let detail = problem.get("detail").and_then(Value::as_str).unwrap_or_default();
    check(!detail.trim().is_empty(), || format!("a {status} without a detail: {}", raw()))?;
    check(problem.get("status").and_then(Value::as_u64) == Some(status.into()), || {
        format!("the problem's status is not {status}: {}", raw())
    })?;
    let errors = problem.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
    let shacl = problem.get("shaclResults").and_then(Value::as_array).cloned().unwrap_or_default();
    match status {
        400 => {
            check(!errors.is_empty(), || format!("a 400 that names no JSON pointer: {}", raw()))?;
            for e in &errors {
                let pointer = e.get("pointer").and_then(Value::as_str);
                check(pointer.is_some_and(|p| p.is_empty() || p.starts_with('/')), || {
                    format!("{e} is not located by a JSON pointer: {}", raw())
                })?;
                check(e.get("detail").and_then(Value::as_str).is_some_and(|d| !d.trim().is_empty()), || {
                    format!("{e} does not say what is wrong: {}", raw())
                })?;
            }
            if let Some(changed) = changed {
                check(errors.iter().any(|e| related(changed, e["pointer"].as_str().unwrap_or_default())), || {
                    format!("the change was at {changed:?}, no violation points there: {}", raw())
                })?;
            }
        }
        422 => check(!shacl.is_empty() || !errors.is_empty(), || format!("a 422 that lists nothing: {}", raw()))?,
        _ => {}
    }
    Ok(())
}

/// A fresh event id per case, so that a mutation is not answered as a re-send of an earlier one.
fn fresh_id(n: u64) -> String {
    format!("{:08x}-5a5a-4a5a-8a5a-{:012x}", std::process::id(), n)
}

#[test]
fn mutated_events_are_refused_with_the_pointer_of_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--ingest-rate", "1000000"]);
    let rt = runtime();
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, content_type: &str, provider: &str| {
        let token = support::provider_token(&[provider]);
        http.post(c.url("/events")).bearer_auth(token).header("content-type", content_type).body(body)
    };
    // the examples' provider and dataset exist, so that mutated events get past the rules'
    // first questions into the deeper ones (and the gate)
    for name in ["provider.registered", "dataset.published"] {
        let event = example(name);
        let provider = provider_of(&event).unwrap();
        let a = rt
            .block_on(send(post(serde_json::to_vec(&event).unwrap(), "application/cloudevents+json", &provider)))
            .unwrap();
        assert!([200, 201].contains(&a.status), "{name}: {} {}", a.status, a.text);
    }
    let counter = std::sync::atomic::AtomicU64::new(0);
    let seen = Seen::default();
    runner("events", 300)
        .run(&event_case(), |case| {
            let mut event = example(EXAMPLES[case.example]);
            let provider = provider_of(&event).unwrap();
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            event["id"] = json!(fresh_id(n));
            // a study not registered before, so that a mutation the rules accept is appended
            if event["type"] == "eu.cancerimage.study.registered.v1" {
                event["data"]["studyInstanceUid"] = json!(format!("2.25.{}", 7_000_000_000u64 + n));
            }
            let (bytes, changed) = mutate(event, &case.mutation);
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(600)]).into_owned();
            if case.batch {
                let mut body = b"[".to_vec();
                body.extend_from_slice(&bytes);
                body.push(b']');
                let a = rt.block_on(send(post(body, "application/cloudevents-batch+json", &provider)))?;
                seen.count(a.status);
                let raw = || format!("batch answered {} {}; sent {shown}", a.status, short(&a.text));
                check(a.status < 500, raw)?;
                if let Some(result) = a.body.pointer("/results/0") {
                    // a batch of one member: the member is answered as if sent alone
                    // (its pointers point into the batch: under /0)
                    let status = result["status"].as_u64().unwrap_or_default() as u16;
                    seen.count(status);
                    let changed = changed.map(|c| format!("/0{c}"));
                    return check_event_answer(status, &result["problem"], changed.as_deref(), &raw);
                }
                // the batch as a whole was refused (not JSON, not an array): it says why
                check(a.status == 400 && a.content_type.starts_with("application/problem+json"), raw)?;
                return Ok(());
            }
            let a = rt.block_on(send(post(bytes, "application/cloudevents+json", &provider)))?;
            seen.count(a.status);
            let raw = || format!("answered {} {}; sent {shown}", a.status, short(&a.text));
            if a.status >= 400 {
                check(a.content_type.starts_with("application/problem+json"), raw)?;
            }
            check_event_answer(a.status, &a.body, changed.as_deref(), &raw)
        })
        .unwrap();
    seen.assert_reached("events", &[(201, 3), (400, 50), (409, 3)]);
    // the node is still whole: it catches up with its log and says it is ready
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let ready = rt.block_on(send(http.get(c.url("/readyz")))).unwrap();
        if ready.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not ready again: {}", ready.text);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------------------------

/// A query string: pairs, percent-encoded, and sometimes raw bytes no encoder would produce.
#[derive(Debug, Clone)]
struct Query {
    pairs: Vec<(String, String)>,
    /// Appended as is (may hold `%zz`, `%ff`, lone `&`, `=`).
    raw: Option<String>,
}

impl Query {
    fn to_query_string(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            s.append_pair(k, v);
        }
        let mut q = s.finish();
        if let Some(raw) = &self.raw {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(raw);
        }
        q
    }

    /// The names the request sent, as a server would decode them.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pairs.iter().map(|(k, _)| k.clone()).collect();
        if let Some(raw) = &self.raw {
            names.extend(url::form_urlencoded::parse(raw.as_bytes()).map(|(k, _)| k.into_owned()));
        }
        names
    }
}

fn raw_query_part() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "%zz",
        "a=%ff%fe",
        "&&",
        "=",
        "==x",
        "%",
        "a=%",
        "_count=%ff",
        "started=%00",
        "page=1%00",
        "x=%e2%82",
    ])
    .prop_map(str::to_owned)
}

fn query(names: Vec<&'static str>, values: Vec<&'static str>) -> impl Strategy<Value = Query> {
    let name = prop_oneof![
        6 => prop::sample::select(names.clone()).prop_map(str::to_owned),
        2 => (prop::sample::select(names), prop::sample::select(vec![":exact", ":missing", ":not", ":identifier", ":text", ":above", ":", ":::", ":iterate"]))
            .prop_map(|(n, m)| format!("{n}{m}")),
        1 => text(),
    ];
    let value = prop_oneof![
        6 => prop::sample::select(values).prop_map(str::to_owned),
        1 => (prop::sample::select(vec!["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx"]), text())
            .prop_map(|(p, v)| format!("{p}{v}")),
        2 => text(),
    ];
    (prop::collection::vec((name, value), 0..5), prop::option::weighted(0.15, raw_query_part()))
        .prop_map(|(pairs, raw)| Query { pairs, raw })
}

/// Whether `named` (what a refusal says was wrong) is one of the names the request sent, or the
/// name one of them has without its `:modifier`.
fn names_a_sent_parameter(named: &str, q: &Query) -> bool {
    q.names().iter().any(|n| n == named || n.split(':').next() == Some(named))
}

/// Checks a problem-details refusal of a query: it names a parameter the request sent, or one
/// of `required` it did not send.
fn check_problem_names_parameter(
    a: &Answer,
    q: &Query,
    required: &[&str],
    raw: &dyn Fn() -> String,
) -> Result<(), TestCaseError> {
    check(a.content_type.starts_with("application/problem+json"), raw)?;
    let named: Vec<&str> =
        a.body["errors"].as_array().into_iter().flatten().filter_map(|e| e["pointer"].as_str()).collect();
    let missing = |n: &str| required.contains(&n) && !q.names().iter().any(|s| s == n);
    check(named.iter().any(|n| names_a_sent_parameter(n, q) || missing(n)), || {
        format!("names no parameter sent: {}", raw())
    })
}

/// A request line or headers too long for the server: refused as such before any handler.
fn too_long(a: &Answer) -> bool {
    matches!(a.status, 414 | 431)
}

const DATES: [&str; 12] = [
    "2024",
    "2024-03",
    "2024-03-14",
    "2024-03-14T09:42",
    "2024-03-14T09:42:00Z",
    "2024-03-14T09:42:00+01:00",
    "ge2020-01-01",
    "lt2030",
    "sa2024-06",
    "2024-02-30",
    "99999-01-01",
    "-2024",
];

#[test]
fn fhir_search_parameters_never_fail_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo"]);
    let rt = runtime();
    let http = support::researcher_client();
    let mut names: Vec<&'static str> = cireg_views::SEARCH_PARAMETERS.iter().map(|(n, _, _)| *n).collect();
    names.extend(["_summary", "_elements", "_after", "_before", "_format", "_include", "_revinclude", "_has"]);
    let mut values: Vec<&'static str> = DATES.to_vec();
    values.extend([
        "MR",
        "CT",
        "http://dicom.nema.org/resources/ontology/DCM|MR",
        "|MR",
        "http://snomed.info/sct|76752008",
        "urn:dicom:uid|urn:oid:2.25.1",
        "count",
        "true",
        "false",
        "0",
        "1",
        "20",
        "1000",
        "1001",
        "-1",
        "18446744073709551616",
        "started",
        "-started",
        "_lastUpdated",
        "-_lastUpdated",
        "_id",
        "available",
        "synthetic-breast-consortium/breast-mri-screening-2024",
        "json",
        "xml",
        "AAAA",
        "eyJ0IjoxfQ",
    ]);
    let seen = Seen::default();
    runner("fhir", 400)
        .run(&(query(names, values), any::<bool>(), any::<bool>()), |(q, strict, post)| {
            let qs = q.to_query_string();
            let request = if post {
                http.post(c.url("/fhir/ImagingStudy/_search"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(qs.clone())
            } else {
                http.get(format!("{}?{qs}", c.url("/fhir/ImagingStudy")))
            };
            let request = if strict { request.header("prefer", "handling=strict") } else { request };
            let a = rt.block_on(send(request))?;
            seen.count(a.status);
            let method = if post { "POST" } else { "GET" };
            let raw = || format!("{method} {} (strict {strict}) answered {} {}", short(&qs), a.status, short(&a.text));
            if too_long(&a) && !post {
                return Ok(());
            }
            // 406: a _format other than JSON
            let format = q.names().iter().any(|n| n.starts_with("_format"));
            check([200, 400].contains(&a.status) || (format && a.status == 406), raw)?;
            if a.status == 406 {
                return check(a.body["resourceType"] == "OperationOutcome", raw);
            }
            check(a.content_type.starts_with("application/fhir+json"), raw)?;
            if a.status == 200 {
                return check(a.body["resourceType"] == "Bundle", raw);
            }
            check(a.body["resourceType"] == "OperationOutcome", raw)?;
            let named: Vec<&str> = a.body["issue"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|i| i["expression"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            // a parameter without a name cannot be named: the diagnostics quote it as ""
            let diagnostics = a.body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
            let nameless = q.names().iter().any(String::is_empty) && diagnostics.contains("\"\"");
            check(nameless || named.iter().any(|n| names_a_sent_parameter(n, &q)), || {
                format!("names no parameter sent: {}", raw())
            })
        })
        .unwrap();
    seen.assert_reached("fhir", &[(200, 20), (400, 20)]);
}

#[test]
fn sparql_protocol_parameters_never_fail_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo"]);
    let rt = runtime();
    let http = reqwest::Client::new();
    let names = vec![
        "query",
        "default-graph-uri",
        "named-graph-uri",
        "update",
        "using-graph-uri",
        "using-named-graph-uri",
        "timeout",
    ];
    let values = vec![
        "SELECT * WHERE { ?s ?p ?o } LIMIT 3",
        "ASK { ?s a <http://www.w3.org/ns/dcat#Dataset> }",
        "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } LIMIT 5",
        "DESCRIBE <http://localhost/catalog>",
        "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }",
        "PREFIX dcat: <http://www.w3.org/ns/dcat#> SELECT ?d WHERE { ?d a dcat:Dataset } ORDER BY ?d LIMIT 10",
        "SELECT * WHERE { ?s ?p ",
        "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }",
        "INSERT DATA { <a:b> <a:c> <a:d> }",
        "SELECT * FROM <urn:x> WHERE { ?s ?p ?o } LIMIT 1",
        "http://localhost/catalog",
        "urn:x",
        "not an iri",
        "",
    ];
    let accept = prop::sample::select(vec![
        "",
        "application/sparql-results+json",
        "application/sparql-results+xml",
        "text/csv",
        "text/turtle",
        "application/n-triples",
        "image/png",
        "*/*;q=x",
    ]);
    let seen = Seen::default();
    // most requests carry a query that is valid, among other parameters
    let good = prop::option::weighted(0.8, prop::sample::select(values[..6].to_vec()));
    let case = (good, query(names, values.clone()), accept, any::<bool>()).prop_map(|(good, mut q, accept, post)| {
        if let Some(good) = good {
            q.pairs.insert(0, ("query".to_owned(), good.to_owned()));
            q.pairs.truncate(2);
        }
        (q, accept, post)
    });
    runner("sparql", 300)
        .run(&case, |(q, accept, post)| {
            let qs = q.to_query_string();
            let request = if post {
                http.post(c.url("/sparql")).header("content-type", "application/x-www-form-urlencoded").body(qs.clone())
            } else {
                http.get(format!("{}?{qs}", c.url("/sparql")))
            };
            let request = if accept.is_empty() { request } else { request.header("accept", accept) };
            let a = rt.block_on(send(request))?;
            seen.count(a.status);
            let raw =
                || format!("{} (accept {accept:?}, post {post}) answered {} {}", short(&qs), a.status, short(&a.text));
            if too_long(&a) && !post {
                return Ok(());
            }
            // 403: an update, on an endpoint that is read-only
            let update =
                q.names().iter().any(|n| ["update", "using-graph-uri", "using-named-graph-uri"].contains(&n.as_str()));
            check([200, 400, 406].contains(&a.status) || (update && a.status == 403), raw)?;
            if a.status == 400 {
                check_problem_names_parameter(&a, &q, &["query"], &raw)?;
            }
            if a.status == 406 {
                check(a.content_type.starts_with("application/problem+json"), raw)?;
            }
            Ok(())
        })
        .unwrap();
    seen.assert_reached("sparql", &[(200, 20), (400, 20)]);
}

#[test]
fn catalogue_feed_and_search_parameters_never_fail_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo"]);
    let rt = runtime();
    let http = reqwest::Client::new();
    // (path, its parameters, values they take)
    let catalog_values = {
        let mut v = DATES.to_vec();
        v.extend(["1", "2", "100", "1000", "1001", "0", "-1", "x", "2026-12-31T23:59:59Z", "1970-01-01"]);
        v
    };
    let endpoints: Vec<(&str, Vec<&'static str>, Vec<&'static str>)> = vec![
        (
            "/catalog.ttl",
            vec!["page", "pageSize", "page_size", "modified_since", "modifiedSince", "at"],
            catalog_values.clone(),
        ),
        ("/catalog.jsonld", vec!["page", "page_size", "at"], catalog_values.clone()),
        ("/catalog", vec!["page", "page_size", "format", "at"], {
            let mut v = catalog_values.clone();
            v.extend(["ttl", "jsonld", "rdf", "nt", "html", ""]);
            v
        }),
        ("/feed", vec!["from", "limit"], vec!["1", "0", "-1", "100", "1000", "1001", "18446744073709551616", "x", ""]),
        (
            "/api/v1/datasets",
            vec![
                "q", "cancer", "modality", "bodyPart", "country", "provider", "access", "sex", "size", "ageMin",
                "ageMax", "sort", "page", "pageSize",
            ],
            vec![
                "breast",
                "lung",
                "MR",
                "CT",
                "DE",
                "female",
                "public",
                "relevance",
                "size",
                "title",
                "0",
                "1",
                "150",
                "151",
                "100",
                "101",
                "-1",
                "x",
                "large",
            ],
        ),
        (
            "/search",
            vec!["q", "cancer", "modality", "page", "sort", "ageMin", "ageMax"],
            vec!["breast", "MR", "1", "0", "-1", "x", "title"],
        ),
    ];
    let case = (0..endpoints.len()).prop_flat_map(move |i| {
        let (path, names, values) = endpoints[i].clone();
        (Just(path), query(names, values))
    });
    let seen = Seen::default();
    runner("catalogue", 400)
        .run(&case, |(path, q)| {
            let qs = q.to_query_string();
            let a = rt.block_on(send(http.get(format!("{}?{qs}", c.url(path)))))?;
            seen.count(a.status);
            let raw = || format!("{path}?{} answered {} {}", short(&qs), a.status, short(&a.text));
            // 422: an instant further back than the history answers; 429: `?at=` replays per
            // minute; 404: a page past the last one
            let at = q.names().iter().any(|n| n == "at");
            let page = q.names().iter().any(|n| n == "page");
            let expected = [200, 400].contains(&a.status)
                || (at && [422, 429].contains(&a.status))
                || (page && a.status == 404)
                || too_long(&a);
            check(expected, raw)?;
            if a.status >= 400 && !too_long(&a) {
                check(a.content_type.starts_with("application/problem+json"), raw)?;
            }
            if a.status == 400 {
                check_problem_names_parameter(&a, &q, &[], &raw)?;
            }
            Ok(())
        })
        .unwrap();
    seen.assert_reached("catalogue", &[(200, 20), (400, 20)]);
}
