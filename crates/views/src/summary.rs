//! Aggregate figures over the catalogue.

use cireg_projector::{ns, PublicBase};

use crate::CatalogIndex;
use oxigraph::{
    model::{GraphNameRef, NamedNode, NamedOrBlankNode, Term},
    store::Store,
};

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub datasets: u64,
    pub providers: u64,
    pub subjects: u64,
    pub studies: u64,
    pub series: u64,
    pub synthetic_datasets: u64,
}

fn number(store: &Store, s: &NamedNode, p: &str, g: &NamedNode) -> u64 {
    let p = NamedNode::new_unchecked(p);
    store
        .quads_for_pattern(Some(s.as_ref().into()), Some(p.as_ref()), None, Some(GraphNameRef::NamedNode(g.as_ref())))
        .filter_map(Result::ok)
        .find_map(|q| match q.object {
            Term::Literal(l) => l.value().parse().ok(),
            _ => None,
        })
        .unwrap_or(0)
}

/// Counts over the live datasets of `index`.
pub fn summary(store: &Store, base: &PublicBase, index: &CatalogIndex) -> std::io::Result<Summary> {
    let mut s = Summary::default();
    for g in index.entries.iter().map(|e| &e.dataset) {
        s.datasets += 1;
        s.subjects += number(store, g, &format!("{}numberOfUniqueIndividuals", ns::HEALTHDCATAP), g);
        s.studies += number(store, g, &format!("{}numberOfRecords", ns::HEALTHDCATAP), g);
        s.series += number(store, g, &format!("{}numberOfSeries", ns::CIREG), g);
        let synthetic = NamedNode::new_unchecked(format!("{}synthetic", ns::CIREG));
        if store
            .quads_for_pattern(
                Some(g.as_ref().into()),
                Some(synthetic.as_ref()),
                None,
                Some(GraphNameRef::NamedNode(g.as_ref())),
            )
            .next()
            .is_some()
        {
            s.synthetic_datasets += 1;
        }
    }
    let prefix = format!("{}/providers/", base.as_str());
    s.providers = store
        .named_graphs()
        .filter_map(Result::ok)
        .filter(|g| matches!(g, NamedOrBlankNode::NamedNode(n) if n.as_str().starts_with(&prefix)))
        .count() as u64;
    Ok(s)
}
