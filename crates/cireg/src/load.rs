//! `cireg load`: a sustained mixed load against one node of its own (`cireg serve --demo` in a
//! temporary directory, on loopback), bounded in time and in events published: harvesters,
//! searchers, FHIR clients, SPARQL clients and publishing providers at once. It prints each
//! endpoint's throughput and p50/p99, every answer that was not a success (the 429s a flooding
//! client is meant to get apart from the rest), and the node's resident memory over the run.
//! Exits non-zero when any request failed otherwise.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    bench::{atlas_setup, bench_token, generated_studies, mib, percentile, process_memory, providers_of, start_serve},
    demo::Rng,
};

#[derive(clap::Args)]
pub struct LoadArgs {
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Clients of each kind: harvesters, searchers, FHIR clients, SPARQL clients, publishers.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Study events each publisher sends per second (in batches of `--batch`).
    #[arg(long, default_value_t = 40)]
    publish_rate: usize,
    /// Studies per batch a publisher sends.
    #[arg(long, default_value_t = 20)]
    batch: usize,
    /// Most study events the publishers send in all (the count bound of the run).
    #[arg(long, default_value_t = 200_000)]
    max_events: usize,
    /// Minutes of the run counted as warm-up: the memory "once warm" is read at its end.
    #[arg(long, default_value_t = 1.0)]
    warmup_minutes: f64,
}

/// What one endpoint's requests got.
#[derive(Default)]
struct Endpoint {
    seconds: Vec<f64>,
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (refused connection, reset, timeout).
    transport: u64,
    /// The first answer of each refusing status (or of no answer), to show what went wrong.
    first_refusal: BTreeMap<u16, String>,
}

#[derive(Default)]
struct Tally(HashMap<&'static str, Endpoint>);

impl Tally {
    fn record(&mut self, label: &'static str, took: Duration, status: Option<u16>, body: impl FnOnce() -> String) {
        let e = self.0.entry(label).or_default();
        if status.is_none_or(|s| s >= 400) {
            e.first_refusal.entry(status.unwrap_or_default()).or_insert_with(|| body().chars().take(300).collect());
        }
        e.seconds.push(took.as_secs_f64());
        match status {
            Some(s) => *e.statuses.entry(s).or_default() += 1,
            None => e.transport += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        for (label, e) in other.0 {
            let mine = self.0.entry(label).or_default();
            mine.seconds.extend(e.seconds);
            for (s, n) in e.statuses {
                *mine.statuses.entry(s).or_default() += n;
            }
            mine.transport += e.transport;
            for (s, text) in e.first_refusal {
                mine.first_refusal.entry(s).or_insert(text);
            }
        }
    }
}

/// One client's connection to the node.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    deadline: Instant,
}

impl Client {
    /// Sends, reads the whole answer, and records it under `label`; the body when it succeeded.
    async fn send(&self, tally: &mut Tally, label: &'static str, request: reqwest::RequestBuilder) -> Option<Vec<u8>> {
        let t = Instant::now();
        let outcome = async {
            let r = request.timeout(Duration::from_secs(30)).send().await?;
            let status = r.status().as_u16();
            let body = r.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        match outcome {
            Ok((status, body)) => {
                tally.record(label, t.elapsed(), Some(status), || String::from_utf8_lossy(&body).into_owned());
                (status < 300).then(|| body.to_vec())
            }
            Err(e) => {
                tally.record(label, t.elapsed(), None, || e.to_string());
                None
            }
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }
}

const WORDS: [&str; 8] = ["breast", "lung", "prostate", "colon", "glioblastoma", "screening", "MRI", "follow-up"];

/// Pages the catalogue in Turtle and JSON-LD, dereferences datasets, and follows the change feed.
async fn harvester(c: Client, datasets: Arc<Vec<(String, String)>>, seed: u64) -> Tally {
    let (mut tally, mut rng) = (Tally::default(), Rng(seed));
    while c.running() {
        for page in 1..=4 {
            c.send(&mut tally, "catalogue page (Turtle, 10)", c.get(&format!("/catalog.ttl?page={page}&page_size=10")))
                .await;
        }
        c.send(&mut tally, "catalogue page (JSON-LD, 100)", c.get("/catalog.jsonld?page=1&page_size=100")).await;
        let (p, d) = &datasets[rng.below(datasets.len())];
        c.send(&mut tally, "dataset (Turtle)", c.get(&format!("/datasets/{p}/{d}")).header("accept", "text/turtle"))
            .await;
        let from = 1 + rng.below(2_000);
        c.send(&mut tally, "change feed page", c.get(&format!("/feed?from={from}&limit=100"))).await;
    }
    tally
}

/// The search API and the search page for people.
async fn searcher(c: Client, seed: u64) -> Tally {
    let (mut tally, mut rng) = (Tally::default(), Rng(seed));
    while c.running() {
        let word = WORDS[rng.below(WORDS.len())];
        let sort = ["relevance", "size", "title"][rng.below(3)];
        c.send(&mut tally, "search API", c.get(&format!("/api/v1/datasets?q={word}&sort={sort}"))).await;
        c.send(&mut tally, "search API (facets)", c.get("/api/v1/datasets?modality=MR&cancer=breast")).await;
        c.send(&mut tally, "search page (HTML)", c.get(&format!("/search?q={word}"))).await;
    }
    tally
}

/// FHIR ImagingStudy searches and reads with a researcher's token.
async fn fhir_client(c: Client, token: String, seed: u64) -> Tally {
    let (mut tally, mut rng) = (Tally::default(), Rng(seed));
    let mut ids: Vec<String> = Vec::new();
    while c.running() {
        let modality = ["MR", "CT", "PT", "MG"][rng.below(4)];
        let path = format!("/fhir/ImagingStudy?modality={modality}&_count=20");
        if let Some(body) = c.send(&mut tally, "FHIR search by modality", c.get(&path).bearer_auth(&token)).await {
            let bundle: Value = serde_json::from_slice(&body).unwrap_or_default();
            let found = bundle["entry"].as_array().into_iter().flatten();
            ids = found.filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned)).collect();
        }
        let year = 2014 + rng.below(12);
        let path = format!("/fhir/ImagingStudy?started={year}&_sort=-started&_count=50");
        c.send(&mut tally, "FHIR search by year, sorted", c.get(&path).bearer_auth(&token)).await;
        if !ids.is_empty() {
            let id = &ids[rng.below(ids.len())];
            c.send(&mut tally, FHIR_READ, c.get(&format!("/fhir/ImagingStudy/{id}")).bearer_auth(&token)).await;
        }
    }
    tally
}

const SPARQL: [(&str, &str); 3] = [
    (
        "SPARQL: datasets and titles",
        "PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/> \
         SELECT ?d ?t WHERE { ?d a dcat:Dataset ; dct:title ?t } ORDER BY ?t LIMIT 50",
    ),
    (
        "SPARQL: count by publisher",
        "PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/> \
         SELECT ?p (COUNT(?d) AS ?n) WHERE { ?d a dcat:Dataset ; dct:publisher ?p } GROUP BY ?p",
    ),
    (
        "SPARQL: distributions",
        "PREFIX dcat: <http://www.w3.org/ns/dcat#> \
         SELECT ?d ?u WHERE { ?d dcat:distribution ?x . ?x dcat:accessURL ?u } LIMIT 100",
    ),
];

/// The public SPARQL endpoint. The client sends a token of its own: the endpoint shares its
/// evaluation slots out per caller (token subject, else address), and these clients all come
/// from one address.
async fn sparql_client(c: Client, token: String, seed: u64) -> Tally {
    let (mut tally, mut rng) = (Tally::default(), Rng(seed));
    while c.running() {
        let (label, query) = SPARQL[rng.below(SPARQL.len())];
        let request = c.get("/sparql").query(&[("query", query)]).header("accept", "application/sparql-results+json");
        let request = request.bearer_auth(&token);
        c.send(&mut tally, label, request).await;
    }
    tally
}

/// How the publishers' events were answered, member by member.
#[derive(Default)]
struct Published {
    statuses: BTreeMap<u16, u64>,
    /// The first problem of each refusing status.
    first_problem: BTreeMap<u16, String>,
}

/// What a publisher does: how fast, how much, and which datasets it updates.
#[derive(Clone, Copy)]
struct Publishing {
    /// Study events per second.
    rate: usize,
    batch: usize,
    max_events: usize,
    /// This publisher updates the datasets `slot`, `slot + publishers`, … only, so that no two
    /// publishers race for one dataset (the loser's 409 would be a right answer, but noise here).
    slot: usize,
    publishers: usize,
    /// Re-send the first batch every 10 ms, far past the node's rate limit: its 429s are the
    /// intended ones.
    flood: bool,
}

/// A provider's system: batches of new studies at a steady rate, now and then a dataset update
/// and a subject's consent withdrawal.
async fn publisher(
    c: Client,
    token: String,
    datasets: Arc<Vec<(String, String)>>,
    next: Arc<AtomicUsize>,
    how: Publishing,
    seed: u64,
) -> anyhow::Result<(Tally, Published)> {
    let Publishing { rate, batch, max_events, slot, publishers, flood } = how;
    let (mut tally, mut published, mut rng) = (Tally::default(), Published::default(), Rng(seed));
    let interval =
        if flood { Duration::from_millis(10) } else { Duration::from_secs_f64(batch as f64 / rate.max(1) as f64) };
    let mut first: Option<Vec<u8>> = None;
    let mut sent_batches = 0usize;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while c.running() {
        tick.tick().await;
        let body = match (&first, flood) {
            (Some(body), true) => body.clone(),
            _ => {
                // the flood's one batch is five times the others, so that it outruns the rate limit
                let batch = if flood { 5 * batch } else { batch };
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= max_events {
                    break;
                }
                let studies = generated_studies(LOAD_STUDIES + start..LOAD_STUDIES + start + batch, &datasets)?;
                let mut events: Vec<Value> =
                    studies.iter().map(|s| serde_json::from_slice(s)).collect::<Result<_, _>>()?;
                sent_batches += 1;
                if sent_batches.is_multiple_of(10) {
                    // the last subject of the batch withdraws its consent (its studies are erased;
                    // all of them are in this batch, a whole number of subjects)
                    let last = &events[events.len() - 1];
                    events.push(json!({"specversion": "1.0", "type": "eu.cancerimage.subject.consent.withdrawn.v1",
                        "source": last["source"], "subject": last["subject"], "data": {}, "time": now()?,
                        "id": format!("load-consent-{start}")}));
                }
                if sent_batches.is_multiple_of(25) && slot < datasets.len() {
                    let (p, d) = &datasets[slot + publishers * rng.below((datasets.len() - slot).div_ceil(publishers))];
                    events.push(json!({"specversion": "1.0", "type": "eu.cancerimage.dataset.updated.v1",
                        "source": format!("urn:cireg:provider:{p}"), "subject": d, "time": now()?,
                        "id": format!("load-update-{start}"), "data": {"version": format!("1.{start}.0")}}));
                }
                let body = serde_json::to_vec(&events)?;
                first.get_or_insert_with(|| body.clone());
                body
            }
        };
        let request = c
            .http
            .post(format!("{}/events", c.base))
            .bearer_auth(&token)
            .header("content-type", "application/cloudevents-batch+json")
            .body(body);
        let label = if flood { FLOOD } else { "POST /events (batches)" };
        if let Some(answer) = c.send(&mut tally, label, request).await {
            let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
            for r in answer["results"].as_array().into_iter().flatten() {
                let status = r["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or_default();
                *published.statuses.entry(status).or_default() += 1;
                if status >= 400 {
                    published.first_problem.entry(status).or_insert_with(|| r["problem"].to_string());
                }
            }
        }
    }
    Ok((tally, published))
}

fn now() -> anyhow::Result<String> {
    Ok(time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?)
}

/// Where the load's studies start in the generated cohort: far from anything the demo holds.
const LOAD_STUDIES: usize = 50_000_000;

fn provider_token(key: &cireg_auth::DevKey, subject: &str, providers: Vec<String>) -> anyhow::Result<String> {
    let token = cireg_auth::DevToken { researcher: false, all_studies: false, providers, ..bench_token(subject) };
    key.mint(&token).map_err(anyhow::Error::msg)
}

/// Studies the node holds (FHIR `_count=0` total).
async fn studies_held(base: &str, token: &str) -> Option<u64> {
    let r = reqwest::Client::new().get(format!("{base}/fhir/ImagingStudy?_count=0")).bearer_auth(token).send().await;
    let v: Value = r.ok()?.json().await.ok()?;
    v["total"].as_u64()
}

pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.minutes > 0.0 && args.clients > 0, "nothing to run: --minutes and --clients must be above 0");
    anyhow::ensure!(
        args.batch > 0 && args.batch.is_multiple_of(crate::bench::STUDIES_PER_SUBJECT),
        "--batch must be a multiple of {} (the studies of one subject), so that a consent withdrawal comes after all of its subject's studies",
        crate::bench::STUDIES_PER_SUBJECT
    );
    let dir = tempfile::tempdir()?;
    let (key, _) = cireg_auth::DevKey::load_or_create(&dir.path().join("key.pem")).map_err(anyhow::Error::msg)?;
    key.write_jwks(&dir.path().join("jwks.json")).map_err(anyhow::Error::msg)?;
    let log = dir.path().join("node.log");
    let (mut child, base) = start_serve(
        &dir.path().join("data"),
        &dir.path().join("jwks.json"),
        &["--demo", "--public-base", "http://load.invalid"],
        // its log (each 503 of the flood, among others) would drown the report
        std::fs::File::create(&log)?.into(),
        Duration::from_secs(120),
        Duration::from_secs(300),
    )
    .await?;
    let pid = crate::bench::node_pid(child.id());
    let outcome = run(&args, &key, &base, pid).await;
    if outcome.is_err() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        eprintln!("the node's last log lines:");
        for line in tail.into_iter().rev() {
            eprintln!("  {line}");
        }
    }
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = child.wait();
    outcome
}

async fn run(args: &LoadArgs, key: &cireg_auth::DevKey, base: &str, pid: u32) -> anyhow::Result<()> {
    let (_, datasets) = atlas_setup()?;
    let providers = providers_of(&datasets);
    let datasets = Arc::new(datasets);
    let researcher = key.mint(&bench_token("load-researcher")).map_err(anyhow::Error::msg)?;
    let (rss_ready, _) = process_memory(pid);
    let studies_ready = studies_held(base, &researcher).await;
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    let client = Client { http: reqwest::Client::new(), base: base.to_owned(), deadline: Instant::now() + run_for };
    println!(
        "cireg load: {} clients of each kind against {base} for {:.1} min (node pid {pid}, {} studies, {} resident)",
        args.clients,
        args.minutes,
        studies_ready.map_or("?".into(), |n| n.to_string()),
        mib(rss_ready)
    );
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicUsize::new(0));
    let publishing = Publishing {
        rate: args.publish_rate,
        batch: args.batch,
        max_events: args.max_events,
        slot: 0,
        publishers: args.clients,
        flood: false,
    };
    for i in 0..args.clients {
        let seed = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
        let c = client.clone();
        let d = datasets.clone();
        tasks.spawn(async move { Ok((harvester(c, d, seed).await, Published::default())) });
        let c = client.clone();
        tasks.spawn(async move { Ok((searcher(c, seed).await, Published::default())) });
        let (c, t) = (client.clone(), researcher.clone());
        tasks.spawn(async move { Ok((fhir_client(c, t, seed).await, Published::default())) });
        // a researcher without permits: the catalogue's graphs, its own share of the slots
        let sparql = cireg_auth::DevToken { all_studies: false, ..bench_token(&format!("load-sparql-{i}")) };
        let token = key.mint(&sparql).map_err(anyhow::Error::msg)?;
        let c = client.clone();
        tasks.spawn(async move { Ok((sparql_client(c, token, seed).await, Published::default())) });
        let token = provider_token(key, &format!("load-publisher-{i}"), providers.clone())?;
        let (c, d, n) = (client.clone(), datasets.clone(), next.clone());
        tasks.spawn(publisher(c, token, d, n, Publishing { slot: i, ..publishing }, seed));
    }
    // one client re-sends its first batch every 10 ms: past its rate, it gets 429s
    let token = provider_token(key, "load-flood", providers.clone())?;
    let (c, d, n) = (client.clone(), datasets.clone(), next.clone());
    tasks.spawn(publisher(c, token, d, n, Publishing { flood: true, slot: usize::MAX, ..publishing }, 7));
    // the node's memory, every 10 s; "once warm" is the reading at the end of the warm-up
    let sampler = {
        let (base, researcher) = (base.to_owned(), researcher.clone());
        let warmup = Duration::from_secs_f64(args.warmup_minutes * 60.0).min(run_for);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples: Vec<(f64, Option<u64>)> = Vec::new();
            let mut warm = None;
            while started.elapsed() < run_for {
                tokio::time::sleep(Duration::from_secs(10).min(run_for.saturating_sub(started.elapsed()))).await;
                samples.push((started.elapsed().as_secs_f64(), process_memory(pid).0));
                if warm.is_none() && started.elapsed() >= warmup {
                    warm = Some((process_memory(pid).0, studies_held(&base, &researcher).await));
                }
            }
            (samples, warm)
        })
    };
    let mut tally = Tally::default();
    let mut published = Published::default();
    while let Some(done) = tasks.join_next().await {
        let (t, p) = done??;
        tally.merge(t);
        for (s, n) in p.statuses {
            *published.statuses.entry(s).or_default() += n;
        }
        for (s, text) in p.first_problem {
            published.first_problem.entry(s).or_insert(text);
        }
    }
    let (samples, warm) = sampler.await?;
    let (rss_end, peak) = process_memory(pid);
    let studies_end = studies_held(base, &researcher).await;
    report(&tally, &published, run_for);
    println!("\nthe node's resident memory (studies it holds)");
    let held = |n: Option<u64>| n.map_or("?".into(), |n| n.to_string());
    println!("{:<34} {:>10} ({} studies)", "ready, before the load", mib(rss_ready), held(studies_ready));
    if let Some((rss, studies)) = warm {
        println!(
            "{:<34} {:>10} ({} studies)",
            format!("warm (after {:.1} min)", args.warmup_minutes),
            mib(rss),
            held(studies)
        );
        if let (Some(a), Some(b), Some(sa), Some(sb)) = (rss, rss_end, studies, studies_end) {
            let grown = b as f64 - a as f64;
            let per_study = if sb > sa {
                format!(", {:.0} bytes per study added", grown / (sb - sa) as f64)
            } else {
                String::new()
            };
            println!("{:<34} {:>+10.1} MiB{per_study}", "grown from warm to the end", grown / (1024.0 * 1024.0));
        }
    }
    println!("{:<34} {:>10} ({} studies)", "at the end", mib(rss_end), held(studies_end));
    println!("{:<34} {:>10}", "peak (VmHWM)", mib(peak));
    let series: Vec<String> = samples.iter().map(|(t, rss)| format!("{t:.0}s {}", mib(*rss))).collect();
    println!("{:<34} {}", "every 10 s", series.join(", "));
    let unexpected = unexpected(&tally, &published);
    anyhow::ensure!(unexpected == 0, "{unexpected} requests or events failed otherwise than by the intended 429");
    println!("\nno request failed other than by the intended 429s");
    Ok(())
}

/// Refusals that are the right answer here: the flooding client's 429s, and 410 for a study read
/// after its subject's consent withdrawal erased it.
fn intended(label: &str, status: u16) -> bool {
    (status == 429 && label == FLOOD) || (status == 410 && label == FHIR_READ)
}

const FLOOD: &str = "POST /events (flooding re-sends)";
const FHIR_READ: &str = "FHIR read";

/// Answers that are neither a success nor intended, requests and events.
fn unexpected(tally: &Tally, published: &Published) -> u64 {
    let requests: u64 = tally
        .0
        .iter()
        .map(|(label, e)| {
            let refused = e.statuses.iter().filter(|(s, _)| **s >= 400 && !intended(label, **s));
            e.transport + refused.map(|(_, n)| n).sum::<u64>()
        })
        .sum();
    // an event re-sent by the flood answers 200 (a re-send) or 429; every other one 200 or 201
    let events: u64 = published.statuses.iter().filter(|(s, _)| !matches!(**s, 200 | 201 | 429)).map(|(_, n)| n).sum();
    requests + events
}

fn report(tally: &Tally, published: &Published, run_for: Duration) {
    println!("\n{:<36} {:>9} {:>8} {:>8} {:>8}  statuses", "endpoint", "requests", "per s", "p50 ms", "p99 ms");
    let mut labels: Vec<&&str> = tally.0.keys().collect();
    labels.sort();
    for label in labels {
        let e = &tally.0[*label];
        let statuses: Vec<String> = e
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .chain((e.transport > 0).then(|| format!("no answer: {}", e.transport)))
            .collect();
        println!(
            "{:<36} {:>9} {:>8.1} {:>8.2} {:>8.2}  {}",
            label,
            e.seconds.len(),
            e.seconds.len() as f64 / run_for.as_secs_f64(),
            percentile(&e.seconds, 0.5),
            percentile(&e.seconds, 0.99),
            statuses.join(", ")
        );
    }
    let events: Vec<String> = published.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!("{:<36} {}", "events, answered by status", events.join(", "));
    // what each unintended refusal said, once
    for (label, e) in &tally.0 {
        for (status, text) in e.first_refusal.iter().filter(|(s, _)| !intended(label, **s)) {
            let status = if *status == 0 { "no answer".to_owned() } else { status.to_string() };
            println!("  {label}, {status}: {text}");
        }
    }
    for (status, text) in published.first_problem.iter().filter(|(s, _)| **s != 429) {
        println!("  an event, {status}: {text}");
    }
}
