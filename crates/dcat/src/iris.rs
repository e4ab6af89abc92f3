//! The IRIs the registry mints. They come only from the configured public base URL, so they are
//! the same on every node and after every rebuild, whatever Host header a request had.

use oxigraph::model::NamedNode;

/// The public base URL, without a trailing slash, e.g. `https://registry.example.eu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBase(String);

#[derive(Debug, thiserror::Error)]
#[error("public base URL {0:?} is not an absolute http(s) IRI")]
pub struct BaseError(String);

impl PublicBase {
    pub fn new(base: &str) -> Result<Self, BaseError> {
        let trimmed = base.trim_end_matches('/');
        let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
            && NamedNode::new(format!("{trimmed}/")).is_ok()
            && !trimmed.contains(['?', '#']);
        if ok {
            Ok(PublicBase(trimmed.to_owned()))
        } else {
            Err(BaseError(base.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn catalog(&self) -> String {
        format!("{}/catalog", self.0)
    }

    pub fn dataset(&self, provider: &str, dataset: &str) -> String {
        format!("{}/datasets/{provider}/{dataset}", self.0)
    }

    /// The provider of a dataset IRI minted here (the inverse of [`PublicBase::dataset`]).
    pub fn dataset_provider<'a>(&self, iri: &'a str) -> Option<&'a str> {
        let rest = iri.strip_prefix(self.0.as_str())?.strip_prefix("/datasets/")?;
        rest.split_once('/').map(|(provider, _)| provider)
    }

    pub fn distribution(&self, provider: &str, dataset: &str, distribution: &str) -> String {
        self.part(provider, dataset, "distribution", distribution)
    }

    /// A distribution-like part of a dataset: `kind` is `distribution`, `sample` or `analytics`.
    pub fn part(&self, provider: &str, dataset: &str, kind: &str, id: &str) -> String {
        let folder = match kind {
            "sample" => "samples",
            "analytics" => "analytics",
            _ => "distributions",
        };
        format!("{}/{folder}/{id}", self.dataset(provider, dataset))
    }

    /// The `dcat:CatalogRecord` that describes a dataset's entry in this catalogue.
    pub fn record(&self, provider: &str, dataset: &str) -> String {
        format!("{}/records/{provider}/{dataset}", self.0)
    }

    /// An imaging study (pseudonymised subject data: in a graph the public SPARQL endpoint never
    /// shows); `id` is `cireg_model::Study::resource_id`.
    pub fn study(&self, id: &str) -> String {
        format!("{}/studies/{id}", self.0)
    }

    pub fn provider(&self, provider: &str) -> String {
        format!("{}/providers/{provider}", self.0)
    }

    /// A national node of the federation, as the central node names it (an agent: the publisher
    /// of its records); `domain` is its JetStream domain.
    pub fn node(&self, domain: &str) -> String {
        format!("{}/nodes/{domain}", self.0)
    }

    /// The central catalogue's sub-catalogue of one national node's datasets: described in the
    /// catalogue document, so a fragment of it (it dereferences to that document).
    pub fn node_catalog(&self, domain: &str) -> String {
        format!("{}#node-{domain}", self.catalog())
    }

    /// Whether `iri` was minted here for a dataset (or something of it) or a provider: the
    /// public catalogue's graphs are named so.
    pub fn is_catalogue_iri(&self, iri: &str) -> bool {
        let rest = iri.strip_prefix(self.0.as_str()).unwrap_or_default();
        rest.starts_with("/datasets/") || rest.starts_with("/providers/")
    }

    /// Whether `iri` was minted here for a study (pseudonymised subject data).
    pub fn is_study_iri(&self, iri: &str) -> bool {
        iri.strip_prefix(self.0.as_str()).unwrap_or_default().starts_with("/studies/")
    }

    pub fn manufacturer(&self, name: &str) -> String {
        format!("{}/manufacturers/{}", self.0, slug(name))
    }
}

/// Lowercase ASCII letters and digits joined by '-': a stable path segment for a name.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push('x');
    }
    out
}
