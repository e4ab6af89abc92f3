//! The namespaces the projection writes: the mapping's (`cireg_dcat::ns`) and its own bookkeeping.

pub use cireg_dcat::ns::*;

/// What the projector's own facts (checkpoint, public base) are about. The projector's
/// bookkeeping (these, the aggregate states, the study tallies) lives in the store's **default
/// graph**, which no SPARQL query can reach: the endpoint's default graph is the union of the
/// named graphs, and `FROM`/`GRAPH` can only name named graphs.
pub const PROJECTION_NODE: &str = "urn:cireg:projection";

/// The named graph that held the bookkeeping in stores written before it moved to the default
/// graph; a store that still has it is migrated when the projector opens it.
pub const LEGACY_PROJECTION_GRAPH: &str = "urn:cireg:projection";

/// The predicate of the projector's checkpoint (last applied log sequence), about
/// [`PROJECTION_NODE`].
pub const CHECKPOINT: &str = "urn:cireg:vocab#lastAppliedSequence";
