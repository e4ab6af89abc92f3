use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use cireg_log::StoredEvent;
use cireg_model::{Aggregate, AggregateState, Dataset, DatasetStatus, Event, Payload, Study, StudyStatus};
use oxigraph::{
    model::{vocab::xsd, GraphName, GraphNameRef, Literal, NamedNode, NamedOrBlankNode, Quad, Term},
    store::{StorageError, Store},
};
use serde::{Deserialize, Serialize};

use cireg_dcat::{aggregate_graph, iri, Origin, PublicBase};

use crate::{
    history::{second_of, CatalogueHistory, HistoryError},
    journal::ChangeJournal,
    ns::{CHECKPOINT, LEGACY_PROJECTION_GRAPH, PROJECTION_NODE},
    study::study_graph,
};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("store: {0}")]
    Store(#[from] StorageError),
    #[error("log sequence {seq} holds an event the projector cannot read: {detail}")]
    UnreadableEvent { seq: u64, detail: String },
    #[error("the store was built for the public base {stored}, not {configured}: change it with `cireg rebuild --public-base {configured}`, or leave the option out to keep it")]
    BaseMismatch { stored: String, configured: String },
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{0}")]
    Other(String),
}

const STATE: &str = "urn:cireg:vocab#aggregateState";
/// A study graph bulk-loaded ahead of its batch's transaction, until that transaction commits.
const PENDING_GRAPH: &str = "urn:cireg:vocab#pendingGraph";
const BASE: &str = "urn:cireg:vocab#publicBase";
/// Links a study aggregate to its subject's consent aggregate (both log subjects), so that a
/// consent withdrawal finds every study of the subject, whatever its status.
const STUDY_OF: &str = "urn:cireg:vocab#studyOfSubject";
/// How many available studies one subject has in one dataset, on a tally node per dataset and
/// subject: the dataset's number of subjects follows from these.
const STUDIES_OF_SUBJECT: &str = "urn:cireg:vocab#studiesOfSubject";

/// Batches of at least this many events that only create aggregates are bulk-loaded.
const BULK_MIN_EVENTS: usize = 64;
/// New study graphs of at least this many quads in a batch are bulk-loaded ahead of its
/// transaction (fewer go into the transaction: a bulk load has a fixed cost).
const BULK_MIN_FRESH_QUADS: usize = 2_000;
/// Memory the bulk loader may use for one batch.
const BULK_MEMORY_MB: usize = 256;

/// What the projection keeps of an aggregate between events.
#[derive(Debug, Serialize, Deserialize)]
struct StoredState {
    version: u64,
    last_seq: u64,
    state: AggregateState,
    /// The [`MAPPING_VERSION`] the aggregate's graph was written with.
    #[serde(default)]
    mapping: u32,
    /// When the log accepted the aggregate's first and latest event (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recorded: Option<(String, String)>,
    /// For a dataset with registered studies: what they add up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    studies: Option<StudyCounts>,
    /// On the central node: the national node (JetStream domain) whose log the aggregate's
    /// events come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

/// What the available studies of a dataset add up to; when a dataset has any, these replace the
/// counts its provider published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyCounts {
    pub subjects: u64,
    pub studies: u64,
    pub series: u64,
}

impl StudyCounts {
    /// The dataset document with these counts in place of the published ones.
    fn apply_to(counts: Option<StudyCounts>, document: &serde_json::Value) -> serde_json::Value {
        let mut doc = document.clone();
        if let (Some(c), Some(map)) = (counts.filter(|c| c.studies > 0), doc.as_object_mut()) {
            map.insert("numberOfSubjects".into(), c.subjects.into());
            map.insert("numberOfStudies".into(), c.studies.into());
            map.insert("numberOfSeries".into(), c.series.into());
        }
        doc
    }
}

/// Bump when `cireg_dcat`'s mapping maps a state to different triples: graphs written with an older
/// mapping are then replaced whole instead of patched by difference.
const MAPPING_VERSION: u32 = 3;

/// An aggregate a batch touches: as it was projected before the batch, and as it is now.
struct Touched {
    aggregate: Aggregate,
    /// How it was projected before the batch, when it was.
    before: Option<Before>,
    /// When the log accepted the aggregate's first and latest event, as of the batch.
    recorded: Option<(String, String)>,
    /// For a dataset: what its studies add up to, as of the batch.
    counts: Option<StudyCounts>,
    /// A study erased by its subject's consent withdrawal: no graph, no state, nothing left.
    erased: bool,
    /// The national node its events come from (central node only).
    node: Option<String>,
}

/// An aggregate as projected before a batch.
struct Before {
    /// The stored state term, to remove.
    term: Term,
    state: AggregateState,
    /// The mapping version its graph was written with.
    mapping: u32,
    recorded: Option<(String, String)>,
    counts: Option<StudyCounts>,
}

/// Folds events into one Oxigraph store, and keeps an optional mirror of its public graphs.
#[derive(Clone)]
pub struct Projector {
    store: Store,
    /// The public mirror: the dataset and provider graphs only, so that the public SPARQL
    /// endpoint can query the union of all its graphs (what Oxigraph evaluates fastest) without
    /// a per-graph filter; nothing else is ever written there.
    public: Option<Store>,
    base: PublicBase,
    /// Where each committed batch's changed aggregates are recorded for the read models.
    journal: Option<Arc<ChangeJournal>>,
    /// Where each batch's change of the public graphs is kept, for the catalogue at an instant.
    history: Option<Arc<CatalogueHistory>>,
    /// The store is new, read by no one until the fold ends, and thrown away whole if it stops
    /// (`cireg rebuild`): a batch need not survive a crash between its two writes, so what it
    /// adds goes through the bulk loader, with no pending marks.
    scratch: bool,
    /// On the central node: the public bases of the national nodes (by JetStream domain), for
    /// the identity a dataset keeps across the federation.
    origins: HashMap<String, PublicBase>,
}

/// Every quad of a public mirror's named graphs (its checkpoint left out).
fn public_quads(public: &Store) -> Result<Vec<Quad>, HistoryError> {
    public
        .quads_for_pattern(None, None, None, None)
        .filter(|q| !matches!(q, Ok(q) if q.graph_name.is_default_graph()))
        .collect::<Result<_, _>>()
        .map_err(|e| HistoryError::from_store(&e))
}

/// Where the bookkeeping lives: the default graph, which no SPARQL query reaches.
fn projection_graph() -> GraphName {
    GraphName::DefaultGraph
}

fn tally_node(provider: &str, dataset: &str, pseudonym: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("urn:cireg:tally:{provider}:{dataset}:{pseudonym}"))
}

fn aggregate_node(subject: &str) -> NamedNode {
    // log subjects are dot-separated tokens of [A-Za-z0-9_-]: safe in a URN
    NamedNode::new_unchecked(format!("urn:cireg:aggregate:{subject}"))
}

fn one_object(store: &Store, s: &NamedNode, p: &str) -> Result<Option<Term>, StorageError> {
    let p = NamedNode::new_unchecked(p);
    store
        .quads_for_pattern(Some(s.as_ref().into()), Some(p.as_ref()), None, Some(GraphNameRef::DefaultGraph))
        .next()
        .transpose()
        .map(|q| q.map(|q| q.object))
}

/// The checkpoint a store holds and the terms that hold it. A bulk-loaded batch adds its
/// checkpoint beside the old one (the bulk loader cannot delete); the highest is the checkpoint,
/// and the next transactional batch removes them all. `None`: the store has none yet.
fn stored_checkpoint(store: &Store) -> Result<(Option<u64>, Vec<Term>), StorageError> {
    let node = NamedNode::new_unchecked(PROJECTION_NODE);
    let predicate = NamedNode::new_unchecked(CHECKPOINT);
    let mut max = None;
    let mut terms = Vec::new();
    for quad in store.quads_for_pattern(
        Some(node.as_ref().into()),
        Some(predicate.as_ref()),
        None,
        Some(GraphNameRef::DefaultGraph),
    ) {
        let quad = quad?;
        if let Term::Literal(l) = &quad.object {
            max = max.max(Some(l.value().parse().unwrap_or(0)));
        }
        terms.push(quad.object);
    }
    Ok((max, terms))
}

fn checkpoint_quad(seq: u64) -> Quad {
    bookkeeping(
        &NamedNode::new_unchecked(PROJECTION_NODE),
        CHECKPOINT,
        Literal::new_typed_literal(seq.to_string(), xsd::INTEGER).into(),
    )
}

/// Moves the bookkeeping of a store written before it lived in the default graph out of its old
/// named graph, in one transaction.
fn migrate_legacy_bookkeeping(store: &Store) -> Result<(), StorageError> {
    let legacy = NamedNode::new_unchecked(LEGACY_PROJECTION_GRAPH);
    if !store.contains_named_graph(legacy.as_ref())? {
        return Ok(());
    }
    let quads: Vec<Quad> =
        store.quads_for_pattern(None, None, None, Some(legacy.as_ref().into())).collect::<Result<_, _>>()?;
    tracing::info!(quads = quads.len(), "moving the projector's bookkeeping to the default graph");
    let mut tx = store.start_transaction()?;
    tx.remove_named_graph(legacy.as_ref())?;
    for q in quads {
        tx.insert(Quad::new(q.subject, q.predicate, q.object, GraphName::DefaultGraph).as_ref());
    }
    tx.commit()
}

/// The public base `store` was built for, if it was built at all.
pub fn stored_base(store: &Store) -> Result<Option<String>, ProjectionError> {
    migrate_legacy_bookkeeping(store)?;
    Ok(match one_object(store, &NamedNode::new_unchecked(PROJECTION_NODE), BASE)? {
        Some(Term::Literal(l)) => Some(l.value().to_owned()),
        _ => None,
    })
}

impl Projector {
    /// A projector over `store`, minting IRIs under `base`. Refuses a store built for another base.
    pub fn new(store: Store, base: PublicBase) -> Result<Self, ProjectionError> {
        migrate_legacy_bookkeeping(&store)?;
        let node = NamedNode::new_unchecked(PROJECTION_NODE);
        match one_object(&store, &node, BASE)? {
            Some(Term::Literal(l)) if l.value() != base.as_str() => {
                return Err(ProjectionError::BaseMismatch {
                    stored: l.value().to_owned(),
                    configured: base.as_str().to_owned(),
                });
            }
            Some(_) => {}
            None => {
                store.insert(&Quad::new(
                    node.clone(),
                    NamedNode::new_unchecked(BASE),
                    Literal::new_simple_literal(base.as_str()),
                    projection_graph(),
                ))?;
            }
        }
        Ok(Projector {
            store,
            public: None,
            base,
            journal: None,
            history: None,
            scratch: false,
            origins: HashMap::new(),
        })
    }

    /// Keeps `public` a mirror of the store's public graphs (datasets', providers') from now on.
    /// A mirror that is not at the store's checkpoint (new, or a crash fell between the two
    /// commits of a batch) is first rebuilt from the store.
    pub fn with_public_mirror(mut self, public: Store) -> Result<Self, ProjectionError> {
        let checkpoint = self.checkpoint()?;
        if stored_checkpoint(&public)?.0 != Some(checkpoint) {
            tracing::info!(checkpoint, "copying the public graphs to the public mirror");
            public.clear()?;
            let mut quads = Vec::new();
            for graph in self.store.named_graphs() {
                let NamedOrBlankNode::NamedNode(graph) = graph? else { continue };
                if !self.is_public_graph(&graph) {
                    continue;
                }
                for quad in self.store.quads_for_pattern(None, None, None, Some(graph.as_ref().into())) {
                    quads.push(quad?);
                }
            }
            quads.push(checkpoint_quad(checkpoint));
            let mut loader = public.bulk_loader().with_max_memory_size_in_megabytes(BULK_MEMORY_MB);
            loader.load_quads(quads)?;
            loader.commit()?;
        }
        self.public = Some(public);
        Ok(self)
    }

    /// Keeps in `history` what each batch changes in the public graphs from now on; it needs the
    /// public mirror ([`Projector::with_public_mirror`] first). Batches are then cut at whole
    /// seconds of append time, so that the history tells each second apart. A history that is not
    /// at the store's checkpoint (new beside a store that holds events, or a crash fell between a
    /// batch's commit and its record) resumes here, after a gap it does not answer for.
    pub fn with_history(mut self, history: Arc<CatalogueHistory>) -> Result<Self, ProjectionError> {
        let Some(public) = &self.public else {
            return Err(ProjectionError::Other("the catalogue history needs the public mirror".to_owned()));
        };
        let (checkpoint, recorded) = (self.checkpoint()?, history.last_seq()?);
        if recorded != checkpoint {
            tracing::info!(
                checkpoint,
                recorded,
                "the catalogue history resumes at the store's checkpoint, after a gap"
            );
            let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
            history.resume(checkpoint, &public_quads(public)?, now)?;
        }
        self.history = Some(history);
        Ok(self)
    }

    /// Folds into a scratch store from now on: a new store that nothing reads before the fold
    /// ends, and that is thrown away whole if the fold stops (what `cireg rebuild` builds beside
    /// the live store). Each batch then removes what it replaces in a transaction and bulk-loads
    /// what it adds (when that is much), with no pending marks, since a batch cut in two is never
    /// resumed. The store it makes is the one a live projector makes of the same log.
    pub fn into_scratch(mut self) -> Self {
        self.scratch = true;
        self
    }

    /// On the central node: the public bases of the national nodes, by JetStream domain. A dataset
    /// from a node named here is identified by its IRI there (`dct:identifier`, `adms:identifier`).
    pub fn with_origins(mut self, origins: HashMap<String, PublicBase>) -> Self {
        self.origins = origins;
        self
    }

    /// Records every committed batch's changed aggregates in `journal` from now on.
    pub fn with_journal(mut self, journal: Arc<ChangeJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The public mirror, when the projector keeps one.
    pub fn public_store(&self) -> Option<&Store> {
        self.public.as_ref()
    }

    /// The catalogue history, when the projector keeps one.
    pub fn history(&self) -> Option<&Arc<CatalogueHistory>> {
        self.history.as_ref()
    }

    /// Whether a named graph of the store is public: a dataset's or a provider's. The public
    /// mirror holds exactly these.
    pub fn is_public_graph(&self, graph: &NamedNode) -> bool {
        self.base.is_catalogue_iri(graph.as_str())
    }

    pub fn base(&self) -> &PublicBase {
        &self.base
    }

    /// Writes what the store and the public mirror hold in memory (RocksDB's memtables) to their
    /// files, which frees it. RocksDB flushes a column family only once its memtable reaches 64 MB,
    /// and a store's dozen column families fill together: a node taking studies in held up to
    /// ~1 GB of them (`cireg load`) before the first flush. No-op for in-memory stores.
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.store.flush()?;
        if let Some(public) = &self.public {
            public.flush()?;
        }
        Ok(())
    }

    /// The last log sequence applied to the store (0 for a fresh store).
    pub fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.checkpoint_terms()?.0)
    }

    /// The checkpoint and the terms that store it (see [`stored_checkpoint`]).
    fn checkpoint_terms(&self) -> Result<(u64, Vec<Term>), ProjectionError> {
        let (max, terms) = stored_checkpoint(&self.store)?;
        Ok((max.unwrap_or(0), terms))
    }

    /// The aggregate as last projected, and the stored state term to replace.
    fn load_aggregate(&self, subject: &str) -> Result<Touched, ProjectionError> {
        match one_object(&self.store, &aggregate_node(subject), STATE)? {
            Some(Term::Literal(l)) => {
                let s: StoredState = serde_json::from_str(l.value())
                    .map_err(|e| ProjectionError::Other(format!("stored state of {subject}: {e}")))?;
                Ok(Touched {
                    aggregate: Aggregate::restore(s.version, s.last_seq, s.state.clone()),
                    recorded: s.recorded.clone(),
                    counts: s.studies,
                    erased: false,
                    node: s.node,
                    before: Some(Before {
                        term: l.into(),
                        state: s.state,
                        mapping: s.mapping,
                        recorded: s.recorded,
                        counts: s.studies,
                    }),
                })
            }
            _ => Ok(Touched {
                aggregate: Aggregate::default(),
                before: None,
                recorded: None,
                counts: None,
                erased: false,
                node: None,
            }),
        }
    }

    /// Whether the subject of a consent aggregate withdrew consent, as of the batch so far.
    fn consent_withdrawn(
        &self,
        consent: &str,
        touched: &HashMap<String, Touched>,
        known: &mut HashMap<String, bool>,
    ) -> Result<bool, ProjectionError> {
        if let Some(t) = touched.get(consent) {
            return Ok(matches!(t.aggregate.state, AggregateState::Subject { .. }));
        }
        if let Some(w) = known.get(consent) {
            return Ok(*w);
        }
        let withdrawn = matches!(self.load_aggregate(consent)?.aggregate.state, AggregateState::Subject { .. });
        known.insert(consent.to_owned(), withdrawn);
        Ok(withdrawn)
    }

    /// The log subjects of every projected study of a subject (by its consent aggregate's subject).
    fn stored_studies_of(&self, consent: &str) -> Result<Vec<String>, ProjectionError> {
        let predicate = NamedNode::new_unchecked(STUDY_OF);
        let value: Term = Literal::new_simple_literal(consent).into();
        let mut out = Vec::new();
        for quad in self.store.quads_for_pattern(
            None,
            Some(predicate.as_ref()),
            Some(value.as_ref()),
            Some(projection_graph().as_ref()),
        ) {
            if let NamedOrBlankNode::NamedNode(n) = quad?.subject {
                if let Some(subject) = n.as_str().strip_prefix("urn:cireg:aggregate:") {
                    out.push(subject.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// How many available studies `pseudonym` has in a dataset, as the store has it.
    fn studies_of_subject(&self, node: &NamedNode) -> Result<Option<(u64, Term)>, ProjectionError> {
        Ok(match one_object(&self.store, node, STUDIES_OF_SUBJECT)? {
            Some(Term::Literal(l)) => Some((l.value().parse().unwrap_or(0), l.into())),
            _ => None,
        })
    }

    /// The quads of an aggregate's graph in `state` (`None`: no graph).
    fn graph_quads(
        &self,
        subject: &str,
        state: &AggregateState,
        recorded: &Option<(String, String)>,
        counts: Option<StudyCounts>,
        node: Option<&str>,
    ) -> Result<Option<Vec<Quad>>, ProjectionError> {
        let (provider, _, id) = split_subject(subject);
        match state {
            AggregateState::Study { status: StudyStatus::Available, subject: pseudonym, study, .. } => {
                return Ok(Some(study_graph(&self.base, provider, pseudonym, study).1));
            }
            // an access request is bookkeeping only: no graph, never in SPARQL
            AggregateState::Study { .. } | AggregateState::Subject { .. } | AggregateState::Access { .. } => {
                return Ok(None)
            }
            _ => {}
        }
        let recorded = recorded.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        let counted;
        let state = match state {
            AggregateState::Dataset { document, status, issued, modified, deprecation } if counts.is_some() => {
                counted = AggregateState::Dataset {
                    document: StudyCounts::apply_to(counts, document),
                    status: *status,
                    issued: issued.clone(),
                    modified: modified.clone(),
                    deprecation: deprecation.clone(),
                };
                &counted
            }
            state => state,
        };
        let origin = node.map(|node| Origin { node, base: self.origins.get(node) });
        let graph = aggregate_graph(&self.base, provider, id, state, recorded, origin)
            .map_err(|e| ProjectionError::Other(format!("dataset document of {subject}: {e}")))?;
        Ok(graph.map(|g| g.quads))
    }

    /// The named graph of an aggregate, if it has one.
    fn graph_iri(&self, subject: &str, state: &AggregateState) -> Option<NamedNode> {
        let (provider, kind, id) = split_subject(subject);
        match (kind, state) {
            ("dataset", _) => Some(iri(self.base.dataset(provider, id))),
            ("provider", _) => Some(iri(self.base.provider(provider))),
            (_, AggregateState::Study { subject: pseudonym, study, .. }) => {
                Some(iri(self.base.study(&Study::resource_id(provider, pseudonym, &study.study_instance_uid))))
            }
            _ => None,
        }
    }

    /// Applies the events of `batch` that are past the checkpoint, in one transaction with the new
    /// checkpoint (one per second of append time when keeping a history). Blocking (RocksDB):
    /// call it from a blocking thread. Returns the new checkpoint.
    pub fn apply_batch(&self, batch: &[StoredEvent]) -> Result<u64, ProjectionError> {
        if self.history.is_none() {
            return self.apply_run(batch);
        }
        let mut last = self.checkpoint()?;
        for run in batch.chunk_by(|a, b| second_of(a.appended_at_nanos) == second_of(b.appended_at_nanos)) {
            last = self.apply_run(run)?;
        }
        Ok(last)
    }

    /// [`Projector::apply_batch`] of events whose history (when kept) is one record.
    fn apply_run(&self, batch: &[StoredEvent]) -> Result<u64, ProjectionError> {
        self.drop_pending_graphs()?;
        let (checkpoint, old_checkpoints) = self.checkpoint_terms()?;
        let mut touched: HashMap<String, Touched> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut withdrawn: HashMap<String, bool> = HashMap::new();
        let mut last = checkpoint;
        for stored in batch.iter().filter(|e| e.seq > checkpoint) {
            last = stored.seq;
            if let (provider, "counts", dataset) = split_subject(&stored.subject) {
                // on the central node: what a national node counted of a dataset's studies
                self.take_counts(stored, provider, dataset, &mut touched, &mut order)?;
                continue;
            }
            let event = Event::parse_stored(&stored.payload)
                .map_err(|e| ProjectionError::UnreadableEvent { seq: stored.seq, detail: e.to_string() })?;
            let consent = cireg_model::consent_subject(&event.provider, &event.aggregate);
            if event.payload.study_uid().is_some() && self.consent_withdrawn(&consent, &touched, &mut withdrawn)? {
                // a study that landed while its subject withdrew consent: ingest erases it from
                // the log, and it never reaches the store
                continue;
            }
            self.touch(&stored.subject, &mut touched, &mut order)?;
            if let Some(t) = touched.get_mut(&stored.subject) {
                if !belongs(&mut t.node, &stored.node, stored) {
                    continue;
                }
                t.aggregate.apply(stored.seq, &event);
                let at = log_time(stored.appended_at_nanos);
                let listed = t.recorded.take().map(|(listed, _)| listed).unwrap_or_else(|| at.clone());
                t.recorded = Some((listed, at));
            }
            if matches!(event.payload, Payload::ConsentWithdrawn) {
                let prefix = format!("{consent}.");
                let mut studies: Vec<String> = order.iter().filter(|s| s.starts_with(&prefix)).cloned().collect();
                studies.extend(self.stored_studies_of(&consent)?);
                for study in studies {
                    self.touch(&study, &mut touched, &mut order)?;
                    if let Some(t) = touched.get_mut(&study) {
                        t.erased = true;
                        t.aggregate = Aggregate::default();
                    }
                }
            }
        }
        if last == checkpoint {
            return Ok(checkpoint);
        }
        // the second the batch's last event was appended in: its time in the history
        let second = batch.iter().rfind(|e| e.seq > checkpoint).map_or(0, |e| second_of(e.appended_at_nanos));
        // What the batch changes: graphs to clear, quads to insert, old states to remove.
        let mut clear: Vec<NamedNode> = Vec::new();
        let mut drop_graphs: Vec<NamedNode> = Vec::new();
        let mut insert: Vec<Quad> = Vec::new();
        let mut remove: Vec<Quad> = Vec::new();
        // the graphs of studies new to the store: bulk-loaded ahead of the transaction when the
        // batch cannot be bulk-loaded whole (see below)
        let mut fresh: Vec<Quad> = Vec::new();
        self.count_studies(&mut touched, &mut order, &mut insert, &mut remove)?;
        // the public graphs the batch may change, for the mirror
        let mut public_graphs: Vec<NamedNode> = Vec::new();
        for subject in &order {
            let Some(Touched { aggregate, before, recorded, counts, erased, node: origin }) = touched.get(subject)
            else {
                continue;
            };
            let origin = origin.as_deref();
            if self.public.is_some() {
                let graphs = before.iter().map(|b| &b.state).chain([&aggregate.state]);
                public_graphs.extend(
                    graphs.filter_map(|state| self.graph_iri(subject, state)).filter(|g| self.is_public_graph(g)),
                );
            }
            let node = aggregate_node(subject);
            if let Some(old) = before {
                remove.push(bookkeeping(&node, STATE, old.term.clone()));
            }
            if *erased {
                if let Some(old) = before {
                    drop_graphs.extend(self.graph_iri(subject, &old.state));
                    if let Some((consent, _)) = subject.split_once(".study.") {
                        remove.push(bookkeeping(&node, STUDY_OF, Literal::new_simple_literal(consent).into()));
                    }
                }
                continue;
            }
            let new_quads = self.graph_quads(subject, &aggregate.state, recorded, *counts, origin)?;
            let old_graph = before.as_ref().and_then(|b| self.graph_iri(subject, &b.state));
            // a new aggregate whose graph the store already holds: what a crash left between the
            // bulk load of new study graphs and the transaction of their batch (below)
            let leftover_graph = match (before, self.graph_iri(subject, &aggregate.state)) {
                // (a scratch store has no crash behind it)
                (None, Some(g)) if !self.scratch && self.store.contains_named_graph(g.as_ref())? => Some(g),
                _ => None,
            };
            match (before, new_quads) {
                // new aggregate over a leftover graph: replace it whole
                (None, Some(quads)) if leftover_graph.is_some() => {
                    clear.extend(leftover_graph);
                    insert.extend(quads);
                }
                // new study
                (None, Some(quads)) if subject.contains(".study.") => fresh.extend(quads),
                // new aggregate
                (None, Some(quads)) => insert.extend(quads),
                (_, None) => drop_graphs.extend(old_graph),
                // changed, graph written by this mapping: write only the difference (not on the
                // central node, whose graphs also follow --central's node bases, which may have
                // changed since: its few dataset graphs are replaced whole)
                (Some(old), Some(quads)) if old.mapping == MAPPING_VERSION && origin.is_none() => {
                    let old: HashSet<Quad> = self
                        .graph_quads(subject, &old.state, &old.recorded, old.counts, None)?
                        .unwrap_or_default()
                        .into_iter()
                        .collect();
                    let new: HashSet<Quad> = quads.into_iter().collect();
                    remove.extend(old.difference(&new).cloned());
                    insert.extend(new.difference(&old).cloned());
                }
                // changed, graph written by another mapping: replace it whole
                (Some(_), Some(quads)) => {
                    clear.extend(old_graph);
                    insert.extend(quads);
                }
            }
            if before.is_none() {
                if let Some((consent, _)) = subject.split_once(".study.") {
                    insert.push(bookkeeping(&node, STUDY_OF, Literal::new_simple_literal(consent).into()));
                }
            }
            // the aggregate's state, for the next event
            let json = serde_json::to_string(&StoredState {
                version: aggregate.version,
                last_seq: aggregate.last_seq,
                state: aggregate.state.clone(),
                mapping: MAPPING_VERSION,
                recorded: recorded.clone(),
                studies: *counts,
                node: origin.map(str::to_owned),
            })
            .map_err(|e| ProjectionError::Other(e.to_string()))?;
            insert.push(bookkeeping(&node, STATE, Literal::new_simple_literal(json).into()));
        }
        insert.push(checkpoint_quad(last));

        // A batch that only creates (a rebuild, a log far ahead) goes through the bulk loader,
        // which commits atomically like a transaction and is many times faster; anything that
        // replaces or deletes goes through a transaction.
        let applied = batch.iter().filter(|e| e.seq > checkpoint).count();
        let whole_bulk = applied >= BULK_MIN_EVENTS && clear.is_empty() && remove.is_empty() && drop_graphs.is_empty();
        if whole_bulk || fresh.len() < BULK_MIN_FRESH_QUADS {
            insert.append(&mut fresh);
        }
        if whole_bulk {
            // the mirror's share first: the bulk loader takes the quads
            let public_share: Option<Vec<Quad>> = self.public.as_ref().map(|_| {
                insert
                    .iter()
                    .filter(|q| matches!(&q.graph_name, GraphName::NamedNode(g) if self.is_public_graph(g)))
                    .cloned()
                    .chain([checkpoint_quad(last)])
                    .collect()
            });
            let mut loader = self.store.bulk_loader().with_max_memory_size_in_megabytes(BULK_MEMORY_MB);
            loader.load_quads(insert)?;
            loader.commit()?;
            if let (Some(public), Some(quads)) = (&self.public, public_share) {
                if let Some(history) = &self.history {
                    let added: Vec<Quad> = quads.iter().filter(|q| !q.graph_name.is_default_graph()).cloned().collect();
                    history.record(last, second, &[], &added, || public_quads(public))?;
                }
                let mut loader = public.bulk_loader().with_max_memory_size_in_megabytes(BULK_MEMORY_MB);
                loader.load_quads(quads)?;
                loader.commit()?;
            }
            if let Some(journal) = &self.journal {
                journal.record(last, &order);
            }
            return Ok(last);
        }
        // Many new studies (a batch of new studies changes its datasets' counts, so it cannot be
        // bulk-loaded whole): their graphs go through the bulk loader first, the rest (states,
        // counts, the checkpoint) through the transaction. Nothing reads a study graph back
        // before its state exists, and a failure between the two leaves graphs without states,
        // marked pending (below) and dropped before the next batch; a store written before the
        // marks keeps such graphs, which the batch's replay finds and rewrites whole
        // (`leftover_graph` above).
        let projection = NamedNode::new_unchecked(PROJECTION_NODE);
        // A scratch store (a rebuild) adds after the transaction instead, all through the bulk
        // loader when there is enough of it for the loader's fixed cost (a log that trickled in
        // folds in small batches), with no pending marks: a batch cut in two there is never
        // resumed, the rebuild starts over.
        let mut after = Vec::new();
        if self.scratch {
            insert.append(&mut fresh);
            if insert.len() >= BULK_MIN_FRESH_QUADS {
                after = std::mem::take(&mut insert);
            }
        } else if !fresh.is_empty() {
            // the graphs are marked pending first, and the transaction removes the marks: a
            // failure between the two (a crash, a full disk) leaves graphs that are known, and
            // dropped before the next batch, even if their events were erased from the log since
            let graphs: HashSet<&NamedNode> = fresh
                .iter()
                .filter_map(|q| match &q.graph_name {
                    GraphName::NamedNode(g) => Some(g),
                    _ => None,
                })
                .collect();
            let marks: Vec<Quad> =
                graphs.into_iter().map(|g| bookkeeping(&projection, PENDING_GRAPH, g.clone().into())).collect();
            let mut tx = self.store.start_transaction()?;
            for mark in &marks {
                tx.insert(mark);
            }
            tx.commit()?;
            remove.extend(marks);
            let mut loader = self.store.bulk_loader().with_max_memory_size_in_megabytes(BULK_MEMORY_MB);
            loader.load_quads(fresh)?;
            loader.commit()?;
        }
        // Writes only, no reads inside the transaction: the old values were read above, which
        // keeps big batches linear.
        let mut tx = self.store.start_transaction()?;
        for graph in &clear {
            tx.clear_graph(graph.as_ref())?;
        }
        for graph in &drop_graphs {
            tx.remove_named_graph(graph.as_ref())?;
        }
        for quad in &remove {
            tx.remove(quad);
        }
        for old in old_checkpoints {
            tx.remove(&bookkeeping(&projection, CHECKPOINT, old));
        }
        for quad in &insert {
            tx.insert(quad);
        }
        tx.commit()?;
        if !after.is_empty() {
            let mut loader = self.store.bulk_loader().with_max_memory_size_in_megabytes(BULK_MEMORY_MB);
            loader.load_quads(after)?;
            loader.commit()?;
        }
        // the read models follow the store, which is the truth even if the mirror fails below
        if let Some(journal) = &self.journal {
            journal.record(last, &order);
        }
        self.sync_public(&public_graphs, last, second)?;
        Ok(last)
    }

    /// Drops the study graphs a batch bulk-loaded ahead of a transaction that did not commit: the
    /// batch is applied again from the log, without what was erased from it meanwhile.
    fn drop_pending_graphs(&self) -> Result<(), ProjectionError> {
        let projection = NamedNode::new_unchecked(PROJECTION_NODE);
        let predicate = NamedNode::new_unchecked(PENDING_GRAPH);
        let marks: Vec<Quad> = self
            .store
            .quads_for_pattern(
                Some(projection.as_ref().into()),
                Some(predicate.as_ref()),
                None,
                Some(GraphNameRef::DefaultGraph),
            )
            .collect::<Result<_, _>>()?;
        if marks.is_empty() {
            return Ok(());
        }
        tracing::warn!(graphs = marks.len(), "dropping the study graphs of a batch that did not commit");
        let mut tx = self.store.start_transaction()?;
        for mark in &marks {
            if let Term::NamedNode(graph) = &mark.object {
                tx.remove_named_graph(graph.as_ref())?;
            }
            tx.remove(mark);
        }
        tx.commit()?;
        Ok(())
    }

    /// Copies `graphs` as the store now has them into the public mirror, with the checkpoint, in
    /// one transaction. The store is the truth: a mirror that missed a batch (a crash between the
    /// two commits) is rebuilt by [`Projector::with_public_mirror`] at the next start. The history
    /// (when kept) records the difference first, as appended in `second`.
    ///
    /// Only the difference is written: a batch of studies changes a few counts in each of its
    /// datasets' graphs, and clearing and re-inserting whole graphs filled the mirror's RocksDB
    /// memtables with a copy and a tombstone of every quad, each batch (heaptrack under
    /// `cireg load`: half a GiB of the node's heap, growing with every study taken in).
    fn sync_public(&self, graphs: &[NamedNode], checkpoint: u64, second: i128) -> Result<(), ProjectionError> {
        let Some(public) = &self.public else { return Ok(()) };
        let old_checkpoints = stored_checkpoint(public)?.1;
        let (mut removed, mut added, mut gone, mut fresh) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for graph in graphs.iter().collect::<HashSet<_>>() {
            let new: HashSet<Quad> = if self.store.contains_named_graph(graph.as_ref())? {
                if !public.contains_named_graph(graph.as_ref())? {
                    fresh.push(graph);
                }
                self.store.quads_for_pattern(None, None, None, Some(graph.as_ref().into())).collect::<Result<_, _>>()?
            } else {
                gone.push(graph);
                HashSet::new()
            };
            let old: HashSet<Quad> =
                public.quads_for_pattern(None, None, None, Some(graph.as_ref().into())).collect::<Result<_, _>>()?;
            removed.extend(old.iter().filter(|q| !new.contains(*q)).cloned());
            added.extend(new.into_iter().filter(|q| !old.contains(q)));
        }
        if let Some(history) = &self.history {
            history.record(checkpoint, second, &removed, &added, || public_quads(public))?;
        }
        let mut tx = public.start_transaction()?;
        for graph in gone {
            tx.remove_named_graph(graph.as_ref())?;
        }
        for quad in &removed {
            tx.remove(quad);
        }
        for graph in fresh {
            // a graph the store holds empty is still a graph of the mirror
            tx.insert_named_graph(graph.as_ref());
        }
        for quad in &added {
            tx.insert(quad);
        }
        let projection = NamedNode::new_unchecked(PROJECTION_NODE);
        for old in old_checkpoints {
            tx.remove(&bookkeeping(&projection, CHECKPOINT, old));
        }
        tx.insert(&checkpoint_quad(checkpoint));
        tx.commit()?;
        Ok(())
    }
}

/// Whether an event of national node `theirs` may change an aggregate held by `mine` (central
/// node): an aggregate belongs to the first node that sent its events, since the IRIs minted here
/// name the provider and dataset, not the node, and another node's events for the same subject
/// would overwrite its graph. Takes the aggregate for `theirs` when it has no node yet.
fn belongs(mine: &mut Option<String>, theirs: &Option<String>, stored: &StoredEvent) -> bool {
    match (&*mine, theirs) {
        (Some(m), Some(t)) if m != t => {
            tracing::warn!(
                seq = stored.seq,
                subject = %stored.subject,
                node = %t,
                held_by = %m,
                "skipping what a national node sent for an aggregate another node holds \
                 (provider ids must be unique across the federation)"
            );
            false
        }
        (None, Some(t)) => {
            *mine = Some(t.clone());
            true
        }
        _ => true,
    }
}

impl Projector {
    /// A national node's counts of a dataset's studies (central node): they stand for the
    /// dataset's counts here, as the node's own studies do there.
    fn take_counts(
        &self,
        stored: &StoredEvent,
        provider: &str,
        dataset: &str,
        touched: &mut HashMap<String, Touched>,
        order: &mut Vec<String>,
    ) -> Result<(), ProjectionError> {
        let counts: StudyCounts = match serde_json::from_slice(&stored.payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(seq = stored.seq, subject = %stored.subject, error = %e, "skipping unreadable study counts");
                return Ok(());
            }
        };
        let Some(provider) = cireg_model::ProviderId::parse(provider) else {
            tracing::warn!(seq = stored.seq, subject = %stored.subject, "skipping study counts of no provider");
            return Ok(());
        };
        let subject = cireg_model::dataset_subject(&provider, dataset);
        self.touch(&subject, touched, order)?;
        if let Some(t) = touched.get_mut(&subject) {
            if belongs(&mut t.node, &stored.node, stored) {
                t.counts = Some(counts);
            }
        }
        Ok(())
    }

    /// Loads `subject`'s aggregate into the batch, once.
    fn touch(
        &self,
        subject: &str,
        touched: &mut HashMap<String, Touched>,
        order: &mut Vec<String>,
    ) -> Result<(), ProjectionError> {
        if !touched.contains_key(subject) {
            touched.insert(subject.to_owned(), self.load_aggregate(subject)?);
            order.push(subject.to_owned());
        }
        Ok(())
    }

    /// Brings the study counts of every dataset whose studies the batch changes up to date: the
    /// per-subject tallies (quads to write) and the datasets' totals (in `touched`).
    fn count_studies(
        &self,
        touched: &mut HashMap<String, Touched>,
        order: &mut Vec<String>,
        insert: &mut Vec<Quad>,
        remove: &mut Vec<Quad>,
    ) -> Result<(), ProjectionError> {
        /// What one study adds to its dataset's counts: (provider, dataset, pseudonym, series).
        fn contribution<'a>(subject: &'a str, state: &'a AggregateState) -> Option<(&'a str, &'a str, &'a str, u64)> {
            match state {
                AggregateState::Study { status: StudyStatus::Available, subject: pseudonym, study, .. } => {
                    Some((split_subject(subject).0, &study.dataset, pseudonym, study.number_of_series))
                }
                _ => None,
            }
        }
        // (provider, dataset) → Δ(subjects, studies, series); (provider, dataset, pseudonym) → Δstudies
        let mut datasets: HashMap<(String, String), (i64, i64, i64)> = HashMap::new();
        let mut subjects: HashMap<(String, String, String), i64> = HashMap::new();
        for subject in order.iter() {
            let Some(t) = touched.get(subject) else { continue };
            let before = t.before.as_ref().and_then(|b| contribution(subject, &b.state));
            let after = if t.erased { None } else { contribution(subject, &t.aggregate.state) };
            if before == after {
                continue;
            }
            for (sign, c) in [(-1, before), (1, after)] {
                if let Some((provider, dataset, pseudonym, series)) = c {
                    let d = datasets.entry((provider.to_owned(), dataset.to_owned())).or_default();
                    d.1 += sign;
                    d.2 += sign * series as i64;
                    *subjects.entry((provider.to_owned(), dataset.to_owned(), pseudonym.to_owned())).or_default() +=
                        sign;
                }
            }
        }
        for ((provider, dataset, pseudonym), delta) in subjects {
            if delta == 0 {
                continue;
            }
            let node = tally_node(&provider, &dataset, &pseudonym);
            let old = self.studies_of_subject(&node)?;
            let had = old.as_ref().map_or(0, |(n, _)| *n);
            let has = (had as i64 + delta).max(0) as u64;
            if let Some((_, term)) = old {
                remove.push(bookkeeping(&node, STUDIES_OF_SUBJECT, term));
            }
            if has > 0 {
                insert.push(bookkeeping(
                    &node,
                    STUDIES_OF_SUBJECT,
                    Literal::new_typed_literal(has.to_string(), xsd::INTEGER).into(),
                ));
            }
            let d = datasets.entry((provider, dataset)).or_default();
            d.0 += i64::from(had == 0 && has > 0) - i64::from(had > 0 && has == 0);
        }
        for ((provider, dataset), (subjects, studies, series)) in datasets {
            let Some(provider_id) = cireg_model::ProviderId::parse(&provider) else { continue };
            let subject = cireg_model::dataset_subject(&provider_id, &dataset);
            self.touch(&subject, touched, order)?;
            if let Some(t) = touched.get_mut(&subject) {
                let c = t.counts.unwrap_or_default();
                let add = |n: u64, d: i64| (n as i64 + d).max(0) as u64;
                // none at all is no counts, however the dataset got there: a store is the same
                // whatever batches built it (a rebuild is compared with it)
                t.counts = Some(StudyCounts {
                    subjects: add(c.subjects, subjects),
                    studies: add(c.studies, studies),
                    series: add(c.series, series),
                })
                .filter(|c| *c != StudyCounts::default());
            }
        }
        // datasets go after the studies that change them; a dataset touched only for its counts
        // is still folded like any other
        Ok(())
    }
}

/// A live dataset as the projection holds it: the read models (search, summaries) start here
/// rather than from the triples, since the document keeps every code with its display text.
#[derive(Debug, Clone)]
pub struct ProjectedDataset {
    pub provider: String,
    pub id: String,
    pub status: DatasetStatus,
    pub dataset: Dataset,
    /// When the log accepted the dataset's first and latest event (RFC 3339).
    pub recorded: Option<(String, String)>,
    /// On the central node: the national node it came from (JetStream domain).
    pub node: Option<String>,
    /// What its registered studies add up to, when it has any (on the central node: as its
    /// national node counted them).
    pub counts: Option<StudyCounts>,
}

/// Every dataset in the store that is not withdrawn.
pub fn projected_datasets(store: &Store) -> Result<Vec<ProjectedDataset>, ProjectionError> {
    let mut out = Vec::new();
    for_each_stored_state(store, is_dataset_subject, |subject, stored| {
        out.extend(dataset_of(subject, stored)?);
        Ok(())
    })?;
    Ok(out)
}

/// The dataset of log subject `subject` (`cireg.events.<provider>.dataset.<id>`), if the store
/// holds it and it is not withdrawn.
pub fn projected_dataset(store: &Store, subject: &str) -> Result<Option<ProjectedDataset>, ProjectionError> {
    match stored_state(store, subject)? {
        Some(stored) => dataset_of(subject, stored),
        None => Ok(None),
    }
}

fn dataset_of(subject: &str, stored: StoredState) -> Result<Option<ProjectedDataset>, ProjectionError> {
    let AggregateState::Dataset { status, document, .. } = stored.state else { return Ok(None) };
    if status == DatasetStatus::Withdrawn {
        return Ok(None);
    }
    let dataset: Dataset = serde_json::from_value(StudyCounts::apply_to(stored.studies, &document))
        .map_err(|e| ProjectionError::Other(format!("dataset document of {subject}: {e}")))?;
    let (provider, _, id) = split_subject(subject);
    Ok(Some(ProjectedDataset {
        provider: provider.to_owned(),
        id: id.to_owned(),
        status,
        dataset,
        recorded: stored.recorded,
        node: stored.node,
        counts: stored.studies,
    }))
}

/// The stored state of the aggregate of log subject `subject`, if the store holds one.
fn stored_state(store: &Store, subject: &str) -> Result<Option<StoredState>, ProjectionError> {
    match one_object(store, &aggregate_node(subject), STATE)? {
        Some(Term::Literal(json)) => serde_json::from_str(json.value())
            .map(Some)
            .map_err(|e| ProjectionError::Other(format!("stored state of {subject}: {e}"))),
        _ => Ok(None),
    }
}

/// Calls `each` with every aggregate state in the store whose log subject `wanted` accepts.
fn for_each_stored_state(
    store: &Store,
    wanted: impl Fn(&str) -> bool,
    mut each: impl FnMut(&str, StoredState) -> Result<(), ProjectionError>,
) -> Result<(), ProjectionError> {
    let state = NamedNode::new_unchecked(STATE);
    for quad in store.quads_for_pattern(None, Some(state.as_ref()), None, Some(projection_graph().as_ref())) {
        let quad = quad?;
        let (NamedOrBlankNode::NamedNode(node), Term::Literal(json)) = (&quad.subject, &quad.object) else { continue };
        let Some(subject) = node.as_str().strip_prefix("urn:cireg:aggregate:") else { continue };
        if !wanted(subject) {
            continue;
        }
        let stored: StoredState = serde_json::from_str(json.value())
            .map_err(|e| ProjectionError::Other(format!("stored state of {subject}: {e}")))?;
        each(subject, stored)?;
    }
    Ok(())
}

/// A study as the projection holds it, for the study-level read models.
#[derive(Debug, Clone)]
pub struct ProjectedStudy {
    pub provider: String,
    /// The pseudonymous subject id.
    pub subject: String,
    /// The resource id ([`Study::resource_id`]).
    pub id: String,
    pub status: StudyStatus,
    pub study: Study,
    /// Number of events folded: the version of the resource.
    pub version: u64,
    /// When the log accepted the study's first and latest event (RFC 3339).
    pub recorded: Option<(String, String)>,
}

/// Every study in the store, retracted ones included; the studies of subjects that withdrew
/// consent are not in the store at all.
pub fn projected_studies(store: &Store) -> Result<Vec<ProjectedStudy>, ProjectionError> {
    let mut out = Vec::new();
    for_each_stored_state(store, is_study_subject, |subject, stored| {
        out.extend(study_of(subject, stored));
        Ok(())
    })?;
    Ok(out)
}

/// The study of log subject `subject` (`cireg.events.<provider>.subject.<pseudonym>.study.<uid>`),
/// retracted or not, if the store holds it (an erased study it does not).
pub fn projected_study(store: &Store, subject: &str) -> Result<Option<ProjectedStudy>, ProjectionError> {
    Ok(stored_state(store, subject)?.and_then(|stored| study_of(subject, stored)))
}

/// An access request at one data holder as the projection holds it, for the permit read model.
#[derive(Debug, Clone)]
pub struct ProjectedAccess {
    pub provider: String,
    /// The request id (shared by the request's parts at each data holder).
    pub id: String,
    /// Number of events folded (what `expectedversion` names).
    pub version: u64,
    /// The [`AggregateState::Access`] state.
    pub state: AggregateState,
}

/// Every access request part in the store.
pub fn projected_access_requests(store: &Store) -> Result<Vec<ProjectedAccess>, ProjectionError> {
    let mut out = Vec::new();
    for_each_stored_state(store, is_access_subject, |subject, stored| {
        out.extend(access_of(subject, stored));
        Ok(())
    })?;
    Ok(out)
}

/// The access request part of log subject `subject` (`cireg.events.<provider>.access.<id>`).
pub fn projected_access(store: &Store, subject: &str) -> Result<Option<ProjectedAccess>, ProjectionError> {
    Ok(stored_state(store, subject)?.and_then(|stored| access_of(subject, stored)))
}

fn access_of(subject: &str, stored: StoredState) -> Option<ProjectedAccess> {
    if !matches!(stored.state, AggregateState::Access { .. }) {
        return None;
    }
    let (provider, _, id) = split_subject(subject);
    Some(ProjectedAccess {
        provider: provider.to_owned(),
        id: id.to_owned(),
        version: stored.version,
        state: stored.state,
    })
}

/// Whether a log subject is an access request's.
pub fn is_access_subject(subject: &str) -> bool {
    split_subject(subject).1 == "access"
}

/// Whether a log subject is a study's.
pub fn is_study_subject(subject: &str) -> bool {
    subject.contains(".study.")
}

/// Whether a log subject is a dataset's.
pub fn is_dataset_subject(subject: &str) -> bool {
    split_subject(subject).1 == "dataset"
}

fn study_of(subject: &str, stored: StoredState) -> Option<ProjectedStudy> {
    let AggregateState::Study { status, subject: pseudonym, study, .. } = stored.state else { return None };
    let provider = split_subject(subject).0.to_owned();
    Some(ProjectedStudy {
        id: Study::resource_id(&provider, &pseudonym, &study.study_instance_uid),
        provider,
        subject: pseudonym,
        status,
        study: *study,
        version: stored.version,
        recorded: stored.recorded,
    })
}

/// A log append time as RFC 3339 (UTC).
fn log_time(nanos: i128) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// A quad of the bookkeeping graph.
fn bookkeeping(node: &NamedNode, predicate: &str, value: Term) -> Quad {
    Quad::new(node.clone(), NamedNode::new_unchecked(predicate), value, projection_graph())
}

/// `cireg.events.<provider>.dataset.<id>` → (provider, "dataset", id);
/// `cireg.events.<provider>.provider` → (provider, "provider", provider).
pub fn subject_parts(subject: &str) -> (&str, &str, &str) {
    split_subject(subject)
}

fn split_subject(subject: &str) -> (&str, &str, &str) {
    let rest = subject.strip_prefix(cireg_model::SUBJECT_PREFIX).and_then(|r| r.strip_prefix('.')).unwrap_or(subject);
    let mut parts = rest.splitn(3, '.');
    let provider = parts.next().unwrap_or_default();
    let kind = parts.next().unwrap_or_default();
    let id = parts.next().unwrap_or(provider);
    (provider, kind, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use oxigraph::model::NamedNodeRef;

    fn example(name: &str) -> serde_json::Value {
        let path = format!("{}/../../schemas/examples/eu.cancerimage.{name}.v1.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn stored(seq: u64, event: &serde_json::Value) -> StoredEvent {
        let e = cireg_model::validate_event(&serde_json::to_vec(event).unwrap()).unwrap();
        StoredEvent { seq, subject: e.subject(), payload: Bytes::from(e.to_bytes()), appended_at_nanos: 0, node: None }
    }

    fn projector() -> Projector {
        Projector::new(Store::new().unwrap(), PublicBase::new("https://registry.example.eu/").unwrap()).unwrap()
    }

    const DATASET: &str = "https://registry.example.eu/datasets/synthetic-breast-consortium/breast-mri-screening-2024";

    fn graph_len(p: &Projector, graph: &str) -> usize {
        p.store()
            .quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(NamedNodeRef::new(graph).unwrap())))
            .count()
    }

    #[test]
    fn folds_a_dataset_lifecycle_and_keeps_the_checkpoint() {
        let p = projector();
        assert_eq!(p.checkpoint().unwrap(), 0);
        let events = [
            stored(1, &example("provider.registered")),
            stored(2, &example("dataset.published")),
            stored(3, &example("dataset.distribution.added")),
        ];
        assert_eq!(p.apply_batch(&events).unwrap(), 3);
        assert_eq!(p.checkpoint().unwrap(), 3);
        let with_two = graph_len(&p, DATASET);
        assert!(with_two > 50, "{with_two}");
        assert!(graph_len(&p, "https://registry.example.eu/providers/synthetic-breast-consortium") > 5);

        // events at or below the checkpoint are not applied twice
        assert_eq!(p.apply_batch(&events).unwrap(), 3);
        assert_eq!(graph_len(&p, DATASET), with_two);

        // one event at a time, as when live: the graph is replaced, not appended to
        p.apply_batch(&[stored(4, &example("dataset.distribution.removed"))]).unwrap();
        assert!(graph_len(&p, DATASET) < with_two);
        p.apply_batch(&[stored(5, &example("dataset.withdrawn"))]).unwrap();
        assert_eq!(graph_len(&p, DATASET), 0, "a withdrawn dataset leaves the store");
        assert_eq!(p.checkpoint().unwrap(), 5);
    }

    #[test]
    fn a_creating_batch_is_bulk_loaded_and_later_batches_replace_its_checkpoint() {
        let p = projector();
        // dataset bulk-i at log sequence i + 2
        let published = |range: std::ops::Range<u64>| -> Vec<StoredEvent> {
            range
                .map(|i| {
                    let mut e = example("dataset.published");
                    e["id"] = serde_json::json!(format!("bulk-{i}"));
                    e["subject"] = serde_json::json!(format!("bulk-{i}"));
                    stored(i + 2, &e)
                })
                .collect()
        };
        let mut batch = vec![stored(1, &example("provider.registered"))];
        batch.extend(published(0..100));
        assert_eq!(p.apply_batch(&batch).unwrap(), 101);
        assert_eq!(p.checkpoint().unwrap(), 101);
        let dataset = "https://registry.example.eu/datasets/synthetic-breast-consortium/bulk-42";
        let size = graph_len(&p, dataset);
        assert!(size > 50, "{size}");
        // a second bulk batch leaves two checkpoint values; the highest counts
        let more = published(100..170);
        assert_eq!(p.apply_batch(&more).unwrap(), 171);
        assert_eq!(p.checkpoint_terms().unwrap().1.len(), 2);
        // an update goes through a transaction, replaces the graph and cleans the checkpoints up
        let mut update = example("dataset.updated");
        update["subject"] = serde_json::json!("bulk-42");
        update.as_object_mut().unwrap().remove("expectedversion");
        p.apply_batch(&[stored(172, &update)]).unwrap();
        assert_eq!(p.checkpoint_terms().unwrap(), (172, vec![Literal::new_typed_literal("172", xsd::INTEGER).into()]));
        assert_eq!(graph_len(&p, dataset), size, "replaced, not appended to");
        let subjects = NamedNode::new_unchecked("http://healthdataportal.eu/ns/health#numberOfUniqueIndividuals");
        let values: Vec<_> = p
            .store()
            .quads_for_pattern(
                None,
                Some(subjects.as_ref()),
                None,
                Some(GraphNameRef::NamedNode(NamedNodeRef::new(dataset).unwrap())),
            )
            .map(|q| q.unwrap().object.to_string())
            .collect();
        assert_eq!(values.len(), 1);
        assert!(values[0].contains("436"), "{values:?}");
    }

    #[test]
    fn patching_by_difference_gives_the_graph_a_fresh_fold_gives() {
        let mut update = example("dataset.updated");
        update["data"]["ageRange"] = serde_json::Value::Null; // removes a property
        update["data"]["keywords"] = serde_json::json!({"en": ["breast cancer", "DCE-MRI"]});
        let events = [
            stored(1, &example("provider.registered")),
            stored(2, &example("dataset.published")),
            stored(3, &update),
            stored(4, &example("dataset.distribution.added")),
            stored(5, &example("dataset.distribution.removed")),
            stored(6, &example("dataset.deprecated")),
        ];
        let one_by_one = projector();
        for e in &events {
            one_by_one.apply_batch(std::slice::from_ref(e)).unwrap();
        }
        let at_once = projector();
        at_once.apply_batch(&events).unwrap();
        let quads = |p: &Projector| {
            let mut q: Vec<String> = p.store().iter().map(|q| q.unwrap().to_string()).collect();
            q.sort();
            q
        };
        assert_eq!(quads(&one_by_one), quads(&at_once));
        assert!(!quads(&at_once).iter().any(|q| q.contains("minTypicalAge")));
    }

    #[test]
    fn studies_fold_alike_in_one_batch_or_many_and_a_withdrawal_leaves_nothing() {
        let study = |id: &str, pseudonym: &str, uid: &str| {
            let mut e = example("study.registered");
            e["id"] = serde_json::json!(id);
            e["subject"] = serde_json::json!(pseudonym);
            e["data"]["studyInstanceUid"] = serde_json::json!(uid);
            e
        };
        let mut update = example("study.updated");
        update.as_object_mut().unwrap().remove("expectedversion");
        let events = [
            stored(1, &example("provider.registered")),
            stored(2, &example("dataset.published")),
            stored(3, &example("study.registered")),
            stored(4, &study("s2", "OTHER-1", "2.25.42")),
            stored(5, &update),
            stored(6, &study("s3", "BRMR-000123", "2.25.43")),
            stored(7, &example("subject.consent.withdrawn")),
        ];
        let one_by_one = projector();
        for e in &events {
            one_by_one.apply_batch(std::slice::from_ref(e)).unwrap();
        }
        let at_once = projector();
        at_once.apply_batch(&events).unwrap();
        let quads = |p: &Projector| {
            let mut q: Vec<String> = p.store().iter().map(|q| q.unwrap().to_string()).collect();
            q.sort();
            q
        };
        let all = quads(&at_once);
        assert_eq!(quads(&one_by_one), all);
        for gone in ["2.25.178063125098516432178954231457806613211", "2.25.43", "BRMR-000123.study", "tally"] {
            assert!(!all.iter().any(|q| q.contains(gone) && !q.contains("OTHER-1")), "{gone} is still in the store");
        }
        assert!(all.iter().any(|q| q.contains("2.25.42")), "the other subject's study stays");
        // the dataset counts its one remaining study
        let datasets = projected_datasets(at_once.store()).unwrap();
        let d = &datasets[0].dataset;
        assert_eq!((d.number_of_subjects, d.number_of_studies, d.number_of_series), (1, 1, Some(2)));
        assert_eq!(projected_studies(at_once.store()).unwrap().len(), 1);
    }

    #[test]
    fn graphs_of_a_batch_that_did_not_commit_are_dropped_before_the_next() {
        let setup = [stored(1, &example("provider.registered")), stored(2, &example("dataset.published"))];
        let (clean, failed) = (projector(), projector());
        for p in [&clean, &failed] {
            p.apply_batch(&setup).unwrap();
        }
        // what a failure between the bulk load of a batch's new study graphs and its transaction
        // leaves (a full disk): the graphs, marked pending, without states
        let e = Event::parse_stored(&stored(3, &example("study.registered")).payload).unwrap();
        let Payload::StudyRegistered(study) = &e.payload else { panic!("not a registration") };
        let (_, graph) = study_graph(failed.base(), e.provider.as_str(), &e.aggregate, study);
        let GraphName::NamedNode(name) = graph[0].graph_name.clone() else { panic!("not in a named graph") };
        let projection = NamedNode::new_unchecked(PROJECTION_NODE);
        failed.store().insert(&bookkeeping(&projection, PENDING_GRAPH, name.into())).unwrap();
        failed.store().extend(graph).unwrap();
        // meanwhile its subject withdrew consent: the study is erased from the log, and the next
        // batch holds something else; the store must be as if the study never came
        let next = stored(5, &example("dataset.updated"));
        for p in [&clean, &failed] {
            p.apply_batch(std::slice::from_ref(&next)).unwrap();
        }
        let quads = |p: &Projector| {
            let mut q: Vec<String> = p.store().iter().map(|q| q.unwrap().to_string()).collect();
            q.sort();
            q
        };
        assert_eq!(quads(&failed), quads(&clean));
    }

    #[test]
    fn many_new_studies_are_bulk_loaded_ahead_of_their_batch_and_a_crash_between_leaves_nothing() {
        let study = |i: usize, description: &str| {
            let mut e = example("study.registered");
            e["id"] = serde_json::json!(format!("s{i}-{description}"));
            e["subject"] = serde_json::json!(format!("P{}", i % 7));
            e["data"]["studyInstanceUid"] = serde_json::json!(format!("2.25.{}", 500 + i));
            e["data"]["description"] = serde_json::json!(description);
            if description != "first" {
                e["type"] = serde_json::json!("eu.cancerimage.study.updated.v1");
            }
            e
        };
        let setup = [stored(1, &example("provider.registered")), stored(2, &example("dataset.published"))];
        // 100 new studies (more quads than BULK_MIN_FRESH_QUADS) and an update of each
        let mut events: Vec<StoredEvent> = setup.to_vec();
        for i in 0..100 {
            events.push(stored(events.len() as u64 + 1, &study(i, "first")));
        }
        for i in 0..100 {
            events.push(stored(events.len() as u64 + 1, &study(i, "second")));
        }
        let quads = |p: &Projector| {
            let mut q: Vec<String> = p.store().iter().map(|q| q.unwrap().to_string()).collect();
            q.sort();
            q
        };
        let one_by_one = projector();
        for e in &events {
            one_by_one.apply_batch(std::slice::from_ref(e)).unwrap();
        }
        // setup, then every registration in one batch (the fresh graphs are bulk-loaded: the
        // batch also changes the dataset's counts), then the updates
        let batched = projector();
        batched.apply_batch(&events[..2]).unwrap();
        let fresh_batch = &events[2..102];
        let fresh_quads: usize = fresh_batch
            .iter()
            .map(|e| {
                let event = Event::parse_stored(&e.payload).unwrap();
                let Payload::StudyRegistered(study) = &event.payload else { panic!("not a registration") };
                study_graph(batched.base(), event.provider.as_str(), &event.aggregate, study).1.len()
            })
            .sum();
        assert!(fresh_quads >= BULK_MIN_FRESH_QUADS, "{fresh_quads} quads do not take the bulk path");
        batched.apply_batch(fresh_batch).unwrap();
        batched.apply_batch(&events[102..]).unwrap();
        assert_eq!(quads(&batched), quads(&one_by_one));

        // a crash after the bulk load of a batch's new graphs, before its transaction: the graphs
        // (as of the end of that batch: registration and update) are in the store, without
        // states; the replay, in other batches, must not keep any of them
        let crashed = projector();
        crashed.apply_batch(&events[..2]).unwrap();
        let mut leftover = Vec::new();
        for i in 0..100 {
            let e = Event::parse_stored(&events[102 + i].payload).unwrap();
            let Payload::StudyUpdated(study) = &e.payload else { panic!("not an update") };
            leftover.extend(study_graph(crashed.base(), e.provider.as_str(), &e.aggregate, study).1);
        }
        let mut loader = crashed.store().bulk_loader();
        loader.load_quads(leftover).unwrap();
        loader.commit().unwrap();
        for e in &events[2..] {
            crashed.apply_batch(std::slice::from_ref(e)).unwrap();
        }
        assert_eq!(quads(&crashed), quads(&one_by_one));
        // and a replay that registers and stops there shows the registration only
        let half = projector();
        half.apply_batch(&events[..2]).unwrap();
        let e = Event::parse_stored(&events[102].payload).unwrap();
        let Payload::StudyUpdated(updated) = &e.payload else { panic!("not an update") };
        let (graph, leftover) = study_graph(half.base(), e.provider.as_str(), &e.aggregate, updated);
        half.store().extend(leftover).unwrap();
        half.apply_batch(&events[2..3]).unwrap();
        let shown = named_quads(half.store(), |g| *g == graph);
        assert!(shown.iter().any(|q| q.contains("\"first\"")), "{shown:?}");
        assert!(!shown.iter().any(|q| q.contains("\"second\"")), "the leftover update stayed: {shown:?}");
    }

    /// The quads of `store`'s named graphs that `keep` accepts, sorted.
    fn named_quads(store: &Store, keep: impl Fn(&NamedNode) -> bool) -> Vec<String> {
        let mut q: Vec<String> = store
            .iter()
            .map(|q| q.unwrap())
            .filter(|q| matches!(&q.graph_name, GraphName::NamedNode(g) if keep(g)))
            .map(|q| q.to_string())
            .collect();
        q.sort();
        q
    }

    #[test]
    fn a_scratch_fold_makes_the_store_a_live_fold_makes() {
        // every quad but the checkpoint's (a bulk-loaded batch adds its own beside the old one)
        let quads = |p: &Projector| {
            let mut q: Vec<String> = p
                .store()
                .iter()
                .map(|q| q.unwrap())
                .filter(|q| q.predicate.as_str() != CHECKPOINT)
                .map(|q| q.to_string())
                .collect();
            q.sort();
            q
        };
        // every kind of event, then many studies of a few subjects (registered, updated, one
        // subject withdrawing consent in between), so that batches replace and remove as well
        let mut events = all_kinds_of_event();
        events.push(stored(events.len() as u64 + 1, &example("dataset.published")));
        for i in 0..300 {
            let mut e = example("study.registered");
            e["id"] = serde_json::json!(format!("scratch-{i}"));
            e["subject"] = serde_json::json!(format!("P{}", i % 200 % 7));
            e["data"]["studyInstanceUid"] = serde_json::json!(format!("2.25.{}", 900 + i % 200));
            if i >= 200 {
                e["type"] = serde_json::json!("eu.cancerimage.study.updated.v1");
                e["data"]["description"] = serde_json::json!("second");
            }
            if i == 150 {
                e = example("subject.consent.withdrawn");
                e["id"] = serde_json::json!("scratch-withdrawal");
                e["subject"] = serde_json::json!("P3");
            }
            events.push(stored(events.len() as u64 + 1, &e));
        }
        let live = projector();
        for e in &events {
            live.apply_batch(std::slice::from_ref(e)).unwrap();
        }
        let expected = quads(&live);
        assert!(expected.iter().any(|q| q.contains("\"second\"")), "the updates reached the store");
        for size in [1, 7, 100, events.len()] {
            let scratch = projector().into_scratch();
            for batch in events.chunks(size) {
                scratch.apply_batch(batch).unwrap();
            }
            assert_eq!(quads(&scratch), expected, "batches of {size}");
            assert_eq!(scratch.checkpoint().unwrap(), events.len() as u64);
        }
    }

    fn all_kinds_of_event() -> Vec<StoredEvent> {
        let mut update = example("dataset.updated");
        update.as_object_mut().unwrap().remove("expectedversion");
        let mut study_update = example("study.updated");
        study_update.as_object_mut().unwrap().remove("expectedversion");
        let mut other_study = example("study.registered");
        other_study["id"] = serde_json::json!("s2");
        other_study["subject"] = serde_json::json!("OTHER-1");
        other_study["data"]["studyInstanceUid"] = serde_json::json!("2.25.42");
        [
            example("provider.registered"),
            example("dataset.published"),
            update,
            example("dataset.distribution.added"),
            example("study.registered"),
            other_study,
            study_update,
            example("dataset.distribution.removed"),
            example("subject.consent.withdrawn"),
            example("dataset.deprecated"),
            example("dataset.withdrawn"),
        ]
        .iter()
        .enumerate()
        .map(|(i, e)| stored(i as u64 + 1, e))
        .collect()
    }

    #[test]
    fn the_public_mirror_holds_exactly_the_public_graphs_and_nothing_else_is_named() {
        let events = all_kinds_of_event();
        let p = projector().with_public_mirror(Store::new().unwrap()).unwrap();
        let mirror = p.public_store().unwrap().clone();
        let mut seen_study = false;
        for e in &events {
            p.apply_batch(std::slice::from_ref(e)).unwrap();
            // the store names only graphs of the kinds the SPARQL scopes know; the bookkeeping
            // is in the default graph
            let kinds = ["/datasets/", "/providers/", "/studies/"];
            for g in p.store().named_graphs() {
                let NamedOrBlankNode::NamedNode(g) = g.unwrap() else { panic!("a blank graph name") };
                let rest = g.as_str().strip_prefix("https://registry.example.eu").unwrap_or_default();
                assert!(kinds.iter().any(|k| rest.starts_with(k)), "{g} after event {}", e.seq);
                seen_study |= rest.starts_with("/studies/");
            }
            assert_eq!(
                named_quads(&mirror, |_| true),
                named_quads(p.store(), |g| p.is_public_graph(g)),
                "after event {}",
                e.seq
            );
            assert_eq!(stored_checkpoint(&mirror).unwrap().0, Some(e.seq));
            assert!(!named_quads(&mirror, |_| true).iter().any(|q| q.contains("/studies/")));
        }
        assert!(seen_study, "the events registered studies");
        // a mirror that missed batches (a crash between the two commits) is rebuilt from the store
        let lagging = Store::new().unwrap();
        let behind = projector().with_public_mirror(lagging.clone()).unwrap();
        behind.apply_batch(&events[..3]).unwrap();
        let ahead = Projector::new(behind.store().clone(), behind.base().clone()).unwrap();
        ahead.apply_batch(&events[3..6]).unwrap();
        assert_ne!(named_quads(&lagging, |_| true), named_quads(ahead.store(), |g| ahead.is_public_graph(g)));
        let caught_up = ahead.with_public_mirror(lagging.clone()).unwrap();
        assert_eq!(named_quads(&lagging, |_| true), named_quads(caught_up.store(), |g| caught_up.is_public_graph(g)));
        assert_eq!(stored_checkpoint(&lagging).unwrap().0, Some(6));
    }

    #[test]
    fn a_bulk_loaded_batch_reaches_the_mirror() {
        let mut batch = vec![stored(1, &example("provider.registered"))];
        for i in 0..80u64 {
            let mut e = example("dataset.published");
            e["id"] = serde_json::json!(format!("bulk-{i}"));
            e["subject"] = serde_json::json!(format!("bulk-{i}"));
            batch.push(stored(i + 2, &e));
        }
        let p = projector().with_public_mirror(Store::new().unwrap()).unwrap();
        p.apply_batch(&batch).unwrap();
        let mirror = p.public_store().unwrap();
        assert_eq!(named_quads(mirror, |_| true), named_quads(p.store(), |g| p.is_public_graph(g)));
        assert_eq!(stored_checkpoint(mirror).unwrap().0, Some(81));
    }

    #[test]
    fn bookkeeping_of_an_older_store_moves_to_the_default_graph() {
        let store = Store::new().unwrap();
        let legacy = NamedNode::new(LEGACY_PROJECTION_GRAPH).unwrap();
        let p = projector();
        p.apply_batch(&all_kinds_of_event()[..4]).unwrap();
        // the same store as an older cireg wrote it: bookkeeping in a named graph
        for q in p.store().iter() {
            let q = q.unwrap();
            let graph = if q.graph_name.is_default_graph() { legacy.clone().into() } else { q.graph_name.clone() };
            store.insert(&Quad::new(q.subject, q.predicate, q.object, graph)).unwrap();
        }
        let migrated = Projector::new(store, p.base().clone()).unwrap();
        assert!(!migrated.store().contains_named_graph(legacy.as_ref()).unwrap());
        assert_eq!(migrated.checkpoint().unwrap(), 4);
        let dump = |s: &Store| {
            let mut q: Vec<String> = s.iter().map(|q| q.unwrap().to_string()).collect();
            q.sort();
            q
        };
        assert_eq!(dump(migrated.store()), dump(p.store()));
    }

    #[test]
    fn a_store_keeps_its_public_base() {
        let store = Store::new().unwrap();
        Projector::new(store.clone(), PublicBase::new("https://a.example").unwrap()).unwrap();
        let err = Projector::new(store, PublicBase::new("https://b.example").unwrap()).err().unwrap();
        assert!(matches!(err, ProjectionError::BaseMismatch { .. }), "{err}");
    }
}
