//! `cireg bench`: how fast events go in and get projected, next to the raw limits measured in
//! the same run on the same machine (raw JetStream publish, raw Oxigraph bulk load). Starts its
//! own nats-server so it never touches a real deployment. Prints ratios; asserts nothing.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use bytes::Bytes;
use cireg_ingest::{Ingest, ProfileGate, Sender};
use cireg_log::{EmbeddedLog, EventLog, JetStreamLog, JetStreamOptions};
use cireg_projector::{Projector, PublicBase};
use futures::StreamExt;
use oxigraph::{model::GraphName, store::Store};
use serde_json::{json, Value};

mod sparql;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Number of dataset events to generate.
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Events in flight at once during ingest and raw publish.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Number of study events to ingest and project (0: skip the study benchmarks).
    #[arg(long, default_value_t = 20_000)]
    studies: usize,
    /// Number of studies in the store the FHIR search latency is measured at.
    #[arg(long, default_value_t = 1_000_000)]
    search_studies: usize,
    /// Catalogue sizes (numbers of datasets) the SPARQL endpoint is compared with its engine at
    /// (empty: skip).
    #[arg(long, value_delimiter = ',', default_value = "2000")]
    sparql_datasets: Vec<usize>,
    /// Studies in the store during the SPARQL comparison (the public endpoint must not notice).
    #[arg(long, default_value_t = 0)]
    sparql_studies: usize,
    /// Timed runs of each SPARQL query.
    #[arg(long, default_value_t = 15)]
    sparql_runs: usize,
    /// Run only the SPARQL comparison.
    #[arg(long)]
    sparql_only: bool,
    /// Run only the study benchmarks (ingest, projection, FHIR search at `--search-studies`).
    #[arg(long)]
    studies_only: bool,
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// The process's peak resident memory so far (`VmHWM`), in bytes.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

pub(crate) fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".to_owned(), |b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)))
}

fn generated_events(n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let template: Value =
        serde_json::from_str(include_str!("../../../schemas/examples/eu.cancerimage.dataset.published.v1.json"))?;
    let provider: Value =
        serde_json::from_str(include_str!("../../../schemas/examples/eu.cancerimage.provider.registered.v1.json"))?;
    // the demo's 40 datasets as patterns: nine cancer types, several modalities, body parts,
    // countries and access levels, so search facets have the variety of a real catalogue
    let patterns: Vec<Value> = crate::demo::demo_events()
        .into_iter()
        .filter(|e| e["type"] == json!("eu.cancerimage.dataset.published.v1"))
        .map(|e| e["data"].clone())
        .collect();
    let mut out = vec![serde_json::to_vec(&provider)?];
    for i in 0..n {
        let mut e = template.clone();
        e["id"] = json!(format!("bench-{i}"));
        e["subject"] = json!(format!("bench-dataset-{i}"));
        if let Some(pattern) = patterns.get(i % patterns.len().max(1)) {
            e["data"] = pattern.clone();
        }
        e["data"]["numberOfSubjects"] = json!(100 + i % 900);
        e["data"]["title"]["en"] = json!(format!("Benchmark dataset {i} (synthetic)"));
        out.push(serde_json::to_vec(&e)?);
    }
    Ok(out)
}

/// Seconds to publish `payloads` to a plain JetStream stream, acknowledged, `concurrency` at once:
/// the ceiling for the NATS log.
async fn raw_publish(client: &async_nats::Client, payloads: &[Vec<u8>], concurrency: usize) -> anyhow::Result<f64> {
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let start = Instant::now();
    let acks: Vec<_> = futures::stream::iter(payloads.iter().enumerate())
        .map(|(i, e)| {
            let js = js.clone();
            let payload = Bytes::from(e.clone());
            async move { js.publish(format!("bench.raw.{i}"), payload).await?.await.map_err(anyhow::Error::from) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    acks.into_iter().collect::<Result<Vec<_>, _>>().context("raw publish")?;
    Ok(secs)
}

/// A file stream of `name` on `subjects` that answers direct gets, as the registry's log does.
async fn direct_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    subjects: &str,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    let config = async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        allow_direct: true,
        ..Default::default()
    };
    Ok(js.create_stream(config).await?)
}

/// Seconds for the log operations ingest asks of JetStream per new study, without ingest's own
/// work: a publish with the event's id (deduplication) and the subject's expected last sequence
/// (optimistic concurrency), acknowledged, then a direct get of the subject's consent (absent).
/// `concurrency` at once: the ceiling of ingest into the NATS log on this server.
async fn raw_ingest_ops(client: &async_nats::Client, payloads: &[Vec<u8>], concurrency: usize) -> anyhow::Result<f64> {
    let js = async_nats::jetstream::new(client.clone());
    let stream = direct_stream(&js, "BENCH_OPS", "bench.ops.>").await?;
    let start = Instant::now();
    let outcomes: Vec<anyhow::Result<()>> = futures::stream::iter(payloads.iter().enumerate())
        .map(|(i, e)| {
            let (js, stream) = (js.clone(), stream.clone());
            let publish = async_nats::jetstream::message::PublishMessage::build()
                .payload(Bytes::from(e.clone()))
                .message_id(format!("ops-{i}"))
                .expected_last_subject_sequence(0);
            async move {
                js.send_publish(format!("bench.ops.study.{i}"), publish).await?.await?;
                let consent = format!("bench.ops.consent.{}", i / STUDIES_PER_SUBJECT);
                match stream.direct_get_last_for_subject(consent).await {
                    Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e.into()),
                    Ok(_) => anyhow::bail!("a consent that was never published"),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    outcomes.into_iter().collect::<anyhow::Result<Vec<()>>>().context("raw ingest operations")?;
    Ok(secs)
}

/// Seconds to look up the last message of `n` subjects (half of them absent), `concurrency` at
/// once, through the JetStream API (what the log's `last_seq_of_subject` does: answered by the
/// stream leader) and by direct get: what ingest pays per aggregate it reads.
async fn raw_lookups(client: &async_nats::Client, n: usize, concurrency: usize) -> anyhow::Result<(f64, f64)> {
    let js = async_nats::jetstream::new(client.clone());
    let stream = direct_stream(&js, "BENCH_LOOKUP", "bench.lookup.>").await?;
    for i in 0..n / 2 {
        js.publish(format!("bench.lookup.{i}"), Bytes::from_static(b"x")).await?.await?;
    }
    let start = Instant::now();
    let found: Vec<bool> = futures::stream::iter(0..n)
        .map(|i| {
            let stream = stream.clone();
            async move { stream.get_last_raw_message_by_subject(&format!("bench.lookup.{i}")).await.is_ok() }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let api = start.elapsed().as_secs_f64();
    anyhow::ensure!(found.iter().filter(|f| **f).count() == n / 2, "lookups through the API went wrong");
    let start = Instant::now();
    let found: Vec<bool> = futures::stream::iter(0..n)
        .map(|i| {
            let stream = stream.clone();
            async move { stream.direct_get_last_for_subject(format!("bench.lookup.{i}")).await.is_ok() }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let direct = start.elapsed().as_secs_f64();
    anyhow::ensure!(found.iter().filter(|f| **f).count() == n / 2, "direct gets went wrong");
    Ok((api, direct))
}

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

/// Sends `setup` one by one (the provider, the dataset: what the timed events build on), then
/// times `events` sent `concurrency` at once (different aggregates).
async fn ingest_all(ingest: &Ingest, setup: &[Vec<u8>], events: &[Vec<u8>], concurrency: usize) -> anyhow::Result<f64> {
    for e in setup {
        ingest.submit(e, &Sender::Operator).await.map_err(|e| anyhow::anyhow!("{:?}", e.problem()))?;
    }
    let start = Instant::now();
    // each event a task of its own, as concurrent clients' requests are
    let results: Vec<_> = futures::stream::iter(events.iter())
        .map(|e| {
            let (ingest, e) = (ingest.clone(), e.clone());
            async move { tokio::spawn(async move { ingest.submit(&e, &Sender::Operator).await }).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let results: Vec<_> = results.into_iter().collect::<Result<_, _>>()?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        anyhow::bail!("ingest refused a generated event: {:?}", e.problem());
    }
    Ok(secs)
}

async fn project_all(log: Arc<dyn EventLog>, projector: &Projector) -> anyhow::Result<f64> {
    let start = Instant::now();
    cireg_projector::rebuild(projector, log, "cireg-bench", |_, _| {}).await?;
    Ok(start.elapsed().as_secs_f64())
}

/// Folds the whole log as a running node follows it: batches of at most the live runner's size,
/// each applied as it comes (no read ahead), into a store that must survive a crash between any
/// two of them.
async fn follow_all(log: Arc<dyn EventLog>, projector: &Projector) -> anyhow::Result<f64> {
    let start = Instant::now();
    let end = log.last_seq().await?;
    let mut follower = log.follow(1, "cireg-bench-follow").await?;
    let max = cireg_projector::RunOptions::default().max_batch;
    let mut checkpoint = 0;
    while checkpoint < end {
        let batch = follower.next_batch(max, std::time::Duration::from_secs(10)).await?;
        anyhow::ensure!(!batch.is_empty(), "the log ended at {checkpoint} of {end}");
        let p = projector.clone();
        checkpoint = tokio::task::spawn_blocking(move || p.apply_batch(&batch)).await??;
        follower.confirm().await?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// A projector as `cireg serve` runs it: a store and its public mirror, under `dir`.
fn projector_in(dir: &std::path::Path) -> anyhow::Result<Projector> {
    std::fs::create_dir_all(dir)?;
    let projector = Projector::new(Store::open(dir.join("store"))?, PublicBase::new("http://bench.invalid")?)?;
    Ok(projector.with_public_mirror(Store::open(dir.join("public"))?)?)
}

/// The stores a projector's SPARQL queries read.
fn query_stores(projector: &Projector) -> anyhow::Result<cireg_views::QueryStores> {
    let public = projector.public_store().cloned().context("the projector keeps no public mirror")?;
    Ok(cireg_views::QueryStores { public, full: projector.store().clone() })
}

/// One update per generated dataset: changes that replace graphs go through transactions.
fn generated_updates(n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let template: Value =
        serde_json::from_str(include_str!("../../../schemas/examples/eu.cancerimage.dataset.updated.v1.json"))?;
    (0..n)
        .map(|i| {
            let mut e = template.clone();
            e["id"] = json!(format!("bench-update-{i}"));
            e["subject"] = json!(format!("bench-dataset-{i}"));
            e.as_object_mut().map(|o| o.remove("expectedversion"));
            Ok(serde_json::to_vec(&e)?)
        })
        .collect()
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.sparql_only {
        return bench_sparql(&args).await;
    }
    if args.studies_only {
        return bench_studies(args.studies, args.search_studies, args.concurrency).await;
    }
    let n = args.events.max(1);
    let events = generated_events(n)?;
    let bytes: usize = events.iter().map(Vec::len).sum();
    println!(
        "cireg bench: {n} dataset.published events, {} KiB of JSON, concurrency {}",
        bytes / 1024,
        args.concurrency
    );
    let server = cireg_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await?;
    let tmp = tempfile::tempdir()?;

    // raw JetStream publish of the same payloads: the ceiling for the NATS log
    let raw_publish = raw_publish(&client, &events[1..], args.concurrency).await?;

    // ingest through validation into the JetStream log
    let jet: Arc<dyn EventLog> = Arc::new(JetStreamLog::open(client.clone(), &JetStreamOptions::default()).await?);
    let ingest_jet = ingest_all(&Ingest::new(jet.clone()), &events[..1], &events[1..], args.concurrency).await?;
    // ... and into the embedded log
    let embedded: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&tmp.path().join("log.redb"))?);
    let ingest_embedded =
        ingest_all(&Ingest::new(embedded.clone()), &events[..1], &events[1..], args.concurrency).await?;

    // ... and into an embedded log through the SHACL gate (the dataset mapped and validated first)
    let gated_log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&tmp.path().join("gated.redb"))?);
    let gate = ProfileGate::load(PublicBase::new("http://bench.invalid")?)?;
    let ingest_gated =
        ingest_all(&Ingest::new(gated_log).with_gate(gate), &events[..1], &events[1..], args.concurrency).await?;

    // projection from each log into a fresh store (new datasets: bulk-loaded batches)
    let jet_projector = projector_in(&tmp.path().join("store-jet"))?;
    let project_jet = project_all(jet, &jet_projector).await?;
    let store = jet_projector.store().clone();
    let stores = query_stores(&jet_projector)?;
    let embedded_projector = projector_in(&tmp.path().join("store-embedded"))?;
    let project_embedded = project_all(embedded.clone(), &embedded_projector).await?;
    // then one update of each: graphs replaced in transactions
    let updates = generated_updates(n)?;
    let embedded_ingest = Ingest::new(embedded.clone());
    for u in &updates {
        embedded_ingest.submit(u, &Sender::Operator).await.map_err(|e| anyhow::anyhow!("{:?}", e.problem()))?;
    }
    let project_updates = project_all(embedded.clone(), &embedded_projector).await?;

    // raw Oxigraph bulk load of exactly the quads the projection wrote
    let quads: Vec<_> = store
        .iter()
        .filter_map(Result::ok)
        // the projector's bookkeeping is in the default graph
        .filter(|q| q.graph_name != GraphName::DefaultGraph)
        .collect();
    let raw_store = Store::open(tmp.path().join("store-raw"))?;
    let start = Instant::now();
    let mut loader = raw_store.bulk_loader();
    loader.load_quads(quads.iter().cloned())?;
    loader.commit()?;
    let raw_load = start.elapsed().as_secs_f64();

    // the catalogue: whole (streamed) and paged, next to a raw serialisation of the same store
    let catalogue = catalogue_timings(&store)?;
    // the search API's work: index built from the projection, then queries answered from memory;
    // and the same queries over HTTP, JSON included, from the server the registry runs
    let search = search_timings(&store)?;
    let search_http = search_http_timings(stores.clone(), embedded.clone()).await?;

    let raw_pub_rate = rate(n, raw_publish);
    let raw_load_rate = rate(n, raw_load);
    let row = |label: &str, secs: f64, raw: f64| {
        println!("{label:<44} {:>12.0} {:>10.2}", rate(n, secs), rate(n, secs) / raw);
    };
    println!();
    println!("{:<44} {:>12} {:>10}", "", "events/s", "vs raw");
    row("raw JetStream publish (same payloads)", raw_publish, raw_pub_rate);
    row("ingest → JetStream log (validate + append)", ingest_jet, raw_pub_rate);
    row("ingest → embedded log (validate + append)", ingest_embedded, raw_pub_rate);
    row("ingest → embedded log, with the SHACL gate", ingest_gated, raw_pub_rate);
    row(&format!("raw Oxigraph bulk load ({} quads)", quads.len()), raw_load, raw_load_rate);
    row("projection from JetStream log", project_jet, raw_load_rate);
    row("projection from embedded log", project_embedded, raw_load_rate);
    row("projection of one update each (transactions)", project_updates, raw_load_rate);
    println!();
    println!("{:<44} {:>12} {:>10}", "catalogue", "datasets/s", "vs raw");
    let crow = |label: &str, secs: f64| {
        println!("{label:<44} {:>12.0} {:>10.2}", rate(n, secs), rate(n, secs) / rate(n, catalogue.raw));
    };
    crow("raw N-Triples dump of the store", catalogue.raw);
    crow("whole catalogue, N-Triples", catalogue.whole);
    println!();
    println!("{:<44} {:>12} {:>10}", "catalogue page (100 datasets, Turtle)", "p50 ms", "p99 ms");
    for (label, times) in &catalogue.pages {
        println!("{label:<44} {:>12.2} {:>10.2}", percentile(times, 0.5), percentile(times, 0.99));
    }
    println!();
    println!(
        "{:<44} {:>12} {:>10}",
        format!("search ({n} datasets, index built in {:.0} ms)", search.build * 1000.0),
        "p50 ms",
        "p99 ms"
    );
    for (label, times) in &search.queries {
        println!("{label:<44} {:>12.2} {:>10.2}", percentile(times, 0.5), percentile(times, 0.99));
    }
    println!();
    println!("{:<44} {:>12} {:>10}", "search API over HTTP (GET /api/v1/datasets)", "p50 ms", "p99 ms");
    for (label, times) in &search_http {
        println!("{label:<44} {:>12.2} {:>10.2}", percentile(times, 0.5), percentile(times, 0.99));
    }
    println!();
    if args.studies > 0 {
        bench_studies(args.studies, args.search_studies, args.concurrency).await?;
    }
    bench_sparql(&args).await?;
    // the clients above keep their connection until here; closed first, so stopping the server
    // is not a lost connection (a client would log its reconnection attempts)
    close_nats(&client).await;
    drop(server);
    println!();
    println!("(ingest is compared with raw publish, projection with raw bulk load of the same quads; one run on a shared machine: repeat before trusting a difference under ~20%)");
    Ok(())
}

async fn bench_sparql(args: &BenchArgs) -> anyhow::Result<()> {
    for (i, &n) in args.sparql_datasets.iter().enumerate() {
        // the pathological queries once, at the first size
        sparql::bench_sparql(n, args.sparql_studies, args.sparql_runs.max(1), i == 0).await?;
    }
    Ok(())
}

struct CatalogueTimings {
    raw: f64,
    whole: f64,
    pages: Vec<(String, Vec<f64>)>,
}

pub(crate) fn percentile(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default() * 1000.0
}

/// Times the whole catalogue and pages at the start, middle and end, against the raw limit: the
/// same store serialised as N-Triples with nothing else done.
fn catalogue_timings(store: &Store) -> anyhow::Result<CatalogueTimings> {
    use oxigraph::io::{RdfFormat, RdfSerializer};
    let base = PublicBase::new("http://bench.invalid")?;
    let info = cireg_views::CatalogInfo::default();
    let start = Instant::now();
    let mut raw = RdfSerializer::from_format(RdfFormat::NTriples).for_writer(std::io::sink());
    for quad in store.iter() {
        let quad = quad?;
        raw.serialize_triple(oxigraph::model::TripleRef::new(&quad.subject, &quad.predicate, &quad.object))?;
    }
    raw.finish()?;
    let raw = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let index = cireg_views::CatalogIndex::build(store, &base)?;
    let all: Vec<_> = index.select(None);
    let page = cireg_views::CatalogPage { index: &index, datasets: &all, paging: None, nodes: &[] };
    cireg_views::write_catalog(store, &base, &info, &page, RdfFormat::NTriples, std::io::sink())?;
    let whole = start.elapsed().as_secs_f64();

    let size = 100;
    let last = all.len().div_ceil(size).max(1);
    let mut pages = Vec::new();
    for (label, page) in [("first", 1), ("middle", last.div_ceil(2)), ("last", last)] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            let slice = &all[(page - 1) * size..(page * size).min(all.len())];
            let page = cireg_views::CatalogPage { index: &index, datasets: slice, paging: None, nodes: &[] };
            cireg_views::write_catalog(store, &base, &info, &page, RdfFormat::Turtle, std::io::sink())?;
            times.push(start.elapsed().as_secs_f64());
        }
        pages.push((format!("page {page} of {last} ({label})"), times));
    }
    Ok(CatalogueTimings { raw, whole, pages })
}

struct SearchTimings {
    build: f64,
    queries: Vec<(String, Vec<f64>)>,
}

/// Builds the search index and times typical queries (facet counts included in each).
fn search_timings(store: &Store) -> anyhow::Result<SearchTimings> {
    let base = PublicBase::new("http://bench.invalid")?;
    let start = Instant::now();
    let index = cireg_views::SearchIndex::build(store, &base)?;
    let build = start.elapsed().as_secs_f64();
    let query = |text: &str, modality: &[&str], country: &[&str]| cireg_views::SearchQuery {
        text: text.to_owned(),
        modality: modality.iter().map(|s| (*s).to_owned()).collect(),
        country: country.iter().map(|s| (*s).to_owned()).collect(),
        page: 1,
        page_size: 20,
        ..Default::default()
    };
    let cases = [
        ("everything, all facets", query("", &[], &[])),
        ("free text \"breast mr\"", query("breast mr", &[], &[])),
        ("two facets (modality MR, country ESP)", query("", &["MR"], &["ESP"])),
        ("text + facet", query("benchmark", &["MR"], &[])),
    ];
    let mut queries = Vec::new();
    for (label, q) in cases {
        let mut times = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            let results = index.search(&q);
            std::hint::black_box(results.total);
            times.push(start.elapsed().as_secs_f64());
        }
        queries.push((label.to_owned(), times));
    }
    Ok(SearchTimings { build, queries })
}

/// Times the search API as a client sees it: HTTP on loopback, JSON included.
async fn search_http_timings(
    stores: cireg_views::QueryStores,
    log: Arc<dyn EventLog>,
) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    let server = BenchServer::start(stores, log, PublicBase::new("http://bench.invalid")?, 0).await?;
    let addr = server.addr;
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for (label, query) in [
        ("everything, all facets", ""),
        ("free text \"breast mr\"", "q=breast+mr"),
        ("two facets (modality MR, country ESP)", "modality=MR&country=ESP"),
        ("text + facet", "q=benchmark&modality=MR"),
    ] {
        let url = format!("http://{addr}/api/v1/datasets?{query}");
        client.get(&url).send().await?.error_for_status()?.bytes().await?; // builds the index once
        let mut times = Vec::new();
        for _ in 0..200 {
            let start = Instant::now();
            client.get(&url).send().await?.error_for_status()?.bytes().await?;
            times.push(start.elapsed().as_secs_f64());
        }
        out.push((label.to_owned(), times));
    }
    server.stop().await;
    Ok(out)
}

const BENCH_ISSUER: &str = "urn:cireg:bench";
const BENCH_AUDIENCE: &str = "cireg";

/// A researcher's token of the benchmark's key, reading every study.
pub(crate) fn bench_token(subject: &str) -> cireg_auth::DevToken {
    cireg_auth::DevToken {
        issuer: BENCH_ISSUER.into(),
        audience: BENCH_AUDIENCE.into(),
        subject: subject.into(),
        providers: Vec::new(),
        researcher: true,
        all_studies: true,
        operator: false,
        visas: Vec::new(),
        claims: cireg_auth::Claims::default(),
        lifetime: std::time::Duration::from_secs(24 * 3600),
        not_before: None,
    }
}

/// The registry's HTTP server over a store, on a free loopback port, for timing what clients see.
struct BenchServer {
    addr: std::net::SocketAddr,
    /// A researcher's token (the study views verify it on every request, as in production).
    token: String,
    verifier: cireg_auth::Verifier,
    key: cireg_auth::DevKey,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _keys: tempfile::TempDir,
}

impl BenchServer {
    async fn start(
        stores: cireg_views::QueryStores,
        log: Arc<dyn EventLog>,
        base: PublicBase,
        checkpoint: u64,
    ) -> anyhow::Result<Self> {
        Self::start_with_sparql_timeout(stores, log, base, checkpoint, std::time::Duration::from_secs(30)).await
    }

    async fn start_with_sparql_timeout(
        stores: cireg_views::QueryStores,
        log: Arc<dyn EventLog>,
        base: PublicBase,
        checkpoint: u64,
        sparql_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        // the store does not move: a fixed checkpoint, and read models built once, before the
        // first request
        let (_applied_tx, applied) = tokio::sync::watch::channel(checkpoint);
        let read_models = Arc::new(cireg_views::ReadModels::new(stores.full.clone(), base.clone(), Arc::default()));
        let models = read_models.clone();
        tokio::task::spawn_blocking(move || models.rebuild(checkpoint)).await??;
        Self::start_with_models(stores, log, base, read_models, applied, sparql_timeout).await
    }

    /// A server over `read_models`, which the caller keeps up to date, as of the checkpoints
    /// `applied` announces.
    async fn start_with_models(
        stores: cireg_views::QueryStores,
        log: Arc<dyn EventLog>,
        base: PublicBase,
        read_models: Arc<cireg_views::ReadModels>,
        applied: tokio::sync::watch::Receiver<u64>,
        sparql_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let keys = tempfile::tempdir()?;
        let (key, _) = cireg_auth::DevKey::load_or_create(&keys.path().join("key.pem")).map_err(anyhow::Error::msg)?;
        key.write_jwks(&keys.path().join("jwks.json")).map_err(anyhow::Error::msg)?;
        let (issuer, audience) = (BENCH_ISSUER, BENCH_AUDIENCE);
        let verifier = cireg_auth::Verifier::new(cireg_auth::AuthConfig {
            keys: cireg_auth::KeySource::File(keys.path().join("jwks.json")),
            issuer: issuer.into(),
            audience: audience.into(),
            claims: cireg_auth::Claims::default(),
            visa_issuers: Vec::new(),
        })
        .await
        .map_err(anyhow::Error::msg)?;
        let token = key.mint(&bench_token("bench")).map_err(anyhow::Error::msg)?;
        let state = cireg_server::AppState {
            ingest: Ingest::new(log),
            store: stores.full,
            public_store: stores.public,
            history: None,
            base,
            catalog: Arc::new(cireg_views::CatalogInfo::default()),
            read_models,
            auth: Some(verifier.clone()),
            auth_failures: Arc::default(),
            applied,
            sparql_timeout,
            admission: cireg_server::Admission::for_this_machine(),
            history_max_events: 100_000,
            trusted_proxies: Arc::default(),
            history_rate: {
                let thirty = std::num::NonZeroU32::new(30).unwrap_or(std::num::NonZeroU32::MIN);
                Arc::new(cireg_ingest::RateLimit::per_minute(thirty, thirty))
            },
            limits: cireg_server::RequestLimits::default(),
            backups: None,
            central: false,
            nodes: std::sync::Arc::default(),
            sparql_max_results: 100_000,
            sparql_memory_limit: None,
            // every FHIR request of the benchmark is a study-level read, recorded as in production
            audit: cireg_log::AuditTrail::open_embedded(&keys.path().join("audit.redb"))?,
        };
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(cireg_server::serve(listener, state, Default::default(), async move {
            let _ = stop_rx.await;
        }));
        Ok(BenchServer { addr, token, verifier, key, stop, task, _keys: keys })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Studies per subject in the generated cohort: 1 M studies of 100,000 subjects, as the Atlas.
pub(crate) const STUDIES_PER_SUBJECT: usize = 10;

/// A dataset as (provider id, dataset id).
pub(crate) type ProviderDataset = (String, String);

/// What the generated studies build on: the demo catalogue's providers and its 40 datasets (as
/// events, in order), and each dataset as (provider, dataset id).
pub(crate) fn atlas_setup() -> anyhow::Result<(Vec<Vec<u8>>, Vec<ProviderDataset>)> {
    let mut events = Vec::new();
    let mut datasets = Vec::new();
    for e in crate::demo::demo_events() {
        let kind = e["type"].as_str().unwrap_or_default();
        if kind == "eu.cancerimage.dataset.published.v1" {
            let provider = e["source"].as_str().and_then(|s| s.strip_prefix("urn:cireg:provider:"));
            let dataset = e["subject"].as_str();
            datasets.push((
                provider.context("a demo dataset's provider")?.to_owned(),
                dataset.context("a demo dataset's id")?.to_owned(),
            ));
        } else if kind != "eu.cancerimage.provider.registered.v1" {
            continue;
        }
        events.push(serde_json::to_vec(&e)?);
    }
    anyhow::ensure!(!datasets.is_empty(), "the demo has no datasets");
    Ok((events, datasets))
}

/// The providers of `datasets`, once each (what a provider's token of the benchmark names).
pub(crate) fn providers_of(datasets: &[ProviderDataset]) -> Vec<String> {
    let mut providers: Vec<String> = datasets.iter().map(|(p, _)| p.clone()).collect();
    providers.sort();
    providers.dedup();
    providers
}

/// Study registrations `range` of a cohort like the Atlas: ten studies per subject, each
/// subject in one of `datasets` (round robin, so every dataset and provider gets its share),
/// modalities and body sites from the demo's patterns, dates over ten years.
pub(crate) fn generated_studies(
    range: std::ops::Range<usize>,
    datasets: &[ProviderDataset],
) -> anyhow::Result<Vec<Vec<u8>>> {
    let template: Value =
        serde_json::from_str(include_str!("../../../schemas/examples/eu.cancerimage.study.registered.v1.json"))?;
    let kinds: [(&[&str], &str); 5] = [
        (&["MR"], "76752008"),
        (&["CT", "PT"], "39607008"),
        (&["MR"], "41216001"),
        (&["CT"], "71854001"),
        (&["MG"], "76752008"),
    ];
    range
        .map(|i| {
            let mut e = template.clone();
            let (modalities, site) = kinds[i % kinds.len()];
            let subject = i / STUDIES_PER_SUBJECT;
            let (provider, dataset) = &datasets[subject % datasets.len()];
            e["id"] = json!(format!("bench-study-{i}"));
            e["source"] = json!(format!("urn:cireg:provider:{provider}"));
            e["subject"] = json!(format!("S{subject:07}"));
            let day = (i * 7919) % 3650;
            let started = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(16_071 + day as i64);
            let series: Vec<Value> = (0..3)
                .map(|k| {
                    json!({"uid": format!("2.25.{}", 3_000_000_000u64 + (i * 3 + k) as u64), "number": k + 1,
                           "modality": modalities[k % modalities.len()], "bodySite": {"code": site},
                           "numberOfInstances": 100})
                })
                .collect();
            e["data"] = json!({
                "dataset": dataset,
                "studyInstanceUid": format!("2.25.{}", 1_000_000_000u64 + i as u64),
                "started": started.format(&time::format_description::well_known::Rfc3339)?,
                "modalities": modalities,
                "numberOfSeries": 3,
                "numberOfInstances": 300,
                "series": series,
            });
            Ok(serde_json::to_vec(&e)?)
        })
        .collect()
}

/// Study events: ingest and projection rates next to raw publish and raw bulk load of the same
/// data, then FHIR search latency over HTTP at `search_at` studies.
async fn bench_studies(n: usize, search_at: usize, concurrency: usize) -> anyhow::Result<()> {
    let (setup, datasets) = atlas_setup()?;
    let studies = generated_studies(0..n, &datasets)?;
    println!(
        "\ncireg bench, studies: {n} study.registered events, {} KiB of JSON, {} per subject, over the \
         demo's {} datasets ({} providers)",
        studies.iter().map(Vec::len).sum::<usize>() / 1024,
        STUDIES_PER_SUBJECT,
        datasets.len(),
        providers_of(&datasets).len()
    );
    let nats = cireg_testkit::NatsServer::start();
    let client = async_nats::connect(nats.url()).await?;
    // closed before the server stops (the name `client` is taken by HTTP clients below)
    let nats_client = client.clone();
    let tmp = tempfile::tempdir()?;
    let raw_publish = raw_publish(&client, &studies, concurrency).await?;
    let (lookup_api, lookup_direct) = raw_lookups(&client, n, concurrency).await?;
    let raw_ops = raw_ingest_ops(&client, &studies, concurrency).await?;

    let mut rows = Vec::new();
    let (mut raw_bytes_per_study, mut store_bytes_per_study, mut raw_load_rate) = (None, None, f64::NAN);
    for (label, log) in [
        (
            "JetStream",
            Arc::new(JetStreamLog::open(client.clone(), &JetStreamOptions::default()).await?) as Arc<dyn EventLog>,
        ),
        ("embedded", Arc::new(EmbeddedLog::open(&tmp.path().join("studies.redb"))?) as Arc<dyn EventLog>),
    ] {
        let secs = ingest_all(&Ingest::new(log.clone()), &setup, &studies, concurrency).await?;
        rows.push((format!("ingest → {label} log (validate + append)"), secs, rate(n, raw_publish)));
        // as `cireg rebuild` folds a log: a scratch store, thrown away if the fold stops
        let projector = projector_in(&tmp.path().join(format!("store-{label}")))?.into_scratch();
        let project = project_all(log.clone(), &projector).await?;
        if label == "embedded" {
            let live = projector_in(&tmp.path().join("store-follow"))?;
            let follow = follow_all(log, &live).await?;
            drop(live);
            // raw Oxigraph bulk load of the study graphs the projection wrote
            let quads: Vec<_> = projector
                .store()
                .iter()
                .filter_map(Result::ok)
                .filter(|q| q.graph_name.to_string().contains("/studies/"))
                .collect();
            let raw_store = Store::open(tmp.path().join("store-raw-studies"))?;
            let start = Instant::now();
            let mut loader = raw_store.bulk_loader();
            loader.load_quads(quads.iter().cloned())?;
            loader.commit()?;
            let raw_load = start.elapsed().as_secs_f64();
            raw_load_rate = rate(n, raw_load);
            rows.push((format!("raw Oxigraph bulk load ({} quads)", quads.len()), raw_load, rate(n, raw_load)));
            rows.push((format!("projection from {label} log, as `cireg rebuild`"), project, rate(n, raw_load)));
            rows.push((
                format!("projection from {label} log, as a node follows it (batches of ≤ 1000)"),
                follow,
                rate(n, raw_load),
            ));
            raw_store.flush()?;
            projector.store().flush()?;
            raw_bytes_per_study = Some(dir_bytes(&tmp.path().join("store-raw-studies")) as f64 / n.max(1) as f64);
            store_bytes_per_study =
                Some(dir_bytes(&tmp.path().join(format!("store-{label}"))) as f64 / n.max(1) as f64);
        } else {
            rows.push((format!("projection from {label} log, as `cireg rebuild`"), project, f64::NAN));
        }
    }
    // as a provider's client sends them: over HTTP, batches of 500, one request after another,
    // each event's token-holder checked, into a fresh embedded log
    {
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&tmp.path().join("http.redb"))?);
        let projector = projector_in(&tmp.path().join("store-http"))?;
        let base = PublicBase::new("http://bench.invalid")?;
        let server = BenchServer::start(query_stores(&projector)?, log, base, 0).await?;
        let mut claims = bench_token("bench-provider");
        (claims.providers, claims.researcher) = (providers_of(&datasets), false);
        let token = server.key.mint(&claims).map_err(anyhow::Error::msg)?;
        let client = reqwest::Client::new();
        let post = |events: Vec<&Vec<u8>>| {
            let body: Vec<Value> = events.iter().filter_map(|e| serde_json::from_slice(e).ok()).collect();
            client
                .post(format!("http://{}/events", server.addr))
                .bearer_auth(&token)
                .header("content-type", "application/cloudevents-batch+json")
                .json(&body)
                .send()
        };
        let r = post(setup.iter().collect()).await?;
        anyhow::ensure!(r.status() == 200, "the setup batch: {}", r.text().await?);
        let start = Instant::now();
        for batch in studies.chunks(500) {
            let r = post(batch.iter().collect()).await?;
            anyhow::ensure!(r.status() == 200, "a batch of studies: {}", r.text().await?);
        }
        let secs = start.elapsed().as_secs_f64();
        rows.push(("ingest over HTTP, batches of 500 (embedded)".to_owned(), secs, rate(n, raw_publish)));
        server.stop().await;
    }
    println!("\n{:<44} {:>12} {:>10}", "studies", "events/s", "vs raw");
    println!("{:<44} {:>12.0} {:>10.2}", "raw JetStream publish (same payloads)", rate(n, raw_publish), 1.0);
    for (label, secs) in
        [("raw subject lookup, JetStream API (leader)", lookup_api), ("raw subject lookup, direct get", lookup_direct)]
    {
        println!("{label:<44} {:>12.0} {:>10.2}", rate(n, secs), rate(n, secs) / rate(n, raw_publish));
    }
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "raw JetStream work of an ingest (id, expected seq, + direct get)",
        rate(n, raw_ops),
        rate(n, raw_ops) / rate(n, raw_publish)
    );
    for (label, secs, raw) in &rows {
        let ratio = if raw.is_nan() { String::from("-") } else { format!("{:.2}", rate(n, *secs) / raw) };
        println!("{label:<44} {:>12.0} {ratio:>10}", rate(n, *secs));
    }
    if let Some((_, secs, _)) = rows.iter().find(|(label, _, _)| label.starts_with("ingest → JetStream")) {
        println!(
            "{:<44} {:>12} {:>10.2}",
            "ingest → JetStream against its raw JetStream work",
            "",
            rate(n, *secs) / rate(n, raw_ops)
        );
    }
    if let (Some(raw), Some(store)) = (raw_bytes_per_study, store_bytes_per_study) {
        println!("{:<44} {:>12} {:>10}", "on disk per study", "bytes", "vs raw");
        println!("{:<44} {:>12.0} {:>10.2}", "raw bulk load of the study graphs", raw, 1.0);
        println!("{:<44} {:>12.0} {:>10.2}", "projected store (embedded log, + mirror)", store, store / raw);
    }

    // `cireg rebuild` of a log of `search_at` study events, as an operator runs it (its own
    // process: projection, then compaction); FHIR search is then measured on the store it made
    let data = tmp.path().join("atlas");
    let written = write_log(&data.join("log.redb"), &setup, &datasets, search_at, concurrency).await?;
    let rebuilt = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || run_rebuild(&data)).await??
    };
    let on_disk = dir_bytes(&data.join("store")) + dir_bytes(&data.join("public"));
    println!("\n`cireg rebuild` of {search_at} study events (the log written in {written:.0} s)");
    println!("{:<44} {:>12} {:>10}", "", "studies/s", "vs raw");
    let rebuild_rate = rate(search_at, rebuilt.secs);
    let label = format!("rebuild, whole ({:.0} s)", rebuilt.secs);
    println!("{label:<44} {rebuild_rate:>12.0} {:>10.2}", rebuild_rate / raw_load_rate);
    if let Some(compaction) = rebuilt.compaction_secs {
        let projection = rebuilt.secs - compaction;
        let label = format!("  of which projection ({projection:.0} s)");
        let projection_rate = rate(search_at, projection);
        println!("{label:<44} {projection_rate:>12.0} {:>10.2}", projection_rate / raw_load_rate);
        println!("{:<44} {:>12.0} s", "  of which compaction", compaction);
    }
    println!("{:<44} {:>12}", "its peak resident memory", mib(rebuilt.peak_rss));
    println!(
        "{:<44} {:>12} {:>10}",
        "store on disk (store + public mirror)",
        mib(Some(on_disk)),
        format!("{:.0} B/study", on_disk as f64 / search_at.max(1) as f64)
    );
    let projector = projector_in(&data)?;
    let store = projector.store().clone();
    let seq = projector.checkpoint()?;
    let base = PublicBase::new("http://bench.invalid")?;
    let before = cireg_views::resident_bytes();
    let start = Instant::now();
    let index = cireg_views::StudyIndex::build(&store, &base)?;
    let build = start.elapsed().as_secs_f64();
    let after = cireg_views::resident_bytes();
    println!("\nFHIR search at {} studies (index built in {build:.1} s)", index.len());
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        println!(
            "{:<44} {:>12} {:>10}",
            "study index in memory (resident growth)",
            mib(Some(grown)),
            format!("{:.0} B/study", grown as f64 / index.len().max(1) as f64)
        );
    }
    drop(index);
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&tmp.path().join("empty.redb"))?);
    // the read models as `cireg serve` keeps them: built once, then following the projector's
    // change journal on their own thread
    let journal = Arc::new(cireg_projector::ChangeJournal::default());
    let projector = projector.with_journal(journal.clone());
    let models = Arc::new(cireg_views::ReadModels::new(store.clone(), base.clone(), journal));
    let start = Instant::now();
    {
        let models = models.clone();
        tokio::task::spawn_blocking(move || models.rebuild(seq)).await??;
    }
    let models_built = start.elapsed().as_secs_f64();
    let following = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let follower = {
        let (models, following) = (models.clone(), following.clone());
        std::thread::spawn(move || {
            while following.load(std::sync::atomic::Ordering::Relaxed) {
                if let Err(e) = models.follow_once(std::time::Duration::from_millis(100)) {
                    eprintln!("bench: the read models could not follow: {e}");
                }
            }
        })
    };
    let (applied_tx, applied) = tokio::sync::watch::channel(seq);
    let server = BenchServer::start_with_models(
        query_stores(&projector)?,
        log,
        base,
        models.clone(),
        applied,
        std::time::Duration::from_secs(30),
    )
    .await?;
    println!("{:<44} {:>12.1} s", "read models built at start (all of them)", models_built);
    let (addr, token) = (server.addr, server.token.clone());
    let client = reqwest::Client::new();
    let get = |path: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .get(format!("http://{addr}{path}"))
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await
        }
    };
    get("/fhir/ImagingStudy?_count=1".to_owned()).await?; // warms the connection and the token
    let cases = fhir_cases(search_at);
    println!("{:<44} {:>12} {:>10}", "FHIR search over HTTP (R5 Bundle)", "p50 ms", "p99 ms");
    for (label, path) in &cases {
        let mut times = Vec::new();
        for i in 0..200 {
            let start = Instant::now();
            get(path(i)).await?;
            times.push(start.elapsed().as_secs_f64());
        }
        println!("{label:<44} {:>12.2} {:>10.2}", percentile(&times, 0.5), percentile(&times, 0.99));
    }
    // one search, followed page after page by its next links: deep pages cost what the first does
    let mut times = Vec::new();
    let mut next = Some("/fhir/ImagingStudy?modality=MR&_sort=started&_count=20".to_owned());
    while let Some(url) = next.take().filter(|_| times.len() < 200) {
        let start = Instant::now();
        let body = get(url).await?;
        times.push(start.elapsed().as_secs_f64());
        let bundle: Value = serde_json::from_slice(&body)?;
        next = bundle["link"].as_array().and_then(|links| {
            let next = links.iter().find(|l| l["relation"] == "next")?;
            next["url"].as_str()?.split_once("/fhir/").map(|(_, p)| format!("/fhir/{p}"))
        });
    }
    let label = format!("pages 1 to {} of one search (cursor)", times.len());
    println!("{label:<44} {:>12.2} {:>10.2}", percentile(&times, 0.5), percentile(&times, 0.99));
    // a new study, from the projector's commit to its first appearance in a FHIR search, while
    // the index holds every study above: what the change journal and the in-place update cost
    let mut visible = Vec::new();
    for i in 0..100 {
        let bytes = generated_studies(search_at + i..search_at + i + 1, &datasets)?.remove(0);
        let event = cireg_model::validate_event(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let stored = cireg_log::StoredEvent {
            seq: seq + 1 + i as u64,
            subject: event.subject(),
            payload: Bytes::from(bytes),
            appended_at_nanos: time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            node: None,
        };
        let uid = format!("2.25.{}", 1_000_000_000 + search_at + i);
        let start = Instant::now();
        let p = projector.clone();
        let checkpoint = tokio::task::spawn_blocking(move || p.apply_batch(&[stored])).await??;
        applied_tx.send_replace(checkpoint);
        loop {
            let body = get(format!("/fhir/ImagingStudy?identifier={uid}&_summary=count")).await?;
            let bundle: Value = serde_json::from_slice(&body)?;
            if bundle["total"] == 1 {
                break;
            }
            anyhow::ensure!(start.elapsed().as_secs() < 60, "study {uid} never became visible");
        }
        visible.push(start.elapsed().as_secs_f64());
    }
    let label = "new study: commit to visible in FHIR search";
    println!("{label:<44} {:>12.2} {:>10.2}", percentile(&visible, 0.5), percentile(&visible, 0.99));
    following.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = follower.join();
    println!(
        "{:<44} {:>12} {:>10}",
        "this process: resident now, peak",
        mib(cireg_views::resident_bytes()),
        mib(peak_resident_bytes())
    );
    // what those requests paid for their token: a signature check the first time a token is
    // seen, a lookup after that
    let mut fresh = Vec::new();
    for i in 0..1000 {
        let token = server.key.mint(&bench_token(&format!("researcher-{i}"))).map_err(anyhow::Error::msg)?;
        let start = Instant::now();
        server.verifier.verify(&token).await.map_err(anyhow::Error::msg)?;
        fresh.push(start.elapsed().as_secs_f64());
    }
    let mut again = Vec::new();
    for _ in 0..1000 {
        let start = Instant::now();
        server.verifier.verify(&server.token).await.map_err(anyhow::Error::msg)?;
        again.push(start.elapsed().as_secs_f64());
    }
    for (label, times) in [("token check (ES256), first use", &fresh), ("token check, seen before", &again)] {
        println!("{label:<44} {:>12.3} {:>10.3}", percentile(times, 0.5), percentile(times, 0.99));
    }
    let (jwks, token) = (tmp.path().join("bench-jwks.json"), server.token.clone());
    server.key.write_jwks(&jwks).map_err(anyhow::Error::msg)?;
    let permits = permit_token(&server.key)?;
    server.stop().await;
    // the store is free once every handle on it is gone: then `cireg serve` opens it
    drop((projector, store, models));
    measure_serve(&data, search_at, &jwks, &token, &permits).await?;
    close_nats(&nats_client).await;
    drop(nats);
    Ok(())
}

/// Closes the connection of `client` (and of every clone of it) before the bench stops its own
/// nats-server: drained, then waited for (at most 5 s) until its connection task has ended (a
/// flush fails once nothing reads the client's commands).
async fn close_nats(client: &async_nats::Client) {
    if client.drain().await.is_err() {
        return;
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while client.flush().await.is_ok() && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Appends `setup` and `n` generated study events to a new embedded log at `path`, `concurrency`
/// at once (raw appends: ingest was measured above), in seconds.
async fn write_log(
    path: &std::path::Path,
    setup: &[Vec<u8>],
    datasets: &[ProviderDataset],
    n: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    std::fs::create_dir_all(path.parent().context("the log's directory")?)?;
    let log = EmbeddedLog::open(path)?;
    let request = |bytes: &[u8]| -> anyhow::Result<cireg_log::AppendRequest> {
        let event = cireg_model::validate_event(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(cireg_log::AppendRequest {
            subject: event.subject(),
            event_id: event.id,
            payload: Bytes::from(bytes.to_vec()),
            expected_last_subject_seq: 0,
        })
    };
    let start = Instant::now();
    for bytes in setup {
        log.append(request(bytes)?).await?;
    }
    for from in (0..n).step_by(20_000) {
        let requests: Vec<_> = generated_studies(from..(from + 20_000).min(n), datasets)?
            .iter()
            .map(|e| request(e))
            .collect::<Result<_, _>>()?;
        let appended: Vec<_> =
            futures::stream::iter(requests).map(|r| log.append(r)).buffer_unordered(concurrency).collect().await;
        for a in appended {
            a?;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// What a `cireg rebuild` took.
struct Rebuilt {
    secs: f64,
    /// What it said its compaction took.
    compaction_secs: Option<f64>,
    /// Its peak resident memory, as last seen while it ran.
    peak_rss: Option<u64>,
}

/// Runs `cireg rebuild --data <data>` (this binary) to its end.
fn run_rebuild(data: &std::path::Path) -> anyhow::Result<Rebuilt> {
    use std::io::Read;
    let start = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["rebuild", "--public-base", "http://bench.invalid", "--data"])
        .arg(data)
        .env("CIREG_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut peak_rss = None;
    let status = loop {
        if let (_, Some(peak)) = process_memory(child.id()) {
            peak_rss = Some(peak);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let secs = start.elapsed().as_secs_f64();
    let mut said = String::new();
    child.stdout.take().context("the rebuild's output")?.read_to_string(&mut said)?;
    anyhow::ensure!(status.success(), "cireg rebuild failed ({status}): {said}");
    // "compacted the rebuilt store in 12.3 s"
    let compaction_secs = said
        .split("compacted the rebuilt store in ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok());
    Ok(Rebuilt { secs, compaction_secs, peak_rss })
}

/// Each FHIR search of the benchmark: a label, and the path of its `i`-th request (each
/// iteration asks something new, so no result list is reused from the one before).
type PathOf = Box<dyn Fn(usize) -> String>;
fn fhir_cases(search_at: usize) -> [(&'static str, PathOf); 4] {
    let subjects = search_at.div_ceil(STUDIES_PER_SUBJECT).max(1);
    [
        (
            "by patient (lookup table)",
            Box::new(move |i| format!("/fhir/ImagingStudy?patient=S{:07}", (i * 7_919) % subjects)),
        ),
        (
            "by Study Instance UID",
            Box::new(move |i| {
                format!("/fhir/ImagingStudy?identifier=2.25.{}", 1_000_000_000 + (i * 104_729) % search_at.max(1))
            }),
        ),
        ("modality + started day", Box::new(|i| format!("/fhir/ImagingStudy?modality=CT&started=eq{}", day_text(i)))),
        (
            "started year, sorted, 20 per page",
            Box::new(|i| format!("/fhir/ImagingStudy?started={}&_sort=-started", 2014 + i % 10)),
        ),
    ]
}

/// Resident and peak resident memory of process `pid` (Linux), in bytes.
pub(crate) fn process_memory(pid: u32) -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The process of the node that `start_serve` started as `child`: `child` itself, or under
/// `CIREG_SERVE_WRAPPER` the wrapper's descendant that runs `cireg serve` (whose memory is the
/// node's, and which a TERM stops; a wrapper script may not pass one on).
pub(crate) fn node_pid(child: u32) -> u32 {
    fn descendants(pid: u32, out: &mut Vec<u32>) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
        for task in tasks.flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                descendants(c, out);
            }
        }
    }
    let mut all = Vec::new();
    descendants(child, &mut all);
    all.into_iter()
        .find(|p| {
            let command = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            command.split(|b| *b == 0).nth(1) == Some(b"serve".as_slice())
        })
        .unwrap_or(child)
}

/// `cireg serve` as a process of its own over `data` (`extra`: more of its arguments), trusting
/// the benchmark's key (`jwks`), its log to `stderr`: started, then waited for until its
/// `/readyz` says ready. Its process and base URL; a process that did not start listening within
/// `start_within`, or got no readier within `ready_within`, is stopped.
pub(crate) async fn start_serve(
    data: &std::path::Path,
    jwks: &std::path::Path,
    extra: &[&str],
    stderr: std::process::Stdio,
    start_within: std::time::Duration,
    ready_within: std::time::Duration,
) -> anyhow::Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let start = Instant::now();
    // CIREG_SERVE_WRAPPER: a program to start the node under, for profiling it from its start
    // (`heaptrack`: attaching one later records too little); the memory then read is the wrapper's
    let exe = std::env::current_exe()?;
    let mut command = match std::env::var_os("CIREG_SERVE_WRAPPER") {
        Some(wrapper) => {
            let mut c = std::process::Command::new(wrapper);
            c.arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg("--jwks")
        .arg(jwks)
        .args(["--token-issuer", BENCH_ISSUER, "--token-audience", BENCH_AUDIENCE])
        .env("CIREG_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()?;
    let stdout = child.stdout.take().context("the server's output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            // "… (listening on http://127.0.0.1:port, log: …)"
            if let Some(addr) = line.split("listening on http://").nth(1).and_then(|r| r.split(',').next()) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let ready = async {
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(start_within))
            .await?
            .with_context(|| format!("cireg serve did not start within {start_within:?}"))?;
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            anyhow::ensure!(start.elapsed() < ready_within, "cireg serve was not ready within {ready_within:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        anyhow::Ok(base)
    }
    .await;
    match ready {
        Ok(base) => Ok((child, base)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// The issuer of the benchmark's visas (its key signs them).
const BENCH_VISA_ISSUER: &str = "urn:cireg:bench-visas";
/// How many of the cohort's datasets the permit-holding researcher's visas grant.
const PERMITTED_DATASETS: usize = 4;

/// A researcher's token whose GA4GH visas grant the first [`PERMITTED_DATASETS`] datasets of the
/// cohort (the demo's, under the benchmark's base): what permit filtering costs FHIR search.
fn permit_token(key: &cireg_auth::DevKey) -> anyhow::Result<String> {
    let base = PublicBase::new("http://bench.invalid")?;
    let visas = crate::demo::demo_events()
        .iter()
        .filter(|e| e["type"] == "eu.cancerimage.dataset.published.v1")
        .take(PERMITTED_DATASETS)
        .map(|e| {
            let provider = e["source"]
                .as_str()
                .and_then(cireg_model::ProviderId::from_source)
                .context("a demo dataset names no provider")?;
            let dataset = base.dataset(provider.as_str(), e["subject"].as_str().unwrap_or_default());
            let day = std::time::Duration::from_secs(24 * 3600);
            let visa = cireg_auth::DevVisa {
                asserted_ago: std::time::Duration::from_secs(60),
                ..cireg_auth::DevVisa::grant(
                    BENCH_VISA_ISSUER,
                    "bench-permits",
                    &dataset,
                    "urn:cireg:bench-committee",
                    day,
                )
            };
            key.mint_visa(&visa).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let token = cireg_auth::DevToken { all_studies: false, visas, ..bench_token("bench-permits") };
    key.mint(&token).map_err(anyhow::Error::msg)
}

/// `cireg serve` itself over the store under `data` (with its own empty embedded log): time to
/// ready (the read models built), its resident memory then, FHIR search as a client sees it,
/// and its resident and peak memory after.
async fn measure_serve(
    data: &std::path::Path,
    search_at: usize,
    jwks: &std::path::Path,
    token: &str,
    permits: &str,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let visa_issuer = format!("{BENCH_VISA_ISSUER}={}", jwks.display());
    let (mut child, base) = start_serve(
        data,
        jwks,
        &["--public-base", "http://bench.invalid", "--visa-issuer", &visa_issuer],
        std::process::Stdio::inherit(),
        std::time::Duration::from_secs(600),
        std::time::Duration::from_secs(3600),
    )
    .await?;
    let pid = child.id();
    let addr = base.trim_start_matches("http://").to_owned();
    let outcome = async {
        let client = reqwest::Client::new();
        let ready = start.elapsed().as_secs_f64();
        let (rss_ready, _) = process_memory(pid);
        println!(
            "
`cireg serve` over that store ({search_at} studies), its own process"
        );
        println!("{:<44} {:>12.1} s", "start to ready (read models built)", ready);
        println!("{:<44} {:>12}", "resident memory once ready", mib(rss_ready));
        println!("{:<44} {:>12} {:>10}", "FHIR search over HTTP (R5 Bundle)", "p50 ms", "p99 ms");
        // the time of `n` requests, the `i`-th to `path(i)`, each read to its end
        let timed = |n: usize, path: &dyn Fn(usize) -> String, token: Option<&str>| {
            let (client, addr, token) = (client.clone(), addr.clone(), token.map(str::to_owned));
            let paths: Vec<String> = (0..n).map(path).collect();
            async move {
                let mut times = Vec::new();
                for path in paths {
                    let t = Instant::now();
                    let mut request = client.get(format!("http://{addr}{path}"));
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    request.send().await?.error_for_status()?.bytes().await?;
                    times.push(t.elapsed().as_secs_f64());
                }
                anyhow::Ok(times)
            }
        };
        for (label, path) in fhir_cases(search_at) {
            let times = timed(200, &path, Some(token)).await?;
            println!("{label:<44} {:>12.2} {:>10.2}", percentile(&times, 0.5), percentile(&times, 0.99));
        }
        // the same searches by a researcher whose visas grant a few datasets: filtered by permit
        println!("{:<44} {:>12} {:>10}", format!("same, visas for {PERMITTED_DATASETS} datasets"), "p50 ms", "p99 ms");
        for (label, path) in fhir_cases(search_at) {
            let times = timed(200, &path, Some(permits)).await?;
            println!("{label:<44} {:>12.2} {:>10.2}", percentile(&times, 0.5), percentile(&times, 0.99));
        }
        // SPARQL over the study graphs: the all-studies token queries the store's union, the
        // researcher's permits list the permitted datasets' study graphs (100,000 of them)
        let count_mr = "SELECT (COUNT(?s) AS ?n) WHERE { ?s a <https://w3id.org/cireg/imaging#ImagingStudy> ; \
                        <https://w3id.org/cireg/imaging#modalityInStudy> <http://dicom.nema.org/resources/ontology/DCM/MR> }";
        let path = format!("/sparql?query={}", url::form_urlencoded::byte_serialize(count_mr.as_bytes()).collect::<String>());
        println!("{:<44} {:>12} {:>10}", "SPARQL: MR studies counted", "p50 ms", "max ms");
        for (label, who) in [("all studies (the store's union)", token), ("visas (their study graphs listed)", permits)] {
            match timed(5, &|_| path.clone(), Some(who)).await {
                Ok(times) => {
                    let max = times.iter().copied().fold(0.0, f64::max);
                    println!("{label:<44} {:>12.1} {:>10.1}", percentile(&times, 0.5), max * 1000.0)
                }
                Err(e) => println!("{label:<44} failed: {e}"),
            }
        }
        let times = timed(100, &|_| "/catalog.ttl?page=1&page_size=100".to_owned(), None).await?;
        println!(
            "{:<44} {:>12.2} {:>10.2}",
            "catalogue page (Turtle)",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
        let (rss, peak) = process_memory(pid);
        println!("{:<44} {:>12} {:>10}", "its resident memory after, peak", mib(rss), mib(peak));
        anyhow::Ok(())
    }
    .await;
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = child.wait();
    outcome
}

fn day_text(i: usize) -> String {
    let day = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(16_071 + ((i * 37) % 3650) as i64);
    format!("{}-{:02}-{:02}", day.year(), u8::from(day.month()), day.day())
}
