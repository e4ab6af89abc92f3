//! The namespaces the projection writes: the mapping's (`cireg_dcat::ns`) and its own bookkeeping.

pub use cireg_dcat::ns::*;

/// The graph that holds the projector's own bookkeeping (checkpoint, aggregate states). It is not
/// part of the catalogue and the SPARQL endpoint does not expose it.
pub const PROJECTION_GRAPH: &str = "urn:cireg:projection";

/// The predicate of the projector's checkpoint (last applied log sequence) in [`PROJECTION_GRAPH`].
pub const CHECKPOINT: &str = "urn:cireg:vocab#lastAppliedSequence";
