//! Where triples become a DCAT page: the catalogue node, then each selected dataset's graph, written
//! one graph at a time so that the whole catalogue never sits in memory.
//!
//! Paging uses an index of the live datasets (IRI, issued, modified) kept in memory and rebuilt
//! when the projection moves on: page N is a slice of it, so deep pages cost what the first does.

use std::{collections::HashMap, io::Write, sync::Arc};

use cireg_dcat::{catalog_graph, CatalogExtent, CatalogInfo, PublicBase};
use cireg_projector::ns;
use oxigraph::{
    io::{RdfFormat, RdfSerializer},
    model::{vocab::xsd, GraphNameRef, Literal, NamedNode, NamedNodeRef, NamedOrBlankNode, Term, Triple, TripleRef},
    store::Store,
};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

fn n(ns: &str, local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{ns}{local}"))
}

/// Prefixes every serialisation of the registry writes.
const PREFIXES: [(&str, &str); 17] = [
    ("dcat", ns::DCAT),
    ("dct", ns::DCT),
    ("foaf", ns::FOAF),
    ("vcard", ns::VCARD),
    ("dcatap", ns::DCATAP),
    ("cv", ns::CV),
    ("healthdcatap", ns::HEALTHDCATAP),
    ("eucaim", ns::EUCAIM),
    ("adms", ns::ADMS),
    ("rdfs", ns::RDFS),
    ("skos", ns::SKOS),
    ("dpv", ns::DPV),
    ("dqv", ns::DQV),
    ("geodcatap", ns::GEODCATAP),
    ("hydra", ns::HYDRA),
    ("as", ns::AS),
    ("ldes", ns::LDES),
];

/// A serializer for `format` that writes the registry's usual prefixes.
pub(crate) fn serializer<W: Write>(
    format: RdfFormat,
    writer: W,
) -> std::io::Result<oxigraph::io::WriterQuadSerializer<W>> {
    let mut s = RdfSerializer::from_format(format);
    for (prefix, iri) in PREFIXES.iter().chain(&[("tree", ns::TREE), ("xsd", ns::XSD)]) {
        s = s.with_prefix(*prefix, *iri).map_err(std::io::Error::other)?;
    }
    Ok(s.for_writer(writer))
}

/// The properties whose values the profiles type `xsd:nonNegativeInteger`. Oxigraph stores derived
/// integer types as `xsd:integer`, so the catalogue restores the declared type on the way out.
const NON_NEGATIVE: [(&str, &str); 7] = [
    (ns::HEALTHDCATAP, "numberOfRecords"),
    (ns::HEALTHDCATAP, "numberOfUniqueIndividuals"),
    (ns::HEALTHDCATAP, "minTypicalAge"),
    (ns::HEALTHDCATAP, "maxTypicalAge"),
    (ns::DCAT, "byteSize"),
    (ns::CIREG, "numberOfSeries"),
    (ns::EUCAIM, "nbrOfSegmentations"),
];

/// `t` as the catalogue publishes it: counts typed as the profiles declare them.
pub(crate) fn public_triple(t: Triple) -> Triple {
    if let Term::Literal(l) = &t.object {
        if l.datatype() == xsd::INTEGER
            && NON_NEGATIVE.iter().any(|(ns, local)| t.predicate.as_str().strip_prefix(ns) == Some(local))
            && !l.value().starts_with('-')
        {
            let object = Literal::new_typed_literal(l.value(), xsd::NON_NEGATIVE_INTEGER);
            return Triple::new(t.subject, t.predicate, object);
        }
    }
    t
}

/// One live dataset in the catalogue index.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    /// The dataset's IRI, which is also its graph's name.
    pub dataset: NamedNode,
    pub record: NamedNode,
    /// When the registry listed the dataset and last changed its record (log time).
    pub issued: String,
    pub modified: String,
    modified_at: Option<OffsetDateTime>,
    /// The dataset's graph as the catalogue publishes it, when the read models keep it in memory
    /// (`None`: read from the store). Decoding a quad costs a store lookup per long term, which
    /// made a page of 40 rich datasets take 60 ms at 1 M studies.
    pub graph: Option<Arc<[Triple]>>,
    /// On the central node: the national node the dataset came from (its JetStream domain), the
    /// publisher of its record.
    pub node: Option<String>,
}

/// The national node an agent IRI names (see [`PublicBase::node`]).
fn node_of_agent(base: &PublicBase, agent: &NamedNode) -> Option<String> {
    let prefix = base.node("");
    agent.as_str().strip_prefix(&prefix).filter(|d| !d.is_empty() && !d.contains('/')).map(str::to_owned)
}

/// The IRI of a dataset's catalogue record.
fn record_of(base: &PublicBase, dataset: &NamedNode) -> String {
    let datasets = format!("{}/datasets/", base.as_str());
    let records = format!("{}/records/", base.as_str());
    dataset.as_str().replacen(&datasets, &records, 1)
}

/// The live datasets, sorted by IRI.
#[derive(Debug, Default)]
pub struct CatalogIndex {
    pub entries: Vec<IndexEntry>,
    /// The countries the datasets cover (ISO 3166-1 alpha-3), sorted.
    pub countries: Vec<String>,
    /// The national nodes the datasets came from (on the central node), sorted.
    pub nodes: Vec<String>,
}

/// A national node as the central node last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Its JetStream domain.
    pub node: String,
    /// Whether its log could be reached at the last look.
    pub reachable: bool,
    /// When its log was last seen (RFC 3339); `None`: not since the central node started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_confirmed: Option<String>,
    /// Catalogue events its log holds that the central log has not copied yet.
    pub lag: u64,
}

/// The distinct nodes of `entries`, sorted.
fn nodes_of(entries: &[IndexEntry]) -> Vec<String> {
    let nodes: std::collections::BTreeSet<&String> = entries.iter().filter_map(|e| e.node.as_ref()).collect();
    nodes.into_iter().cloned().collect()
}

/// Parses an ISO 8601 / RFC 3339 date-time, or a date (taken as midnight UTC).
pub fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let date = time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc())
}

impl CatalogIndex {
    /// Reads the live datasets' dates from the store.
    pub fn build(store: &Store, base: &PublicBase) -> std::io::Result<Self> {
        let prefix = format!("{}/datasets/", base.as_str());
        let mut dates: HashMap<NamedNode, (Option<String>, Option<String>)> = HashMap::new();
        for (local, issued) in [("issued", true), ("modified", false)] {
            let p = n(ns::DCT, local);
            for quad in store.quads_for_pattern(None, Some(p.as_ref()), None, None) {
                let quad = quad.map_err(std::io::Error::other)?;
                let (NamedOrBlankNode::NamedNode(s), oxigraph::model::GraphName::NamedNode(g), Term::Literal(l)) =
                    (&quad.subject, &quad.graph_name, &quad.object)
                else {
                    continue;
                };
                // the catalogue record's dates: when the log accepted the dataset's events
                if !g.as_str().starts_with(&prefix) || s.as_str() != record_of(base, g) {
                    continue;
                }
                let entry = dates.entry(g.clone()).or_default();
                if issued {
                    entry.0 = Some(l.value().to_owned());
                } else {
                    entry.1 = Some(l.value().to_owned());
                }
            }
        }
        let mut entries: Vec<IndexEntry> = dates
            .into_iter()
            .map(|(dataset, (issued, modified))| {
                let issued = issued.unwrap_or_default();
                let modified = modified.unwrap_or_else(|| issued.clone());
                let record = NamedNode::new_unchecked(record_of(base, &dataset));
                IndexEntry {
                    modified_at: parse_instant(&modified),
                    dataset,
                    record,
                    issued,
                    modified,
                    graph: None,
                    node: None,
                }
            })
            .collect();
        entries.sort_by(|a, b| a.dataset.cmp(&b.dataset));
        // the node that published each record (on the central node)
        let publisher = n(ns::DCT, "publisher");
        for quad in store.quads_for_pattern(None, Some(publisher.as_ref()), None, None) {
            let quad = quad.map_err(std::io::Error::other)?;
            let (NamedOrBlankNode::NamedNode(s), oxigraph::model::GraphName::NamedNode(g), Term::NamedNode(o)) =
                (&quad.subject, &quad.graph_name, &quad.object)
            else {
                continue;
            };
            if s.as_str() != record_of(base, g) {
                continue;
            }
            if let Ok(i) = entries.binary_search_by(|e| e.dataset.cmp(g)) {
                entries[i].node = node_of_agent(base, o);
            }
        }
        let nodes = nodes_of(&entries);
        // the countries of the datasets: `dct:spatial` of a dataset, in its own graph
        let spatial = n(ns::DCT, "spatial");
        let country_prefix = cireg_model::vocab::country_iri("");
        let mut countries = std::collections::BTreeSet::new();
        for quad in store.quads_for_pattern(None, Some(spatial.as_ref()), None, None) {
            let quad = quad.map_err(std::io::Error::other)?;
            let (NamedOrBlankNode::NamedNode(s), oxigraph::model::GraphName::NamedNode(g), Term::NamedNode(o)) =
                (&quad.subject, &quad.graph_name, &quad.object)
            else {
                continue;
            };
            if s == g && g.as_str().starts_with(&prefix) {
                if let Some(code) = o.as_str().strip_prefix(&country_prefix) {
                    countries.insert(code.to_owned());
                }
            }
        }
        Ok(CatalogIndex { entries, countries: countries.into_iter().collect(), nodes })
    }

    /// The entry of the dataset of IRI `dataset` and the countries it covers, as `store` holds
    /// them now (`None`: no live dataset there). What [`CatalogIndex::build`] reads of one
    /// dataset, for keeping an index up to date one dataset at a time.
    pub fn entry_of(
        store: &Store,
        base: &PublicBase,
        dataset: &NamedNode,
    ) -> std::io::Result<Option<(IndexEntry, Vec<String>)>> {
        let graph = oxigraph::model::GraphNameRef::NamedNode(dataset.as_ref());
        let record = NamedNode::new_unchecked(record_of(base, dataset));
        // what the record says of `dct:<local>`, in the dataset's graph
        let of_record = |local: &str| -> std::io::Result<Option<Term>> {
            let p = n(ns::DCT, local);
            let mut found = store.quads_for_pattern(Some(record.as_ref().into()), Some(p.as_ref()), None, Some(graph));
            Ok(found.next().transpose().map_err(std::io::Error::other)?.map(|q| q.object))
        };
        let date = |local: &str| -> std::io::Result<Option<String>> {
            Ok(match of_record(local)? {
                Some(Term::Literal(l)) => Some(l.value().to_owned()),
                _ => None,
            })
        };
        let (issued, modified) = (date("issued")?, date("modified")?);
        if issued.is_none() && modified.is_none() {
            return Ok(None);
        }
        let issued = issued.unwrap_or_default();
        let modified = modified.unwrap_or_else(|| issued.clone());
        let node = match of_record("publisher")? {
            Some(Term::NamedNode(o)) => node_of_agent(base, &o),
            _ => None,
        };
        let entry = IndexEntry {
            modified_at: parse_instant(&modified),
            dataset: dataset.clone(),
            record,
            issued,
            modified,
            graph: None,
            node,
        };
        let spatial = n(ns::DCT, "spatial");
        let country_prefix = cireg_model::vocab::country_iri("");
        let mut countries = Vec::new();
        for quad in store.quads_for_pattern(Some(dataset.as_ref().into()), Some(spatial.as_ref()), None, Some(graph)) {
            if let Term::NamedNode(o) = quad.map_err(std::io::Error::other)?.object {
                countries.extend(o.as_str().strip_prefix(&country_prefix).map(str::to_owned));
            }
        }
        Ok(Some((entry, countries)))
    }

    /// The index of `entries` (dataset IRI → entry and countries).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a (IndexEntry, Vec<String>)>) -> Self {
        let mut countries = std::collections::BTreeSet::new();
        let mut list = Vec::new();
        for (entry, c) in entries {
            list.push(entry.clone());
            countries.extend(c.iter().cloned());
        }
        list.sort_by(|a, b| a.dataset.cmp(&b.dataset));
        let nodes = nodes_of(&list);
        CatalogIndex { entries: list, countries: countries.into_iter().collect(), nodes }
    }

    /// The entries modified at or after `since` (all when `None`).
    pub fn select(&self, since: Option<OffsetDateTime>) -> Vec<&IndexEntry> {
        match since {
            None => self.entries.iter().collect(),
            Some(since) => self.entries.iter().filter(|e| e.modified_at.is_some_and(|m| m >= since)).collect(),
        }
    }
}

/// Where one page sits in the whole: what the `hydra:PagedCollection` triples say.
#[derive(Debug, Clone)]
pub struct PageLinks {
    /// The IRI of this page (the request URL).
    pub this: String,
    pub first: String,
    pub last: String,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub total_items: u64,
    pub items_per_page: u64,
}

/// What one catalogue document holds: datasets of an index, and where the page sits.
pub struct CatalogPage<'a> {
    /// The whole index (the catalogue's own dates come from it).
    pub index: &'a CatalogIndex,
    /// The datasets to write.
    pub datasets: &'a [&'a IndexEntry],
    /// Hydra paging triples, for a page of a paged catalogue.
    pub paging: Option<&'a PageLinks>,
    /// On the central node: the national nodes as last seen (an unreachable one's sub-catalogue
    /// says when it was last confirmed).
    pub nodes: &'a [NodeStatus],
}

/// Writes the catalogue in `format`: the `dcat:Catalog` with its publisher and service, a
/// `dcat:dataset` and `dcat:record` link per selected dataset, and each of those datasets' graphs
/// (distributions, contact points, agents, record).
pub fn write_catalog<W: Write>(
    store: &Store,
    base: &PublicBase,
    info: &CatalogInfo,
    page: &CatalogPage<'_>,
    format: RdfFormat,
    writer: W,
) -> std::io::Result<W> {
    let CatalogPage { index, datasets, paging, nodes: statuses } = *page;
    let nodes: Vec<(String, Option<String>)> = index
        .nodes
        .iter()
        .map(|node| {
            let status = statuses.iter().find(|s| &s.node == node);
            (node.clone(), status.filter(|s| !s.reachable).and_then(|s| s.last_confirmed.clone()))
        })
        .collect();
    let mut out = serializer(format, writer)?;
    let issued = index.entries.iter().map(|e| e.issued.as_str()).filter(|s| !s.is_empty()).min();
    let modified = index.entries.iter().map(|e| e.modified.as_str()).max();
    let catalog =
        catalog_graph(base, info, CatalogExtent { issued, modified, countries: &index.countries, nodes: &nodes });
    for quad in catalog.quads {
        out.serialize_triple(&Triple::from(quad))?;
    }
    let c = NamedNode::new_unchecked(base.catalog());
    if let Some(p) = paging {
        write_paging(&mut out, p)?;
    }
    for e in datasets {
        out.serialize_triple(TripleRef::new(&c, &n(ns::DCAT, "dataset"), &e.dataset))?;
        out.serialize_triple(TripleRef::new(&c, &n(ns::DCAT, "record"), &e.record))?;
        if let Some(node) = &e.node {
            // and in its node's sub-catalogue
            let sub = NamedNode::new_unchecked(base.node_catalog(node));
            out.serialize_triple(TripleRef::new(&sub, &n(ns::DCAT, "dataset"), &e.dataset))?;
            out.serialize_triple(TripleRef::new(&sub, &n(ns::DCAT, "record"), &e.record))?;
        }
    }
    for e in datasets {
        if let Some(graph) = &e.graph {
            for t in graph.iter() {
                out.serialize_triple(t)?;
            }
            continue;
        }
        for t in graph_triples(store, &e.dataset) {
            out.serialize_triple(&t?)?;
        }
    }
    out.finish()
}

/// The triples of the dataset graph `dataset` as the catalogue publishes them.
pub fn graph_triples<'a>(
    store: &'a Store,
    dataset: &'a NamedNode,
) -> impl Iterator<Item = std::io::Result<Triple>> + 'a {
    store.quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(dataset.as_ref()))).map(|quad| {
        let quad = quad.map_err(std::io::Error::other)?;
        Ok(public_triple(Triple::new(quad.subject, quad.predicate, quad.object)))
    })
}

fn write_paging<W: Write>(out: &mut oxigraph::io::WriterQuadSerializer<W>, p: &PageLinks) -> std::io::Result<()> {
    let page = NamedNode::new(&p.this).map_err(std::io::Error::other)?;
    let link = |s: &str| NamedNode::new(s).map_err(std::io::Error::other);
    let rdf_type = NamedNodeRef::new_unchecked(ns::RDF_TYPE);
    // ckanext-dcat looks for a hydra:PagedCollection, newer clients for a PartialCollectionView
    out.serialize_triple(TripleRef::new(&page, rdf_type, &n(ns::HYDRA, "PagedCollection")))?;
    out.serialize_triple(TripleRef::new(&page, rdf_type, &n(ns::HYDRA, "PartialCollectionView")))?;
    let count = |v: u64| Literal::new_typed_literal(v.to_string(), xsd::NON_NEGATIVE_INTEGER);
    out.serialize_triple(TripleRef::new(&page, &n(ns::HYDRA, "totalItems"), &count(p.total_items)))?;
    out.serialize_triple(TripleRef::new(&page, &n(ns::HYDRA, "itemsPerPage"), &count(p.items_per_page)))?;
    // both the current Hydra terms and the older *Page ones that piveau follows
    let mut links = vec![("first", "firstPage", Some(&p.first)), ("last", "lastPage", Some(&p.last))];
    links.push(("next", "nextPage", p.next.as_ref()));
    links.push(("previous", "previousPage", p.previous.as_ref()));
    for (term, old, target) in links {
        if let Some(target) = target {
            let target = link(target)?;
            out.serialize_triple(TripleRef::new(&page, &n(ns::HYDRA, term), &target))?;
            out.serialize_triple(TripleRef::new(&page, &n(ns::HYDRA, old), &target))?;
        }
    }
    Ok(())
}

/// Writes what the registry says about one resource it minted: `subject`'s triples in `graph`,
/// with the nodes it owns (IRIs under `subject#…`) for a dataset or provider, or just the
/// subject's own triples for a distribution or record. `Ok(None)` when the graph holds nothing
/// about it.
pub fn write_resource<W: Write>(
    store: &Store,
    graph: &NamedNode,
    subject: &NamedNode,
    format: RdfFormat,
    writer: W,
) -> std::io::Result<Option<W>> {
    let triples = resource_triples(store, graph, subject)?;
    if triples.is_empty() {
        return Ok(None);
    }
    let mut out = serializer(format, writer)?;
    for t in &triples {
        out.serialize_triple(t)?;
    }
    out.finish().map(Some)
}

/// The triples [`write_resource`] writes.
pub fn resource_triples(store: &Store, graph: &NamedNode, subject: &NamedNode) -> std::io::Result<Vec<Triple>> {
    let own = |iri: &str| iri == subject.as_str() || iri.starts_with(&format!("{}#", subject.as_str()));
    let whole_graph = graph == subject;
    graph_triples(store, graph)
        .filter(|t| match t {
            Ok(t) => match &t.subject {
                NamedOrBlankNode::NamedNode(s) => whole_graph || own(s.as_str()),
                NamedOrBlankNode::BlankNode(_) => whole_graph,
            },
            Err(_) => true,
        })
        .collect()
}

/// A public graph that says something about `subject` (a node several dataset graphs share, such
/// as a manufacturer), if any.
pub fn graph_about(store: &Store, subject: &NamedNode) -> std::io::Result<Option<NamedNode>> {
    for quad in store.quads_for_pattern(Some(subject.as_ref().into()), None, None, None) {
        let quad = quad.map_err(std::io::Error::other)?;
        // the bookkeeping is in the default graph: any named graph here is a projected one
        if let oxigraph::model::GraphName::NamedNode(g) = quad.graph_name {
            return Ok(Some(g));
        }
    }
    Ok(None)
}
