//! The change feed: the log's dataset events as ActivityStreams activities in a Linked Data Event
//! Stream, the shape of SEMIC's DCAT-AP Feeds proposal. A harvester reads it page by page from
//! any log position and keeps the position it reached to poll for what comes next.
//!
//! Published → `as:Create`; updated, distribution added or removed, deprecated → `as:Update`;
//! withdrawn → `as:Delete`. Each activity names the dataset (`as:object`), the provider
//! (`as:actor`) and when the registry accepted it (`as:published`).

use std::io::Write;

use cireg_dcat::PublicBase;
use cireg_log::StoredEvent;
use cireg_model::{Event, EventType};
use cireg_projector::ns;
use oxigraph::{
    io::RdfFormat,
    model::{vocab::xsd, BlankNode, Literal, NamedNode, NamedNodeRef, TripleRef},
};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// One page of the feed.
pub struct FeedPage<'a> {
    /// The log events of the page, in order (events that are not about datasets are skipped).
    pub events: &'a [StoredEvent],
    /// The IRI of this page (the request URL).
    pub this: String,
    /// The page after this one, when the log holds more now.
    pub next: Option<String>,
}

fn n(ns: &str, local: &str) -> NamedNode {
    NamedNode::new_unchecked(format!("{ns}{local}"))
}

/// The IRI of the activity of the event at log sequence `seq`.
pub fn activity_iri(base: &PublicBase, seq: u64) -> String {
    format!("{}/feed/{seq}", base.as_str())
}

/// The activity type of a dataset event, `None` for events that are not about datasets.
fn activity(event_type: EventType) -> Option<&'static str> {
    Some(match event_type {
        EventType::DatasetPublished => "Create",
        EventType::DatasetUpdated
        | EventType::DistributionAdded
        | EventType::DistributionRemoved
        | EventType::DatasetDeprecated => "Update",
        EventType::DatasetWithdrawn => "Delete",
        _ => return None,
    })
}

/// Writes the event stream's description and one page of its members.
pub fn write_feed<W: Write>(
    base: &PublicBase,
    page: &FeedPage<'_>,
    format: RdfFormat,
    writer: W,
) -> std::io::Result<W> {
    let mut out = crate::catalog::serializer(format, writer)?;
    let rdf_type = NamedNodeRef::new_unchecked(ns::RDF_TYPE);
    let stream = NamedNode::new_unchecked(format!("{}/feed", base.as_str()));
    let this = NamedNode::new(&page.this).map_err(std::io::Error::other)?;
    out.serialize_triple(TripleRef::new(&stream, rdf_type, &n(ns::LDES, "EventStream")))?;
    out.serialize_triple(TripleRef::new(&stream, &n(ns::LDES, "timestampPath"), &n(ns::AS, "published")))?;
    out.serialize_triple(TripleRef::new(&stream, &n(ns::LDES, "versionOfPath"), &n(ns::AS, "object")))?;
    out.serialize_triple(TripleRef::new(&stream, &n(ns::TREE, "view"), &this))?;
    out.serialize_triple(TripleRef::new(&this, rdf_type, &n(ns::TREE, "Node")))?;
    if let Some(next) = &page.next {
        let next = NamedNode::new(next).map_err(std::io::Error::other)?;
        let relation = BlankNode::default();
        out.serialize_triple(TripleRef::new(&this, &n(ns::TREE, "relation"), &relation))?;
        out.serialize_triple(TripleRef::new(&relation, rdf_type, &n(ns::TREE, "Relation")))?;
        out.serialize_triple(TripleRef::new(&relation, &n(ns::TREE, "node"), &next))?;
        out.serialize_triple(TripleRef::new(&this, &n(ns::HYDRA, "next"), &next))?;
    }
    for e in page.events {
        write_activity(&mut out, base, &stream, e)?;
    }
    out.finish()
}

fn write_activity<W: Write>(
    out: &mut oxigraph::io::WriterQuadSerializer<W>,
    base: &PublicBase,
    stream: &NamedNode,
    e: &StoredEvent,
) -> std::io::Result<()> {
    let Ok(event) = Event::parse_stored(&e.payload) else { return Ok(()) };
    let Some(kind) = activity(event.event_type) else { return Ok(()) };
    let rdf_type = NamedNodeRef::new_unchecked(ns::RDF_TYPE);
    let a = NamedNode::new_unchecked(activity_iri(base, e.seq));
    let dataset = NamedNode::new_unchecked(base.dataset(event.provider.as_str(), &event.aggregate));
    let provider = NamedNode::new_unchecked(base.provider(event.provider.as_str()));
    out.serialize_triple(TripleRef::new(stream, &n(ns::TREE, "member"), &a))?;
    out.serialize_triple(TripleRef::new(&a, rdf_type, &n(ns::AS, kind)))?;
    out.serialize_triple(TripleRef::new(&a, &n(ns::AS, "object"), &dataset))?;
    out.serialize_triple(TripleRef::new(&a, &n(ns::AS, "actor"), &provider))?;
    let accepted = OffsetDateTime::from_unix_timestamp_nanos(e.appended_at_nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| event.time.clone());
    out.serialize_triple(TripleRef::new(
        &a,
        &n(ns::AS, "published"),
        &Literal::new_typed_literal(accepted, xsd::DATE_TIME),
    ))?;
    out.serialize_triple(TripleRef::new(&a, &n(ns::DCT, "identifier"), &Literal::new_simple_literal(&event.id)))?;
    out.serialize_triple(TripleRef::new(
        &a,
        &n(ns::AS, "summary"),
        &Literal::new_simple_literal(event.event_type.as_str()),
    ))?;
    Ok(())
}
