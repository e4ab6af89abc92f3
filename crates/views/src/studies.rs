//! The study index behind the FHIR ImagingStudy search: every available study of a live dataset,
//! in memory, with lookup tables for the selective parameters (`_id`, `identifier`, `patient`,
//! `series`) and every result list kept sorted so that a page is found by binary search from its
//! cursor, however deep it is.
//!
//! FHIR search semantics live here (values, prefixes, precision, AND of repeated parameters, OR
//! of comma-separated values); the HTTP layer parses the query string with [`StudyQuery::parse`]
//! and builds the Bundle.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use cireg_dcat::PublicBase;
use cireg_model::StudyStatus;
use cireg_projector::{projected_datasets, projected_studies, ProjectedStudy};
use oxigraph::store::Store;
use time::{format_description::well_known::Rfc3339, Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use cireg_model::vocab::{
    provider_of_subject_system, DCM as DICOM_SYSTEM, DICOM_UID as DICOM_UID_SYSTEM, SNOMED as SNOMED_SYSTEM,
};

/// One study as search sees it.
#[derive(Debug, Clone)]
pub struct IndexedStudy {
    pub projected: ProjectedStudy,
    /// The DCAT IRI of its dataset.
    pub dataset_iri: String,
    /// `started` as Unix nanoseconds.
    pub started: i128,
    /// When the log accepted its latest event, Unix nanoseconds.
    pub last_updated: i128,
    /// Modalities of the study and of its series.
    modalities: Vec<String>,
    body_sites: Vec<String>,
}

impl IndexedStudy {
    fn new(projected: ProjectedStudy, base: &PublicBase) -> Self {
        let study = &projected.study;
        let mut modalities: Vec<String> = study.modalities.clone();
        modalities.extend(study.series.iter().map(|s| s.modality.clone()));
        modalities.sort();
        modalities.dedup();
        let mut body_sites: Vec<String> =
            study.series.iter().filter_map(|s| s.body_site.as_ref().map(|b| b.code.clone())).collect();
        body_sites.sort();
        body_sites.dedup();
        let started = instant_nanos(&study.started).unwrap_or(0);
        let last_updated = projected.recorded.as_ref().and_then(|(_, last)| instant_nanos(last)).unwrap_or(0);
        IndexedStudy {
            dataset_iri: base.dataset(&projected.provider, &study.dataset),
            projected,
            started,
            last_updated,
            modalities,
            body_sites,
        }
    }

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
pub enum StudyLookup<'a> {
    Found(&'a IndexedStudy),
    /// Retracted by its provider, or its dataset was withdrawn (410).
    Gone,
    NotFound,
}

/// Every study, searchable.
pub struct StudyIndex {
    studies: Vec<IndexedStudy>,
    /// Studies that are no longer shown (retracted, dataset withdrawn), by id.
    gone: HashSet<String>,
    by_id: HashMap<String, u32>,
    by_uid: HashMap<String, Vec<u32>>,
    by_subject: HashMap<String, Vec<u32>>,
    by_series: HashMap<String, Vec<u32>>,
    /// Positions in the order of `started`, for date ranges.
    by_started: Vec<u32>,
    /// Recent result lists (query key → sorted positions), so that paging through one search does
    /// not search again.
    results: Mutex<Vec<(String, Arc<Vec<u32>>)>>,
}

const RESULT_CACHE: usize = 32;

impl StudyIndex {
    /// The index of every study in `store`.
    pub fn build(store: &Store, base: &PublicBase) -> std::io::Result<Self> {
        let other = |e: cireg_projector::ProjectionError| std::io::Error::other(e.to_string());
        let live: HashSet<(String, String)> =
            projected_datasets(store).map_err(other)?.into_iter().map(|d| (d.provider, d.id)).collect();
        let mut studies = Vec::new();
        let mut gone = HashSet::new();
        for p in projected_studies(store).map_err(other)? {
            let shown =
                p.status == StudyStatus::Available && live.contains(&(p.provider.clone(), p.study.dataset.clone()));
            if shown {
                studies.push(IndexedStudy::new(p, base));
            } else {
                gone.insert(p.id);
            }
        }
        Ok(Self::from_studies(studies, gone))
    }

    fn from_studies(mut studies: Vec<IndexedStudy>, gone: HashSet<String>) -> Self {
        studies.sort_by(|a, b| a.projected.id.cmp(&b.projected.id));
        let mut index = StudyIndex {
            by_id: HashMap::with_capacity(studies.len()),
            by_uid: HashMap::new(),
            by_subject: HashMap::new(),
            by_series: HashMap::new(),
            by_started: Vec::new(),
            results: Mutex::new(Vec::new()),
            gone,
            studies: Vec::new(),
        };
        for (i, s) in studies.iter().enumerate() {
            let i = i as u32;
            index.by_id.insert(s.projected.id.clone(), i);
            index.by_uid.entry(s.projected.study.study_instance_uid.clone()).or_default().push(i);
            index.by_subject.entry(s.projected.subject.clone()).or_default().push(i);
            for series in &s.projected.study.series {
                index.by_series.entry(series.uid.clone()).or_default().push(i);
            }
        }
        let mut by_started: Vec<u32> = (0..studies.len() as u32).collect();
        by_started.sort_by_key(|i| studies[*i as usize].started);
        index.by_started = by_started;
        index.studies = studies;
        index
    }

    /// The studies a `started` value can match, by binary search in start order (`None` for
    /// `ne` and `ap`, which are not one range).
    fn started_between(&self, d: &DateParam) -> Option<&[u32]> {
        let (from, to) = match d.prefix {
            Prefix::Eq => (Some(d.low), Some(d.high)),
            Prefix::Ge => (Some(d.low), None),
            Prefix::Gt | Prefix::Sa => (Some(d.high), None),
            Prefix::Le => (None, Some(d.high)),
            Prefix::Lt | Prefix::Eb => (None, Some(d.low)),
            Prefix::Ne | Prefix::Ap => return None,
        };
        let position = |t: i128| self.by_started.partition_point(|i| self.studies[*i as usize].started < t);
        let start = from.map_or(0, position);
        let end = to.map_or(self.by_started.len(), position).max(start);
        Some(&self.by_started[start..end])
    }

    pub fn len(&self) -> usize {
        self.studies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.studies.is_empty()
    }

    pub fn get(&self, id: &str) -> StudyLookup<'_> {
        match self.by_id.get(id) {
            Some(i) => StudyLookup::Found(&self.studies[*i as usize]),
            None if self.gone.contains(id) => StudyLookup::Gone,
            None => StudyLookup::NotFound,
        }
    }

    /// Every study matching `query`, in its sort order (positions into the index).
    fn matches(&self, query: &StudyQuery) -> Arc<Vec<u32>> {
        let key = query.key();
        if let Ok(cache) = self.results.lock() {
            if let Some((_, hits)) = cache.iter().find(|(k, _)| *k == key) {
                return hits.clone();
            }
        }
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos();
        // start from the smallest lookup table a criterion offers, else from everything
        let candidates: Option<Vec<u32>> = query.criteria.iter().filter_map(|c| self.lookup(c)).min_by_key(Vec::len);
        let test = |i: &u32| {
            let s = &self.studies[*i as usize];
            query.criteria.iter().all(|c| c.matches(s, now))
        };
        let mut hits: Vec<u32> = match candidates {
            Some(c) => c.into_iter().filter(test).collect(),
            None => (0..self.studies.len() as u32).filter(test).collect(),
        };
        let sort = query.sort;
        hits.sort_by(|a, b| sort.compare(&self.studies[*a as usize], &self.studies[*b as usize]));
        hits.dedup();
        let hits = Arc::new(hits);
        if let Ok(mut cache) = self.results.lock() {
            if cache.len() >= RESULT_CACHE {
                cache.remove(0);
            }
            cache.push((key, hits.clone()));
        }
        hits
    }

    /// The positions a lookup table gives for a criterion, when one does (a superset of the
    /// matches: the criterion is still tested on each).
    fn lookup(&self, c: &Criterion) -> Option<Vec<u32>> {
        if c.negated {
            return None;
        }
        let mut out = Vec::new();
        for value in &c.any_of {
            let found: &[u32] = match value {
                Matcher::Id(id) => match self.by_id.get(id) {
                    Some(i) => std::slice::from_ref(i),
                    None => &[],
                },
                Matcher::Identifier { uid, .. } => self.by_uid.get(uid).map(Vec::as_slice).unwrap_or(&[]),
                Matcher::Subject { pseudonym, .. } => self.by_subject.get(pseudonym).map(Vec::as_slice).unwrap_or(&[]),
                Matcher::Started(d) => self.started_between(d)?,
                Matcher::Series(uid) => self.by_series.get(uid).map(Vec::as_slice).unwrap_or(&[]),
                _ => return None,
            };
            out.extend_from_slice(found);
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// One page of the studies matching `query`: after (or before) its cursor, at most
    /// `query.count`. Finding the page costs a binary search, not a scan of the pages before it.
    pub fn search(&self, query: &StudyQuery) -> StudyPage<'_> {
        let hits = self.matches(query);
        let total = hits.len() as u64;
        let position = |cursor: &Cursor| {
            hits.partition_point(|i| query.sort.compare_key(&self.studies[*i as usize], cursor).is_le())
        };
        let (start, end) = match &query.page {
            Page::First => (0, query.count.min(hits.len())),
            Page::After(cursor) => {
                let start = position(cursor);
                (start, (start + query.count).min(hits.len()))
            }
            Page::Before(cursor) => {
                let end = hits.partition_point(|i| query.sort.compare_key(&self.studies[*i as usize], cursor).is_lt());
                (end.saturating_sub(query.count), end)
            }
        };
        let studies: Vec<&IndexedStudy> = hits[start..end].iter().map(|i| &self.studies[*i as usize]).collect();
        let next =
            (end < hits.len() && !studies.is_empty()).then(|| studies.last().map(|s| query.sort.cursor(s))).flatten();
        let previous =
            (start > 0 && !studies.is_empty()).then(|| studies.first().map(|s| query.sort.cursor(s))).flatten();
        StudyPage { total, studies, next, previous }
    }
}

/// Keeps one study index per checkpoint.
pub type StudyCache = crate::catalog::CheckpointCache<StudyIndex>;

/// A page of search results.
pub struct StudyPage<'a> {
    pub total: u64,
    pub studies: Vec<&'a IndexedStudy>,
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

    fn key(self, s: &IndexedStudy) -> i128 {
        match self {
            StudySort::Id => 0,
            StudySort::Started { descending } => signed(s.started, descending),
            StudySort::LastUpdated { descending } => signed(s.last_updated, descending),
        }
    }

    fn cursor(self, s: &IndexedStudy) -> Cursor {
        Cursor { key: self.key(s), id: s.projected.id.clone() }
    }

    fn compare(self, a: &IndexedStudy, b: &IndexedStudy) -> std::cmp::Ordering {
        (self.key(a), &a.projected.id).cmp(&(self.key(b), &b.projected.id))
    }

    fn compare_key(self, s: &IndexedStudy, cursor: &Cursor) -> std::cmp::Ordering {
        (self.key(s), s.projected.id.as_str()).cmp(&(cursor.key, cursor.id.as_str()))
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
    /// A value that cannot match (e.g. a code from another system).
    Nothing,
}

impl Matcher {
    fn matches(&self, s: &IndexedStudy, now: i128) -> bool {
        let p = &s.projected;
        match self {
            Matcher::Id(id) => p.id == *id,
            Matcher::Identifier { uid } => p.study.study_instance_uid == *uid,
            Matcher::Subject { provider, pseudonym } => {
                p.subject == *pseudonym && provider.as_ref().is_none_or(|want| *want == p.provider)
            }
            Matcher::Status(code) => code == "available",
            Matcher::Started(d) => d.matches(s.started, now),
            Matcher::LastUpdated(d) => d.matches(s.last_updated, now),
            Matcher::Modality(code) => s.modalities.binary_search(code).is_ok(),
            Matcher::BodySite(code) => s.body_sites.binary_search(code).is_ok(),
            Matcher::Series(uid) => p.study.series.iter().any(|series| series.uid == *uid),
            Matcher::Dataset(iri) => s.dataset_iri == *iri,
            Matcher::Nothing => false,
        }
    }
}

/// One search parameter occurrence: its comma-separated values, OR-ed (`negated` for `:not`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub any_of: Vec<Matcher>,
    pub negated: bool,
}

impl Criterion {
    fn matches(&self, s: &IndexedStudy, now: i128) -> bool {
        self.any_of.iter().any(|m| m.matches(s, now)) != self.negated
    }
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
        format!("{}|{}", self.sort.as_str(), used.join("&"))
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
