//! Where triples become a DCAT page: the catalogue node plus every live dataset's graph.

use std::io::Write;

use cireg_projector::{ns, PublicBase};
use oxigraph::{
    io::{RdfFormat, RdfSerializer},
    model::{GraphNameRef, Literal, NamedNode, NamedOrBlankNode, Triple},
    store::Store,
};

/// Who runs this registry: the catalogue's own title and publisher.
#[derive(Debug, Clone)]
pub struct CatalogInfo {
    pub title: String,
    pub description: String,
    pub publisher_name: String,
}

impl Default for CatalogInfo {
    fn default() -> Self {
        CatalogInfo {
            title: "cireg cancer imaging catalogue".to_owned(),
            description: "Imaging datasets of cancer patients announced by European data providers (DCAT-AP 3, HealthDCAT-AP, EUCAIM profile).".to_owned(),
            publisher_name: "cireg registry operator".to_owned(),
        }
    }
}

fn n(ns: &str, local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{ns}{local}"))
}

/// A serializer for `format` that writes the registry's usual prefixes.
fn serializer<W: Write>(format: RdfFormat, writer: W) -> std::io::Result<oxigraph::io::WriterQuadSerializer<W>> {
    let mut s = RdfSerializer::from_format(format);
    for (prefix, iri) in [
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
    ] {
        s = s.with_prefix(prefix, iri).map_err(std::io::Error::other)?;
    }
    Ok(s.for_writer(writer))
}

/// The IRIs of the live datasets' graphs, sorted.
pub(crate) fn dataset_graphs(store: &Store, base: &PublicBase) -> std::io::Result<Vec<NamedNode>> {
    let prefix = format!("{}/datasets/", base.as_str());
    let mut graphs = Vec::new();
    for g in store.named_graphs() {
        if let NamedOrBlankNode::NamedNode(g) = g.map_err(std::io::Error::other)? {
            if g.as_str().starts_with(&prefix) {
                graphs.push(g);
            }
        }
    }
    graphs.sort();
    Ok(graphs)
}

/// Writes the catalogue in `format`: the `dcat:Catalog` and every live dataset with its
/// distributions, contact points and publisher.
pub fn write_catalog<W: Write>(
    store: &Store,
    base: &PublicBase,
    info: &CatalogInfo,
    format: RdfFormat,
    writer: W,
) -> std::io::Result<W> {
    let mut out = serializer(format, writer)?;
    let catalog = NamedNode::new_unchecked(base.catalog());
    let publisher = NamedNode::new_unchecked(format!("{}#publisher", base.catalog()));
    let t = |s: &NamedNode, p: NamedNode, o: oxigraph::model::Term| Triple::new(s.clone(), p, o);
    out.serialize_triple(&t(&catalog, NamedNode::new_unchecked(ns::RDF_TYPE), n(ns::DCAT, "Catalog").into()))?;
    out.serialize_triple(&t(
        &catalog,
        n(ns::DCT, "title"),
        Literal::new_language_tagged_literal_unchecked(&info.title, "en").into(),
    ))?;
    out.serialize_triple(&t(
        &catalog,
        n(ns::DCT, "description"),
        Literal::new_language_tagged_literal_unchecked(&info.description, "en").into(),
    ))?;
    out.serialize_triple(&t(&catalog, n(ns::DCT, "publisher"), publisher.clone().into()))?;
    out.serialize_triple(&t(&publisher, NamedNode::new_unchecked(ns::RDF_TYPE), n(ns::FOAF, "Agent").into()))?;
    out.serialize_triple(&t(
        &publisher,
        n(ns::FOAF, "name"),
        Literal::new_simple_literal(&info.publisher_name).into(),
    ))?;
    let graphs = dataset_graphs(store, base)?;
    for g in &graphs {
        out.serialize_triple(&t(&catalog, n(ns::DCAT, "dataset"), g.clone().into()))?;
    }
    for g in &graphs {
        for quad in store.quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(g.as_ref()))) {
            let quad = quad.map_err(std::io::Error::other)?;
            out.serialize_triple(&Triple::new(quad.subject, quad.predicate, quad.object))?;
        }
    }
    out.finish()
}

/// Writes what the registry says about one resource it minted: `subject`'s triples in `graph`,
/// with the nodes it owns (IRIs under `subject#…`) for a dataset or provider, or just the
/// subject's own triples for a distribution. `Ok(None)` when the graph holds nothing about it.
pub fn write_resource<W: Write>(
    store: &Store,
    graph: &NamedNode,
    subject: &NamedNode,
    format: RdfFormat,
    writer: W,
) -> std::io::Result<Option<W>> {
    let own = |iri: &str| iri == subject.as_str() || iri.starts_with(&format!("{}#", subject.as_str()));
    let mut triples = Vec::new();
    let whole_graph = graph == subject;
    for quad in store.quads_for_pattern(None, None, None, Some(GraphNameRef::NamedNode(graph.as_ref()))) {
        let quad = quad.map_err(std::io::Error::other)?;
        let keep = match &quad.subject {
            NamedOrBlankNode::NamedNode(s) => {
                if whole_graph {
                    true
                } else {
                    own(s.as_str())
                }
            }
            NamedOrBlankNode::BlankNode(_) => whole_graph,
        };
        if keep {
            triples.push(Triple::new(quad.subject, quad.predicate, quad.object));
        }
    }
    if triples.is_empty() {
        return Ok(None);
    }
    let mut out = serializer(format, writer)?;
    for t in &triples {
        out.serialize_triple(t)?;
    }
    out.finish().map(Some)
}
