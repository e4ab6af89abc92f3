//! Request latency per endpoint, for `/metrics`: a Prometheus histogram per route template (not
//! per path, so a crawler cannot grow it), method and status class.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

/// Upper bounds of the histogram's buckets, in seconds: from a read answered from memory to a
/// SPARQL query at its time limit.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What a request is counted under: route template, method, status class ("2xx").
type Key = (String, String, &'static str);

#[derive(Default)]
struct Histogram {
    /// Requests at or under each bound (not cumulative here; summed when written).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The latencies of every request the router answered.
#[derive(Default)]
pub struct HttpMetrics {
    histograms: Mutex<BTreeMap<Key, Histogram>>,
}

impl HttpMetrics {
    fn observe(&self, key: Key, seconds: f64) {
        let mut histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        let h = histograms.entry(key).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The histogram in the Prometheus text format.
    pub fn write(&self, out: &mut String) {
        let name = "cireg_http_request_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time to answer a request (to its response head), per route template, method and status class.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let histograms = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, method, status), h) in histograms.iter() {
            let labels = format!("route=\"{}\",method=\"{}\",status=\"{status}\"", escape(route), escape(method));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware: times each request to its response head under its route template (`unmatched`
/// for paths no route has).
pub async fn record(State(metrics): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics.observe((route, method, status), start.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        let metrics = HttpMetrics::default();
        let key = || ("/sparql".to_owned(), "GET".to_owned(), "2xx");
        metrics.observe(key(), 0.0005);
        metrics.observe(key(), 0.2);
        metrics.observe(key(), 100.0);
        let mut out = String::new();
        metrics.write(&mut out);
        let line = |le: &str| {
            let prefix = format!("cireg_http_request_duration_seconds_bucket{{route=\"/sparql\",method=\"GET\",status=\"2xx\",le=\"{le}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("{le}: {out}"))
                .to_owned()
        };
        assert_eq!(line("0.001"), "1");
        assert_eq!(line("0.1"), "1");
        assert_eq!(line("0.25"), "2");
        assert_eq!(line("30"), "2");
        assert_eq!(line("+Inf"), "3");
        assert!(out.contains("_count{route=\"/sparql\",method=\"GET\",status=\"2xx\"} 3"), "{out}");
    }
}
