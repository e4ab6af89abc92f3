//! Clients that try to hold the node: slow headers, slow bodies, a flood of idle connections, a
//! flood of `?at=` replays. Real binary over loopback; bounded counts, and every wait has a
//! generous bound that only a missing limit can exceed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use support::{example, Cireg};

fn host_port(c: &Cireg) -> String {
    c.listen.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent and
/// whether it closed.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[tokio::test]
async fn slow_clients_and_idle_connections_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(
        &dir.path().join("data"),
        &["--demo", "--header-timeout", "1", "--body-timeout", "1", "--max-connections", "16"],
    );
    c.wait_ready().await;
    let addr = host_port(&c);

    // slow headers: one header line a second never finishes the request; the server closes
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /catalog HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut closed = false;
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        if slow.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).is_err() {
            closed = true;
            break;
        }
        let (_, gone) = read_until_closed(&mut slow, Duration::from_millis(10));
        if gone {
            closed = true;
            break;
        }
    }
    assert!(closed, "a slow-header client kept its connection for {:?}", started.elapsed());

    // slow body: the headers promise 100 bytes, 10 come; the answer is 408, not a wait for ever
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body
        .write_all(
            b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/sparql-query\r\nContent-Length: 100\r\n\r\nASK { ?s ",
        )
        .unwrap();
    let (answer, _) = read_until_closed(&mut slow_body, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");

    // a flood of idle connections (four times the limit): each is closed after the header time
    // limit, and an ordinary request gets through meanwhile
    let idle: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let r = reqwest::Client::new()
        .get(c.url("/healthz"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("an ordinary request is answered while idle connections flood the node");
    assert_eq!(r.status(), 200);
    // the idle ones were accepted in turn and closed by the header limit (none still open long
    // after it)
    let mut still_open = 0;
    for mut s in idle {
        let (_, gone) = read_until_closed(&mut s, Duration::from_secs(15));
        still_open += usize::from(!gone);
    }
    assert_eq!(still_open, 0);
    let r = reqwest::get(c.url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn replays_of_the_past_are_bounded_per_node_and_per_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cireg::start(
        &dir.path().join("data"),
        &[
            "--history-max-events",
            "4",
            "--sparql-slots",
            "2",
            "--sparql-caller-share",
            "1",
            "--history-rate",
            "20",
            // the node restarts below on another port: its base stays
            "--public-base",
            "http://registry.test",
        ],
    );
    c.wait_ready().await;
    for name in ["provider.registered", "dataset.published"] {
        let (status, body) = c.post_event(&example(name)).await;
        assert_eq!(status, 201, "{body}");
    }
    // `?at=` tells seconds apart: the instants asked for are a second away from any event
    let instant = || time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let early = instant();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..4 {
        let mut e = example("dataset.published");
        e["id"] = json!(format!("more-{i}"));
        e["subject"] = json!(format!("more-{i}"));
        let (status, body) = c.post_event(&e).await;
        assert_eq!(status, 201, "{body}");
    }
    c.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let late = instant();
    let http = reqwest::Client::new();
    let at = |c: &Cireg, instant: String| {
        let (http, url) = (http.clone(), c.url("/catalog.ttl"));
        async move { http.get(url).query(&[("at", instant.as_str())]).send().await.unwrap() }
    };
    // the node kept its catalogue's history: any instant is answered from it, however many
    // events came before, and without counting against the caller's replays
    for _ in 0..25 {
        let r = at(&c, late.clone()).await;
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("more-3"));
    }
    let body = at(&c, early.clone()).await.text().await.unwrap();
    assert!(body.contains("breast-mri-screening-2024") && !body.contains("more-0"), "{body}");

    // a node whose history is gone (an upgrade from a version without one) resumes it after a
    // gap, and answers instants inside the gap by replaying the log from sequence 1
    // (a second later: the history resumes at its restart's second, which must be after `late`'s)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.stop();
    std::fs::remove_file(dir.path().join("data/history.redb")).unwrap();
    c.restart();
    let restarted = std::time::Instant::now();
    c.wait_ready().await;
    let at = |instant: String| at(&c, instant);
    // an instant within the first 4 events replays; a later one is refused, naming `at`
    let r = at(early.clone()).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("breast-mri-screening-2024") && !body.contains("more-0"), "{body}");
    let r = at(late).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], json!(format!("{}/problems/history-too-long", c.base)));
    assert_eq!(p["errors"][0]["pointer"], json!("at"));

    // a flood from one caller: its share replays, the rest are told to come back; nothing fails
    let flood: Vec<_> = (0..8).map(|_| tokio::spawn(at(early.clone()))).collect();
    let mut statuses = Vec::new();
    for f in flood {
        let r = f.await.unwrap();
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").is_some()));
    }
    assert!(statuses.iter().all(|(s, retry)| *s == 200 || (*s == 429 && *retry)), "{statuses:?}");
    assert!(statuses.iter().any(|(s, _)| *s == 200), "{statuses:?}");
    // and a caller that keeps asking runs out of its replays per minute (20, burst 20)
    let mut limited = None;
    for i in 0..30 {
        let r = at(early.clone()).await;
        if r.status() == 429 {
            let p: Value = r.json().await.unwrap();
            limited = Some((i, p["title"].as_str().unwrap_or_default().to_owned()));
            break;
        }
    }
    let (after, title) = limited.expect("30 more replays within a minute were all served");
    // the replays above used the burst (the flood's turned-away ones never got to the rate): the
    // rest of it, and one more each 3 s since the restart, remain
    let used = 2 + statuses.iter().filter(|(s, _)| *s == 200).count();
    let refilled = (restarted.elapsed().as_secs_f64() / 3.0).ceil() as usize;
    assert!(after <= 20 - used + refilled, "{after} replays served after {used}, {refilled} refilled");
    assert!(title.contains("replays"), "{title}");
}

/// Behind a trusted proxy, each client the proxy names in `X-Forwarded-For` has its own share of
/// the evaluation slots; a client cannot borrow another's by writing the header itself.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_have_their_own_shares() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(
        &dir.path().join("data"),
        &[
            "--demo",
            "--sparql-timeout",
            "0.5",
            "--sparql-slots",
            "2",
            "--sparql-caller-share",
            "1",
            "--trusted-proxy",
            "127.0.0.1",
        ],
    );
    c.wait_ready().await;
    let query = cireg_testkit::sparql::in_memory_cross_product();
    let two_at_once = |first: &'static str, second: &'static str| {
        let (url, query) = (c.url("/sparql"), query.clone());
        async move {
            let send = |xff: &'static str| {
                let (url, query) = (url.clone(), query.clone());
                tokio::spawn(async move {
                    let r = reqwest::Client::new()
                        .get(url)
                        .query(&[("query", query)])
                        .header("x-forwarded-for", xff)
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                })
            };
            let (a, b) = (send(first), send(second));
            let mut statuses = vec![a.await.unwrap(), b.await.unwrap()];
            statuses.sort_unstable();
            statuses
        }
    };
    // two clients the proxy names: each runs (and times out)
    assert_eq!(two_at_once("198.51.100.1", "198.51.100.2").await, [503, 503]);
    // the same client twice: its share is one
    assert_eq!(two_at_once("198.51.100.1", "198.51.100.1").await, [429, 503]);
    // what a client wrote before the proxy's entry is not believed
    assert_eq!(two_at_once("203.0.113.1, 198.51.100.1", "203.0.113.2, 198.51.100.1").await, [429, 503]);
}
