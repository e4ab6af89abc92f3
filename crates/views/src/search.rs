//! Faceted search over the live datasets, from the projected dataset documents (which keep every
//! code with its display text). The index lives in memory and is rebuilt when the projection
//! moves on; a query filters, scores and counts facets in one pass over it.
//!
//! Facets are disjunctive: values of one facet are OR-ed, facets are AND-ed, and each facet's
//! counts are taken over the results of every *other* facet, so choosing a value never hides the
//! other values of the same facet.

use std::collections::{BTreeMap, HashMap};

use cireg_dcat::PublicBase;
use cireg_model::{english, Coding, DatasetStatus};
use cireg_projector::{projected_datasets, ProjectedDataset};
use oxigraph::store::Store;
use serde::Serialize;

/// A coded value with its label, as facets and results show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub code: String,
    pub label: String,
}

fn label_of(c: &Coding) -> Label {
    Label { code: c.code.clone(), label: c.display.clone().unwrap_or_else(|| c.code.clone()) }
}

/// One dataset as search sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchDoc {
    /// The dataset's IRI.
    pub iri: String,
    pub provider: String,
    pub provider_name: String,
    /// On the central node: the national node (JetStream domain) the dataset came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub id: String,
    pub title: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub cancer: Label,
    pub modalities: Vec<Label>,
    pub body_parts: Vec<Label>,
    pub countries: Vec<Label>,
    pub access: String,
    pub sex: Vec<Label>,
    pub age_range: Option<(u32, u32)>,
    pub subjects: u64,
    pub studies: u64,
    pub series: Option<u64>,
    pub manufacturers: Vec<String>,
    pub synthetic: bool,
    pub deprecated: bool,
    /// Access URLs of the distributions: where to ask for the data.
    pub access_urls: Vec<String>,
    /// First and last year of image acquisition, when known.
    pub years: Option<(i32, i32)>,
    #[serde(skip)]
    tokens: Vec<(String, u32)>,
    /// The whole dataset document, for the dataset page.
    #[serde(skip)]
    pub document: Box<cireg_model::Dataset>,
}

/// Lowercase alphanumeric words.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

impl SearchDoc {
    pub fn new(base: &PublicBase, p: ProjectedDataset) -> Self {
        let d = &p.dataset;
        let keywords: Vec<String> = d.keywords.values().flatten().cloned().collect();
        let year = |date: &Option<String>| date.as_deref().and_then(|s| s.get(..4)).and_then(|y| y.parse().ok());
        let years = d.acquisition_period.as_ref().and_then(|p| match (year(&p.start), year(&p.end)) {
            (Some(a), Some(b)) => Some((a, b)),
            (Some(a), None) => Some((a, a)),
            (None, Some(b)) => Some((b, b)),
            (None, None) => None,
        });
        let mut doc = SearchDoc {
            iri: base.dataset(&p.provider, &p.id),
            provider_name: english(&d.publisher.name),
            provider: p.provider,
            node: p.node,
            id: p.id,
            title: english(&d.title),
            description: english(&d.description),
            keywords,
            cancer: label_of(&d.condition),
            modalities: d.image_modalities.iter().map(label_of).collect(),
            body_parts: d.body_parts.iter().map(label_of).collect(),
            countries: d
                .countries
                .iter()
                .map(|c| Label { code: c.clone(), label: country_name(c).to_owned() })
                .collect(),
            access: d.access_rights.clone(),
            sex: d.birth_sex.iter().map(label_of).collect(),
            age_range: d.age_range.map(|a| (a.min, a.max)),
            subjects: d.number_of_subjects,
            studies: d.number_of_studies,
            series: d.number_of_series,
            manufacturers: d.equipment_manufacturers.clone(),
            synthetic: d.synthetic,
            deprecated: p.status == DatasetStatus::Deprecated,
            access_urls: d.distributions.iter().map(|x| x.access_url.clone()).collect(),
            years,
            tokens: Vec::new(),
            document: Box::new(p.dataset.clone()),
        };
        // what free text matches, and how much each place counts
        let mut tokens: HashMap<String, u32> = HashMap::new();
        let mut add = |text: &str, weight: u32| {
            for w in words(text) {
                let e = tokens.entry(w).or_default();
                *e = (*e).max(weight);
            }
        };
        add(&doc.title, 5);
        add(&doc.cancer.label, 4);
        doc.keywords.iter().for_each(|k| add(k, 3));
        doc.modalities.iter().chain(&doc.body_parts).for_each(|l| {
            add(&l.label, 2);
            add(&l.code, 2);
        });
        add(&doc.provider_name, 2);
        doc.countries.iter().for_each(|c| add(&c.label, 1));
        doc.manufacturers.iter().for_each(|m| add(m, 1));
        add(&doc.description, 1);
        doc.tokens = tokens.into_iter().collect();
        doc
    }
}

/// English names of the countries the EU country authority codes stand for (EU and EEA, and a few
/// more that take part in European research infrastructures).
pub fn country_name(code: &str) -> &str {
    match code {
        "AUT" => "Austria",
        "BEL" => "Belgium",
        "BGR" => "Bulgaria",
        "HRV" => "Croatia",
        "CYP" => "Cyprus",
        "CZE" => "Czechia",
        "DNK" => "Denmark",
        "EST" => "Estonia",
        "FIN" => "Finland",
        "FRA" => "France",
        "DEU" => "Germany",
        "GRC" => "Greece",
        "HUN" => "Hungary",
        "IRL" => "Ireland",
        "ITA" => "Italy",
        "LVA" => "Latvia",
        "LTU" => "Lithuania",
        "LUX" => "Luxembourg",
        "MLT" => "Malta",
        "NLD" => "Netherlands",
        "POL" => "Poland",
        "PRT" => "Portugal",
        "ROU" => "Romania",
        "SVK" => "Slovakia",
        "SVN" => "Slovenia",
        "ESP" => "Spain",
        "SWE" => "Sweden",
        "ISL" => "Iceland",
        "NOR" => "Norway",
        "LIE" => "Liechtenstein",
        "CHE" => "Switzerland",
        "GBR" => "United Kingdom",
        "ISR" => "Israel",
        "TUR" => "Türkiye",
        other => other,
    }
}

/// Dataset size classes (number of individuals) for the size facet.
pub const SIZE_CLASSES: [(&str, u64, u64); 4] =
    [("1-99", 1, 99), ("100-499", 100, 499), ("500-999", 500, 999), ("1000+", 1000, u64::MAX)];

fn size_class(subjects: u64) -> &'static str {
    SIZE_CLASSES.iter().find(|(_, lo, hi)| (*lo..=*hi).contains(&subjects)).map(|(n, _, _)| *n).unwrap_or("0")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Best match first; without a text query, largest first.
    #[default]
    Relevance,
    /// Most individuals first.
    Size,
    /// By title.
    Title,
}

/// A search: free text, facet selections, ranges, order and page.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    pub cancer: Vec<String>,
    pub modality: Vec<String>,
    pub body_part: Vec<String>,
    pub country: Vec<String>,
    pub provider: Vec<String>,
    /// On the central node: the national nodes (JetStream domains) the datasets came from.
    pub node: Vec<String>,
    pub access: Vec<String>,
    pub sex: Vec<String>,
    pub size: Vec<String>,
    /// Datasets whose age range overlaps [age_min, age_max].
    pub age_min: Option<u32>,
    pub age_max: Option<u32>,
    pub sort: Sort,
    /// From 1.
    pub page: usize,
    pub page_size: usize,
}

/// The facets, in the order pages show them.
pub const FACETS: [&str; 9] =
    ["cancer", "modality", "bodyPart", "country", "provider", "node", "access", "sex", "size"];

impl SearchQuery {
    /// The values selected for `facet` (one of [`FACETS`]).
    pub fn selected(&self, facet: &str) -> &[String] {
        match facet {
            "cancer" => &self.cancer,
            "modality" => &self.modality,
            "bodyPart" => &self.body_part,
            "country" => &self.country,
            "provider" => &self.provider,
            "node" => &self.node,
            "access" => &self.access,
            "sex" => &self.sex,
            "size" => &self.size,
            _ => &[],
        }
    }
}

/// The values a dataset has for a facet: (value, label).
fn facet_values<'a>(doc: &'a SearchDoc, facet: &str) -> Vec<(&'a str, &'a str)> {
    let labels = |l: &'a [Label]| l.iter().map(|l| (l.code.as_str(), l.label.as_str())).collect();
    match facet {
        "cancer" => vec![(doc.cancer.code.as_str(), doc.cancer.label.as_str())],
        "modality" => labels(&doc.modalities),
        "bodyPart" => labels(&doc.body_parts),
        "country" => labels(&doc.countries),
        "provider" => vec![(doc.provider.as_str(), doc.provider_name.as_str())],
        // a national node has none: the facet shows on the central node only
        "node" => doc.node.iter().map(|n| (n.as_str(), n.as_str())).collect(),
        "access" => vec![(doc.access.as_str(), access_label(&doc.access))],
        "sex" => labels(&doc.sex),
        "size" => {
            let c = size_class(doc.subjects);
            vec![(c, c)]
        }
        _ => Vec::new(),
    }
}

pub fn access_label(code: &str) -> &'static str {
    match code {
        "PUBLIC" => "Public",
        "RESTRICTED" => "Restricted",
        "NON_PUBLIC" => "Non-public",
        _ => "Other",
    }
}

/// One value of a facet with how many results it would give.
#[derive(Debug, Clone, Serialize)]
pub struct FacetCount {
    pub value: String,
    pub label: String,
    pub count: usize,
    pub selected: bool,
}

/// A page of results.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
    pub results: Vec<SearchDoc>,
    /// Per facet (see [`FACETS`]), its values by count.
    pub facets: BTreeMap<String, Vec<FacetCount>>,
}

/// The distinct values of one facet: each dataset refers to them by number.
#[derive(Debug, Default)]
struct FacetDictionary {
    values: Vec<(String, String)>,
    ids: HashMap<String, u32>,
}

impl FacetDictionary {
    fn intern(&mut self, value: &str, label: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = self.values.len() as u32;
        self.values.push((value.to_owned(), label.to_owned()));
        self.ids.insert(value.to_owned(), id);
        id
    }
}

/// The live datasets, with what makes queries cheap: an inverted
/// index of their words, and their facet values as numbers.
#[derive(Debug, Default)]
pub struct SearchIndex {
    pub docs: Vec<SearchDoc>,
    /// Every word, sorted (prefix matches are a range), with the datasets that have it and its weight there.
    words: BTreeMap<String, Vec<(u32, u32)>>,
    /// Per facet (in [`FACETS`] order) its dictionary, and per dataset its value ids.
    dictionaries: Vec<FacetDictionary>,
    doc_facets: Vec<Vec<Vec<u32>>>,
}

impl SearchIndex {
    pub fn build(store: &Store, base: &PublicBase) -> std::io::Result<Self> {
        let datasets = projected_datasets(store).map_err(std::io::Error::other)?;
        Ok(Self::from_docs(datasets.into_iter().map(|d| SearchDoc::new(base, d)).collect()))
    }

    /// The index of `docs` (datasets as [`SearchDoc::new`] makes them).
    pub fn from_docs(mut docs: Vec<SearchDoc>) -> Self {
        docs.sort_by(|a, b| a.iri.cmp(&b.iri));
        let mut words: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
        let mut dictionaries: Vec<FacetDictionary> = FACETS.iter().map(|_| FacetDictionary::default()).collect();
        let mut doc_facets = Vec::with_capacity(docs.len());
        for (i, doc) in docs.iter_mut().enumerate() {
            for (word, weight) in std::mem::take(&mut doc.tokens) {
                words.entry(word).or_default().push((i as u32, weight));
            }
            let ids = FACETS
                .iter()
                .zip(dictionaries.iter_mut())
                .map(|(facet, dict)| facet_values(doc, facet).iter().map(|(v, l)| dict.intern(v, l)).collect())
                .collect();
            doc_facets.push(ids);
        }
        SearchIndex { docs, words, dictionaries, doc_facets }
    }

    pub fn get(&self, provider: &str, id: &str) -> Option<&SearchDoc> {
        self.docs.iter().find(|d| d.provider == provider && d.id == id)
    }

    /// Per dataset, its text score, or `None` when a term matches no word of it. Every term must
    /// begin some word of the dataset; a term scores its best such word.
    fn text_scores(&self, terms: &[String]) -> Vec<Option<u32>> {
        let n = self.docs.len();
        if terms.is_empty() {
            return vec![Some(0); n];
        }
        let mut total: Vec<Option<u32>> = vec![Some(0); n];
        for term in terms {
            let mut best = vec![0u32; n];
            for (_, postings) in self.words.range(term.clone()..).take_while(|(w, _)| w.starts_with(term.as_str())) {
                for (doc, weight) in postings {
                    let b = &mut best[*doc as usize];
                    *b = (*b).max(*weight);
                }
            }
            for (t, b) in total.iter_mut().zip(best) {
                *t = match (*t, b) {
                    (Some(sum), b) if b > 0 => Some(sum + b),
                    _ => None,
                };
            }
        }
        total
    }

    pub fn search(&self, q: &SearchQuery) -> SearchResults {
        let terms: Vec<String> = words(&q.text).collect();
        let scores = self.text_scores(&terms);
        // the selected values of each facet as ids (a value no dataset has matches nothing)
        let selected: Vec<Vec<Option<u32>>> = FACETS
            .iter()
            .zip(&self.dictionaries)
            .map(|(facet, dict)| q.selected(facet).iter().map(|v| dict.ids.get(v).copied()).collect())
            .collect();
        let active: u32 = selected.iter().enumerate().filter(|(_, s)| !s.is_empty()).fold(0, |m, (i, _)| m | 1 << i);
        // per dataset: the facets whose selection it satisfies (bit i), age included in all
        let age_ok = |d: &SearchDoc| {
            if q.age_min.is_none() && q.age_max.is_none() {
                return true;
            }
            let Some((lo, hi)) = d.age_range else { return false };
            !(q.age_min.is_some_and(|m| hi < m) || q.age_max.is_some_and(|m| lo > m))
        };
        let mut candidates: Vec<(usize, u32, u32)> = Vec::new(); // (doc, score, facet bits satisfied)
        for (i, doc) in self.docs.iter().enumerate() {
            let Some(score) = scores[i] else { continue };
            if !age_ok(doc) {
                continue;
            }
            let mut bits = !active;
            for (f, sel) in selected.iter().enumerate() {
                if !sel.is_empty() && self.doc_facets[i][f].iter().any(|v| sel.contains(&Some(*v))) {
                    bits |= 1 << f;
                }
            }
            candidates.push((i, score, bits));
        }
        let all = u32::MAX;
        let mut hits: Vec<(usize, u32)> =
            candidates.iter().filter(|(_, _, bits)| *bits == all).map(|(i, s, _)| (*i, *s)).collect();
        let doc = |i: usize| &self.docs[i];
        match q.sort {
            Sort::Relevance => hits.sort_by(|a, b| b.1.cmp(&a.1).then(doc(b.0).subjects.cmp(&doc(a.0).subjects))),
            Sort::Size => {
                hits.sort_by(|a, b| doc(b.0).subjects.cmp(&doc(a.0).subjects).then(doc(a.0).title.cmp(&doc(b.0).title)))
            }
            Sort::Title => hits.sort_by(|a, b| doc(a.0).title.cmp(&doc(b.0).title)),
        }
        let mut facets = BTreeMap::new();
        for (f, facet) in FACETS.iter().enumerate() {
            let dict = &self.dictionaries[f];
            let mut counts = vec![0usize; dict.values.len()];
            // counted over the results of every other facet
            for (i, _, bits) in &candidates {
                if bits | 1 << f == all {
                    for v in &self.doc_facets[*i][f] {
                        counts[*v as usize] += 1;
                    }
                }
            }
            let chosen = q.selected(facet);
            let mut values: Vec<FacetCount> = dict
                .values
                .iter()
                .zip(&counts)
                .filter(|((value, _), count)| **count > 0 || chosen.contains(value))
                .map(|((value, label), count)| FacetCount {
                    selected: chosen.contains(value),
                    value: value.clone(),
                    label: label.clone(),
                    count: *count,
                })
                .collect();
            // a selected value no dataset has still shows, so it can be unticked
            for c in chosen {
                if !dict.ids.contains_key(c) {
                    values.push(FacetCount { value: c.clone(), label: c.clone(), count: 0, selected: true });
                }
            }
            if *facet == "size" {
                values.sort_by_key(|v| SIZE_CLASSES.iter().position(|(n, _, _)| *n == v.value));
            } else {
                values.sort_by(|a, b| b.count.cmp(&a.count).then(a.label.cmp(&b.label)));
            }
            facets.insert((*facet).to_owned(), values);
        }
        let page_size = q.page_size.max(1);
        let page = q.page.max(1);
        let results = hits
            .iter()
            .skip((page - 1).saturating_mul(page_size))
            .take(page_size)
            .map(|(i, _)| self.docs[*i].clone())
            .collect();
        SearchResults { total: hits.len(), page, page_size, results, facets }
    }
}
