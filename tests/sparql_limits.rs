//! The public SPARQL endpoint's cost is bounded: a query past its time limit stops using the CPU
//! (whatever it does, in memory or over the store), one caller cannot take every evaluation slot,
//! and ordinary queries keep being answered meanwhile. Real binary, real store; CPU time is read
//! from /proc, with generous bounds (counts and states, not timings that flake).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{net::IpAddr, time::Duration};

use serde_json::Value;
use support::Cireg;

use cireg_testkit::sparql::in_memory_cross_product as in_memory_query;

const COUNT_DATASETS: &str = "SELECT (COUNT(?d) AS ?n) WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> }";

/// Other costly shapes: cross products over the store, property paths over the whole store,
/// aggregates and ORDER BY over huge intermediate results, CONSTRUCT and DESCRIBE of everything.
const COSTLY: [&str; 6] = [
    "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }",
    "SELECT (COUNT(*) AS ?n) WHERE { ?s (<urn:x:p>|!<urn:x:p>)* ?o . ?o (<urn:x:q>|!<urn:x:q>)* ?z }",
    "SELECT ?c (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f } GROUP BY ?c",
    "SELECT ?a ?f WHERE { ?a ?b ?c . ?d ?e ?f } ORDER BY ?f ?a LIMIT 1",
    "CONSTRUCT { ?a ?b ?f } WHERE { ?a ?b ?c . ?d ?e ?f }",
    "DESCRIBE ?a WHERE { ?a ?b ?c . ?d ?e ?f }",
];

async fn ask(client: &reqwest::Client, c: &Cireg, query: &str) -> (u16, Option<String>, Value) {
    let r = client.get(c.url("/sparql")).query(&[("query", query)]).send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body = r.bytes().await.unwrap();
    (status, retry, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// CPU seconds the process burns in the `window` after a moment of quiet.
async fn cpu_in(c: &Cireg, window: Duration) -> f64 {
    let before = c.cpu_seconds();
    tokio::time::sleep(window).await;
    c.cpu_seconds() - before
}

#[tokio::test]
async fn pathological_queries_stop_at_their_limit_and_leave_room_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(
        &dir.path().join("data"),
        &["--demo", "--sparql-timeout", "0.5", "--sparql-slots", "2", "--sparql-caller-share", "1"],
    );
    c.wait_ready().await;
    let attacker = reqwest::Client::new();
    // an ordinary caller from another address (the whole 127/8 is this machine)
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let ordinary = reqwest::Client::builder().local_address(other).build().unwrap();
    let (status, _, body) = ask(&ordinary, &c, COUNT_DATASETS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"]["bindings"][0]["n"]["value"], "40");

    // one pathological query: a 503 problem at its limit, and the CPU goes back to idle
    let (status, _, body) = ask(&attacker, &c, &in_memory_query()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], format!("{}/problems/query-timeout", c.base));
    let idle = cpu_in(&c, Duration::from_secs(2)).await;
    assert!(idle < 0.5, "{idle} CPU-seconds in the 2 s after the answer: the evaluation went on");

    // 8 at once from one caller, while the ordinary caller keeps asking: the caller's share runs
    // (and times out), the rest are told to come back; the ordinary queries are answered
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, query) = (attacker.clone(), c.url("/sparql"), in_memory_query());
            tokio::spawn(async move {
                let r = client.get(url).query(&[("query", query)]).send().await.unwrap();
                let retry = r.headers().get("retry-after").is_some();
                (r.status().as_u16(), retry)
            })
        })
        .collect();
    let mut answered = 0;
    for _ in 0..5 {
        let (status, _, body) = ask(&ordinary, &c, COUNT_DATASETS).await;
        assert_eq!(status, 200, "an ordinary query during the burst: {body}");
        answered += 1;
    }
    let mut statuses = Vec::new();
    for task in burst {
        statuses.push(task.await.unwrap());
    }
    let timed_out = statuses.iter().filter(|(s, _)| *s == 503).count();
    let refused = statuses.iter().filter(|(s, retry)| *s == 429 && *retry).count();
    assert_eq!(timed_out + refused, 8, "{statuses:?}");
    assert!(timed_out >= 1 && refused >= 1, "{statuses:?}");
    assert_eq!(answered, 5);
    let idle = cpu_in(&c, Duration::from_secs(2)).await;
    assert!(idle < 0.5, "{idle} CPU-seconds after the burst");

    // every other costly shape: a clear answer (timeout, or too large), never a 500
    for query in COSTLY {
        let (status, _, body) = ask(&attacker, &c, query).await;
        assert!(status == 503 || status == 400, "{query}: {status} {body}");
        let kind = body["type"].as_str().unwrap_or_default();
        assert!(kind.ends_with("query-timeout") || kind.ends_with("result-too-large"), "{query}: {body}");
        let idle = cpu_in(&c, Duration::from_secs(1)).await;
        assert!(idle < 0.5, "{idle} CPU-seconds after {query}");
    }

    // 100 in a row: each answered at its limit, the process idle after the last
    for i in 0..100 {
        let (status, _, body) = ask(&attacker, &c, &in_memory_query()).await;
        assert_eq!(status, 503, "query {i}: {body}");
    }
    let idle = cpu_in(&c, Duration::from_secs(2)).await;
    assert!(idle < 0.5, "{idle} CPU-seconds after 100 queries in a row");
    let (status, _, _) = ask(&ordinary, &c, COUNT_DATASETS).await;
    assert_eq!(status, 200);
}
