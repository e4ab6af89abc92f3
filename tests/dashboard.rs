//! The operator kit: a real Prometheus, configured with `deploy/prometheus/cireg.yml`, scrapes a
//! real node, and every query of the Grafana dashboard (`deploy/grafana/cireg.json`) returns
//! series; every metric the dashboard names is in `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{repo_root, Cireg};

/// `$PROMETHEUS_BIN`, else `prometheus` on `PATH`, else Debian's `/usr/bin/prometheus`; a missing
/// one fails the test and says how to install it (scripts/ensure-deps.sh --tests does).
fn prometheus_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("PROMETHEUS_BIN") {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    let bin = on_path.unwrap_or_else(|| "/usr/bin/prometheus".into());
    assert!(
        bin.is_file(),
        "prometheus is not installed: `apt-get install prometheus` (scripts/ensure-deps.sh --tests), or set PROMETHEUS_BIN"
    );
    bin
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The dashboard's queries with their panel titles.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("deploy/grafana/cireg.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap().to_owned();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            queries.push((title.clone(), target["expr"].as_str().unwrap().to_owned()));
        }
    }
    queries
}

/// The `cireg_…` names in a query.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("cireg_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_answers_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let node = Cireg::start(&dir.path().join("node"), &["--demo"]);
    node.wait_ready().await;
    let client = reqwest::Client::new();
    // requests of several endpoints and outcomes, so the latency histogram has series
    let traffic = |client: reqwest::Client, node_url: String| async move {
        for path in ["/", "/api/v1/datasets?q=lung", "/sparql?query=ASK%7B%7D", "/catalog.ttl", "/no-such-page"] {
            let _ = client.get(format!("{node_url}{path}")).send().await.unwrap().bytes().await;
        }
    };
    traffic(client.clone(), node.listen.clone()).await;

    // every name the dashboard uses is exposed, before Prometheus is asked anything
    let exposed = client.get(node.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let samples: BTreeSet<&str> =
        exposed.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    let queries = dashboard_queries();
    for (title, expr) in &queries {
        for name in metric_names(expr) {
            assert!(samples.contains(name.as_str()), "panel {title:?} uses {name}, which /metrics lacks:\n{exposed}");
        }
    }

    // the deployed scrape configuration, pointed at this node and scraping every second
    let config = std::fs::read_to_string(repo_root().join("deploy/prometheus/cireg.yml")).unwrap();
    let target = node.listen.trim_start_matches("http://").to_owned();
    assert!(config.contains("\"127.0.0.1:8080\"") && config.contains("scrape_interval: 15s"));
    let config = config.replace("127.0.0.1:8080", &target).replace("scrape_interval: 15s", "scrape_interval: 1s");
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = cireg_testkit::free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Prometheus(
        Command::new(prometheus_bin())
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts"),
    );
    let query = |expr: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", expr.as_str())])
                .send()
                .await
                .ok()?;
            r.json::<Value>().await.ok()
        }
    };
    let prometheus_log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    // scraped a few times, with traffic between the scrapes (rates need two samples)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        traffic(client.clone(), node.listen.clone()).await;
        let scrapes = query("count_over_time(up{job=\"cireg\"}[1m])".into()).await;
        let up = query("up{job=\"cireg\"}".into()).await;
        let n = scrapes.as_ref().and_then(|v| v["data"]["result"][0]["value"][1].as_str()?.parse::<u32>().ok());
        let is_up = up.as_ref().and_then(|v| v["data"]["result"][0]["value"][1].as_str()) == Some("1");
        if is_up && n.is_some_and(|n| n >= 4) {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus did not scrape the node; its log:\n{}", prometheus_log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (title, expr) in &queries {
        // Grafana's interval variable, as Grafana would fill it at this scrape interval
        let promql = expr.replace("$__rate_interval", "30s");
        let answer = query(promql.clone()).await.unwrap_or_else(|| panic!("no answer to {promql}"));
        assert_eq!(answer["status"], "success", "panel {title:?}: {promql}: {answer}");
        let result = answer["data"]["result"].as_array().unwrap();
        assert!(!result.is_empty(), "panel {title:?}: {promql} has no series");
    }
    // the per-endpoint latency has a series of each route template the traffic reached, and
    // the unmatched path under its own label, not its path
    let routes = query("sum by (route) (cireg_http_request_duration_seconds_count)".into()).await.unwrap();
    let routes: BTreeSet<&str> =
        routes["data"]["result"].as_array().unwrap().iter().filter_map(|s| s["metric"]["route"].as_str()).collect();
    for route in ["/", "/api/v1/datasets", "/sparql", "/catalog.ttl", "/metrics", "unmatched"] {
        assert!(routes.contains(route), "{route} not in {routes:?}");
    }
    assert!(!routes.contains("/no-such-page"));
}
