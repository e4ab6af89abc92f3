use std::{sync::Arc, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    routing::{get, post},
    Router,
};
use cireg_ingest::Ingest;
use cireg_projector::PublicBase;
use cireg_views::{CatalogIndex, CatalogInfo, ReadModels, SearchIndex};
use oxigraph::store::Store;
use tokio::sync::watch;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Ingest,
    /// The whole projection (catalogue and studies; bookkeeping in its default graph).
    pub store: Store,
    /// The public mirror of the projection: the datasets' and providers' graphs only, what the
    /// public SPARQL endpoint queries.
    pub public_store: Store,
    pub base: PublicBase,
    pub catalog: Arc<CatalogInfo>,
    /// The read models (catalogue paging, search, the study index behind the FHIR API), kept up
    /// to date from the projector's change journal.
    pub read_models: Arc<ReadModels>,
    /// Checks bearer tokens; `None`: no keys configured, so nobody can publish over HTTP or read
    /// study-level data.
    pub auth: Option<cireg_auth::Verifier>,
    /// Requests refused because their token did not verify (for `/metrics`).
    pub auth_failures: Arc<std::sync::atomic::AtomicU64>,
    /// The projector's checkpoint (last applied log sequence).
    pub applied: watch::Receiver<u64>,
    /// Time limit of one SPARQL query.
    pub sparql_timeout: Duration,
    /// The slots of expensive evaluations (SPARQL queries, `?at=` replays of the log) and each
    /// caller's share of them.
    pub admission: Arc<crate::Admission>,
    /// What each batch changed in the public graphs, kept for `?at=` (`None`: `?at=` replays the
    /// log from sequence 1).
    pub history: Option<Arc<cireg_projector::CatalogueHistory>>,
    /// Most log events a `?at=` request may replay; an instant further into a longer log is
    /// refused (422).
    pub history_max_events: u64,
    /// Proxies whose `X-Forwarded-For` names the client (for per-caller limits).
    pub trusted_proxies: Arc<Vec<std::net::IpAddr>>,
    /// `?at=` replays each caller may ask for per minute.
    pub history_rate: Arc<cireg_ingest::RateLimit>,
    /// Most solutions (or triples) one SPARQL query may return.
    pub sparql_max_results: usize,
    /// The process's resident memory (bytes) past which running SPARQL evaluations are cancelled.
    pub sparql_memory_limit: Option<u64>,
    /// How long a request's body and answer may take.
    pub limits: crate::RequestLimits,
    /// Where `POST /admin/backup` writes (none: the node keeps no backups).
    pub backups: Option<crate::Backups>,
    /// The central node: it folds the national nodes' catalogues and takes no events itself.
    pub central: bool,
    /// On the central node: the national nodes as last seen (empty on a national node).
    pub nodes: Arc<std::sync::RwLock<Vec<cireg_views::NodeStatus>>>,
    /// Where every read of study-level data is recorded before it is served.
    pub audit: cireg_log::AuditTrail,
}

/// How long a request waits for the read models to include what the projector had applied when
/// it came (read-your-writes); past it, it is answered from the models as they are.
const FRESHNESS_WAIT: Duration = Duration::from_secs(2);

impl AppState {
    /// Builds every read model once, as of the projector's checkpoint once it has caught up with
    /// what the log held at the call (`/readyz` says not ready until then), then keeps them up to
    /// date from the projector's change journal until `shutdown`. Run it in the background at
    /// start-up, so that no request is the one to build them.
    pub async fn run_read_models(&self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
        let target = self.ingest.log().last_seq().await.map_err(std::io::Error::other)?;
        let mut applied = self.applied.clone();
        tokio::select! {
            a = applied.wait_for(|a| *a >= target) => { a.map_err(std::io::Error::other)?; }
            _ = shutdown.changed() => return Ok(()),
        }
        self.rebuild_read_models().await?;
        tracing::info!(checkpoint = self.read_models.checkpoint(), "read models built");
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let models = self.read_models.clone();
            let applied = tokio::task::spawn_blocking(move || models.follow_once(Duration::from_millis(250)))
                .await
                .map_err(std::io::Error::other)?;
            if let Err(e) = applied {
                // the store could not be read: the changes are lost to the models, so build them
                // again once it can
                tracing::warn!(error = %e, "updating the read models failed; rebuilding them");
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if *shutdown.borrow() {
                        return Ok(());
                    }
                    match self.rebuild_read_models().await {
                        Ok(()) => break,
                        Err(e) => tracing::warn!(error = %e, "rebuilding the read models failed; trying again"),
                    }
                }
            }
        }
    }

    /// Builds the read models again from the store, as of what the projector has applied.
    async fn rebuild_read_models(&self) -> std::io::Result<()> {
        let (models, committed) = (self.read_models.clone(), *self.applied.borrow());
        tokio::task::spawn_blocking(move || models.rebuild(committed)).await.map_err(std::io::Error::other)?
    }

    /// The read models once they include what the projector had applied when called (waiting
    /// up to [`FRESHNESS_WAIT`]); models still not built after that wait are an error.
    async fn fresh_models(&self) -> std::io::Result<&ReadModels> {
        let models = &self.read_models;
        let target = *self.applied.borrow();
        let mut progress = models.progress();
        // past the wait, the models answer as they are (a slow follower delays, never fails, reads)
        let _ = tokio::time::timeout(FRESHNESS_WAIT, progress.wait_for(|p| p.ready && p.checkpoint >= target)).await;
        if !models.is_ready() {
            return Err(std::io::Error::other("the read models are still being built (see /readyz)"));
        }
        Ok(models)
    }

    /// Catalogue counts (zero when the models are not built: they feed gauges only).
    pub async fn summary(&self) -> cireg_views::Summary {
        let Ok(index) = self.catalog_index().await else { return cireg_views::Summary::default() };
        // the public mirror holds the same dataset and provider graphs without the studies', which
        // listing every named graph would walk through
        let (store, base) = (self.public_store.clone(), self.base.clone());
        tokio::task::spawn_blocking(move || cireg_views::summary(&store, &base, &index))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// The catalogue's paging index.
    pub async fn catalog_index(&self) -> std::io::Result<Arc<CatalogIndex>> {
        Ok(self.fresh_models().await?.catalog())
    }

    /// The search index.
    pub async fn search_index(&self) -> std::io::Result<Arc<SearchIndex>> {
        Ok(self.fresh_models().await?.search())
    }

    /// The read models, for the study index.
    pub async fn study_index(&self) -> std::io::Result<Arc<ReadModels>> {
        self.fresh_models().await?;
        Ok(self.read_models.clone())
    }
}

/// Largest body of `POST /events`: a batch of events.
const EVENTS_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Largest body of every other request (a SPARQL query, a search).
const READ_BODY_LIMIT: usize = 1024 * 1024;

/// All routes of the registry.
pub fn router(state: AppState) -> Router {
    use axum::middleware::from_fn_with_state;
    let limits = state.limits;
    let http_metrics = std::sync::Arc::new(crate::metrics::HttpMetrics::default());
    // writing: no CORS (browsers of other origins cannot publish), a large body for batches,
    // read whole (within the body time limit) only once the token was checked
    let write = Router::new()
        .route("/events", post(crate::events::post_events))
        .layer(from_fn_with_state((limits, EVENTS_BODY_LIMIT), crate::limits::body_within))
        .route_layer(from_fn_with_state(state.clone(), crate::auth::require_publisher))
        .layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT));
    // SPARQL has its own time limit, enforced inside the evaluator
    let sparql = Router::new().route("/sparql", get(crate::read::sparql_get).post(crate::read::sparql_post));
    // operating the node: no CORS, no body
    let admin = Router::new().route("/admin/backup", post(crate::admin::backup));
    read_routes()
        .layer(from_fn_with_state(limits, crate::limits::answer_within))
        .merge(sparql)
        .layer(from_fn_with_state((limits, READ_BODY_LIMIT), crate::limits::body_within))
        .layer(read_cors())
        .merge(write)
        .merge(admin)
        .fallback(not_found)
        .layer(from_fn_with_state(std::sync::Arc::<str>::from(state.base.as_str()), crate::problems::dereferenceable))
        .layer(from_fn_with_state(http_metrics.clone(), crate::metrics::record))
        .layer(axum::Extension(http_metrics))
        .layer(DefaultBodyLimit::max(READ_BODY_LIMIT))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// CORS for the read endpoints: any origin may read (the catalogue is public; study data needs
/// a bearer token, which a browser only sends when the page's script adds it).
fn read_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{header, HeaderName, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::HEAD, Method::POST])
        .allow_headers([header::ACCEPT, header::CONTENT_TYPE, header::AUTHORIZATION, HeaderName::from_static("prefer")])
        .expose_headers([header::ETAG, header::LAST_MODIFIED, header::LINK, header::LOCATION])
}

/// Everything but `POST /events`.
fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(crate::web::landing))
        .route("/search", get(crate::web::search))
        .route("/access", get(crate::web::access_page))
        .route("/api/v1/datasets", get(crate::search::datasets))
        .route("/api/v1/nodes", get(crate::search::nodes))
        .route("/api/v1/audit", get(crate::audit::list))
        .route("/api/v1/access-requests", get(crate::requests::list).post(crate::requests::create))
        .route("/api/v1/access-requests/{id}", get(crate::requests::get_one))
        .route("/api/v1/access-requests/{id}/decisions", post(crate::requests::decide))
        .route("/api/v1/access-requests/{id}/revocations", post(crate::requests::revoke))
        .route("/api/v1/access-requests/{id}/answers", post(crate::requests::answer))
        .route("/api/v1/access-requests/{id}/withdrawal", post(crate::requests::withdraw))
        .route("/api/v1/datasets/{provider}/{id}", get(crate::search::dataset))
        .route("/api/openapi.json", get(crate::search::openapi))
        .route("/api/eucaim/search", post(crate::search::eucaim))
        .route("/fhir/metadata", get(crate::fhir::metadata))
        .route("/fhir/ImagingStudy", get(crate::fhir::search))
        .route("/fhir/ImagingStudy/_search", post(crate::fhir::search_post))
        .route("/fhir/ImagingStudy/{id}", get(crate::fhir::read))
        .route("/fhir/ImagingStudy/{id}/_history", get(crate::fhir::history))
        .route("/fhir/ImagingStudy/{id}/_history/{vid}", get(crate::fhir::vread))
        .route("/fhir/{*rest}", get(crate::fhir::unknown))
        .route("/catalog.ttl", get(crate::catalog::catalog_ttl))
        .route("/catalog.jsonld", get(crate::catalog::catalog_jsonld))
        .route("/catalog.rdf", get(crate::catalog::catalog_rdf))
        .route("/catalog.nt", get(crate::catalog::catalog_nt))
        .route("/feed", get(crate::catalog::feed))
        .route("/problems", get(crate::problems::index))
        .route("/problems/{kind}", get(crate::problems::page))
        .route("/schemas", get(crate::read::schema_index))
        .route("/schemas/{file}", get(crate::read::schema_file))
        .route("/healthz", get(crate::read::healthz))
        .route("/readyz", get(crate::read::readyz))
        .route("/metrics", get(crate::read::metrics))
        .merge(minted_resources())
}

/// The IRIs the registry mints, each dereferenceable by `Accept` or by `?format=`.
fn minted_resources() -> Router<AppState> {
    Router::new()
        .route("/catalog", get(crate::catalog::catalog))
        .route("/datasets/{provider}/{dataset}", get(crate::read::dataset))
        .route("/datasets/{provider}/{dataset}/distributions/{distribution}", get(crate::read::distribution))
        .route("/datasets/{provider}/{dataset}/{folder}/{id}", get(crate::read::dataset_part))
        .route("/records/{provider}/{dataset}", get(crate::read::record))
        .route("/providers/{provider}", get(crate::read::provider))
        .route("/manufacturers/{slug}", get(crate::read::manufacturer))
        .route("/nodes/{domain}", get(crate::read::node))
        .route("/feed/{seq}", get(crate::catalog::feed_activity))
        .layer(axum::middleware::from_fn(crate::read::format_parameter))
}

/// Serves `router(state)` on `listener` within `connections`' bounds until `shutdown`
/// completes, then drains open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    connections: crate::ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::listen::serve_bounded(listener, router(state), connections, shutdown).await
}

async fn not_found(uri: axum::http::Uri) -> crate::problem::ProblemResponse {
    crate::problem::problem(404, "not-found", "Not found", format!("nothing at {}", uri.path()))
}
