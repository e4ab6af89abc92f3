//! The public SPARQL endpoint next to its engine: the same queries over HTTP to `cireg serve`
//! and evaluated in-process by Oxigraph on a store bulk-loaded with exactly the public quads
//! (union default graph, results serialised the same way), interleaved in one run. The ratio is
//! what the registry adds to its engine: HTTP, the protocol, admission, the store layout.

use std::{net::IpAddr, sync::Arc, time::Instant};

use bytes::Bytes;
use cireg_log::{EmbeddedLog, EventLog, StoredEvent};
use cireg_projector::PublicBase;
use oxigraph::{
    io::RdfFormat,
    model::GraphName,
    sparql::{results::QueryResultsFormat, QueryResults, SparqlEvaluator},
    store::Store,
};

use super::{
    generated_events, generated_studies, percentile, projector_in, query_stores, BenchServer, ProviderDataset,
};

const DCAT: &str = "http://www.w3.org/ns/dcat#";
const DCT: &str = "http://purl.org/dc/terms/";
const EUCAIM: &str = "https://hyperontology.eucaim.cancerimage.eu/#";

/// The queries of the comparison: what federated clients and catalogue users ask.
fn queries(one_dataset: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ASK {}", "ASK {}".to_owned()),
        ("count datasets", format!("SELECT (COUNT(?d) AS ?n) WHERE {{ ?d a <{DCAT}Dataset> }}")),
        (
            "datasets whose title contains a word",
            format!(
                "SELECT ?d ?t WHERE {{ ?d a <{DCAT}Dataset> ; <{DCT}title> ?t FILTER(CONTAINS(LCASE(STR(?t)), \"lung\")) }}"
            ),
        ),
        (
            "datasets per modality (facet)",
            format!(
                "SELECT ?m (COUNT(DISTINCT ?d) AS ?n) WHERE {{ ?d a <{DCAT}Dataset> ; <{EUCAIM}hasImageModality> ?m }} GROUP BY ?m ORDER BY DESC(?n)"
            ),
        ),
        ("one dataset's graph", format!("CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{one_dataset}> {{ ?s ?p ?o }} }}")),
        (
            "datasets per country × cancer type",
            format!(
                "SELECT ?country ?condition (COUNT(DISTINCT ?d) AS ?n) WHERE {{ ?d a <{DCAT}Dataset> ; <{DCT}spatial> ?country ; <{EUCAIM}hasCondition> ?condition }} GROUP BY ?country ?condition"
            ),
        ),
        (
            "OPTIONAL + ORDER BY + a page of 50",
            format!(
                "SELECT ?d ?t ?modified WHERE {{ ?d a <{DCAT}Dataset> ; <{DCT}title> ?t OPTIONAL {{ ?d <{DCT}modified> ?modified }} }} ORDER BY DESC(?modified) ?t LIMIT 50 OFFSET 100"
            ),
        ),
    ]
}

/// Evaluates `query` as Oxigraph's own server does with `--union-default-graph`, and serialises
/// the results as the endpoint would (JSON results, Turtle graphs). Returns the body's size.
fn engine(store: &Store, query: &str) -> anyhow::Result<usize> {
    let mut prepared = SparqlEvaluator::new().parse_query(query)?;
    prepared.dataset_mut().set_default_graph_as_union();
    let results = prepared.on_store(store).execute()?;
    let format = match results {
        QueryResults::Graph(_) => cireg_views::ResultsFormat::Graph(RdfFormat::Turtle),
        _ => cireg_views::ResultsFormat::Solutions(QueryResultsFormat::Json),
    };
    let body = cireg_views::write_results(results, format, Vec::new(), usize::MAX).map_err(anyhow::Error::msg)?;
    Ok(body.len())
}

fn accept_for(query: &str) -> &'static str {
    if query.starts_with("CONSTRUCT") {
        "text/turtle"
    } else {
        "application/sparql-results+json"
    }
}

/// Folds `datasets` generated datasets (and `studies` studies of one more dataset) into a store
/// with its public mirror, and compares the endpoint with the engine on the mirror's quads.
pub async fn bench_sparql(datasets: usize, studies: usize, runs: usize, pathological: bool) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let projector = projector_in(&tmp.path().join("store"))?;
    let mut seq = 0u64;
    let mut stored = |bytes: &[u8]| -> anyhow::Result<StoredEvent> {
        seq += 1;
        let event = cireg_model::validate_event(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(StoredEvent {
            seq,
            subject: event.subject(),
            payload: Bytes::from(bytes.to_vec()),
            appended_at_nanos: time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            node: None,
        })
    };
    let start = Instant::now();
    let mut events = generated_events(datasets)?;
    if studies > 0 {
        events.push(include_str!("../../../../schemas/examples/eu.cancerimage.dataset.published.v1.json").into());
    }
    for chunk in events.chunks(1000) {
        let batch: Vec<_> = chunk.iter().map(|e| stored(e)).collect::<Result<_, _>>()?;
        projector.apply_batch(&batch)?;
    }
    // the studies go to the example dataset pushed above
    let example: [ProviderDataset; 1] =
        [("synthetic-breast-consortium".to_owned(), "breast-mri-screening-2024".to_owned())];
    for from in (0..studies).step_by(20_000) {
        let batch: Vec<_> = generated_studies(from..(from + 20_000).min(studies), &example)?
            .iter()
            .map(|e| stored(e))
            .collect::<Result<_, _>>()?;
        projector.apply_batch(&batch)?;
    }
    let folded = start.elapsed().as_secs_f64();
    let stores = query_stores(&projector)?;
    // the engine's store: exactly the quads the public endpoint can see
    let public: Vec<_> =
        stores.public.iter().filter_map(Result::ok).filter(|q| q.graph_name != GraphName::DefaultGraph).collect();
    let raw = Store::open(tmp.path().join("engine"))?;
    let mut loader = raw.bulk_loader();
    loader.load_quads(public.iter().cloned())?;
    loader.commit()?;
    println!(
        "\nSPARQL at {} datasets{}: {} public quads (folded in {folded:.0} s); p50 of {runs} runs, engines interleaved",
        datasets + usize::from(studies > 0),
        if studies > 0 { format!(" and {studies} studies") } else { String::new() },
        public.len(),
    );
    let one_dataset = {
        let q = format!("SELECT ?d WHERE {{ ?d a <{DCAT}Dataset> }} LIMIT 1");
        let mut prepared = SparqlEvaluator::new().parse_query(&q)?;
        prepared.dataset_mut().set_default_graph_as_union();
        let QueryResults::Solutions(mut s) = prepared.on_store(&raw).execute()? else { anyhow::bail!("not solutions") };
        match s.next().transpose()?.and_then(|s| s.get("d").cloned()) {
            Some(oxigraph::model::Term::NamedNode(n)) => n.into_string(),
            _ => anyhow::bail!("no dataset in the store"),
        }
    };

    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&tmp.path().join("empty.redb"))?);
    let server = BenchServer::start(stores, log, PublicBase::new("http://bench.invalid")?, seq).await?;
    let addr = server.addr;
    let client = reqwest::Client::new();
    println!("{:<40} {:>12} {:>12} {:>8}", "query", "cireg ms", "engine ms", "ratio");
    for (label, query) in queries(&one_dataset) {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut sizes = (0, 0);
        for run in 0..=runs {
            let start = Instant::now();
            let body = client
                .get(format!("http://{addr}/sparql"))
                .query(&[("query", query.as_str())])
                .header("accept", accept_for(&query))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            let t = start.elapsed().as_secs_f64();
            let (raw, q) = (raw.clone(), query.clone());
            let start = Instant::now();
            let size = tokio::task::spawn_blocking(move || engine(&raw, &q)).await??;
            let e = start.elapsed().as_secs_f64();
            // the first run of each warms the caches of both
            if run > 0 {
                ours.push(t);
                theirs.push(e);
            }
            sizes = (body.len(), size);
        }
        let (a, b) = (percentile(&ours, 0.5), percentile(&theirs, 0.5));
        println!("{label:<40} {a:>12.2} {b:>12.2} {:>8.2}", a / b.max(1e-6));
        if sizes.0.abs_diff(sizes.1) > sizes.1 / 10 + 16 {
            println!("  (answers differ in size: {} vs {} bytes)", sizes.0, sizes.1);
        }
    }

    // throughput of the facet query with 8 clients at once (each from its own loopback address,
    // so that each has its own share of the evaluation slots), against 8 threads of the engine
    let facet =
        queries(&one_dataset).into_iter().find(|(l, _)| l.contains("facet")).map(|(_, q)| q).unwrap_or_default();
    let seconds = 3.0;
    let start = Instant::now();
    let mut clients = Vec::new();
    for i in 0..8u8 {
        let local: IpAddr = [127, 0, 0, 2 + i].into();
        let client = reqwest::Client::builder().local_address(local).build()?;
        let facet = facet.clone();
        clients.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed().as_secs_f64() < seconds {
                let r = client.get(format!("http://{addr}/sparql")).query(&[("query", facet.as_str())]).send().await;
                if matches!(r, Ok(r) if r.status().is_success()) {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut ours = 0;
    for c in clients {
        ours += c.await?;
    }
    let ours = ours as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..8 {
        let (raw, facet) = (raw.clone(), facet.clone());
        threads.push(std::thread::spawn(move || {
            let mut done = 0u64;
            while start.elapsed().as_secs_f64() < seconds {
                if engine(&raw, &facet).is_ok() {
                    done += 1;
                }
            }
            done
        }));
    }
    let theirs: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let theirs = theirs as f64 / start.elapsed().as_secs_f64();
    println!("{:<40} {ours:>10.0}/s {theirs:>10.0}/s {:>8.2}", "facet query, 8 clients", theirs / ours.max(1e-9));
    server.stop().await;
    if pathological {
        bench_pathological(query_stores(&projector)?, seq).await?;
    }
    Ok(())
}

use cireg_testkit::sparql::in_memory_cross_product as pathological_query;

/// CPU seconds this process has used (user + system).
fn own_cpu_seconds() -> f64 {
    cireg_testkit::process::cpu_seconds(std::process::id())
}

/// Pathological queries against a node with a 2 s SPARQL limit: 8 at once from one caller, then
/// 100 in a row, while another caller asks an ordinary query; when each was answered, and the
/// CPU the process used in the second after the last answer.
pub async fn bench_pathological(stores: cireg_views::QueryStores, seq: u64) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&tmp.path().join("empty.redb"))?);
    let limit = std::time::Duration::from_secs(2);
    let server =
        BenchServer::start_with_sparql_timeout(stores, log, PublicBase::new("http://bench.invalid")?, seq, limit)
            .await?;
    let addr = server.addr;
    let attacker = reqwest::Client::new();
    let ordinary = reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, 2])).build()?;
    let count = format!("SELECT (COUNT(?d) AS ?n) WHERE {{ ?d a <{DCAT}Dataset> }}");
    let ask = |client: reqwest::Client, query: String| async move {
        let start = Instant::now();
        let status = client.get(format!("http://{addr}/sparql")).query(&[("query", query)]).send().await?.status();
        anyhow::Ok((status.as_u16(), start.elapsed().as_secs_f64()))
    };
    println!("\npathological SPARQL (a 2 s limit; 8·10⁹ in-memory combinations each)");
    // 8 at once, and the ordinary caller meanwhile
    let burst: Vec<_> = (0..8).map(|_| tokio::spawn(ask(attacker.clone(), pathological_query()))).collect();
    let mut ordinary_times = Vec::new();
    for _ in 0..10 {
        let (status, t) = ask(ordinary.clone(), count.clone()).await?;
        anyhow::ensure!(status == 200, "an ordinary query got {status} during the burst");
        ordinary_times.push(t);
    }
    let mut answers = Vec::new();
    for b in burst {
        answers.push(b.await??);
    }
    let slowest = answers.iter().map(|(_, t)| *t).fold(0.0, f64::max);
    let timed_out = answers.iter().filter(|(s, _)| *s == 503).count();
    let refused = answers.iter().filter(|(s, _)| *s == 429).count();
    let before = own_cpu_seconds();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let after_burst = own_cpu_seconds() - before;
    println!(
        "8 at once: {timed_out} × 503 at the limit, {refused} × 429 (over the caller's share); slowest answer {slowest:.2} s; \
         ordinary queries meanwhile: 10 × 200, p50 {:.1} ms, max {:.1} ms; CPU in the second after: {after_burst:.2} s",
        percentile(&ordinary_times, 0.5),
        percentile(&ordinary_times, 1.0)
    );
    let mut slowest = 0.0f64;
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let (status, t) = ask(attacker.clone(), pathological_query()).await?;
        *statuses.entry(status).or_insert(0) += 1;
        slowest = slowest.max(t);
    }
    let before = own_cpu_seconds();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let after_row = own_cpu_seconds() - before;
    println!("100 in a row: {statuses:?}; slowest answer {slowest:.2} s; CPU in the second after: {after_row:.2} s");
    server.stop().await;
    Ok(())
}
