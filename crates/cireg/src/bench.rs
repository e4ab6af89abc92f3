//! `cireg bench`: how fast events go in and get projected, next to the raw limits measured in
//! the same run on the same machine (raw JetStream publish, raw Oxigraph bulk load). Starts its
//! own nats-server so it never touches a real deployment. Prints ratios; asserts nothing.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use bytes::Bytes;
use cireg_ingest::{Ingest, Sender};
use cireg_log::{EmbeddedLog, EventLog, JetStreamLog, JetStreamOptions};
use cireg_projector::{Projector, PublicBase};
use futures::StreamExt;
use oxigraph::{model::GraphName, store::Store};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Number of dataset events to generate.
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Events in flight at once during ingest and raw publish.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

fn generated_events(n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let template: Value =
        serde_json::from_str(include_str!("../../../schemas/examples/eu.cancerimage.dataset.published.v1.json"))?;
    let provider: Value =
        serde_json::from_str(include_str!("../../../schemas/examples/eu.cancerimage.provider.registered.v1.json"))?;
    let mut out = vec![serde_json::to_vec(&provider)?];
    for i in 0..n {
        let mut e = template.clone();
        e["id"] = json!(format!("bench-{i}"));
        e["subject"] = json!(format!("bench-dataset-{i}"));
        e["data"]["numberOfSubjects"] = json!(100 + i % 900);
        e["data"]["title"]["en"] = json!(format!("Benchmark dataset {i} (synthetic)"));
        out.push(serde_json::to_vec(&e)?);
    }
    Ok(out)
}

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

async fn ingest_all(ingest: &Ingest, events: &[Vec<u8>], concurrency: usize) -> anyhow::Result<f64> {
    // the provider registers first; then the datasets, many at once (different aggregates)
    ingest.submit(&events[0], &Sender::Unauthenticated).await.map_err(|e| anyhow::anyhow!("{:?}", e.problem()))?;
    let start = Instant::now();
    let results: Vec<_> = futures::stream::iter(events[1..].iter())
        .map(|e| ingest.submit(e, &Sender::Unauthenticated))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let secs = start.elapsed().as_secs_f64();
    if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
        anyhow::bail!("ingest refused a generated event: {:?}", e.problem());
    }
    Ok(secs)
}

async fn project_all(log: Arc<dyn EventLog>, dir: &std::path::Path) -> anyhow::Result<(f64, Store)> {
    let store = Store::open(dir)?;
    let projector = Projector::new(store.clone(), PublicBase::new("http://bench.invalid")?)?;
    let start = Instant::now();
    cireg_projector::rebuild(&projector, log, "cireg-bench", |_, _| {}).await?;
    Ok((start.elapsed().as_secs_f64(), store))
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
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
    let js = async_nats::jetstream::new(client.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let start = Instant::now();
    let acks: Vec<_> = futures::stream::iter(events[1..].iter().enumerate())
        .map(|(i, e)| {
            let js = js.clone();
            let payload = Bytes::from(e.clone());
            async move { js.publish(format!("bench.raw.{i}"), payload).await?.await.map_err(anyhow::Error::from) }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let raw_publish = start.elapsed().as_secs_f64();
    acks.into_iter().collect::<Result<Vec<_>, _>>().context("raw publish")?;

    // ingest through validation into the JetStream log
    let jet: Arc<dyn EventLog> = Arc::new(JetStreamLog::open(client.clone(), &JetStreamOptions::default()).await?);
    let ingest_jet = ingest_all(&Ingest::new(jet.clone()), &events, args.concurrency).await?;
    // ... and into the embedded log
    let embedded: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&tmp.path().join("log.redb"))?);
    let ingest_embedded = ingest_all(&Ingest::new(embedded.clone()), &events, args.concurrency).await?;

    // projection from each log into a fresh store
    let (project_jet, store) = project_all(jet, &tmp.path().join("store-jet")).await?;
    let (project_embedded, _) = project_all(embedded, &tmp.path().join("store-embedded")).await?;

    // raw Oxigraph bulk load of exactly the quads the projection wrote
    let quads: Vec<_> = store
        .iter()
        .filter_map(Result::ok)
        .filter(|q| {
            q.graph_name
                != GraphName::NamedNode(oxigraph::model::NamedNode::new_unchecked(
                    cireg_projector::ns::PROJECTION_GRAPH,
                ))
        })
        .collect();
    let raw_store = Store::open(tmp.path().join("store-raw"))?;
    let start = Instant::now();
    let mut loader = raw_store.bulk_loader();
    loader.load_quads(quads.iter().cloned())?;
    loader.commit()?;
    let raw_load = start.elapsed().as_secs_f64();

    let raw_pub_rate = rate(n, raw_publish);
    let raw_load_rate = rate(n, raw_load);
    println!();
    println!("{:<44} {:>12} {:>10}", "", "events/s", "vs raw");
    println!("{:<44} {:>12.0} {:>10}", "raw JetStream publish (same payloads)", raw_pub_rate, "1.00");
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "ingest → JetStream log (validate + append)",
        rate(n, ingest_jet),
        rate(n, ingest_jet) / raw_pub_rate
    );
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "ingest → embedded log (validate + append)",
        rate(n, ingest_embedded),
        rate(n, ingest_embedded) / raw_pub_rate
    );
    println!(
        "{:<44} {:>12.0} {:>10}",
        format!("raw Oxigraph bulk load ({} quads)", quads.len()),
        raw_load_rate,
        "1.00"
    );
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "projection from JetStream log",
        rate(n, project_jet),
        rate(n, project_jet) / raw_load_rate
    );
    println!(
        "{:<44} {:>12.0} {:>10.2}",
        "projection from embedded log",
        rate(n, project_embedded),
        rate(n, project_embedded) / raw_load_rate
    );
    println!();
    println!("(ingest is compared with raw publish, projection with raw bulk load of the same quads; one run on a shared machine: repeat before trusting a difference under ~20%)");
    drop(server);
    Ok(())
}
