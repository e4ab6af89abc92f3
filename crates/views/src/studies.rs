//! The study index behind the FHIR ImagingStudy search: every available study of a live dataset,
//! in memory in a compact form (its search keys only: ids, dates, interned codes), with lookup
//! tables for the selective parameters (`_id`, `identifier`, `patient`, `started`), kept up to
//! date one study at a time ([`StudyIndex::apply`]) as the projector reports what it changed, so
//! that no request ever waits for it to be built. What a page shows is read from the store, a
//! point lookup per study; series UIDs are looked up in the store too (a study has many).
//!
//! FHIR search semantics live here (values, prefixes, precision, AND of repeated parameters, OR
//! of comma-separated values); the HTTP layer parses the query string with [`StudyQuery::parse`]
//! and builds the Bundle.
//!
//! Who sees what is part of the query ([`StudyAccess`]): a parsed query sees nothing until the
//! HTTP layer sets the caller's access, so a forgotten check shows nothing rather than everything.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, RwLock},
};

use cireg_dcat::PublicBase;
use cireg_model::StudyStatus;
use cireg_projector::{
    is_dataset_subject, is_study_subject, projected_dataset, projected_datasets, projected_studies, projected_study,
    subject_parts, ProjectedStudy, ProjectionError,
};
use oxigraph::{
    model::{GraphName, Literal, NamedNode},
    store::Store,
};
use time::{format_description::well_known::Rfc3339, Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::sorted::SortedRuns;

use cireg_model::vocab::{
    provider_of_subject_system, DCM as DICOM_SYSTEM, DICOM_UID as DICOM_UID_SYSTEM, SNOMED as SNOMED_SYSTEM,
};

/// One study as a page shows it: read from the store when shown.
#[derive(Debug, Clone)]
pub struct IndexedStudy {
    pub projected: ProjectedStudy,
    /// The DCAT IRI of its dataset.
    pub dataset_iri: String,
}

impl IndexedStudy {
    /// `meta.lastUpdated`.
    pub fn last_updated_text(&self) -> &str {
        self.projected.recorded.as_ref().map(|(_, last)| last.as_str()).unwrap_or("1970-01-01T00:00:00Z")
    }
}

fn instant_nanos(text: &str) -> Option<i128> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(|t| t.unix_timestamp_nanos())
}

/// What a read of one study finds.
#[derive(Debug, Clone)]
pub enum StudyLookup {
    Found(Arc<IndexedStudy>),
    /// Retracted by its provider, or its dataset was withdrawn (410).
    Gone,
    NotFound,
}

/// A resource id (32 lowercase hex digits, [`cireg_model::Study::resource_id`]) as a number;
/// numbers sort as the ids do.
fn parse_id(id: &str) -> Option<u128> {
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u128::from_str_radix(id, 16).ok())
        .flatten()
}

fn id_text(id: u128) -> String {
    format!("{id:032x}")
}

fn uid_hash(uid: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut h);
    h.finish()
}

/// Strings seen often (providers, pseudonyms, dataset IRIs, codes), each kept once and named by
/// a number. Never shrinks: bounded by the distinct values ever indexed.
#[derive(Default)]
struct Interner {
    values: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Interner {
    fn intern(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let value: Arc<str> = Arc::from(value);
        let id = self.values.len() as u32;
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    fn get(&self, value: &str) -> Option<u32> {
        self.ids.get(value).copied()
    }

    fn text(&self, id: u32) -> &str {
        self.values.get(id as usize).map(|v| &**v).unwrap_or_default()
    }
}

/// One study as search sees it: its keys, nothing to show.
#[derive(Debug, Clone)]
struct Entry {
    id: u128,
    provider: u32,
    subject: u32,
    dataset: u32,
    uid: Box<str>,
    /// `started`, Unix nanoseconds.
    started: i128,
    /// When the log accepted its latest event, Unix nanoseconds.
    last_updated: i128,
    version: u64,
    /// Interned modalities of the study and its series, and body sites of its series, sorted.
    modalities: Box<[u32]>,
    body_sites: Box<[u32]>,
}

/// The index: shown studies in slots, the lookup tables over them, and what is not shown.
#[derive(Default)]
struct Studies {
    strings: Interner,
    /// Shown studies; a freed slot is reused.
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Shown studies by id, in id order (the default sort).
    by_id: BTreeMap<u128, u32>,
    /// By a hash of the Study Instance UID (checked against the entry's UID).
    by_uid: HashMap<u64, Vec<u32>>,
    by_subject: HashMap<u32, Vec<u32>>,
    /// In the order of `started`, for date ranges.
    /// (started, id, slot): a started range comes out in the order a `started` sort gives.
    by_started: SortedRuns<(i128, u128, u32)>,
    /// Shown studies per dataset, to hide them when it is withdrawn.
    by_dataset: HashMap<u32, BTreeSet<u32>>,
    /// The live datasets (published or deprecated, not withdrawn).
    live: HashSet<u32>,
    /// Available studies of datasets that are not live (withdrawn, or not projected yet), by
    /// dataset and id: shown again when their dataset is.
    parked: HashMap<u32, HashMap<u128, Entry>>,
    /// The dataset of each parked study, by id.
    parked_ids: HashMap<u128, u32>,
    /// Retracted studies, by id, with their (provider, dataset).
    retracted: HashMap<u128, (u32, u32)>,
}

fn drop_position<K: Eq + Hash>(table: &mut HashMap<K, Vec<u32>>, key: &K, slot: u32) {
    if let Some(slots) = table.get_mut(key) {
        slots.retain(|s| *s != slot);
        if slots.is_empty() {
            table.remove(key);
        }
    }
}

impl Studies {
    fn shown(&self, slot: u32) -> &Entry {
        // a slot in a table is always filled: tables and slots change together
        self.slots[slot as usize].as_ref().expect("a slot of the index is filled")
    }

    /// The entry of a study as the store holds it.
    fn entry(&mut self, p: &ProjectedStudy, base: &PublicBase) -> Option<Entry> {
        let study = &p.study;
        let id = parse_id(&p.id)?;
        let mut modalities: Vec<u32> = study
            .modalities
            .iter()
            .chain(study.series.iter().map(|s| &s.modality))
            .map(|m| self.strings.intern(m))
            .collect();
        modalities.sort_unstable();
        modalities.dedup();
        let mut body_sites: Vec<u32> =
            study.series.iter().filter_map(|s| s.body_site.as_ref()).map(|b| self.strings.intern(&b.code)).collect();
        body_sites.sort_unstable();
        body_sites.dedup();
        Some(Entry {
            id,
            provider: self.strings.intern(&p.provider),
            subject: self.strings.intern(&p.subject),
            dataset: self.strings.intern(&base.dataset(&p.provider, &study.dataset)),
            uid: study.study_instance_uid.as_str().into(),
            started: instant_nanos(&study.started).unwrap_or(0),
            last_updated: p.recorded.as_ref().and_then(|(_, last)| instant_nanos(last)).unwrap_or(0),
            version: p.version,
            modalities: modalities.into(),
            body_sites: body_sites.into(),
        })
    }

    fn show(&mut self, e: Entry) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(e.id, slot);
        self.by_uid.entry(uid_hash(&e.uid)).or_default().push(slot);
        self.by_subject.entry(e.subject).or_default().push(slot);
        self.by_started.insert((e.started, e.id, slot));
        self.by_dataset.entry(e.dataset).or_default().insert(slot);
        self.slots[slot as usize] = Some(e);
    }

    fn hide(&mut self, id: u128) -> Option<Entry> {
        let slot = self.by_id.remove(&id)?;
        let e = self.slots[slot as usize].take()?;
        drop_position(&mut self.by_uid, &uid_hash(&e.uid), slot);
        drop_position(&mut self.by_subject, &e.subject, slot);
        self.by_started.remove(&(e.started, e.id, slot));
        if let Some(slots) = self.by_dataset.get_mut(&e.dataset) {
            slots.remove(&slot);
            if slots.is_empty() {
                self.by_dataset.remove(&e.dataset);
            }
        }
        self.free.push(slot);
        Some(e)
    }

    fn park(&mut self, e: Entry) {
        self.parked_ids.insert(e.id, e.dataset);
        self.parked.entry(e.dataset).or_default().insert(e.id, e);
    }

    fn unpark(&mut self, id: u128) {
        if let Some(dataset) = self.parked_ids.remove(&id) {
            if let Some(studies) = self.parked.get_mut(&dataset) {
                studies.remove(&id);
                if studies.is_empty() {
                    self.parked.remove(&dataset);
                }
            }
        }
    }

    /// Sets study `id` to what the store holds of it (`None`: nothing, it was erased).
    fn set_study(&mut self, id: u128, study: Option<(StudyStatus, Entry)>) {
        self.hide(id);
        self.unpark(id);
        self.retracted.remove(&id);
        let Some((status, e)) = study else { return };
        if status != StudyStatus::Available {
            self.retracted.insert(id, (e.provider, e.dataset));
        } else if self.live.contains(&e.dataset) {
            self.show(e);
        } else {
            self.park(e);
        }
    }

    /// Sets whether the dataset of IRI `iri` is live, showing or hiding its studies.
    fn set_dataset(&mut self, iri: &str, live: bool) {
        let dataset = self.strings.intern(iri);
        if live && self.live.insert(dataset) {
            for (id, e) in self.parked.remove(&dataset).unwrap_or_default() {
                self.parked_ids.remove(&id);
                self.show(e);
            }
        } else if !live && self.live.remove(&dataset) {
            let slots: Vec<u32> =
                self.by_dataset.get(&dataset).map(|s| s.iter().copied().collect()).unwrap_or_default();
            for slot in slots {
                let id = self.shown(slot).id;
                if let Some(e) = self.hide(id) {
                    self.park(e);
                }
            }
        }
    }

    /// The (provider, dataset) of study `id` if it was shown once and is no longer (retracted,
    /// dataset withdrawn).
    fn gone(&self, id: u128) -> Option<(u32, u32)> {
        if let Some(&of) = self.retracted.get(&id) {
            return Some(of);
        }
        let dataset = *self.parked_ids.get(&id)?;
        let provider = self.parked.get(&dataset)?.get(&id)?.provider;
        Some((provider, dataset))
    }

    /// Whether a study of `provider` in `dataset` may be seen with `access`.
    fn allows(&self, access: &StudyAccess, provider: u32, dataset: u32) -> bool {
        access.allows(self.strings.text(dataset), self.strings.text(provider))
    }
}

/// What changes one aggregate brings to the index, read from the store.
enum Change {
    Dataset { iri: String, live: bool },
    Study { id: u128, study: Option<Box<ProjectedStudy>> },
}

/// Every shown study, searchable, and what is no longer shown; updated in place.
pub struct StudyIndex {
    store: Store,
    base: PublicBase,
    studies: RwLock<Studies>,
    /// Recent result lists (query key → sorted slots), so that paging through one search does not
    /// search again. Any change empties it.
    results: Mutex<Vec<(String, Arc<Vec<u32>>)>>,
}

const RESULT_CACHE: usize = 32;

fn store_error(e: ProjectionError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl StudyIndex {
    /// An empty index over `store` (what [`StudyIndex::apply`] fills).
    pub fn new(store: Store, base: PublicBase) -> Self {
        StudyIndex { store, base, studies: RwLock::new(Studies::default()), results: Mutex::new(Vec::new()) }
    }

    /// The index of every study in `store`.
    pub fn build(store: &Store, base: &PublicBase) -> std::io::Result<Self> {
        let mut studies = Studies::default();
        for d in projected_datasets(store).map_err(store_error)? {
            studies.set_dataset(&base.dataset(&d.provider, &d.id), true);
        }
        for p in projected_studies(store).map_err(store_error)? {
            let Some(entry) = studies.entry(&p, base) else { continue };
            studies.set_study(entry.id, Some((p.status, entry)));
        }
        Ok(StudyIndex {
            store: store.clone(),
            base: base.clone(),
            studies: RwLock::new(studies),
            results: Mutex::new(Vec::new()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Studies> {
        // the tables are changed together under the write lock, by code that does not panic
        // between them: a poisoned lock still holds a consistent index
        self.studies.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the studies and datasets of the log subjects `changed` up to what the store holds
    /// now. The store is read before the index is locked, so searches wait only for the
    /// in-memory update. Subjects of other aggregates are ignored.
    pub fn apply<'a>(&self, changed: impl IntoIterator<Item = &'a String>) -> std::io::Result<()> {
        let mut changes = Vec::new();
        for subject in changed {
            if is_study_subject(subject) {
                let Some(id) = study_id_of_subject(subject) else { continue };
                let study = projected_study(&self.store, subject).map_err(store_error)?.map(Box::new);
                changes.push(Change::Study { id, study });
            } else if is_dataset_subject(subject) {
                let (provider, _, id) = subject_parts(subject);
                let live = projected_dataset(&self.store, subject).map_err(store_error)?.is_some();
                changes.push(Change::Dataset { iri: self.base.dataset(provider, id), live });
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        {
            let mut studies = self.studies.write().unwrap_or_else(|e| e.into_inner());
            for change in changes {
                match change {
                    Change::Dataset { iri, live } => studies.set_dataset(&iri, live),
                    Change::Study { id, study } => {
                        let entry = study.and_then(|p| Some((p.status, studies.entry(&p, &self.base)?)));
                        studies.set_study(id, entry);
                    }
                }
            }
        }
        self.results.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }

    /// Replaces the whole index with `other` (after a rebuild).
    pub fn replace_with(&self, other: StudyIndex) {
        let other = other.studies.into_inner().unwrap_or_else(|e| e.into_inner());
        *self.studies.write().unwrap_or_else(|e| e.into_inner()) = other;
        self.results.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The study of resource id `id`, as the store holds it now.
    /// A study as a caller of `access` may see it: one of a dataset it may not read is not found,
    /// as one that never was.
    pub fn get(&self, id: &str, access: &StudyAccess) -> std::io::Result<StudyLookup> {
        let Some(id) = parse_id(id) else { return Ok(StudyLookup::NotFound) };
        let (shown, gone) = {
            let studies = self.read();
            let shown = studies
                .by_id
                .get(&id)
                .map(|slot| studies.shown(*slot))
                .filter(|e| studies.allows(access, e.provider, e.dataset))
                .map(|e| self.subject_of(&studies, e));
            let gone = studies.gone(id).is_some_and(|(p, d)| studies.allows(access, p, d));
            (shown, gone)
        };
        match shown {
            Some(subject) => Ok(self.load(&subject)?.map_or(StudyLookup::NotFound, StudyLookup::Found)),
            None if gone => Ok(StudyLookup::Gone),
            None => Ok(StudyLookup::NotFound),
        }
    }

    /// The named graphs of the shown studies a caller of `access` may see (a SPARQL query's
    /// dataset), sorted.
    pub fn study_graphs(&self, access: &StudyAccess) -> Vec<String> {
        let studies = self.read();
        // the access as a search applies it: its criterion, from its lookup table where it has one
        let ids: BTreeSet<u128> = match access.criterion().map(|c| compile(&studies, &c, &HashMap::new())) {
            None => studies.by_id.keys().copied().collect(),
            Some(access) => {
                let candidates: Box<dyn Iterator<Item = &Entry>> = match lookup(&studies, &access) {
                    Some(slots) => Box::new(slots.into_iter().map(|slot| studies.shown(slot))),
                    None => Box::new(studies.slots.iter().flatten()),
                };
                // a table gives a superset: the criterion is tested on each (its matchers take no time)
                candidates.filter(|e| access.matches(e, 0)).map(|e| e.id).collect()
            }
        };
        ids.into_iter().map(|id| self.base.study(&id_text(id))).collect()
    }

    /// The log subject of an entry's study.
    fn subject_of(&self, studies: &Studies, e: &Entry) -> String {
        let provider = studies.strings.text(e.provider);
        let pseudonym = studies.strings.text(e.subject);
        match cireg_model::ProviderId::parse(provider) {
            Some(p) => cireg_model::study_subject(&p, pseudonym, &e.uid),
            None => String::new(),
        }
    }

    /// A study as the store holds it now (`None`: erased since it was indexed).
    fn load(&self, subject: &str) -> std::io::Result<Option<Arc<IndexedStudy>>> {
        let Some(projected) = projected_study(&self.store, subject).map_err(store_error)? else { return Ok(None) };
        let dataset_iri = self.base.dataset(&projected.provider, &projected.study.dataset);
        Ok(Some(Arc::new(IndexedStudy { projected, dataset_iri })))
    }

    /// What the index shows and hides, in a canonical form (for comparing two indexes): the shown
    /// studies (id, version, dataset IRI), then the ids of those that are gone, each sorted.
    pub fn fingerprint(&self) -> (Vec<(String, u64, String)>, Vec<String>) {
        let studies = self.read();
        let shown = studies
            .by_id
            .values()
            .map(|slot| {
                let e = studies.shown(*slot);
                (id_text(e.id), e.version, studies.strings.text(e.dataset).to_owned())
            })
            .collect();
        let mut gone: Vec<u128> = studies.retracted.keys().chain(studies.parked_ids.keys()).copied().collect();
        gone.sort_unstable();
        (shown, gone.into_iter().map(id_text).collect())
    }

    /// One page of the studies matching `query`: after (or before) its cursor, at most
    /// `query.count`, as the store holds them now. Finding the page costs a binary search, not a
    /// scan of the pages before it.
    pub fn search(&self, query: &StudyQuery) -> std::io::Result<StudyPage> {
        let series = self.series_studies(query)?;
        let (total, subjects, next, previous) = {
            let studies = self.read();
            let hits = self.matches(&studies, query, &series);
            let entry = |slot: &u32| studies.shown(*slot);
            let (start, end) = match &query.page {
                Page::First => (0, query.count.min(hits.len())),
                Page::After(cursor) => {
                    let start = hits.partition_point(|i| query.sort.compare_key(entry(i), cursor).is_le());
                    (start, (start + query.count).min(hits.len()))
                }
                Page::Before(cursor) => {
                    let end = hits.partition_point(|i| query.sort.compare_key(entry(i), cursor).is_lt());
                    (end.saturating_sub(query.count), end)
                }
            };
            let page = &hits[start..end];
            let next = (end < hits.len()).then(|| page.last().map(|s| query.sort.cursor(entry(s)))).flatten();
            let previous = (start > 0).then(|| page.first().map(|s| query.sort.cursor(entry(s)))).flatten();
            let subjects: Vec<String> = page.iter().map(|s| self.subject_of(&studies, entry(s))).collect();
            (hits.len() as u64, subjects, next, previous)
        };
        // read outside the lock: a study erased meanwhile is left out of the page
        let mut shown = Vec::with_capacity(subjects.len());
        for subject in &subjects {
            shown.extend(self.load(subject)?);
        }
        Ok(StudyPage { total, studies: shown, next, previous })
    }

    /// The studies holding each series UID the query names, from the store's study graphs.
    fn series_studies(&self, query: &StudyQuery) -> std::io::Result<HashMap<String, Vec<u128>>> {
        let predicate = NamedNode::new_unchecked(format!("{}seriesInstanceUID", cireg_projector::IMAGING));
        let prefix = self.base.study("");
        let mut out = HashMap::new();
        for m in query.criteria.iter().flat_map(|c| &c.any_of) {
            let Matcher::Series(uid) = m else { continue };
            let value = Literal::new_simple_literal(uid);
            let mut ids = Vec::new();
            for quad in self.store.quads_for_pattern(None, Some(predicate.as_ref()), Some(value.as_ref().into()), None)
            {
                if let GraphName::NamedNode(g) = quad.map_err(std::io::Error::other)?.graph_name {
                    ids.extend(g.as_str().strip_prefix(&prefix).and_then(parse_id));
                }
            }
            out.insert(uid.clone(), ids);
        }
        Ok(out)
    }

    /// Every study matching `query`, in its sort order (slots of the index).
    fn matches(&self, studies: &Studies, query: &StudyQuery, series: &HashMap<String, Vec<u128>>) -> Arc<Vec<u32>> {
        let key = query.key();
        if let Ok(cache) = self.results.lock() {
            if let Some((_, hits)) = cache.iter().find(|(k, _)| *k == key) {
                return hits.clone();
            }
        }
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let criteria: Vec<Compiled> = query.criteria.iter().map(|c| compile(studies, c, series)).collect();
        // the caller's access is one more criterion, kept apart: its lookup (every study of its
        // datasets) is the table of last resort, and it does not take a search by `started`
        // alone off its fast path (at 1 M studies with 4 datasets permitted, taking it as one of
        // the criteria made every lookup by patient or UID build its 100,000 slots first)
        let access = query.access.criterion().map(|c| compile(studies, &c, series));
        let allowed = |e: &Entry| access.as_ref().is_none_or(|a| a.matches(e, now));
        let sort = query.sort;
        // each hit's entry is read once, for the test and its sort key together: a broad search
        // (a year of studies) then sorts a contiguous array instead of visiting each entry of
        // the index several times at random (60-70 ms at 1 M studies before, most of it that)
        let keyed = |slot: u32| {
            let e = studies.shown(slot);
            (allowed(e) && criteria.iter().all(|c| c.matches(e, now))).then(|| (sort.key(e), e.id, slot))
        };
        let hits = match (only_started(&criteria), sort) {
            // a search by `started` alone, sorted by it (a year of studies, newest first): its
            // range of the started table holds all the test and the order need, so no entry is
            // read and nothing is sorted
            (Some(d), StudySort::Started { descending }) => {
                let mut hits = started_in_order(studies, d, now, descending);
                if access.is_some() {
                    hits.retain(|slot| allowed(studies.shown(*slot)));
                }
                hits
            }
            // else from the smallest lookup table a criterion offers, else from everything
            _ => {
                let table = criteria
                    .iter()
                    .filter_map(|c| lookup(studies, c))
                    .min_by_key(Vec::len)
                    .or_else(|| access.as_ref().and_then(|a| lookup(studies, a)));
                let mut hits: Vec<(i128, u128, u32)> = match table {
                    Some(c) => c.into_iter().filter_map(keyed).collect(),
                    None => studies.by_id.values().copied().filter_map(keyed).collect(),
                };
                if sort == (StudySort::Started { descending: true })
                    && hits.is_sorted_by_key(|h| std::cmp::Reverse(h.0))
                {
                    // hits in ascending `started` order (a started range): reversed, they are
                    // nearly in the order sought, which the adaptive stable sort below then
                    // merely checks
                    hits.reverse();
                    // studies started at one instant are in descending id order now: ascending
                    hits.chunk_by_mut(|a, b| a.0 == b.0).for_each(<[_]>::reverse);
                }
                // by (key, id), ids as their numbers; equal pairs are one slot twice
                hits.sort();
                hits.dedup();
                hits.into_iter().map(|(_, _, slot)| slot).collect()
            }
        };
        let hits = Arc::new(hits);
        if let Ok(mut cache) = self.results.lock() {
            if cache.len() >= RESULT_CACHE {
                cache.remove(0);
            }
            cache.push((key, hits.clone()));
        }
        hits
    }
}

/// A matcher with its values looked up in the index (interned ids, parsed ids).
enum CompiledMatcher {
    Id(u128),
    Identifier(String),
    Subject {
        provider: Option<u32>,
        subject: u32,
    },
    Available,
    Started(DateParam),
    LastUpdated(DateParam),
    Modality(u32),
    BodySite(u32),
    /// Studies holding a series (from the store).
    AnyOf(HashSet<u128>),
    Dataset(u32),
    Provider(u32),
    Nothing,
}

struct Compiled {
    any_of: Vec<CompiledMatcher>,
    negated: bool,
}

impl Compiled {
    fn matches(&self, e: &Entry, now: i128) -> bool {
        self.any_of.iter().any(|m| m.matches(e, now)) != self.negated
    }
}

impl CompiledMatcher {
    fn matches(&self, e: &Entry, now: i128) -> bool {
        match self {
            CompiledMatcher::Id(id) => e.id == *id,
            CompiledMatcher::Identifier(uid) => *e.uid == **uid,
            CompiledMatcher::Subject { provider, subject } => {
                e.subject == *subject && provider.is_none_or(|p| p == e.provider)
            }
            CompiledMatcher::Available => true,
            CompiledMatcher::Started(d) => d.matches(e.started, now),
            CompiledMatcher::LastUpdated(d) => d.matches(e.last_updated, now),
            CompiledMatcher::Modality(code) => e.modalities.binary_search(code).is_ok(),
            CompiledMatcher::BodySite(code) => e.body_sites.binary_search(code).is_ok(),
            CompiledMatcher::AnyOf(ids) => ids.contains(&e.id),
            CompiledMatcher::Dataset(d) => e.dataset == *d,
            CompiledMatcher::Provider(p) => e.provider == *p,
            CompiledMatcher::Nothing => false,
        }
    }
}

fn compile(studies: &Studies, c: &Criterion, series: &HashMap<String, Vec<u128>>) -> Compiled {
    let interned = |s: &str| studies.strings.get(s);
    let any_of = c
        .any_of
        .iter()
        .map(|m| match m {
            Matcher::Id(id) => parse_id(id).map_or(CompiledMatcher::Nothing, CompiledMatcher::Id),
            Matcher::Identifier { uid } => CompiledMatcher::Identifier(uid.clone()),
            Matcher::Subject { provider, pseudonym } => {
                match (interned(pseudonym), provider.as_deref().map(|p| interned(p).ok_or(()))) {
                    (Some(subject), None) => CompiledMatcher::Subject { provider: None, subject },
                    (Some(subject), Some(Ok(p))) => CompiledMatcher::Subject { provider: Some(p), subject },
                    _ => CompiledMatcher::Nothing,
                }
            }
            Matcher::Status(code) if code == "available" => CompiledMatcher::Available,
            Matcher::Status(_) => CompiledMatcher::Nothing,
            Matcher::Started(d) => CompiledMatcher::Started(*d),
            Matcher::LastUpdated(d) => CompiledMatcher::LastUpdated(*d),
            Matcher::Modality(code) => interned(code).map_or(CompiledMatcher::Nothing, CompiledMatcher::Modality),
            Matcher::BodySite(code) => interned(code).map_or(CompiledMatcher::Nothing, CompiledMatcher::BodySite),
            Matcher::Series(uid) => {
                CompiledMatcher::AnyOf(series.get(uid).map(|ids| ids.iter().copied().collect()).unwrap_or_default())
            }
            Matcher::Dataset(iri) => interned(iri).map_or(CompiledMatcher::Nothing, CompiledMatcher::Dataset),
            Matcher::Provider(p) => interned(p).map_or(CompiledMatcher::Nothing, CompiledMatcher::Provider),
            Matcher::Nothing => CompiledMatcher::Nothing,
        })
        .collect();
    Compiled { any_of, negated: c.negated }
}

/// The slots a lookup table gives for a criterion, when one does (a superset of the matches: the
/// criterion is still tested on each).
fn lookup(studies: &Studies, c: &Compiled) -> Option<Vec<u32>> {
    if c.negated {
        return None;
    }
    let mut out = Vec::new();
    // one started range comes out in `started` order, with no slot twice: it is left in that
    // order, so that sorting by `started` finds its input sorted (a broad search, a year of
    // studies, then costs a walk rather than a sort of random accesses)
    if let [CompiledMatcher::Started(d)] = c.any_of.as_slice() {
        let (from, to) = d.started_range()?;
        out.extend(started_range(studies, from, to));
        return Some(out);
    }
    for value in &c.any_of {
        match value {
            CompiledMatcher::Id(id) => out.extend(studies.by_id.get(id)),
            CompiledMatcher::AnyOf(ids) => out.extend(ids.iter().filter_map(|id| studies.by_id.get(id))),
            CompiledMatcher::Identifier(uid) => out.extend(studies.by_uid.get(&uid_hash(uid)).into_iter().flatten()),
            CompiledMatcher::Subject { subject, .. } => {
                out.extend(studies.by_subject.get(subject).into_iter().flatten())
            }
            CompiledMatcher::Dataset(d) => out.extend(studies.by_dataset.get(d).into_iter().flatten()),
            CompiledMatcher::Nothing => {}
            CompiledMatcher::Started(d) => {
                let (from, to) = d.started_range()?;
                out.extend(started_range(studies, from, to));
            }
            _ => return None,
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// The slots of the studies started in `[from, to)`, in `started` order.
fn started_range(studies: &Studies, from: Option<i128>, to: Option<i128>) -> impl Iterator<Item = u32> + '_ {
    started_entries(studies, from, to).map(|(_, _, slot)| *slot)
}

/// The (started, id, slot) of the studies started in `[from, to)`, in that order.
fn started_entries(
    studies: &Studies,
    from: Option<i128>,
    to: Option<i128>,
) -> impl DoubleEndedIterator<Item = &(i128, u128, u32)> + '_ {
    studies.by_started.range(&(from.unwrap_or(i128::MIN), 0, 0), to.map(|t| (t, 0, 0)).as_ref())
}

/// The slots of the studies started as `d` asks, in the order a `started` sort gives them (ties
/// by id, as every other search sorts them), read off the started table in its own order.
fn started_in_order(studies: &Studies, d: &DateParam, now: i128, descending: bool) -> Vec<u32> {
    let (from, to) = d.started_range().unwrap_or_default();
    let entries = started_entries(studies, from, to).filter(|(started, _, _)| d.matches(*started, now));
    if !descending {
        return entries.map(|&(_, _, slot)| slot).collect();
    }
    // walked backwards, the studies of one instant come in descending id order: each such
    // group is held back and given in ascending order
    let mut out = Vec::new();
    let mut group: Vec<u32> = Vec::new();
    let mut instant = None;
    for &(started, _, slot) in entries.rev() {
        if instant != Some(started) {
            out.extend(group.drain(..).rev());
            instant = Some(started);
        }
        group.push(slot);
    }
    out.extend(group.drain(..).rev());
    out
}

/// The one `started` value of a search that asks for nothing else, when it is one range.
fn only_started(criteria: &[Compiled]) -> Option<&DateParam> {
    match criteria {
        [Compiled { any_of, negated: false }] => match any_of.as_slice() {
            [CompiledMatcher::Started(d)] if d.started_range().is_some() => Some(d),
            _ => None,
        },
        _ => None,
    }
}

/// The resource id of the study of a log subject
/// (`cireg.events.<provider>.subject.<pseudonym>.study.<uid with _ for .>`), which the store no
/// longer holds once the study is erased.
fn study_id_of_subject(subject: &str) -> Option<u128> {
    let (consent, uid) = subject.split_once(".study.")?;
    let (provider, _, pseudonym) = subject_parts(consent);
    // a DICOM UID is digits and dots only (schemas/defs.v1.json): the `_` were its dots
    parse_id(&cireg_model::Study::resource_id(provider, pseudonym, &uid.replace('_', ".")))
}

/// A page of search results.
pub struct StudyPage {
    pub total: u64,
    pub studies: Vec<Arc<IndexedStudy>>,
    /// The cursor of the next page (`_after`), when there is one.
    pub next: Option<Cursor>,
    /// The cursor of the previous page (`_before`), when there is one.
    pub previous: Option<Cursor>,
}

/// Where a page starts or ends: the sort key and id of a study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i128,
    pub id: String,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Self> {
        let (key, id) = text.split_once('_')?;
        let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Some(Cursor { key: key.parse().ok()?, id: id.to_owned() })).flatten()
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.key, self.id)
    }
}

/// `_sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudySort {
    Id,
    Started { descending: bool },
    LastUpdated { descending: bool },
}

impl StudySort {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "_id" => StudySort::Id,
            "started" => StudySort::Started { descending: false },
            "-started" => StudySort::Started { descending: true },
            "_lastUpdated" => StudySort::LastUpdated { descending: false },
            "-_lastUpdated" => StudySort::LastUpdated { descending: true },
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StudySort::Id => "_id",
            StudySort::Started { descending: false } => "started",
            StudySort::Started { descending: true } => "-started",
            StudySort::LastUpdated { descending: false } => "_lastUpdated",
            StudySort::LastUpdated { descending: true } => "-_lastUpdated",
        }
    }

    fn key(self, s: &Entry) -> i128 {
        match self {
            StudySort::Id => 0,
            StudySort::Started { descending } => signed(s.started, descending),
            StudySort::LastUpdated { descending } => signed(s.last_updated, descending),
        }
    }

    fn cursor(self, s: &Entry) -> Cursor {
        Cursor { key: self.key(s), id: id_text(s.id) }
    }

    fn compare_key(self, s: &Entry, cursor: &Cursor) -> std::cmp::Ordering {
        (self.key(s), id_text(s.id).as_str()).cmp(&(cursor.key, cursor.id.as_str()))
    }
}

/// Descending order is ascending order of the negated key, so one comparison serves both.
fn signed(key: i128, descending: bool) -> i128 {
    if descending {
        -key
    } else {
        key
    }
}

/// Which page of the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    First,
    After(Cursor),
    Before(Cursor),
}

/// A FHIR date search prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// A date search value: a prefix and the range its precision covers, `[low, high)` in Unix
/// nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateParam {
    pub prefix: Prefix,
    pub low: i128,
    pub high: i128,
}

impl DateParam {
    /// Parses `[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]]`. A value without a time
    /// zone is taken as UTC.
    pub fn parse(text: &str) -> Result<Self, String> {
        let prefixes = [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("gt", Prefix::Gt),
            ("lt", Prefix::Lt),
            ("ge", Prefix::Ge),
            ("le", Prefix::Le),
            ("sa", Prefix::Sa),
            ("eb", Prefix::Eb),
            ("ap", Prefix::Ap),
        ];
        let (prefix, value) = prefixes
            .iter()
            .find_map(|(p, prefix)| text.strip_prefix(p).map(|v| (*prefix, v)))
            .unwrap_or((Prefix::Eq, text));
        let (low, high) = date_range(value).ok_or_else(|| {
            format!("{text:?} is not a FHIR date search value: [eq|ne|gt|lt|ge|le|sa|eb|ap]YYYY[-MM[-DD[Thh:mm[:ss][zone]]]]")
        })?;
        Ok(DateParam { prefix, low, high })
    }

    /// The range of instants `[from, to)` a `started` value can match, for a search in start
    /// order (`None` for `ne` and `ap`, which are not one range).
    fn started_range(&self) -> Option<(Option<i128>, Option<i128>)> {
        Some(match self.prefix {
            Prefix::Eq => (Some(self.low), Some(self.high)),
            Prefix::Ge => (Some(self.low), None),
            Prefix::Gt | Prefix::Sa => (Some(self.high), None),
            Prefix::Le => (None, Some(self.high)),
            Prefix::Lt | Prefix::Eb => (None, Some(self.low)),
            Prefix::Ne | Prefix::Ap => return None,
        })
    }

    /// Whether an instant `t` (the target is a point in time) matches.
    pub fn matches(&self, t: i128, now: i128) -> bool {
        let (low, high) = (self.low, self.high);
        match self.prefix {
            Prefix::Eq => low <= t && t < high,
            Prefix::Ne => !(low <= t && t < high),
            Prefix::Gt | Prefix::Sa => t >= high,
            Prefix::Lt | Prefix::Eb => t < low,
            Prefix::Ge => t >= low,
            Prefix::Le => t < high,
            Prefix::Ap => {
                // FHIR leaves "approximately" to the server: within 10% of the distance between
                // the value and now, and at least the value's own precision
                let slack = (now - low).abs() / 10;
                low - slack <= t && t < high + slack
            }
        }
    }
}

const NANOS: i128 = 1_000_000_000;

/// The range `[low, high)` a date or date-time of some precision covers.
fn date_range(value: &str) -> Option<(i128, i128)> {
    let nanos = |d: OffsetDateTime| d.unix_timestamp_nanos();
    let midnight = |date: Date| nanos(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc());
    let digits = |s: &str, n: usize| (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then_some(());
    let (date_part, time_part) = match value.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (value, None),
    };
    let mut fields = date_part.split('-');
    let year_text = fields.next()?;
    digits(year_text, 4)?;
    let year: i32 = year_text.parse().ok()?;
    let month_text = fields.next();
    let day_text = fields.next();
    if fields.next().is_some() {
        return None;
    }
    let Some(month_text) = month_text else {
        return Some((
            midnight(Date::from_calendar_date(year, Month::January, 1).ok()?),
            midnight(Date::from_calendar_date(year + 1, Month::January, 1).ok()?),
        ));
    };
    digits(month_text, 2)?;
    let month = Month::try_from(month_text.parse::<u8>().ok()?).ok()?;
    let Some(day_text) = day_text else {
        let (next_year, next_month) =
            if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
        return Some((
            midnight(Date::from_calendar_date(year, month, 1).ok()?),
            midnight(Date::from_calendar_date(next_year, next_month, 1).ok()?),
        ));
    };
    digits(day_text, 2)?;
    let date = Date::from_calendar_date(year, month, day_text.parse().ok()?).ok()?;
    let Some(time_part) = time_part else {
        let low = midnight(date);
        return Some((low, low + 86_400 * NANOS));
    };
    // a time: full RFC 3339 when it has seconds and a zone; otherwise the precision it has, in UTC
    let zone_at = time_part.find(['Z', 'z', '+', '-']);
    let (clock, zone) = match zone_at {
        Some(i) => (&time_part[..i], &time_part[i..]),
        None => (time_part, "Z"),
    };
    let unit = match clock.len() {
        5 => 60 * NANOS,
        8 => NANOS,
        n if n > 9 && clock.as_bytes()[8] == b'.' => 10i128.pow(9 - (n as u32 - 9).min(9)),
        _ => return None,
    };
    let full_clock = if clock.len() == 5 { format!("{clock}:00") } else { clock.to_owned() };
    let low = OffsetDateTime::parse(&format!("{date_part}T{full_clock}{zone}"), &Rfc3339).ok()?;
    Some((nanos(low), nanos(low) + unit))
}

/// One value a study may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Id(String),
    /// A DICOM Study Instance UID (`identifier`); `system` is checked to be `urn:dicom:uid`.
    Identifier {
        uid: String,
    },
    /// `patient` / `subject`: a pseudonym, of one provider when the identifier system names it.
    Subject {
        provider: Option<String>,
        pseudonym: String,
    },
    Status(String),
    Started(DateParam),
    LastUpdated(DateParam),
    /// A DICOM modality code of the study or a series.
    Modality(String),
    /// A SNOMED CT body site code of a series.
    BodySite(String),
    Series(String),
    /// A dataset by its IRI.
    Dataset(String),
    /// The studies of a provider (no search parameter: a caller's access to its own studies).
    Provider(String),
    /// A value that cannot match (e.g. a code from another system).
    Nothing,
}

/// Which studies a caller may see.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StudyAccess {
    /// Every study of the node (the all-studies role).
    All,
    /// The studies of these datasets (IRIs) and of these providers' datasets; none when both are
    /// empty.
    Only { datasets: BTreeSet<String>, providers: BTreeSet<String> },
}

impl Default for StudyAccess {
    /// No study.
    fn default() -> Self {
        StudyAccess::Only { datasets: BTreeSet::new(), providers: BTreeSet::new() }
    }
}

impl StudyAccess {
    /// Whether a study of dataset `dataset_iri` of `provider` may be seen.
    pub fn allows(&self, dataset_iri: &str, provider: &str) -> bool {
        match self {
            StudyAccess::All => true,
            StudyAccess::Only { datasets, providers } => datasets.contains(dataset_iri) || providers.contains(provider),
        }
    }

    /// Whether it sees no study at all.
    pub fn is_nothing(&self) -> bool {
        matches!(self, StudyAccess::Only { datasets, providers } if datasets.is_empty() && providers.is_empty())
    }

    /// The criterion a search ANDs with its own (none: everything).
    fn criterion(&self) -> Option<Criterion> {
        let StudyAccess::Only { datasets, providers } = self else { return None };
        let any_of = datasets
            .iter()
            .map(|d| Matcher::Dataset(d.clone()))
            .chain(providers.iter().map(|p| Matcher::Provider(p.clone())))
            .collect();
        Some(Criterion { any_of, negated: false })
    }

    /// A part of a result cache key: results for one access are never served to another.
    fn key(&self) -> String {
        match self {
            StudyAccess::All => "all".to_owned(),
            StudyAccess::Only { datasets, providers } => {
                let datasets: Vec<&str> = datasets.iter().map(String::as_str).collect();
                let providers: Vec<&str> = providers.iter().map(String::as_str).collect();
                format!("only {} | {}", datasets.join(" "), providers.join(" "))
            }
        }
    }
}

/// One search parameter occurrence: its comma-separated values, OR-ed (`negated` for `:not`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub any_of: Vec<Matcher>,
    pub negated: bool,
}

/// A parsed search: criteria AND-ed, then sort and page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyQuery {
    pub criteria: Vec<Criterion>,
    pub sort: StudySort,
    pub count: usize,
    pub page: Page,
    /// The parameters that took effect, normalised, for the Bundle's `self` and paging links.
    pub used: Vec<(String, String)>,
    /// Which studies the caller may see (none unless set).
    pub access: StudyAccess,
}

impl StudyQuery {
    /// A cache key of what selects and orders the results (not the page).
    fn key(&self) -> String {
        let mut used: Vec<String> = self
            .used
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "_count" | "_summary" | "_elements"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        used.sort();
        format!("{}|{}|{}", self.access.key(), self.sort.as_str(), used.join("&"))
    }

    /// The query as seen by a caller of `access`.
    pub fn with_access(mut self, access: StudyAccess) -> Self {
        self.access = access;
        self
    }
}

/// Why a search was refused: the parameter, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParamError {
    pub parameter: String,
    pub detail: String,
}

/// `_count` when none is given, and the most one page holds.
pub const DEFAULT_COUNT: usize = 20;
pub const MAX_COUNT: usize = 1000;

/// The search parameters of ImagingStudy this server supports: (name, FHIR type, documentation).
pub const SEARCH_PARAMETERS: [(&str, &str, &str); 14] = [
    ("_id", "token", "The resource id."),
    ("_lastUpdated", "date", "When the log accepted the study's latest event; all prefixes, any precision."),
    ("identifier", "token", "The Study Instance UID: urn:dicom:uid|urn:oid:<uid> (the system may be left out)."),
    ("patient", "reference", "The pseudonymous subject: patient=<pseudonym>, or patient:identifier=<system>|<pseudonym> with the system urn:cireg:provider:<provider>:subject."),
    ("subject", "reference", "As patient."),
    ("status", "token", "available (retracted studies are gone: 410 on read)."),
    ("started", "date", "When the study started; prefixes eq ne gt lt ge le sa eb ap; a value covers the range of its precision (year, month, day, minute, second)."),
    ("modality", "token", "A DICOM modality of the study or any of its series: [http://dicom.nema.org/resources/ontology/DCM|]<code>."),
    ("series", "token", "A Series Instance UID."),
    ("bodysite", "token", "R4 name: a SNOMED CT body site of any series: [http://snomed.info/sct|]<code>."),
    ("body-site", "token", "R5 name of bodysite."),
    ("dataset", "uri", "cireg: the DCAT IRI of the study's dataset, or <provider>/<dataset-id>."),
    ("_sort", "special", "started, -started, _lastUpdated, -_lastUpdated or _id (the default)."),
    ("_count", "number", "Results per page, 0 to 1000 (default 20); 0 gives the total only."),
];

/// Parameters of the search machinery rather than of ImagingStudy.
const CONTROL: [&str; 7] = ["_count", "_sort", "_summary", "_elements", "_after", "_before", "_format"];

impl StudyQuery {
    /// Parses a query string's pairs. Unknown parameters are ignored unless `strict`
    /// (`Prefer: handling=strict`); malformed values of known ones are always refused.
    pub fn parse(pairs: &[(String, String)], base: &PublicBase, strict: bool) -> Result<Self, SearchParamError> {
        let mut q = StudyQuery {
            criteria: Vec::new(),
            sort: StudySort::Id,
            count: DEFAULT_COUNT,
            page: Page::First,
            used: Vec::new(),
            access: StudyAccess::default(),
        };
        for (raw_name, value) in pairs {
            let (name, modifier) = match raw_name.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (raw_name.as_str(), None),
            };
            let err = |detail: String| SearchParamError { parameter: raw_name.clone(), detail };
            let known = SEARCH_PARAMETERS.iter().any(|(n, ..)| *n == name) || CONTROL.contains(&name);
            if !known {
                if strict {
                    return Err(err(format!(
                        "unknown search parameter {name:?} (Prefer: handling=strict); supported: {}",
                        SEARCH_PARAMETERS.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", ")
                    )));
                }
                continue;
            }
            match name {
                "_count" => {
                    q.count = value
                        .parse::<usize>()
                        .ok()
                        .filter(|c| *c <= MAX_COUNT)
                        .ok_or_else(|| err(format!("{value:?} is not a number from 0 to {MAX_COUNT}")))?;
                }
                "_sort" => {
                    q.sort = StudySort::parse(value).ok_or_else(|| {
                        err(format!(
                            "cannot sort by {value:?}: use started, -started, _lastUpdated, -_lastUpdated or _id"
                        ))
                    })?;
                }
                "_after" | "_before" => {
                    let cursor = Cursor::parse(value)
                        .ok_or_else(|| err(format!("{value:?} is not a page cursor of this server")))?;
                    q.page = if name == "_after" { Page::After(cursor) } else { Page::Before(cursor) };
                    continue; // not part of self links of other pages
                }
                "_summary" | "_elements" | "_format" => {} // the HTTP layer's business
                _ => {
                    let negated = match modifier {
                        None => false,
                        Some("not") if is_token(name) => true,
                        Some("identifier") if matches!(name, "patient" | "subject") => false,
                        Some(m) => return Err(err(format!("modifier :{m} is not supported on {name}"))),
                    };
                    let any_of = value
                        .split(',')
                        .map(|v| matcher(name, modifier, v, base).map_err(&err))
                        .collect::<Result<Vec<_>, _>>()?;
                    q.criteria.push(Criterion { any_of, negated });
                }
            }
            q.used.push((raw_name.clone(), value.clone()));
        }
        Ok(q)
    }
}

fn is_token(name: &str) -> bool {
    matches!(name, "_id" | "identifier" | "status" | "modality" | "series" | "bodysite" | "body-site")
}

/// `system|code`, `|code` or `code` → (system, code); `None` system means any.
fn token(value: &str) -> (Option<&str>, &str) {
    match value.split_once('|') {
        Some((system, code)) => (Some(system), code),
        None => (None, value),
    }
}

fn matcher(name: &str, modifier: Option<&str>, value: &str, base: &PublicBase) -> Result<Matcher, String> {
    if value.is_empty() {
        return Err("an empty value".to_owned());
    }
    let coded = |system: &str| -> Result<Option<String>, String> {
        let (s, code) = token(value);
        if code.is_empty() {
            return Err(format!("{value:?} names no code"));
        }
        Ok((s.is_none() || s == Some(system)).then(|| code.to_owned()))
    };
    Ok(match name {
        "_id" => Matcher::Id(value.to_owned()),
        "identifier" => match coded(DICOM_UID_SYSTEM)? {
            Some(code) => Matcher::Identifier { uid: code.strip_prefix("urn:oid:").unwrap_or(&code).to_owned() },
            None => Matcher::Nothing,
        },
        "patient" | "subject" => {
            if modifier == Some("identifier") {
                let (system, pseudonym) = token(value);
                let provider = match system {
                    None | Some("") => None,
                    Some(s) => match provider_of_subject_system(s) {
                        Some(p) => Some(p.to_owned()),
                        None => return Ok(Matcher::Nothing),
                    },
                };
                Matcher::Subject { provider, pseudonym: pseudonym.to_owned() }
            } else {
                let pseudonym = value.strip_prefix("Patient/").unwrap_or(value);
                Matcher::Subject { provider: None, pseudonym: pseudonym.to_owned() }
            }
        }
        "status" => Matcher::Status(value.to_owned()),
        "started" => Matcher::Started(DateParam::parse(value)?),
        "_lastUpdated" => Matcher::LastUpdated(DateParam::parse(value)?),
        "modality" => coded(DICOM_SYSTEM)?.map(Matcher::Modality).unwrap_or(Matcher::Nothing),
        "bodysite" | "body-site" => coded(SNOMED_SYSTEM)?.map(Matcher::BodySite).unwrap_or(Matcher::Nothing),
        "series" => Matcher::Series(token(value).1.to_owned()),
        "dataset" => {
            if value.starts_with("http://") || value.starts_with("https://") {
                Matcher::Dataset(value.to_owned())
            } else if let Some((provider, id)) = value.split_once('/') {
                Matcher::Dataset(base.dataset(provider, id))
            } else {
                return Err(format!("{value:?} is neither a dataset IRI nor <provider>/<dataset-id>"));
            }
        }
        other => return Err(format!("{other} takes no value here")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i128 = 86_400 * NANOS;

    fn at(text: &str) -> i128 {
        instant_nanos(text).unwrap()
    }

    #[test]
    fn dates_cover_the_range_of_their_precision() {
        assert_eq!(date_range("2024"), Some((at("2024-01-01T00:00:00Z"), at("2025-01-01T00:00:00Z"))));
        assert_eq!(date_range("2024-02"), Some((at("2024-02-01T00:00:00Z"), at("2024-03-01T00:00:00Z"))));
        assert_eq!(date_range("2024-12"), Some((at("2024-12-01T00:00:00Z"), at("2025-01-01T00:00:00Z"))));
        assert_eq!(date_range("2024-02-29"), Some((at("2024-02-29T00:00:00Z"), at("2024-03-01T00:00:00Z"))));
        let minute = date_range("2024-03-14T09:42+01:00").unwrap();
        assert_eq!(minute, (at("2024-03-14T08:42:00Z"), at("2024-03-14T08:43:00Z")));
        assert_eq!(date_range("2024-03-14T08:42:05Z").unwrap().1 - at("2024-03-14T08:42:05Z"), NANOS);
        assert_eq!(date_range("2024-03-14T08:42:05.5Z").unwrap().1 - at("2024-03-14T08:42:05.5Z"), NANOS / 10);
        for bad in ["24", "2024-2", "2024-13", "2024-02-30", "2024-01-01T9", "2024-01-01T09:00:00X", "x"] {
            assert_eq!(date_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_compare_a_point_with_a_range() {
        let t = at("2024-03-14T08:42:00Z");
        let now = at("2026-01-01T00:00:00Z");
        let yes = |q: &str| DateParam::parse(q).unwrap().matches(t, now);
        assert!(yes("2024") && yes("eq2024-03") && yes("eq2024-03-14"));
        assert!(!yes("2023") && !yes("ne2024") && yes("ne2023"));
        assert!(yes("gt2023") && !yes("gt2024") && yes("sa2023-12-31"));
        assert!(yes("lt2025") && !yes("lt2024") && yes("eb2024-03-15") && !yes("eb2024-03-14"));
        assert!(yes("ge2024") && yes("ge2024-03-14") && !yes("ge2024-03-15"));
        assert!(yes("le2024-03-14") && !yes("le2024-03-13"));
        assert!(yes("ap2024-03-10") && !yes("ap2020-01-01"));
        let day = DateParam::parse("2024-03-14").unwrap();
        assert_eq!(day.high - day.low, DAY);
        assert!(DateParam::parse("xx2024").is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { key: -1_700_000_000_000_000_000, id: "0a1b".into() };
        assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        assert_eq!(Cursor::parse("12_../x"), None);
        assert_eq!(Cursor::parse("nope"), None);
    }

    #[test]
    fn parameters_parse_into_criteria() {
        let base = PublicBase::new("https://r.example").unwrap();
        let pairs = |q: &[(&str, &str)]| q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let q = StudyQuery::parse(
            &pairs(&[
                ("modality", "MR,http://dicom.nema.org/resources/ontology/DCM|CT"),
                ("started", "ge2024"),
                ("started", "lt2025"),
                ("bogus", "1"),
            ]),
            &base,
            false,
        )
        .unwrap();
        assert_eq!(q.criteria.len(), 3);
        assert_eq!(q.criteria[0].any_of, vec![Matcher::Modality("MR".into()), Matcher::Modality("CT".into())]);
        assert_eq!(q.used.len(), 3, "the unknown parameter is ignored");
        let strict = StudyQuery::parse(&pairs(&[("bogus", "1")]), &base, true).unwrap_err();
        assert_eq!(strict.parameter, "bogus");
        let bad = StudyQuery::parse(&pairs(&[("started", "2024-13")]), &base, false).unwrap_err();
        assert_eq!(bad.parameter, "started");
        assert!(StudyQuery::parse(&pairs(&[("_count", "1001")]), &base, false).is_err());
        assert!(StudyQuery::parse(&pairs(&[("modality:exact", "MR")]), &base, false).is_err());
        let other_system = StudyQuery::parse(&pairs(&[("modality", "http://loinc.org|MR")]), &base, false).unwrap();
        assert_eq!(other_system.criteria[0].any_of, vec![Matcher::Nothing]);
        let ds = StudyQuery::parse(&pairs(&[("dataset", "p/d")]), &base, false).unwrap();
        assert_eq!(ds.criteria[0].any_of, vec![Matcher::Dataset("https://r.example/datasets/p/d".into())]);
    }
}
