//! The read models as one live whole: built once from the store, then kept up to date from the
//! projector's [`ChangeJournal`], one changed aggregate at a time, by one thread. Requests only
//! read them; none builds or waits for a build.
//!
//! - the study index is changed in place ([`StudyIndex::apply`]);
//! - the catalogue's paging index and the search index are small (one entry per dataset): their
//!   per-dataset parts are kept here and re-read for the changed datasets only, and the indexes
//!   are remade from those parts (no store scan) and swapped in whole.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use cireg_dcat::PublicBase;
use cireg_projector::{
    is_access_subject, is_dataset_subject, projected_access, projected_dataset, projected_datasets, subject_parts,
    ChangeJournal, Changes, ProjectedDataset,
};
use oxigraph::{
    model::{NamedNode, Triple},
    store::Store,
};
use tokio::sync::watch;

use crate::{catalog::graph_triples, AccessBook, CatalogIndex, IndexEntry, SearchDoc, SearchIndex, StudyIndex};

/// Most dataset-graph triples the catalogue keeps in memory (about 250 bytes each, so some 50 MiB):
/// a catalogue of thousands of rich datasets reads the rest from the store.
pub const CATALOG_CACHE_TRIPLES: usize = 200_000;

/// The per-dataset parts of the dataset-level read models, by dataset IRI.
#[derive(Default)]
struct DatasetParts {
    entries: BTreeMap<String, (IndexEntry, Vec<String>)>,
    docs: BTreeMap<String, SearchDoc>,
    /// Triples of the graphs the entries keep (at most [`CATALOG_CACHE_TRIPLES`]).
    cached: usize,
}

impl DatasetParts {
    /// Sets the parts of the dataset of IRI `iri` to what `store` holds (`None`: no live dataset).
    fn set(
        &mut self,
        store: &Store,
        base: &PublicBase,
        iri: String,
        dataset: Option<ProjectedDataset>,
    ) -> std::io::Result<()> {
        if let Some((old, _)) = self.entries.remove(&iri) {
            self.cached -= old.graph.map_or(0, |g| g.len());
        }
        self.docs.remove(&iri);
        let Some(d) = dataset else { return Ok(()) };
        if let Some((mut entry, countries)) = CatalogIndex::entry_of(store, base, &NamedNode::new_unchecked(&iri))? {
            // a full cache takes no graph: do not read one only to drop it
            if self.cached < CATALOG_CACHE_TRIPLES {
                let graph: Vec<Triple> = graph_triples(store, &entry.dataset).collect::<std::io::Result<_>>()?;
                if self.cached + graph.len() <= CATALOG_CACHE_TRIPLES {
                    self.cached += graph.len();
                    entry.graph = Some(graph.into());
                }
            }
            self.entries.insert(iri.clone(), (entry, countries));
        }
        self.docs.insert(iri, SearchDoc::new(base, d));
        Ok(())
    }
}

/// Every read model, and how far it has followed the projection.
pub struct ReadModels {
    store: Store,
    base: PublicBase,
    journal: Arc<ChangeJournal>,
    studies: StudyIndex,
    catalog: RwLock<Arc<CatalogIndex>>,
    search: RwLock<Arc<SearchIndex>>,
    /// Access requests and the permits they grant.
    access: RwLock<Arc<AccessBook>>,
    parts: Mutex<DatasetParts>,
    /// How far the models are, for readers to wait on.
    progress: watch::Sender<Progress>,
}

/// How far the read models are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// The projector checkpoint whose changes the models include.
    pub checkpoint: u64,
    /// Built once since the start.
    pub ready: bool,
}

fn read<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    lock.read().unwrap_or_else(|e| e.into_inner()).clone()
}

impl ReadModels {
    /// Empty, not ready models over `store`, to follow `journal` (which the store's projector
    /// records into). [`ReadModels::rebuild`] fills them.
    pub fn new(store: Store, base: PublicBase, journal: Arc<ChangeJournal>) -> Self {
        ReadModels {
            studies: StudyIndex::new(store.clone(), base.clone()),
            store,
            base,
            journal,
            catalog: RwLock::default(),
            search: RwLock::default(),
            access: RwLock::default(),
            parts: Mutex::default(),
            progress: watch::Sender::new(Progress::default()),
        }
    }

    /// Builds every model from the store (and forgets what the journal held: the store has it).
    /// `committed` is a checkpoint the store had reached before the call. Changes the projector
    /// commits meanwhile stay in the journal for [`ReadModels::follow_once`]. Blocking.
    pub fn rebuild(&self, committed: u64) -> std::io::Result<()> {
        let taken = self.journal.take();
        let studies = StudyIndex::build(&self.store, &self.base)?;
        let access = AccessBook::build(&self.store)?;
        let mut parts = DatasetParts::default();
        for d in projected_datasets(&self.store).map_err(std::io::Error::other)? {
            let iri = self.base.dataset(&d.provider, &d.id);
            parts.set(&self.store, &self.base, iri, Some(d))?;
        }
        self.studies.replace_with(studies);
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(access);
        self.publish(&parts);
        *self.parts.lock().unwrap_or_else(|e| e.into_inner()) = parts;
        self.progress.send_replace(Progress { checkpoint: taken.checkpoint.max(committed), ready: true });
        Ok(())
    }

    fn publish(&self, parts: &DatasetParts) {
        let catalog = CatalogIndex::from_entries(parts.entries.values());
        let search = SearchIndex::from_docs(parts.docs.values().cloned().collect());
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
        *self.search.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(search);
    }

    /// Applies what the journal holds (a rebuild if it overflowed). Returns how many changed
    /// aggregates it applied. Blocking.
    pub fn apply_pending(&self) -> std::io::Result<usize> {
        self.apply(self.journal.take())
    }

    /// Waits up to `timeout` for changes, then applies them. Blocking.
    pub fn follow_once(&self, timeout: Duration) -> std::io::Result<usize> {
        self.apply(self.journal.wait_and_take(timeout))
    }

    fn apply(&self, changes: Changes) -> std::io::Result<usize> {
        if changes.overflowed {
            tracing::info!(checkpoint = changes.checkpoint, "many changes at once: rebuilding the read models");
            self.rebuild(changes.checkpoint)?;
            return Ok(0);
        }
        if changes.subjects.is_empty() {
            self.advance(changes.checkpoint);
            return Ok(0);
        }
        self.studies.apply(&changes.subjects)?;
        let requests: Vec<&String> = changes.subjects.iter().filter(|s| is_access_subject(s)).collect();
        if !requests.is_empty() {
            let mut book = AccessBook::clone(&read(&self.access));
            for subject in requests {
                let (provider, _, id) = subject_parts(subject);
                book.set(provider, id, projected_access(&self.store, subject).map_err(std::io::Error::other)?);
            }
            *self.access.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(book);
        }
        let datasets: Vec<&String> = changes.subjects.iter().filter(|s| is_dataset_subject(s)).collect();
        if !datasets.is_empty() {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            for subject in datasets {
                let (provider, _, id) = subject_parts(subject);
                let dataset = projected_dataset(&self.store, subject).map_err(std::io::Error::other)?;
                parts.set(&self.store, &self.base, self.base.dataset(provider, id), dataset)?;
            }
            self.publish(&parts);
        }
        self.advance(changes.checkpoint);
        Ok(changes.subjects.len())
    }

    /// Moves the checkpoint forward to `checkpoint` (never back), waking whoever waits for it.
    fn advance(&self, checkpoint: u64) {
        self.progress.send_if_modified(|p| {
            let moved = checkpoint > p.checkpoint;
            p.checkpoint = p.checkpoint.max(checkpoint);
            moved
        });
    }

    /// The projector checkpoint the models are at.
    pub fn checkpoint(&self) -> u64 {
        self.progress.borrow().checkpoint
    }

    /// Whether the models were built once.
    pub fn is_ready(&self) -> bool {
        self.progress.borrow().ready
    }

    /// How far the models are, as it changes: a reader waits on it for the models to include a
    /// change rather than polling.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    pub fn studies(&self) -> &StudyIndex {
        &self.studies
    }

    pub fn catalog(&self) -> Arc<CatalogIndex> {
        read(&self.catalog)
    }

    pub fn search(&self) -> Arc<SearchIndex> {
        read(&self.search)
    }

    /// Access requests and permits, as of [`ReadModels::checkpoint`].
    pub fn access(&self) -> Arc<AccessBook> {
        read(&self.access)
    }
}
