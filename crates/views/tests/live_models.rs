//! The read models kept up to date from the projector's change journal give exactly what models
//! built from scratch give, after random sequences of events (datasets published, updated,
//! deprecated, withdrawn; studies registered, updated, moved, retracted; consent withdrawn)
//! folded by a real projector into a real Oxigraph store, in random batches.
//!
//! Access requests (requested, decided, answered, withdrawn, revoked) come in the same sequences:
//! the followed access book equals one built from scratch, and the studies a researcher's permits
//! reach are exactly those of the approved datasets.
//!
//! The same sequences check the catalogue's kept history: the public graphs it gives for each
//! second equal those of a projector that replays only the events appended by then.
//!
//! A small deterministic generator drives it (each seed is one sequence; a failure names its
//! seed and step, which replays it exactly).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use cireg_log::StoredEvent;
use cireg_projector::{second_of, CatalogueHistory, ChangeJournal, Past, Projector, PublicBase};
use cireg_views::{
    write_catalog, AccessBook, CatalogIndex, CatalogInfo, CatalogPage, IndexEntry, ReadModels, SearchIndex,
    SearchQuery, StudyAccess, StudyIndex, StudyLookup, StudyQuery,
};
use oxigraph::{io::RdfFormat, store::Store};
use serde_json::{json, Value};

use cireg_testkit::Rng;

const PROVIDER: &str = "synthetic-breast-consortium";
const DATASETS: u64 = 3;
const SUBJECTS: u64 = 4;
const STUDIES: u64 = 6;
/// The instant permits are checked at (unix seconds, 2027-01-01): after every decision of the
/// examples, before every approval's end.
const PERMITS_AT: i64 = 1_798_761_600;

fn example(name: &str) -> Value {
    let path = format!("{}/../../schemas/examples/eu.cancerimage.{name}.v1.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Events to choose from, made from the schema examples.
struct Events {
    seq: u64,
    dataset: Value,
    study: Value,
}

impl Events {
    fn new() -> Self {
        Events { seq: 0, dataset: example("dataset.published"), study: example("study.registered") }
    }

    fn envelope(&mut self, mut event: Value, kind: &str, subject: &str) -> StoredEvent {
        self.seq += 1;
        event["id"] = json!(format!("00000000-0000-4000-8000-{:012}", self.seq));
        event["type"] = json!(format!("eu.cancerimage.{kind}.v1"));
        event["subject"] = json!(subject);
        if let Some(o) = event.as_object_mut() {
            o.remove("expectedversion");
            o.remove("dataschema");
        }
        let e = cireg_model::validate_event(&serde_json::to_vec(&event).unwrap())
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        StoredEvent {
            seq: self.seq,
            subject: e.subject(),
            payload: Bytes::from(e.to_bytes()),
            appended_at_nanos: 1_800_000_000_000_000_000 + i128::from(self.seq) * 1_000_000_000,
            node: None,
        }
    }

    fn dataset_event(&mut self, rng: &mut Rng) -> StoredEvent {
        let id = format!("dataset-{}", rng.below(DATASETS));
        match rng.below(6) {
            0..=2 => {
                let mut d = self.dataset.clone();
                let countries = [["ESP"], ["ITA"], ["FRA"]];
                d["data"]["countries"] = json!(countries[rng.below(3) as usize]);
                d["data"]["title"]["en"] = json!(format!("Dataset {id} version {}", self.seq));
                let kind = if rng.below(2) == 0 { "dataset.published" } else { "dataset.updated" };
                if kind == "dataset.updated" {
                    // distributions change through their own events
                    d["data"].as_object_mut().map(|o| o.remove("distributions"));
                }
                self.envelope(d, kind, &id)
            }
            3 => self.envelope(example("dataset.deprecated"), "dataset.deprecated", &id),
            _ => self.envelope(example("dataset.withdrawn"), "dataset.withdrawn", &id),
        }
    }

    /// A step of one of a few access requests, for datasets of the provider.
    fn access_event(&mut self, rng: &mut Rng) -> StoredEvent {
        let request = format!("req-{}", rng.below(3));
        let dataset = format!("dataset-{}", rng.below(DATASETS));
        let researcher = ["alice", "bob"][rng.below(2) as usize];
        match rng.below(6) {
            0 => {
                let mut r = example("access.requested");
                r["data"]["researcher"] = json!(researcher);
                let mut datasets = vec![dataset];
                if rng.below(2) == 0 {
                    datasets
                        .push(format!("dataset-{}", (rng.below(DATASETS - 1) + 1 + datasets.len() as u64) % DATASETS));
                    datasets.dedup();
                }
                r["data"]["datasets"] = json!(datasets);
                self.envelope(r, "access.requested", &request)
            }
            1 | 2 => {
                let mut d = example("access.decided");
                d["data"]["dataset"] = json!(dataset);
                match rng.below(3) {
                    0 => {}
                    1 => d["data"] = json!({"dataset": dataset, "decision": "rejected", "reason": "no"}),
                    _ => {
                        d["data"] = json!({"dataset": dataset, "decision": "information-requested", "question": "why?"})
                    }
                }
                self.envelope(d, "access.decided", &request)
            }
            3 => {
                let mut r = example("access.revoked");
                r["data"]["dataset"] = json!(dataset);
                self.envelope(r, "access.revoked", &request)
            }
            4 => {
                let mut a = example("access.answered");
                a["data"]["researcher"] = json!(researcher);
                self.envelope(a, "access.answered", &request)
            }
            _ => {
                let mut w = example("access.withdrawn");
                w["data"]["researcher"] = json!(researcher);
                self.envelope(w, "access.withdrawn", &request)
            }
        }
    }

    fn study_event(&mut self, rng: &mut Rng) -> StoredEvent {
        let pseudonym = format!("SUBJ-{}", rng.below(SUBJECTS));
        let n = rng.below(STUDIES);
        let uid = format!("2.25.{}", 1000 + n);
        match rng.below(8) {
            0..=4 => {
                let mut s = self.study.clone();
                s["data"]["studyInstanceUid"] = json!(uid);
                s["data"]["dataset"] = json!(format!("dataset-{}", rng.below(DATASETS)));
                s["data"]["description"] = json!(format!("study {n} as of {}", self.seq));
                // three instants, each shared by several studies (ties in a `started` sort)
                s["data"]["started"] = json!(format!("2024-03-1{}T09:42:00+01:00", n % 3));
                let modality = ["MR", "CT"][rng.below(2) as usize];
                s["data"]["modalities"] = json!([modality]);
                if let Some(series) = s["data"]["series"].as_array_mut() {
                    for (i, one) in series.iter_mut().enumerate() {
                        one["uid"] = json!(format!("{uid}.{i}"));
                        one["modality"] = json!(modality);
                    }
                }
                let kind = if rng.below(2) == 0 { "study.registered" } else { "study.updated" };
                self.envelope(s, kind, &pseudonym)
            }
            5 | 6 => {
                let mut r = example("study.retracted");
                r["data"]["studyInstanceUid"] = json!(uid);
                self.envelope(r, "study.retracted", &pseudonym)
            }
            _ => self.envelope(example("subject.consent.withdrawn"), "subject.consent.withdrawn", &pseudonym),
        }
    }
}

fn searches(base: &PublicBase) -> Vec<StudyQuery> {
    let pairs = |q: &[(&str, &str)]| q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let mut queries = vec![
        pairs(&[("_count", "1000")]),
        pairs(&[("modality", "CT"), ("_count", "1000")]),
        pairs(&[("_sort", "-_lastUpdated"), ("_count", "1000")]),
        pairs(&[("started", "ge2024-01-01"), ("_sort", "started"), ("_count", "1000")]),
        pairs(&[("dataset", &format!("{PROVIDER}/dataset-1")), ("_count", "1000")]),
        pairs(&[("series", "2.25.1003.0,2.25.1001.1"), ("_count", "1000")]),
        pairs(&[("identifier", "urn:dicom:uid|urn:oid:2.25.1002"), ("_count", "1000")]),
        pairs(&[("modality:not", "MR"), ("_sort", "started"), ("_count", "3")]),
    ];
    for s in 0..SUBJECTS {
        queries.push(pairs(&[("patient", &format!("SUBJ-{s}")), ("_count", "1000")]));
    }
    queries.iter().map(|q| StudyQuery::parse(q, base, true).unwrap().with_access(StudyAccess::All)).collect()
}

/// What a caller of `access` sees is exactly what a caller of every study sees, less the studies
/// of the datasets `access` does not reach: in every search, in reads, and in the study graphs a
/// SPARQL query of that caller may name.
fn check_access(index: &StudyIndex, queries: &[StudyQuery], access: &StudyAccess, at: &str) {
    let base = PublicBase::new("https://registry.example.eu/").unwrap();
    let mut readable = std::collections::BTreeSet::new();
    for q in queries.iter().filter(|q| q.count == 1000) {
        let all = index.search(q).unwrap().studies;
        let mine = index.search(&q.clone().with_access(access.clone())).unwrap();
        let expected: Vec<&str> = all
            .iter()
            .filter(|s| access.allows(&s.dataset_iri, &s.projected.provider))
            .map(|s| s.projected.id.as_str())
            .collect();
        let seen: Vec<&str> = mine.studies.iter().map(|s| s.projected.id.as_str()).collect();
        assert_eq!(seen, expected, "{at}: {access:?} {:?}", q.used);
        assert_eq!(mine.total, expected.len() as u64, "{at}: the total counts only what it may read");
        for s in &all {
            let found = matches!(index.get(&s.projected.id, access).unwrap(), StudyLookup::Found(_));
            assert_eq!(found, access.allows(&s.dataset_iri, &s.projected.provider), "{at}: read {}", s.projected.id);
            if found {
                readable.insert(base.study(&s.projected.id));
            }
        }
    }
    let graphs: std::collections::BTreeSet<String> = index.study_graphs(access).into_iter().collect();
    assert_eq!(graphs, readable, "{at}: the study graphs of {access:?}");
}

fn study_view(index: &StudyIndex, queries: &[StudyQuery]) -> Vec<Vec<(String, u64)>> {
    queries
        .iter()
        .map(|q| {
            index.search(q).unwrap().studies.iter().map(|s| (s.projected.id.clone(), s.projected.version)).collect()
        })
        .collect()
}

fn catalog_view(index: &CatalogIndex) -> (Vec<(String, String, String)>, Vec<String>) {
    let entries =
        index.entries.iter().map(|e| (e.dataset.as_str().to_owned(), e.issued.clone(), e.modified.clone())).collect();
    (entries, index.countries.clone())
}

/// The whole catalogue in N-Triples as written from `index` (from the graphs it keeps, or the store).
fn catalog_page(store: &Store, base: &PublicBase, index: &CatalogIndex) -> String {
    let datasets: Vec<&IndexEntry> = index.entries.iter().collect();
    let page = CatalogPage { index, datasets: &datasets, paging: None, nodes: &[] };
    let info = CatalogInfo::default();
    let written = write_catalog(store, base, &info, &page, RdfFormat::NTriples, Vec::new()).unwrap();
    String::from_utf8(written).unwrap()
}

fn search_view(index: &SearchIndex) -> Vec<(String, String, u64, u64, bool)> {
    let all = SearchQuery { page_size: 1000, ..SearchQuery::default() };
    let results = index.search(&all);
    let mut docs: Vec<_> =
        results.results.iter().map(|d| (d.iri.clone(), d.title.clone(), d.studies, d.subjects, d.deprecated)).collect();
    docs.sort();
    docs
}

fn run(seed: u64, steps: usize, journal_bound: usize) {
    let base = PublicBase::new("https://registry.example.eu/").unwrap();
    let journal = Arc::new(ChangeJournal::with_bound(journal_bound));
    let projector = Projector::new(Store::new().unwrap(), base.clone()).unwrap().with_journal(journal.clone());
    let store = projector.store().clone();
    let live = ReadModels::new(store.clone(), base.clone(), journal);
    live.rebuild(0).unwrap();
    let queries = searches(&base);
    let started_twins = started_twins(&base);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut events = Events::new();
    let mut log: Vec<StoredEvent> = Vec::new();
    for step in 0..steps {
        let batch: Vec<StoredEvent> = (0..1 + rng.below(5))
            .map(|_| match rng.below(6) {
                0 | 1 => events.dataset_event(&mut rng),
                2 => events.access_event(&mut rng),
                _ => events.study_event(&mut rng),
            })
            .collect();
        let checkpoint = projector.apply_batch(&batch).unwrap();
        log.extend(batch);
        live.apply_pending().unwrap();
        assert_eq!(live.checkpoint(), checkpoint, "seed {seed} step {step}: the models' checkpoint");
        let fresh = ReadModels::new(store.clone(), base.clone(), Arc::default());
        fresh.rebuild(checkpoint).unwrap();
        let at = format!("seed {seed} step {step}");
        assert_eq!(live.studies().fingerprint(), fresh.studies().fingerprint(), "{at}: studies shown and gone");
        assert_eq!(study_view(live.studies(), &queries), study_view(fresh.studies(), &queries), "{at}: study searches");
        assert_eq!(catalog_view(&live.catalog()), catalog_view(&fresh.catalog()), "{at}: catalogue index");
        // the dataset graphs the live index keeps are the store's (study counts change them too)
        let kept = live.catalog();
        assert!(kept.entries.iter().all(|e| e.graph.is_some()), "{at}: a small catalogue is kept whole");
        let from_store = CatalogIndex::build(&store, &base).unwrap();
        assert!(from_store.entries.iter().all(|e| e.graph.is_none()));
        assert_eq!(catalog_page(&store, &base, &kept), catalog_page(&store, &base, &from_store), "{at}: catalogue");
        assert_eq!(search_view(&live.search()), search_view(&fresh.search()), "{at}: search index");
        // random access: some datasets of the provider, or the provider itself
        let mut datasets = std::collections::BTreeSet::new();
        for d in 0..DATASETS {
            if rng.below(2) == 0 {
                datasets.insert(base.dataset(PROVIDER, &format!("dataset-{d}")));
            }
        }
        let providers = if rng.below(5) == 0 { [PROVIDER.to_owned()].into() } else { Default::default() };
        for access in [StudyAccess::Only { datasets, providers }, StudyAccess::default()] {
            check_access(live.studies(), &queries, &access, &at);
        }
        // the access book: followed equals built, and a permit reaches its dataset's studies
        let (book, built) = (live.access(), fresh.access());
        let parts = |b: &AccessBook| b.requests().map(|(id, p)| (id.clone(), p.clone())).collect::<Vec<_>>();
        assert_eq!(parts(&book), parts(&built), "{at}: access requests");
        for researcher in ["alice", "bob"] {
            let permits = book.permits(researcher, PERMITS_AT);
            assert_eq!(permits, built.permits(researcher, PERMITS_AT), "{at}: permits of {researcher}");
            // exactly the approved datasets of the researcher's requests (no other ends in 2027)
            let mut expected = std::collections::BTreeSet::new();
            for (_, request) in book.of_researcher(researcher) {
                for part in request.values() {
                    for (d, a) in &part.datasets {
                        if matches!(a, cireg_model::DatasetAccess::Approved { .. }) {
                            expected.insert(d.clone());
                        }
                    }
                }
            }
            let granted: std::collections::BTreeSet<String> = permits.iter().map(|p| p.dataset.clone()).collect();
            assert_eq!(granted, expected, "{at}: {researcher}'s permits");
            let datasets = permits.iter().map(|p| base.dataset(&p.provider, &p.dataset)).collect();
            check_access(live.studies(), &queries, &StudyAccess::Only { datasets, providers: Default::default() }, &at);
        }
        for (fast, general) in &started_twins {
            assert_eq!(
                study_view(live.studies(), std::slice::from_ref(fast)),
                study_view(live.studies(), std::slice::from_ref(general)),
                "{at}: a search by started alone, sorted by it ({:?}), differs from the general path",
                fast.sort
            );
        }
    }
    // the same log folded as `cireg rebuild` folds it (a scratch store), in other batches
    let scratch = Projector::new(Store::new().unwrap(), base).unwrap().into_scratch();
    let mut rest = &log[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(80) as usize).min(rest.len());
        scratch.apply_batch(&rest[..n]).unwrap();
        rest = &rest[n..];
    }
    // every quad but the checkpoint's, which a bulk-loaded batch adds beside the old one (the
    // highest counts)
    let quads = |store: &Store| {
        let mut q: Vec<String> = store
            .iter()
            .map(|q| q.unwrap())
            .filter(|q| q.predicate.as_str() != cireg_projector::ns::CHECKPOINT)
            .map(|q| q.to_string())
            .collect();
        q.sort();
        q
    };
    assert_eq!(quads(scratch.store()), quads(&store), "seed {seed}: a scratch fold differs from the live one");
    assert_eq!(scratch.checkpoint().unwrap(), projector.checkpoint().unwrap());
}

/// Searches by `started` alone, sorted by it (answered from the started table alone), each with
/// a twin that asks the same with a second, always true criterion (answered the general way).
fn started_twins(base: &PublicBase) -> Vec<(StudyQuery, StudyQuery)> {
    let parse = |q: &[(&str, &str)]| {
        let pairs: Vec<_> = q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        StudyQuery::parse(&pairs, base, true).unwrap().with_access(StudyAccess::All)
    };
    let mut twins = Vec::new();
    for sort in ["started", "-started"] {
        for (range, count) in [("ge2024-03-11", "1000"), ("eq2024-03-12", "1000"), ("lt2024-03-13", "2")] {
            twins.push((
                parse(&[("started", range), ("_sort", sort), ("_count", count)]),
                parse(&[("started", range), ("started", "ge1900-01-01"), ("_sort", sort), ("_count", count)]),
            ));
        }
    }
    twins
}

#[test]
fn incremental_read_models_equal_a_rebuild_after_random_events() {
    for seed in 1..=24 {
        run(seed, 40, cireg_projector::DEFAULT_JOURNAL_BOUND);
    }
}

#[test]
fn a_journal_that_overflows_makes_the_models_rebuild_and_still_equal() {
    for seed in 100..=105 {
        run(seed, 30, 3);
    }
}

#[test]
fn the_random_sequences_reach_every_kind_of_state() {
    // the generator is only worth something if its sequences show, hide and erase studies and
    // make datasets come and go: count what the comparisons above saw
    let base = PublicBase::new("https://registry.example.eu/").unwrap();
    let (mut shown, mut gone, mut datasets_gone, mut permits, mut ended) = (0, 0, 0, 0, 0);
    for seed in 1..=24u64 {
        let projector = Projector::new(Store::new().unwrap(), base.clone()).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut events = Events::new();
        for _ in 0..40 {
            let batch: Vec<StoredEvent> = (0..1 + rng.below(5))
                .map(|_| match rng.below(6) {
                    0 | 1 => events.dataset_event(&mut rng),
                    2 => events.access_event(&mut rng),
                    _ => events.study_event(&mut rng),
                })
                .collect();
            projector.apply_batch(&batch).unwrap();
            let book = AccessBook::build(projector.store()).unwrap();
            permits += usize::from(["alice", "bob"].iter().any(|r| !book.permits(r, PERMITS_AT).is_empty()));
            ended += usize::from(book.requests().any(|(_, parts)| {
                parts.values().flat_map(|p| p.datasets.values()).any(|a| {
                    matches!(
                        a,
                        cireg_model::DatasetAccess::Revoked { .. } | cireg_model::DatasetAccess::Withdrawn { .. }
                    )
                })
            }));
            let index = StudyIndex::build(projector.store(), &base).unwrap();
            let (s, g) = index.fingerprint();
            shown += usize::from(!s.is_empty());
            gone += usize::from(!g.is_empty());
            let catalog = CatalogIndex::build(projector.store(), &base).unwrap();
            datasets_gone += usize::from(catalog.entries.len() < DATASETS as usize);
        }
    }
    assert!(
        shown > 100 && gone > 100 && datasets_gone > 100 && permits > 100 && ended > 100,
        "shown {shown}, gone {gone}, datasets gone {datasets_gone}, permits held {permits}, \
         requests ended {ended} (of 960 steps)"
    );
}

/// The public graphs of a store, as sorted N-Quads lines (its default graph left out).
fn public_lines(quads: impl IntoIterator<Item = oxigraph::model::Quad>) -> Vec<String> {
    let mut lines: Vec<String> =
        quads.into_iter().filter(|q| !q.graph_name.is_default_graph()).map(|q| q.to_string()).collect();
    lines.sort();
    lines
}

/// Returns the number of snapshots the history took.
fn history_run(seed: u64, steps: usize) -> u64 {
    let base = PublicBase::new("https://registry.example.eu/").unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut events = Events::new();
    let mut all: Vec<StoredEvent> = (0..steps)
        .map(|_| if rng.below(3) == 0 { events.dataset_event(&mut rng) } else { events.study_event(&mut rng) })
        .collect();
    // several events in one second, seconds with none, and times inside seconds
    let mut t: i128 = 1_800_000_000_000_000_000;
    for e in &mut all {
        t += [0, 0, 300_000_000, 1_000_000_000, 2_500_000_000][rng.below(5) as usize];
        e.appended_at_nanos = t;
    }
    let dir = tempfile::tempdir().unwrap();
    let history = Arc::new(CatalogueHistory::open(&dir.path().join("history.redb")).unwrap());
    let projector = Projector::new(Store::new().unwrap(), base.clone())
        .unwrap()
        .with_public_mirror(Store::new().unwrap())
        .unwrap()
        .with_history(history.clone())
        .unwrap();
    // random batches: the projector cuts them at whole seconds itself
    let mut rest = all.as_slice();
    while !rest.is_empty() {
        let n = (1 + rng.below(8) as usize).min(rest.len());
        projector.apply_batch(&rest[..n]).unwrap();
        rest = &rest[n..];
    }
    let mut seconds: Vec<i128> = all.iter().map(|e| second_of(e.appended_at_nanos)).collect();
    seconds.dedup();
    seconds.insert(0, seconds[0] - 1_000_000_000);
    for second in seconds {
        let replay = Projector::new(Store::new().unwrap(), base.clone())
            .unwrap()
            .with_public_mirror(Store::new().unwrap())
            .unwrap();
        let upto: Vec<StoredEvent> = all.iter().filter(|e| second_of(e.appended_at_nanos) <= second).cloned().collect();
        replay.apply_batch(&upto).unwrap();
        let want = public_lines(replay.public_store().unwrap().iter().map(Result::unwrap));
        // any instant of that second
        let Past::Kept { quads, seq, .. } = history.at(second + 700_000_000).unwrap() else {
            panic!("seed {seed}: second {second} not kept")
        };
        assert_eq!(seq, upto.last().map_or(0, |e| e.seq), "seed {seed} second {second}: the sequence");
        assert_eq!(public_lines(quads), want, "seed {seed} second {second}: the public graphs");
    }
    history.sizes().unwrap().1
}

#[test]
fn the_kept_history_gives_each_second_what_a_replay_to_it_gives() {
    for seed in 1..=12 {
        history_run(seed, 60);
    }
    // enough changes for snapshots to be taken and read
    assert!(history_run(99, 400) > 0, "no snapshot was taken");
}
