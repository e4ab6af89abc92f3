use std::{sync::Arc, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    routing::{get, post},
    Router,
};
use cireg_ingest::Ingest;
use cireg_projector::PublicBase;
use cireg_views::{
    CatalogCache, CatalogIndex, CatalogInfo, CheckpointCache, SearchCache, SearchIndex, StudyCache, StudyIndex,
};
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
    /// The paging index of the live catalogue, rebuilt when the checkpoint moves.
    pub catalog_index: Arc<CatalogCache>,
    /// The search index of the live datasets, rebuilt when the checkpoint moves.
    pub search_index: Arc<SearchCache>,
    /// The index of the studies behind the FHIR API, rebuilt when the checkpoint moves.
    pub study_index: Arc<StudyCache>,
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
    /// Whether the read models (catalogue paging, search, study index) were built once since
    /// the start; `/readyz` says not ready before.
    pub read_models_ready: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// Builds every read model once, as of the projector's checkpoint once it has caught up with
    /// what the log held at the call, and then marks them ready (for `/readyz`). Run it in the
    /// background at start-up, so that no request is the one to build them first.
    pub async fn build_read_models(&self) -> std::io::Result<()> {
        let target = self.ingest.log().last_seq().await.map_err(std::io::Error::other)?;
        let mut applied = self.applied.clone();
        applied.wait_for(|a| *a >= target).await.map_err(std::io::Error::other)?;
        self.catalog_index().await?;
        self.search_index().await?;
        self.study_index().await?;
        self.read_models_ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Catalogue counts (zero when the store cannot be read: they feed gauges only).
    pub async fn summary(&self) -> cireg_views::Summary {
        let Ok(index) = self.catalog_index().await else { return cireg_views::Summary::default() };
        let (store, base) = (self.store.clone(), self.base.clone());
        tokio::task::spawn_blocking(move || cireg_views::summary(&store, &base, &index))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// The catalogue's paging index as of the projector's checkpoint (built once per checkpoint).
    pub async fn catalog_index(&self) -> std::io::Result<Arc<CatalogIndex>> {
        self.as_of_checkpoint(self.catalog_index.clone(), CatalogIndex::build).await
    }

    /// The search index as of the projector's checkpoint (built once per checkpoint).
    pub async fn search_index(&self) -> std::io::Result<Arc<SearchIndex>> {
        self.as_of_checkpoint(self.search_index.clone(), SearchIndex::build).await
    }

    /// The study index as of the projector's checkpoint (built once per checkpoint).
    pub async fn study_index(&self) -> std::io::Result<Arc<StudyIndex>> {
        self.as_of_checkpoint(self.study_index.clone(), StudyIndex::build).await
    }

    /// A read model as of the projector's checkpoint: the one `cache` keeps, or a new one from
    /// `build` on a blocking thread (it reads the store).
    async fn as_of_checkpoint<T: Send + Sync + 'static>(
        &self,
        cache: Arc<CheckpointCache<T>>,
        build: fn(&Store, &PublicBase) -> std::io::Result<T>,
    ) -> std::io::Result<Arc<T>> {
        let checkpoint = *self.applied.borrow();
        let (store, base) = (self.store.clone(), self.base.clone());
        tokio::task::spawn_blocking(move || cache.get(checkpoint, || build(&store, &base)))
            .await
            .map_err(std::io::Error::other)?
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
    // writing: no CORS (browsers of other origins cannot publish), a large body for batches,
    // read whole (within the body time limit) only once the token was checked
    let write = Router::new()
        .route("/events", post(crate::events::post_events))
        .layer(from_fn_with_state((limits, EVENTS_BODY_LIMIT), crate::limits::body_within))
        .route_layer(from_fn_with_state(state.clone(), crate::auth::require_publisher))
        .layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT));
    // SPARQL has its own time limit, enforced inside the evaluator
    let sparql = Router::new().route("/sparql", get(crate::read::sparql_get).post(crate::read::sparql_post));
    read_routes()
        .layer(from_fn_with_state(limits, crate::limits::answer_within))
        .merge(sparql)
        .layer(from_fn_with_state((limits, READ_BODY_LIMIT), crate::limits::body_within))
        .layer(read_cors())
        .merge(write)
        .fallback(not_found)
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
        .route("/api/v1/datasets", get(crate::search::datasets))
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
