//! Faceted search over the live datasets, from the projected dataset documents (which keep every
//! code with its display text). The index lives in memory and is rebuilt when the projection
//! moves on; a query filters, scores and counts facets in one pass over it.
//!
//! Facets are disjunctive: values of one facet are OR-ed, facets are AND-ed, and each facet's
//! counts are taken over the results of every *other* facet, so choosing a value never hides the
//! other values of the same facet.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use cireg_dcat::PublicBase;
use cireg_model::{Coding, DatasetStatus, LangMap};
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

fn english(texts: &LangMap) -> String {
    texts.get("en").or_else(|| texts.values().next()).cloned().unwrap_or_default()
}

/// One dataset as search sees it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchDoc {
    /// The dataset's IRI.
    pub iri: String,
    pub provider: String,
    pub provider_name: String,
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
}

/// Lowercase alphanumeric words.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

impl SearchDoc {
    fn new(base: &PublicBase, p: ProjectedDataset) -> Self {
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

    /// The score of `terms` (every term must prefix some word of the dataset), or `None`.
    fn score(&self, terms: &[String]) -> Option<u32> {
        let mut total = 0;
        for term in terms {
            let best = self.tokens.iter().filter(|(w, _)| w.starts_with(term.as_str())).map(|(_, s)| *s).max()?;
            total += best;
        }
        Some(total)
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
pub const FACETS: [&str; 8] = ["cancer", "modality", "bodyPart", "country", "provider", "access", "sex", "size"];

impl SearchQuery {
    fn selected(&self, facet: &str) -> &[String] {
        match facet {
            "cancer" => &self.cancer,
            "modality" => &self.modality,
            "bodyPart" => &self.body_part,
            "country" => &self.country,
            "provider" => &self.provider,
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

/// The live datasets, as of one projection checkpoint.
#[derive(Debug, Default)]
pub struct SearchIndex {
    pub checkpoint: u64,
    pub docs: Vec<SearchDoc>,
}

impl SearchIndex {
    pub fn build(store: &Store, base: &PublicBase, checkpoint: u64) -> std::io::Result<Self> {
        let datasets = projected_datasets(store).map_err(std::io::Error::other)?;
        let mut docs: Vec<SearchDoc> = datasets.into_iter().map(|d| SearchDoc::new(base, d)).collect();
        docs.sort_by(|a, b| a.iri.cmp(&b.iri));
        Ok(SearchIndex { checkpoint, docs })
    }

    pub fn get(&self, provider: &str, id: &str) -> Option<&SearchDoc> {
        self.docs.iter().find(|d| d.provider == provider && d.id == id)
    }

    fn passes(&self, doc: &SearchDoc, q: &SearchQuery, except: Option<&str>) -> bool {
        for facet in FACETS {
            if Some(facet) == except {
                continue;
            }
            let selected = q.selected(facet);
            if !selected.is_empty() && !facet_values(doc, facet).iter().any(|(v, _)| selected.iter().any(|s| s == v)) {
                return false;
            }
        }
        if q.age_min.is_some() || q.age_max.is_some() {
            let Some((lo, hi)) = doc.age_range else { return false };
            if q.age_min.is_some_and(|m| hi < m) || q.age_max.is_some_and(|m| lo > m) {
                return false;
            }
        }
        true
    }

    pub fn search(&self, q: &SearchQuery) -> SearchResults {
        let terms: Vec<String> = words(&q.text).collect();
        // text first: it decides the universe every facet counts in
        let matching: Vec<(&SearchDoc, u32)> = self
            .docs
            .iter()
            .filter_map(|d| if terms.is_empty() { Some((d, 0)) } else { d.score(&terms).map(|s| (d, s)) })
            .collect();
        let mut hits: Vec<(&SearchDoc, u32)> =
            matching.iter().filter(|(d, _)| self.passes(d, q, None)).copied().collect();
        match q.sort {
            Sort::Relevance => hits.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.subjects.cmp(&a.0.subjects))),
            Sort::Size => hits.sort_by(|a, b| b.0.subjects.cmp(&a.0.subjects).then(a.0.title.cmp(&b.0.title))),
            Sort::Title => hits.sort_by(|a, b| a.0.title.cmp(&b.0.title)),
        }
        let mut facets = BTreeMap::new();
        for facet in FACETS {
            let selected = q.selected(facet);
            let mut counts: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
            for (d, _) in matching.iter().filter(|(d, _)| self.passes(d, q, Some(facet))) {
                for (value, label) in facet_values(d, facet) {
                    counts.entry(value).or_insert((label, 0)).1 += 1;
                }
            }
            // a selected value stays listed even when nothing else would give it
            for s in selected {
                counts.entry(s.as_str()).or_insert((s.as_str(), 0));
            }
            let mut values: Vec<FacetCount> = counts
                .into_iter()
                .map(|(value, (label, count))| FacetCount {
                    selected: selected.iter().any(|s| s == value),
                    value: value.to_owned(),
                    label: label.to_owned(),
                    count,
                })
                .collect();
            if facet == "size" {
                values.sort_by_key(|v| SIZE_CLASSES.iter().position(|(n, _, _)| *n == v.value));
            } else {
                values.sort_by(|a, b| b.count.cmp(&a.count).then(a.label.cmp(&b.label)));
            }
            facets.insert(facet.to_owned(), values);
        }
        let page_size = q.page_size.max(1);
        let page = q.page.max(1);
        let results =
            hits.iter().skip((page - 1).saturating_mul(page_size)).take(page_size).map(|(d, _)| (*d).clone()).collect();
        SearchResults { total: hits.len(), page, page_size, results, facets }
    }
}

/// The search index, rebuilt when the projection has moved past the checkpoint it was built at.
#[derive(Default)]
pub struct SearchCache {
    index: Mutex<Option<Arc<SearchIndex>>>,
}

impl SearchCache {
    pub fn index(&self, store: &Store, base: &PublicBase, checkpoint: u64) -> std::io::Result<Arc<SearchIndex>> {
        if let Ok(guard) = self.index.lock() {
            if let Some(index) = guard.as_ref().filter(|i| i.checkpoint == checkpoint) {
                return Ok(index.clone());
            }
        }
        let index = Arc::new(SearchIndex::build(store, base, checkpoint)?);
        if let Ok(mut guard) = self.index.lock() {
            *guard = Some(index.clone());
        }
        Ok(index)
    }
}
