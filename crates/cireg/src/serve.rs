//! `cireg serve`, `cireg rebuild`, `cireg dump`: wiring the library crates together.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use cireg_ingest::{Ingest, ProfileGate, RateLimit, Sender};
use cireg_log::{EmbeddedLog, EventLog, JetStreamLog, JetStreamOptions};
use cireg_projector::{Projector, PublicBase, RunOptions};
use cireg_server::AppState;
use oxigraph::{
    io::{RdfFormat, RdfSerializer},
    store::Store,
};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::LogArgs;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", env = "CIREG_LISTEN")]
    listen: SocketAddr,
    #[command(flatten)]
    log: LogArgs,
    /// Public base URL: every IRI and link is minted under it (default: the one the store was
    /// built for, else http://<listen address>). A store built for another is refused: change
    /// the base with `cireg rebuild --public-base`.
    #[arg(long, env = "CIREG_PUBLIC_BASE")]
    public_base: Option<String>,
    /// Load the synthetic demo catalogue when the log is empty.
    #[arg(long)]
    demo: bool,
    /// Time limit of one SPARQL query, in seconds (fractions allowed).
    #[arg(long, default_value_t = 30.0, env = "CIREG_SPARQL_TIMEOUT", value_parser = positive_seconds)]
    sparql_timeout: f64,
    /// SPARQL evaluations that may run at once (default: the number of cores, at least 2).
    #[arg(long, env = "CIREG_SPARQL_SLOTS")]
    sparql_slots: Option<std::num::NonZeroUsize>,
    /// Evaluations one caller (a token's subject, else a client address) may run at once; more
    /// are answered 429 (default: half the slots).
    #[arg(long, env = "CIREG_SPARQL_CALLER_SHARE")]
    sparql_caller_share: Option<std::num::NonZeroUsize>,
    /// Time a read request's answer must start within (SPARQL has --sparql-timeout), in seconds.
    #[arg(long, default_value_t = 30.0, env = "CIREG_REQUEST_TIMEOUT", value_parser = positive_seconds)]
    request_timeout: f64,
    /// Time a request's whole body must arrive within, in seconds.
    #[arg(long, default_value_t = 30.0, env = "CIREG_BODY_TIMEOUT", value_parser = positive_seconds)]
    body_timeout: f64,
    /// Time a client has to send a request's headers (and an idle keep-alive connection its next
    /// request), in seconds.
    #[arg(long, default_value_t = 10.0, env = "CIREG_HEADER_TIMEOUT", value_parser = positive_seconds)]
    header_timeout: f64,
    /// Open connections at most; more clients wait to be accepted.
    #[arg(long, default_value_t = 1024, env = "CIREG_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Resident memory of the process, in MiB, past which running SPARQL queries are cancelled
    /// (503); 0 turns the guard off (default: three quarters of the machine's memory).
    #[arg(long, env = "CIREG_SPARQL_MEMORY_LIMIT")]
    sparql_memory_limit: Option<u64>,
    /// Most log events a `/catalog?at=` request may replay; later instants of a longer log are
    /// refused (422).
    #[arg(long, default_value_t = 100_000, env = "CIREG_HISTORY_MAX_EVENTS")]
    history_max_events: u64,
    /// A reverse proxy in front of the node (repeat, or comma-separated): for requests it passes
    /// on, the client is the last address it adds to `X-Forwarded-For`, so per-caller limits
    /// count clients rather than the proxy.
    #[arg(long, env = "CIREG_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// `/catalog?at=` requests each caller may send per minute (and at once); more get 429.
    #[arg(long, default_value = "30", env = "CIREG_HISTORY_RATE")]
    history_rate: std::num::NonZeroU32,
    /// Most solutions (or triples) one SPARQL query may return; a larger answer is refused
    /// (400) rather than cut.
    #[arg(long, default_value_t = 100_000, env = "CIREG_SPARQL_MAX_RESULTS")]
    sparql_max_results: usize,
    /// Events each caller may send per second on average (HTTP, per token subject; NATS
    /// requests, per provider).
    #[arg(long, default_value = "500", env = "CIREG_INGEST_RATE")]
    ingest_rate: std::num::NonZeroU32,
    /// Events each caller may send at once before the rate applies.
    #[arg(long, default_value = "5000", env = "CIREG_INGEST_BURST")]
    ingest_burst: std::num::NonZeroU32,
    /// Aggregates (datasets, studies…) ingest keeps in memory, most recently used first; one not
    /// kept is read back from the log on its next change.
    #[arg(long, default_value_t = cireg_ingest::DEFAULT_AGGREGATE_CACHE, env = "CIREG_AGGREGATE_CACHE")]
    aggregate_cache: usize,
    /// Where `POST /admin/backup` (operators' tokens) writes backups (default: backups/ in the
    /// data directory: cheap, hard links to the store's files, but on the same disk; copy them
    /// elsewhere, or point this to another file system).
    #[arg(long, env = "CIREG_BACKUP_DIR")]
    backup_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Name of this node's projector (its JetStream durable consumer); one per store.
    #[arg(long, default_value = "cireg-projector", env = "CIREG_READER")]
    reader: String,
    /// Run as the central node: fold the catalogue-level events (providers, datasets; never
    /// studies) of the national nodes whose JetStream domains are given (comma-separated), which
    /// JetStream sources into this node's stream over leaf node connections; take no events.
    /// Each as DOMAIN=PUBLIC-BASE (e.g. de=https://registry.de.example) to identify its datasets
    /// by their IRIs there, or DOMAIN alone. Needs --nats and nats-server 2.10 or later
    /// (deploy/nats/federation/).
    #[arg(long, value_delimiter = ',', env = "CIREG_CENTRAL", requires = "nats", value_parser = parse_national_node)]
    central: Vec<NationalNode>,
}

/// A national node as the central node knows it.
#[derive(Debug, Clone)]
struct NationalNode {
    /// Its JetStream domain.
    domain: String,
    /// Its public base, when given.
    base: Option<PublicBase>,
}

fn parse_national_node(text: &str) -> Result<NationalNode, String> {
    let (domain, base) = match text.split_once('=') {
        Some((domain, base)) => (domain, Some(PublicBase::new(base).map_err(|e| e.to_string())?)),
        None => (text, None),
    };
    if domain.is_empty() || !domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("{domain:?} is not a JetStream domain name (letters, digits, '-', '_')"));
    }
    Ok(NationalNode { domain: domain.to_owned(), base })
}

/// Bearer tokens: who may publish over HTTP and who may read study-level data.
#[derive(clap::Args)]
struct AuthArgs {
    /// The identity provider's public keys: a JWKS file or an https:// URL (fetched again when a
    /// token names an unknown key). Without it, HTTP ingest and the study views refuse everyone.
    #[arg(long, env = "CIREG_JWKS")]
    jwks: Option<cireg_auth::KeySource>,
    /// The issuer (`iss`) every token must name.
    #[arg(long, env = "CIREG_TOKEN_ISSUER", requires = "jwks")]
    token_issuer: Option<String>,
    /// A value the token's audience (`aud`) must hold.
    #[arg(long, env = "CIREG_TOKEN_AUDIENCE", requires = "jwks")]
    token_audience: Option<String>,
    #[command(flatten)]
    claims: crate::token::ClaimArgs,
    /// A GA4GH Passport visa issuer whose `ControlledAccessGrants` visas grant access to the
    /// datasets they name: `ISSUER=JWKS` (its `iss`, then its keys' JWKS file or URL); repeat for
    /// several.
    #[arg(long = "visa-issuer", env = "CIREG_VISA_ISSUERS", value_delimiter = ' ', requires = "jwks")]
    visa_issuers: Vec<cireg_auth::VisaIssuer>,
}

impl AuthArgs {
    async fn verifier(&self) -> anyhow::Result<Option<cireg_auth::Verifier>> {
        let Some(keys) = &self.jwks else { return Ok(None) };
        let (Some(issuer), Some(audience)) = (&self.token_issuer, &self.token_audience) else {
            bail!("--jwks needs --token-issuer and --token-audience: tokens are checked against both");
        };
        let config = cireg_auth::AuthConfig {
            keys: keys.clone(),
            issuer: issuer.clone(),
            audience: audience.clone(),
            claims: self.claims.claims(),
            visa_issuers: self.visa_issuers.clone(),
        };
        let verifier =
            cireg_auth::Verifier::new(config).await.map_err(anyhow::Error::msg).context("loading the token keys")?;
        Ok(Some(verifier))
    }
}

/// Who runs this registry: the catalogue's own description (`dcat:Catalog`).
#[derive(clap::Args)]
struct CatalogArgs {
    /// Title of the catalogue.
    #[arg(long, env = "CIREG_CATALOG_TITLE")]
    catalog_title: Option<String>,
    /// Description of the catalogue.
    #[arg(long, env = "CIREG_CATALOG_DESCRIPTION")]
    catalog_description: Option<String>,
    /// Name of the organisation that runs the registry (the catalogue's publisher).
    #[arg(long, env = "CIREG_CATALOG_PUBLISHER")]
    catalog_publisher: Option<String>,
    /// Contact e-mail of the catalogue's publisher.
    #[arg(long, env = "CIREG_CATALOG_EMAIL")]
    catalog_email: Option<String>,
    /// Home page of the catalogue.
    #[arg(long, env = "CIREG_CATALOG_HOMEPAGE")]
    catalog_homepage: Option<String>,
    /// Countries the catalogue covers (ISO 3166-1 alpha-3, comma-separated).
    #[arg(long, env = "CIREG_CATALOG_COUNTRIES", value_delimiter = ',')]
    catalog_countries: Vec<String>,
}

impl CatalogArgs {
    fn info(&self) -> cireg_views::CatalogInfo {
        let mut info = cireg_views::CatalogInfo::default();
        if let Some(t) = &self.catalog_title {
            info.title = t.clone();
        }
        if let Some(d) = &self.catalog_description {
            info.description = d.clone();
        }
        if let Some(p) = &self.catalog_publisher {
            info.publisher_name = p.clone();
        }
        if let Some(e) = &self.catalog_email {
            info.publisher_email = e.clone();
        }
        info.homepage = self.catalog_homepage.clone();
        info.countries = self.catalog_countries.clone();
        info
    }
}

/// The central node's log, sourced from the national nodes' JetStream domains.
async fn open_central_log(args: &LogArgs, nodes: &[NationalNode]) -> anyhow::Result<Arc<JetStreamLog>> {
    let domains: Vec<String> = nodes.iter().map(|n| n.domain.clone()).collect();
    let url = args.nats.as_deref().context(
        "--central needs --nats: the central NATS server, which reaches the national ones as leaf nodes (deploy/nats/federation/)",
    )?;
    let client = args.nats_args.connect(url, "cireg-central", None).await?;
    let options = JetStreamOptions { replicas: args.nats_replicas.into(), ..JetStreamOptions::default() };
    let log = JetStreamLog::open_central(client.clone(), &domains, &options).await.with_context(|| {
        format!(
            "making the central log at {}, sourced from the JetStream domains {} (nats-server 2.10 or later, leaf nodes connected?)",
            crate::connect::redacted(url),
            domains.join(", ")
        )
    })?;
    Ok(Arc::new(log))
}

/// A national node's log counts as reachable while JetStream's source of it was active within
/// this (a source gets a heartbeat every few seconds over a live leaf node connection).
const NODE_SILENCE: Duration = Duration::from_secs(30);

/// On the central node: looks at the national nodes' sources every few seconds and keeps what
/// it sees in `nodes` (for /api/v1/nodes, the catalogue and the dataset pages).
async fn watch_national_nodes(
    log: Arc<JetStreamLog>,
    domains: Vec<String>,
    nodes: Arc<std::sync::RwLock<Vec<cireg_views::NodeStatus>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    // whole seconds: what a reader needs, and the same text in RDF (xsd:dateTime) and JSON
    let rfc3339 = |t: time::OffsetDateTime| {
        t.replace_nanosecond(0).ok()?.format(&time::format_description::well_known::Rfc3339).ok()
    };
    loop {
        match log.source_activity().await {
            Ok(sources) => {
                let now = time::OffsetDateTime::now_utc();
                let before = nodes.read().map(|n| n.clone()).unwrap_or_default();
                let seen = domains
                    .iter()
                    .map(|domain| {
                        let source = sources.iter().find(|s| &s.domain == domain);
                        let active = source.and_then(|s| s.active);
                        // a source JetStream reloaded knows no activity yet: keep what was seen
                        let last_confirmed = active.and_then(|a| rfc3339(now - a)).or_else(|| {
                            before.iter().find(|s| &s.node == domain).and_then(|s| s.last_confirmed.clone())
                        });
                        cireg_views::NodeStatus {
                            node: domain.clone(),
                            reachable: active.is_some_and(|a| a < NODE_SILENCE),
                            last_confirmed,
                            lag: source.map_or(0, |s| s.lag),
                        }
                    })
                    .collect();
                if let Ok(mut n) = nodes.write() {
                    *n = seen;
                }
            }
            Err(e) => warn!(error = %e, "reading the central stream's sources"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// On a national node: publishes each live dataset's study counts to the facts stream whenever
/// they change (all of them once at start), so that a central node shows the counts this node
/// computed from studies it never sees.
async fn publish_study_counts(facts: cireg_log::FactsPublisher, store: Store, mut shutdown: watch::Receiver<bool>) {
    let mut published: std::collections::HashMap<(String, String), cireg_projector::StudyCounts> =
        std::collections::HashMap::new();
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || cireg_projector::projected_datasets(&s)).await {
            Ok(Ok(datasets)) => {
                for d in datasets {
                    let Some(counts) = d.counts else { continue };
                    let key = (d.provider, d.id);
                    if published.get(&key) == Some(&counts) {
                        continue;
                    }
                    let json = match serde_json::to_vec(&counts) {
                        Ok(j) => j,
                        Err(e) => {
                            warn!(error = %e, "encoding study counts");
                            continue;
                        }
                    };
                    match facts.publish_counts(&key.0, &key.1, json).await {
                        Ok(()) => {
                            published.insert(key, counts);
                        }
                        // tried again at the next look
                        Err(e) => warn!(error = %e, dataset = %key.1, "publishing a dataset's study counts"),
                    }
                }
            }
            Ok(Err(e)) => warn!(error = %e, "reading the datasets' study counts"),
            Err(e) => warn!(error = %e, "reading the datasets' study counts"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

pub async fn open_log(args: &LogArgs) -> anyhow::Result<(Arc<dyn EventLog>, Option<async_nats::Client>)> {
    match &args.nats {
        Some(url) => {
            let client = args.nats_args.connect(url, "cireg", None).await?;
            let options = JetStreamOptions { replicas: args.nats_replicas.into(), ..JetStreamOptions::default() };
            let log = JetStreamLog::open(client.clone(), &options).await.with_context(|| {
                format!(
                    "opening the JetStream event log at {} (is JetStream enabled, nats-server -js? may this user use it?)",
                    crate::connect::redacted(url)
                )
            })?;
            Ok((Arc::new(log), Some(client)))
        }
        None => {
            std::fs::create_dir_all(&args.data).with_context(|| format!("creating {}", args.data.display()))?;
            let path = args.data.join("log.redb");
            let log = EmbeddedLog::open(&path)
                .with_context(|| format!("opening the embedded log {} (is another cireg using it?)", path.display()))?;
            Ok((Arc::new(log), None))
        }
    }
}

fn open_store(path: &Path) -> anyhow::Result<Store> {
    Store::open(path).with_context(|| format!("opening the store {} (is another cireg using it?)", path.display()))
}

/// The projector over the store under `data` (`store/`), its public mirror (`public/`) and the
/// catalogue's history (`history.redb`), by the names given, minting IRIs under `base`, else under
/// the base the store was built for, else under `default`.
fn open_projector(
    data: &Path,
    [store, public, history]: [&str; 3],
    base: Option<&str>,
    default: &str,
) -> anyhow::Result<Projector> {
    let store = open_store(&data.join(store))?;
    let stored = cireg_projector::stored_base(&store)?;
    let projector = Projector::new(store, PublicBase::new(base.or(stored.as_deref()).unwrap_or(default))?)?;
    let history = cireg_projector::CatalogueHistory::open(&data.join(history))
        .with_context(|| format!("opening {}", data.join(history).display()))?;
    Ok(projector.with_public_mirror(open_store(&data.join(public))?)?.with_history(Arc::new(history))?)
}

/// What `cireg rebuild` makes beside the live files, then swaps in, in this order.
const PROJECTION_FILES: [&str; 3] = ["store", "public", "history.redb"];
const REBUILD_FILES: [&str; 3] = ["store.rebuild", "public.rebuild", "history.rebuild.redb"];

/// The machine's memory in bytes (`MemTotal` of /proc/meminfo).
fn machine_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A duration in seconds, greater than zero.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 86400")),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.log.data).with_context(|| format!("creating {}", args.log.data.display()))?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    let central = !args.central.is_empty();
    anyhow::ensure!(!(central && args.demo), "--demo loads events into the log, and the central node takes none");
    let central_log = if central { Some(open_central_log(&args.log, &args.central).await?) } else { None };
    let (log, nats): (Arc<dyn EventLog>, _) = match &central_log {
        Some(log) => (log.clone(), Some(log.client().clone())),
        None => open_log(&args.log).await?,
    };
    let journal = Arc::new(cireg_projector::ChangeJournal::default());
    // without --public-base, the base the store was built for: a restart that leaves the option
    // out (or listens elsewhere) must not fail, nor move the catalogue's IRIs
    let origins = args.central.iter().filter_map(|n| Some((n.domain.clone(), n.base.clone()?))).collect();
    let projector =
        open_projector(&args.log.data, PROJECTION_FILES, args.public_base.as_deref(), &format!("http://{local}"))?
            .with_journal(journal.clone())
            .with_origins(origins);
    let base = projector.base().clone();
    let store = projector.store().clone();
    let read_models = Arc::new(cireg_views::ReadModels::new(store.clone(), base.clone(), journal));
    let public_store = projector.public_store().cloned().context("the public mirror")?;
    let history = projector.history().cloned();
    let gate_base = base.clone();
    let gate = tokio::task::spawn_blocking(move || ProfileGate::load(gate_base))
        .await?
        .context("compiling the SHACL shapes of the application profile")?;
    let ingest = Ingest::new(log.clone())
        .with_gate(gate)
        .with_rate_limit(RateLimit::new(args.ingest_rate, args.ingest_burst))
        .with_cache_capacity(args.aggregate_cache);
    let auth = args.auth.verifier().await?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown_tx = Arc::new(shutdown_tx);
    // a log that cannot be written again while this process runs (the embedded log after an I/O
    // error, such as a full disk) stops the node with an error, for its supervisor to start it
    // again: nothing acknowledged is lost, and the new process opens the file afresh
    {
        let (log, stop) = (log.clone(), shutdown_tx.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Some(why) = log.failure() {
                    error!(error = %why, "the event log cannot be written again by this process: stopping, for the supervisor to start cireg again");
                    let _ = stop.send(true);
                    return;
                }
            }
        });
    }
    let (applied_tx, applied_rx) = watch::channel(projector.checkpoint()?);
    let mut tasks = tokio::task::JoinSet::new();
    {
        let log = log.clone();
        let shutdown = shutdown_rx.clone();
        let options = RunOptions { reader: args.reader.clone(), ..Default::default() };
        tasks.spawn(async move {
            if let Err(e) = cireg_projector::run(projector, log, options, applied_tx, shutdown).await {
                error!(error = %e, "the projector stopped");
            }
        });
    }
    // the central node takes no events: providers publish to their national nodes
    if let Some(client) = nats.as_ref().filter(|_| !central) {
        let js = async_nats::jetstream::new(client.clone());
        cireg_ingest::nats::ensure_streams(&js, args.log.nats_replicas.into()).await.map_err(anyhow::Error::msg)?;
        let (i, c, s) = (ingest.clone(), client.clone(), shutdown_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = cireg_ingest::nats::run_submissions(i, c, s).await {
                error!(error = %e, "the NATS submission consumer stopped");
            }
        });
        let requests = cireg_ingest::nats::subscribe_requests(client).await.map_err(anyhow::Error::msg)?;
        let (i, c, s) = (ingest.clone(), client.clone(), shutdown_rx.clone());
        tasks.spawn(async move {
            if let Err(e) = cireg_ingest::nats::run_requests(i, c, requests, s).await {
                error!(error = %e, "the NATS request handler stopped");
            }
        });
        // the counts of each dataset's studies, for a central node (which never sees the studies)
        let options = JetStreamOptions { replicas: args.log.nats_replicas.into(), ..JetStreamOptions::default() };
        let facts = cireg_log::FactsPublisher::open(client.clone(), &options).await.context("the facts stream")?;
        tasks.spawn(publish_study_counts(facts, store.clone(), shutdown_rx.clone()));
    }
    if args.demo {
        if log.last_seq().await? == 0 {
            load_demo(&ingest).await;
        } else {
            info!("the log is not empty: not loading the demo catalogue again");
        }
    }
    // the audit trail of study-level reads: beside the events, on the node's own log
    let audit = match nats.as_ref().filter(|_| !central) {
        Some(client) => cireg_log::AuditTrail::open_jetstream(client.clone(), args.log.nats_replicas.into())
            .await
            .context("the audit stream")?,
        None => cireg_log::AuditTrail::open_embedded(&args.log.data.join("audit.redb")).context("the audit trail")?,
    };
    let state = AppState {
        audit,
        ingest,
        store,
        public_store,
        history,
        base: base.clone(),
        catalog: Arc::new(args.catalog.info()),
        read_models: read_models.clone(),
        auth,
        auth_failures: Arc::default(),
        applied: applied_rx,
        sparql_timeout: Duration::from_secs_f64(args.sparql_timeout),
        sparql_max_results: args.sparql_max_results,
        sparql_memory_limit: match args.sparql_memory_limit {
            Some(0) => None,
            Some(mib) => Some(mib * 1024 * 1024),
            None => machine_memory().map(|bytes| bytes / 4 * 3),
        },
        history_max_events: args.history_max_events,
        central,
        nodes: Arc::default(),
        backups: Some(cireg_server::Backups::new(
            args.backup_dir.clone().unwrap_or_else(|| args.log.data.join("backups")),
        )),
        trusted_proxies: Arc::new(args.trusted_proxy.clone()),
        history_rate: Arc::new(RateLimit::per_minute(args.history_rate, args.history_rate)),
        admission: cireg_server::Admission::configured(
            args.sparql_slots.map(|n| n.get()),
            args.sparql_caller_share.map(|n| n.get()),
        ),
        limits: cireg_server::RequestLimits {
            body_timeout: Duration::from_secs_f64(args.body_timeout),
            request_timeout: Duration::from_secs_f64(args.request_timeout),
        },
    };
    if let Some(log) = central_log {
        let domains = args.central.iter().map(|n| n.domain.clone()).collect();
        tokio::spawn(watch_national_nodes(log, domains, state.nodes.clone(), shutdown_rx.clone()));
    }
    {
        // the read models: built once at start-up in the background (/readyz waits for them),
        // then following the projector (detached: shutdown does not wait for a build)
        let (state, shutdown) = (state.clone(), shutdown_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = state.run_read_models(shutdown).await {
                error!(error = %e, "the read models stopped following the projection");
            }
        });
    }
    let has_auth = state.auth.is_some();
    println!("cireg is serving on {}/ (listening on http://{local}, log: {})", base.as_str(), log.backend());
    if has_auth {
        println!("study views (FHIR ImagingStudy, for researchers' tokens) at {}/fhir", base.as_str());
    } else {
        warn!("no token keys (--jwks): HTTP ingest and the study views refuse every caller; NATS ingest is open to whoever may publish on cireg.submit.> / cireg.ingest.*");
    }
    let mut shutdown_http = shutdown_rx.clone();
    let connections = cireg_server::ConnectionLimits {
        max_connections: args.max_connections.max(1),
        header_timeout: Duration::from_secs_f64(args.header_timeout),
        ..Default::default()
    };
    let server = cireg_server::serve(listener, state, connections, async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = shutdown_http.changed() => {}
        }
    });
    let result = server.await;
    let _ = shutdown_tx.send(true);
    while tasks.join_next().await.is_some() {}
    info!("stopped");
    if let Some(why) = log.failure() {
        bail!("stopped: the event log cannot be written again by this process ({why}); start cireg again");
    }
    result.context("HTTP server")
}

async fn load_demo(ingest: &Ingest) {
    let events = crate::demo::demo_events();
    let mut accepted = 0;
    for event in &events {
        let bytes = serde_json::to_vec(event).unwrap_or_default();
        match ingest.submit(&bytes, &Sender::Operator).await {
            Ok(_) => accepted += 1,
            Err(e) => warn!(problem = ?e.problem(), "demo event refused"),
        }
    }
    info!(accepted, total = events.len(), "loaded the synthetic demo catalogue");
}

/// Where `cireg rebuild` mints IRIs when neither the store nor the command line names a base
/// (where `cireg serve` on its default address mints them).
const DEFAULT_BASE: &str = "http://127.0.0.1:8080";

pub async fn rebuild(args: LogArgs, public_base: Option<&str>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data).with_context(|| format!("creating {}", args.data.display()))?;
    let live = args.data.join("store");
    let stored = if live.exists() {
        // fails while a running cireg holds the store: never swap a store under a live server
        let store = open_store(&live).context("stop `cireg serve` before rebuilding")?;
        cireg_projector::stored_base(&store)?
    } else {
        None
    };
    // the store's own base unless another is asked for: a rebuild must not move every IRI of a
    // served catalogue because an option was left out
    let (base, which) = match (public_base, &stored) {
        (Some(given), Some(old)) if given != old => (given, format!("given; the store's was {old}")),
        (Some(given), _) => (given, "given".to_owned()),
        (None, Some(old)) => (old.as_str(), "the store's own".to_owned()),
        (None, None) => (DEFAULT_BASE, "the default: no store yet and no --public-base".to_owned()),
    };
    let base = PublicBase::new(base)?;
    println!("rebuilding under the public base {} ({which})", base.as_str());
    let (log, _nats) = open_log(&args).await?;
    for fresh in REBUILD_FILES {
        remove_path(&args.data.join(fresh))?;
    }
    // a scratch store: the files were removed above, and a stopped rebuild starts over
    let projector = open_projector(&args.data, REBUILD_FILES, Some(base.as_str()), DEFAULT_BASE)?.into_scratch();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} rebuilding [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let reader = format!("cireg-rebuild-{}", std::process::id());
    let applied = cireg_projector::rebuild(&projector, log.clone(), &reader, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish();
    if log.backend() == "jetstream" {
        // the rebuild's durable consumer is not needed any more
        if let Some(client) = &_nats {
            if let Ok(stream) = async_nats::jetstream::new(client.clone()).get_stream(cireg_log::EVENTS_STREAM).await {
                let _ = stream.delete_consumer(&reader).await;
            }
        }
    }
    // a store written batch after batch holds overwritten versions of its bookkeeping until
    // RocksDB compacts them: compacted now, the store starts at its size
    let compacting = std::time::Instant::now();
    {
        let projector = projector.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            projector.store().optimize()?;
            if let Some(public) = projector.public_store() {
                public.optimize()?;
            }
            Ok(())
        })
        .await??;
    }
    println!("compacted the rebuilt store in {:.1} s", compacting.elapsed().as_secs_f64());
    drop(projector);
    // the store first: a mirror that does not match it is rebuilt from it at the next start, and
    // a history behind it resumes after a gap
    for (name, fresh) in PROJECTION_FILES.into_iter().zip(REBUILD_FILES) {
        let (live, fresh, old) = (args.data.join(name), args.data.join(fresh), args.data.join(format!("{name}.old")));
        remove_path(&old)?;
        if live.exists() {
            std::fs::rename(&live, &old)?;
        }
        std::fs::rename(&fresh, &live)?;
        remove_path(&old)?;
    }
    println!("rebuilt {} from {applied} log events", live.display());
    Ok(())
}

/// Removes a file or a directory, if there is one.
fn remove_path(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Prints the store under `data` named `which` (`store`, or the mirror `public`) as sorted N-Quads.
pub fn dump(data: &Path, which: &str) -> anyhow::Result<()> {
    let path = data.join(which);
    if !path.exists() {
        bail!("no store at {}", path.display());
    }
    let store = Store::open_read_only(&path).with_context(|| format!("opening {} read-only", path.display()))?;
    let nquad = |quad: &oxigraph::model::Quad| -> anyhow::Result<String> {
        let mut s = RdfSerializer::from_format(RdfFormat::NQuads).for_writer(Vec::new());
        s.serialize_quad(quad)?;
        Ok(String::from_utf8(s.finish()?)?)
    };
    let mut lines = Vec::new();
    // the checkpoint is printed once, as its value: bulk-loaded batches may leave older values
    // beside it until the next transaction removes them
    let mut checkpoint: Option<(u64, oxigraph::model::Quad)> = None;
    for quad in store.iter() {
        let quad = quad?;
        if quad.predicate.as_str() == cireg_projector::ns::CHECKPOINT {
            let value = match &quad.object {
                oxigraph::model::Term::Literal(l) => l.value().parse().unwrap_or(0),
                _ => 0,
            };
            if checkpoint.as_ref().is_none_or(|(max, _)| value > *max) {
                checkpoint = Some((value, quad));
            }
            continue;
        }
        lines.push(nquad(&quad)?);
    }
    if let Some((_, quad)) = checkpoint {
        lines.push(nquad(&quad)?);
    }
    lines.sort();
    let mut out = std::io::stdout().lock();
    for line in lines {
        std::io::Write::write_all(&mut out, line.as_bytes())?;
    }
    Ok(())
}
