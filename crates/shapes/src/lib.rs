#![doc = include_str!("../README.md")]

use std::collections::HashMap;
use std::fmt;

use oxigraph::model::{Term, Triple};
use rudof_rdf::rdf_core::term::Object;
use rudof_rdf::rdf_core::RDFFormat;
use rudof_rdf::rdf_impl::{OxigraphInMemory, ReaderMode};
use shacl::ir::IRSchema;
use shacl::rdf::ShaclParser;
use shacl::types::Severity as ShaclSeverity;
use shacl::validator::processor::{GraphValidation, ShaclProcessor};
use shacl::validator::store::Graph;
use shacl::validator::{ShaclConfig, ShaclValidationMode};

/// The access level of a dataset (`dct:accessRights`), which chooses the shape set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLevel {
    Public,
    Restricted,
    NonPublic,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 3] = [AccessLevel::Public, AccessLevel::Restricted, AccessLevel::NonPublic];

    /// From the EU access-right code (`PUBLIC`, `RESTRICTED`, `NON_PUBLIC`).
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "PUBLIC" => Some(AccessLevel::Public),
            "RESTRICTED" => Some(AccessLevel::Restricted),
            "NON_PUBLIC" => Some(AccessLevel::NonPublic),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            AccessLevel::Public => "PUBLIC",
            AccessLevel::Restricted => "RESTRICTED",
            AccessLevel::NonPublic => "NON_PUBLIC",
        }
    }
}

/// One shapes file, embedded in the binary so the gate cannot run without its shapes.
struct ShapesFile {
    name: &'static str,
    text: &'static str,
}

macro_rules! shapes_file {
    ($path:literal) => {
        ShapesFile { name: $path, text: include_str!(concat!("../../../shapes/", $path)) }
    };
}

const COMMON: &[ShapesFile] = &[
    shapes_file!("dcat-ap-3.0.1/shapes.ttl"),
    shapes_file!("dcat-ap-3.0.1/deprecateduris.ttl"),
    shapes_file!("healthdcat-ap-r8/shapes/graph-guard.ttl"),
    shapes_file!("healthdcat-ap-r8/imports/imports.ttl"),
    shapes_file!("healthdcat-ap-r8/ranges/range.ttl"),
    shapes_file!("cireg/eucaim-shapes.ttl"),
];

fn level_files(level: AccessLevel) -> [ShapesFile; 2] {
    match level {
        AccessLevel::Public => [
            shapes_file!("healthdcat-ap-r8/shapes/public-shapes.ttl"),
            shapes_file!("healthdcat-ap-r8/recommended/public-shapes_recommended.ttl"),
        ],
        AccessLevel::Restricted => [
            shapes_file!("healthdcat-ap-r8/shapes/restricted-shapes.ttl"),
            shapes_file!("healthdcat-ap-r8/recommended/restricted-shapes_recommended.ttl"),
        ],
        AccessLevel::NonPublic => [
            shapes_file!("healthdcat-ap-r8/shapes/non-public-shapes.ttl"),
            shapes_file!("healthdcat-ap-r8/recommended/non-public-shapes_recommended.ttl"),
        ],
    }
}

/// The base IRI the shapes are parsed with (`graph-guard.ttl` uses a relative IRI).
const SHAPES_BASE: &str = "urn:cireg:shapes/";

#[derive(Debug, thiserror::Error)]
pub enum ShapesError {
    #[error("shapes file {file}: {message}")]
    Load { file: &'static str, message: String },
    #[error("compiling the {level} shapes: {message}")]
    Compile { level: &'static str, message: String },
    #[error("SHACL validation failed to run: {0}")]
    Engine(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Violation,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Violation => "violation",
        })
    }
}

/// One failed constraint, in terms a provider can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The node that failed, e.g. the dataset's IRI.
    pub focus_node: String,
    /// The property path, when the constraint is on a property.
    pub path: Option<String>,
    /// The value that failed, when there is one.
    pub value: Option<String>,
    /// The shape's own `sh:message` where it has one, else the engine's.
    pub message: String,
    /// The SHACL constraint component, e.g. `sh:MinCountConstraintComponent`.
    pub constraint: String,
    /// The shape that holds the constraint.
    pub source_shape: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.severity, self.focus_node)?;
        if let Some(path) = &self.path {
            write!(f, " {path}")?;
        }
        write!(f, ": {} ({})", self.message, self.constraint)
    }
}

/// What the gate found in one graph.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn violations(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Violation)
    }

    /// True when nothing of severity violation was found (warnings do not block).
    pub fn conforms(&self) -> bool {
        self.violations().next().is_none()
    }
}

struct LevelShapes {
    schema: IRSchema,
    /// `sh:message` of each shape that has one, keyed by the shape's node as the engine names it.
    messages: HashMap<Object, String>,
}

/// The compiled shape sets. Compiling takes a while: build once, share.
pub struct Shapes {
    levels: HashMap<AccessLevel, LevelShapes>,
}

impl Shapes {
    /// Parses and compiles the embedded shapes for every access level.
    pub fn load() -> Result<Self, ShapesError> {
        let mut levels = HashMap::new();
        for level in AccessLevel::ALL {
            levels.insert(level, compile(level)?);
        }
        Ok(Shapes { levels })
    }

    /// Validates `triples` (one dataset's graph, with the nodes it links to) with the shapes of
    /// `level`.
    pub fn validate(&self, level: AccessLevel, triples: &[Triple]) -> Result<Report, ShapesError> {
        let Some(shapes) = self.levels.get(&level) else {
            return Err(ShapesError::Engine(format!("no shapes for {}", level.code())));
        };
        let mut data = OxigraphInMemory::new();
        for t in triples {
            data.add_triple_ref(t.subject.as_ref(), t.predicate.as_ref(), t.object.as_ref())
                .map_err(|e| ShapesError::Engine(e.to_string()))?;
        }
        let graph = Graph::try_from(data).map_err(|e| ShapesError::Engine(e.to_string()))?;
        let mut validation = GraphValidation::new(graph);
        let report = validation
            .validate(&shapes.schema, &ShaclValidationMode::Native, &ShaclConfig::new())
            .map_err(|e| ShapesError::Engine(e.to_string()))?;
        let findings = report
            .results()
            .iter()
            .map(|r| {
                let own_message = r.source().and_then(|s| shapes.messages.get(s)).cloned();
                Finding {
                    severity: match r.severity() {
                        ShaclSeverity::Violation => Severity::Violation,
                        ShaclSeverity::Warning => Severity::Warning,
                        _ => Severity::Info,
                    },
                    focus_node: plain(&r.focus_node().to_string()),
                    path: r.path().map(|p| plain(&p.to_string())),
                    value: r.value().map(|v| plain(&v.to_string())),
                    message: own_message
                        .or_else(|| r.message().iter().next().map(|(_, m)| m.clone()))
                        .unwrap_or_else(|| "constraint not satisfied".to_owned()),
                    constraint: shorten(&r.constraint_component().to_string()),
                    source_shape: r.source().map(|s| plain(&s.to_string())),
                }
            })
            .collect();
        Ok(Report { findings })
    }
}

/// `<iri>` → `iri`.
fn plain(s: &str) -> String {
    s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s).to_owned()
}

fn shorten(s: &str) -> String {
    let s = plain(s);
    match s.strip_prefix("http://www.w3.org/ns/shacl#") {
        Some(local) => format!("sh:{local}"),
        None => s,
    }
}

fn compile(level: AccessLevel) -> Result<LevelShapes, ShapesError> {
    let mut graph = OxigraphInMemory::new();
    for file in COMMON.iter().chain(level_files(level).iter()) {
        graph
            .merge_from_reader(
                &mut file.text.as_bytes(),
                file.name,
                &RDFFormat::Turtle,
                Some(SHAPES_BASE),
                &ReaderMode::Strict,
            )
            .map_err(|e| ShapesError::Load { file: file.name, message: e.to_string() })?;
    }
    let messages = shape_messages(&graph);
    let ast = ShaclParser::new(graph)
        .parse()
        .map_err(|e| ShapesError::Compile { level: level.code(), message: e.to_string() })?;
    let schema =
        IRSchema::compile(&ast).map_err(|e| ShapesError::Compile { level: level.code(), message: e.to_string() })?;
    Ok(LevelShapes { schema, messages })
}

/// `sh:message` of every node that has one, English first. The engine writes its own message for
/// composite constraints (`sh:or`, `sh:node`, …); the shape's is what a provider can act on.
fn shape_messages(graph: &OxigraphInMemory) -> HashMap<Object, String> {
    const SH_MESSAGE: &str = "http://www.w3.org/ns/shacl#message";
    let mut messages: HashMap<Object, (bool, String)> = HashMap::new();
    for quad in graph.quads() {
        if quad.predicate.as_str() != SH_MESSAGE {
            continue;
        }
        let Term::Literal(text) = &quad.object else { continue };
        let english = matches!(text.language(), None | Some("en"));
        let Ok(node) = Object::try_from(Term::from(quad.subject.clone())) else { continue };
        let entry = messages.entry(node).or_insert((english, text.value().to_owned()));
        if english && !entry.0 {
            *entry = (true, text.value().to_owned());
        }
    }
    messages.into_iter().map(|(k, (_, v))| (k, v)).collect()
}
