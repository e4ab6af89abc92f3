//! SPARQL 1.1 query evaluation over the graphs a caller may see (the datasets' and providers',
//! and the studies' a caller may read), with the default graph as their union.
//! Read-only by construction (only queries are parsed), with a time limit that cancels the
//! evaluation.

use std::{collections::BTreeSet, io::Write, sync::Arc, time::Duration};

use cireg_projector::PublicBase;
use oxigraph::{
    io::{RdfFormat, RdfSerializer},
    model::{GraphName, NamedNode, NamedOrBlankNode},
    sparql::{
        results::{QueryResultsFormat, QueryResultsSerializer},
        CancellationToken, DefaultServiceHandler, QueryEvaluationError, QueryResults, QuerySolutionIter,
        SparqlEvaluator,
    },
    store::Store,
};

/// A parsed SPARQL 1.1 query (parsing is where syntax errors are reported).
#[derive(Debug, Clone)]
pub struct ParsedQuery(spargebra::Query);

impl std::fmt::Display for ParsedQuery {
    /// The query in SPARQL syntax (as parsed: prefixes expanded).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ParsedQuery {
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        spargebra::SparqlParser::new().parse_query(text).map(ParsedQuery).map_err(|e| QueryError::Syntax(e.to_string()))
    }

    /// Whether the results are a graph (CONSTRUCT, DESCRIBE) or solutions (SELECT, ASK).
    pub fn is_graph(&self) -> bool {
        matches!(self.0, spargebra::Query::Construct { .. } | spargebra::Query::Describe { .. })
    }

    /// The query's own FROM / FROM NAMED, if any.
    fn dataset(&self) -> Option<&spargebra::algebra::QueryDataset> {
        match &self.0 {
            spargebra::Query::Select { dataset, .. }
            | spargebra::Query::Construct { dataset, .. }
            | spargebra::Query::Describe { dataset, .. }
            | spargebra::Query::Ask { dataset, .. } => dataset.as_ref(),
        }
    }
}

/// A query as the SPARQL protocol delivers it.
#[derive(Debug, Clone)]
pub struct SparqlRequest {
    pub query: ParsedQuery,
    pub default_graph_uris: Vec<String>,
    pub named_graph_uris: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query text is not SPARQL 1.1 Query (the message says where).
    #[error("{0}")]
    Syntax(String),
    /// A protocol parameter is wrong; the first field names it.
    #[error("parameter {0}: {1}")]
    Parameter(&'static str, String),
    #[error("the query ran longer than {0:?} and was cancelled")]
    Timeout(Duration),
    /// The process's resident memory passed the limit (bytes) while the query ran.
    #[error("the node's memory passed {0} bytes while the query ran, and it was cancelled")]
    Memory(u64),
    #[error("query evaluation failed: {0}")]
    Evaluation(String),
    /// The results are larger than the endpoint serves (the limit).
    #[error("the query returns more than {0} results")]
    TooLarge(usize),
}

/// What the results can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultsFormat {
    Solutions(QueryResultsFormat),
    Graph(RdfFormat),
}

/// Which graphs a query may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphScope {
    /// The datasets' and the providers' graphs: the catalogue.
    Public,
    /// Those and every study's graph (pseudonymised subject data): the all-studies role.
    WithStudies,
    /// The catalogue's graphs and these studies' graphs (IRIs): a caller holding permits for
    /// some datasets.
    WithStudiesOf(Arc<BTreeSet<String>>),
}

/// The stores a query reads. Visibility is by construction, not by a per-graph filter (which
/// Oxigraph would pay per graph): the public mirror holds only the datasets' and providers'
/// graphs, and in both stores the projector's bookkeeping sits in the default graph, which no
/// query reaches (the query's default graph is the union of the named graphs, and `FROM` and
/// `GRAPH` can only name named graphs).
#[derive(Clone)]
pub struct QueryStores {
    /// The public mirror: what anyone may query.
    pub public: Store,
    /// The whole projection: the public graphs and the studies' (for researchers).
    pub full: Store,
}

impl QueryStores {
    fn for_scope(&self, scope: &GraphScope) -> &Store {
        match scope {
            GraphScope::Public => &self.public,
            GraphScope::WithStudies | GraphScope::WithStudiesOf(_) => &self.full,
        }
    }
}

/// Whether a graph a query names may be read in `scope`: named under a prefix of the scope's
/// kinds of graph. The stores hold nothing else, so this only keeps an explicitly named graph
/// from ever reaching anything a later projection might add.
fn may_name(base: &PublicBase, scope: &GraphScope, graph: &NamedNode) -> bool {
    let iri = graph.as_str();
    base.is_catalogue_iri(iri)
        || match scope {
            GraphScope::Public => false,
            GraphScope::WithStudies => base.is_study_iri(iri),
            GraphScope::WithStudiesOf(studies) => studies.contains(iri),
        }
}

fn graph_list(
    param: &'static str,
    iris: &[String],
    base: &PublicBase,
    scope: &GraphScope,
) -> Result<Vec<NamedOrBlankNode>, QueryError> {
    let mut out = Vec::new();
    for s in iris {
        let node = NamedNode::new(s).map_err(|e| QueryError::Parameter(param, format!("{s:?} is not an IRI: {e}")))?;
        // a graph the caller may not read reads as empty: the same answer as a graph that does
        // not exist
        if may_name(base, scope, &node) {
            out.push(NamedOrBlankNode::from(node));
        }
    }
    Ok(out)
}

/// What one evaluation may use.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Time for the evaluation and the serialisation of its results.
    pub time: Duration,
    /// The process's resident memory (bytes) past which running evaluations are cancelled: a
    /// query that materialises huge intermediate results stops before it takes the node down.
    pub memory: Option<u64>,
}

impl From<Duration> for QueryLimits {
    fn from(time: Duration) -> Self {
        QueryLimits { time, memory: None }
    }
}

/// The process's resident memory in bytes, from /proc (`None` where there is none).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// How often a running evaluation's watchdog looks at the clock and the memory.
const WATCH_EVERY: Duration = Duration::from_millis(20);

/// Evaluates `request` and hands the results to `write` while the evaluation is still bound to
/// the store. Blocking: call it from a blocking thread. A watchdog cancels evaluation and
/// serialisation past the time limit, or when the process's memory passes the memory limit (the
/// evaluator checks its token in every operator: see vendor/README.md).
pub fn evaluate<T>(
    stores: &QueryStores,
    base: &PublicBase,
    scope: &GraphScope,
    request: &SparqlRequest,
    limits: impl Into<QueryLimits>,
    write: impl FnOnce(QueryResults<'_>) -> Result<T, QueryError>,
) -> Result<T, QueryError> {
    let limits = limits.into();
    let token = CancellationToken::new();
    let watch_token = token.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || -> Option<QueryError> {
        let deadline = std::time::Instant::now() + limits.time;
        loop {
            let now = std::time::Instant::now();
            if now >= deadline {
                watch_token.cancel();
                return Some(QueryError::Timeout(limits.time));
            }
            if let Some(limit) = limits.memory {
                if resident_bytes().is_some_and(|rss| rss > limit) {
                    watch_token.cancel();
                    return Some(QueryError::Memory(limit));
                }
            }
            match done_rx.recv_timeout(WATCH_EVERY.min(deadline - now)) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return None,
            }
        }
    });
    let result = evaluate_with_token(stores, base, scope, request, token.clone(), write);
    let _ = done_tx.send(());
    let why = watchdog.join().ok().flatten();
    match (why, &result) {
        (Some(why), Err(_)) if token.is_cancelled() => Err(why),
        _ => result,
    }
}

/// [`evaluate`] with the cancellation token its timer cancels.
fn evaluate_with_token<T>(
    stores: &QueryStores,
    base: &PublicBase,
    scope: &GraphScope,
    request: &SparqlRequest,
    token: CancellationToken,
    write: impl FnOnce(QueryResults<'_>) -> Result<T, QueryError>,
) -> Result<T, QueryError> {
    let mut prepared = SparqlEvaluator::new()
        // a federated call could reach anything the server can reach (this endpoint too, with
        // the server's rights): refused, whatever oxigraph's features (the SHACL crate turns its
        // HTTP client on)
        .with_default_service_handler(ServiceDisabled)
        .with_cancellation_token(token)
        .for_query(request.query.0.clone());
    let from = request.query.dataset().cloned();
    let dataset = prepared.dataset_mut();
    // the protocol parameters win over the query's FROM / FROM NAMED (SPARQL 1.1 Protocol
    // §2.1.4); either way only graphs of the scope's kinds are ever named
    if !request.default_graph_uris.is_empty() || !request.named_graph_uris.is_empty() {
        let default = graph_list("default-graph-uri", &request.default_graph_uris, base, scope)?;
        let named = graph_list("named-graph-uri", &request.named_graph_uris, base, scope)?;
        dataset.set_default_graph(default.into_iter().map(GraphName::from).collect());
        dataset.set_available_named_graphs(named);
    } else if let Some(from) = from {
        let allowed = |graphs: Vec<NamedNode>| -> Vec<NamedOrBlankNode> {
            graphs.into_iter().filter(|g| may_name(base, scope, g)).map(NamedOrBlankNode::from).collect()
        };
        dataset.set_default_graph(allowed(from.default).into_iter().map(GraphName::from).collect());
        dataset.set_available_named_graphs(allowed(from.named.unwrap_or_default()));
    } else if let GraphScope::WithStudiesOf(studies) = scope {
        // no dataset given, and the store holds more than the caller may see: the catalogue's
        // graphs (all the public mirror holds) and the caller's studies', by name
        let mut graphs = Vec::new();
        for g in stores.public.named_graphs() {
            graphs.push(g.map_err(|e| QueryError::Evaluation(e.to_string()))?);
        }
        graphs.extend(studies.iter().map(|s| NamedOrBlankNode::from(NamedNode::new_unchecked(s.as_str()))));
        dataset.set_default_graph(graphs.iter().cloned().map(GraphName::from).collect());
        dataset.set_available_named_graphs(graphs);
    } else {
        // no dataset given: the default graph is the union of the store's named graphs, and
        // every named graph is available (the scope's store holds only what the scope may see)
        dataset.set_default_graph_as_union();
    }
    prepared.on_store(stores.for_scope(scope)).execute().map_err(evaluation_error).and_then(write)
}

/// The handler of every `SERVICE` call: a refusal.
struct ServiceDisabled;

#[derive(Debug, thiserror::Error)]
#[error("SERVICE is disabled on this endpoint")]
struct ServiceDisabledError;

impl DefaultServiceHandler for ServiceDisabled {
    type Error = ServiceDisabledError;

    fn handle(
        &self,
        _service_name: &NamedNode,
        _pattern: &spargebra::algebra::GraphPattern,
        _base_iri: Option<&oxiri::Iri<String>>,
    ) -> Result<QuerySolutionIter<'static>, ServiceDisabledError> {
        Err(ServiceDisabledError)
    }
}

/// The error of an evaluation; a cancellation is reported as a timeout here, and [`evaluate`]
/// says which limit cancelled it.
fn evaluation_error(e: QueryEvaluationError) -> QueryError {
    match e {
        QueryEvaluationError::Cancelled => QueryError::Timeout(Duration::ZERO),
        QueryEvaluationError::UnsupportedService(_)
        | QueryEvaluationError::UnboundService
        | QueryEvaluationError::InvalidServiceName(_)
        | QueryEvaluationError::Service(_) => QueryError::Parameter(
            "query",
            "SERVICE is disabled on this endpoint: it does not call other endpoints (nor itself); run federated queries from your own client".to_owned(),
        ),
        other => QueryError::Evaluation(other.to_string()),
    }
}

/// Serialises `results` in `format` (which must fit the query form; see [`ResultsFormat`]), at
/// most `max_results` solutions or triples: more is [`QueryError::TooLarge`] rather than a
/// silently cut answer.
pub fn write_results<W: Write>(
    results: QueryResults<'_>,
    format: ResultsFormat,
    writer: W,
    max_results: usize,
) -> Result<W, QueryError> {
    let mut count = 0usize;
    let mut one_more = || {
        count += 1;
        if count > max_results {
            Err(QueryError::TooLarge(max_results))
        } else {
            Ok(())
        }
    };
    let io = |e: std::io::Error| QueryError::Evaluation(e.to_string());
    match (results, format) {
        (QueryResults::Boolean(value), ResultsFormat::Solutions(f)) => {
            QueryResultsSerializer::from_format(f).serialize_boolean_to_writer(writer, value).map_err(io)
        }
        (QueryResults::Solutions(solutions), ResultsFormat::Solutions(f)) => {
            let mut out = QueryResultsSerializer::from_format(f)
                .serialize_solutions_to_writer(writer, solutions.variables().to_vec())
                .map_err(io)?;
            for solution in solutions {
                one_more()?;
                let solution = solution.map_err(evaluation_error)?;
                out.serialize(&solution).map_err(io)?;
            }
            out.finish().map_err(io)
        }
        (QueryResults::Graph(triples), ResultsFormat::Graph(f)) => {
            let mut out = RdfSerializer::from_format(f).for_writer(writer);
            for triple in triples {
                one_more()?;
                let triple = triple.map_err(evaluation_error)?;
                out.serialize_triple(&triple).map_err(io)?;
            }
            out.finish().map_err(io)
        }
        _ => Err(QueryError::Parameter("Accept", "the requested format does not fit this query form".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cireg_projector::{ns, Projector, IMAGING};
    use oxigraph::model::{Literal, Quad, Term};

    fn objects_in(
        stores: &QueryStores,
        base: &PublicBase,
        scope: GraphScope,
        query: &str,
        default: &[&str],
        named: &[&str],
    ) -> Vec<String> {
        let request = SparqlRequest {
            query: ParsedQuery::parse(query).unwrap(),
            default_graph_uris: default.iter().map(|s| (*s).to_owned()).collect(),
            named_graph_uris: named.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut out = evaluate(stores, base, &scope, &request, Duration::from_secs(10), |results| {
            let QueryResults::Solutions(solutions) = results else { panic!("not a SELECT") };
            let mut out = Vec::new();
            for s in solutions {
                let s = s.map_err(|e| QueryError::Evaluation(e.to_string()))?;
                if let Some(Term::Literal(l)) = s.get("o") {
                    out.push(l.value().to_owned());
                }
            }
            Ok(out)
        })
        .unwrap();
        out.sort();
        out.dedup();
        out
    }

    /// A store as the projector leaves it (a dataset's, a provider's and a study's graph, the
    /// bookkeeping in the default graph) and its public mirror.
    fn stores(base: &PublicBase) -> QueryStores {
        let full = Store::new().unwrap();
        let p = NamedNode::new("urn:p").unwrap();
        let rdf_type = NamedNode::new(ns::RDF_TYPE).unwrap();
        for (graph, value, class) in [
            ("https://registry.example.eu/datasets/a/b", "dataset", format!("{}Dataset", ns::DCAT)),
            ("https://registry.example.eu/providers/a", "provider", format!("{}Agent", ns::FOAF)),
            ("https://registry.example.eu/studies/s1", "study", format!("{IMAGING}ImagingStudy")),
            ("https://registry.example.eu/studies/s2", "another study", format!("{IMAGING}ImagingStudy")),
        ] {
            let g = NamedNode::new(graph).unwrap();
            let class = NamedNode::new(class).unwrap();
            full.insert(&Quad::new(g.clone(), p.clone(), Literal::new_simple_literal(value), g.clone())).unwrap();
            full.insert(&Quad::new(g.clone(), rdf_type.clone(), class, g)).unwrap();
        }
        let projector = Projector::new(full.clone(), base.clone()).unwrap();
        // the bookkeeping, where the projector keeps it
        let node = NamedNode::new(ns::PROJECTION_NODE).unwrap();
        full.insert(&Quad::new(node, p, Literal::new_simple_literal("bookkeeping"), GraphName::DefaultGraph)).unwrap();
        let public = Store::new().unwrap();
        projector.with_public_mirror(public.clone()).unwrap();
        QueryStores { public, full }
    }

    #[test]
    fn the_public_sees_the_catalogue_and_researchers_the_studies_too() {
        let base = PublicBase::new("https://registry.example.eu").unwrap();
        let stores = stores(&base);
        let everything = "SELECT ?o WHERE { { ?s <urn:p> ?o } UNION { GRAPH ?g { ?s <urn:p> ?o } } }";
        assert_eq!(objects_in(&stores, &base, GraphScope::Public, everything, &[], &[]), ["dataset", "provider"]);
        assert_eq!(
            objects_in(&stores, &base, GraphScope::WithStudies, everything, &[], &[]),
            ["another study", "dataset", "provider", "study"]
        );
        // naming a study graph, by FROM, FROM NAMED, GRAPH or the protocol, reads as empty for
        // the public; the bookkeeping cannot be named at all
        for q in [
            "SELECT ?o FROM <https://registry.example.eu/studies/s1> WHERE { ?s ?p ?o }",
            "SELECT ?o FROM NAMED <https://registry.example.eu/studies/s1> WHERE { GRAPH ?g { ?s ?p ?o } }",
            "SELECT ?o WHERE { GRAPH <https://registry.example.eu/studies/s1> { ?s ?p ?o } }",
            "SELECT ?o FROM <urn:cireg:projection> WHERE { ?s ?p ?o }",
        ] {
            assert!(objects_in(&stores, &base, GraphScope::Public, q, &[], &[]).is_empty(), "{q}");
        }
        let any_graph = "SELECT ?o WHERE { GRAPH ?g { ?s ?p ?o } }";
        let study = ["https://registry.example.eu/studies/s1"];
        assert!(objects_in(&stores, &base, GraphScope::Public, any_graph, &[], &study).is_empty());
        assert!(objects_in(&stores, &base, GraphScope::Public, "SELECT ?o WHERE { ?s ?p ?o }", &study, &[]).is_empty());
        // a researcher may name it
        assert_eq!(objects_in(&stores, &base, GraphScope::WithStudies, any_graph, &[], &study), ["study"]);
        assert_eq!(
            objects_in(
                &stores,
                &base,
                GraphScope::WithStudies,
                "SELECT ?o FROM <https://registry.example.eu/studies/s1> WHERE { ?s <urn:p> ?o }",
                &[],
                &[]
            ),
            ["study"]
        );
        // but nobody reads the bookkeeping, whatever they name
        let permitted =
            GraphScope::WithStudiesOf(Arc::new(BTreeSet::from(["https://registry.example.eu/studies/s1".into()])));
        for scope in [GraphScope::Public, GraphScope::WithStudies, permitted] {
            for q in [
                "SELECT ?o WHERE { ?s ?p ?o }",
                "SELECT ?o WHERE { GRAPH ?g { ?s ?p ?o } }",
                "SELECT ?o FROM <urn:cireg:projection> WHERE { ?s ?p ?o }",
                "SELECT ?o FROM NAMED <urn:cireg:projection> WHERE { GRAPH ?g { ?s ?p ?o } }",
            ] {
                let seen = objects_in(&stores, &base, scope.clone(), q, &[], &[]);
                assert!(!seen.iter().any(|o| o == "bookkeeping"), "{q}: {seen:?}");
            }
            let named = ["urn:cireg:projection"];
            assert!(objects_in(&stores, &base, scope.clone(), "SELECT ?o WHERE { ?s ?p ?o }", &named, &[]).is_empty());
            assert!(objects_in(&stores, &base, scope, any_graph, &[], &named).is_empty());
        }
    }

    #[test]
    fn a_caller_with_permits_sees_the_catalogue_and_those_studies_only() {
        let base = PublicBase::new("https://registry.example.eu").unwrap();
        let stores = stores(&base);
        let s1 = "https://registry.example.eu/studies/s1";
        let s2 = "https://registry.example.eu/studies/s2";
        let scope = || GraphScope::WithStudiesOf(Arc::new(BTreeSet::from([s1.to_owned()])));
        let everything = "SELECT ?o WHERE { { ?s <urn:p> ?o } UNION { GRAPH ?g { ?s <urn:p> ?o } } }";
        assert_eq!(objects_in(&stores, &base, scope(), everything, &[], &[]), ["dataset", "provider", "study"]);
        // the other study, however it is named, reads as empty
        for q in [
            format!("SELECT ?o FROM <{s2}> WHERE {{ ?s ?p ?o }}"),
            format!("SELECT ?o FROM NAMED <{s2}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}"),
            format!("SELECT ?o WHERE {{ GRAPH <{s2}> {{ ?s ?p ?o }} }}"),
            format!("SELECT ?o FROM <{s1}> FROM <{s2}> WHERE {{ ?s <urn:p> ?o }}"),
        ] {
            let seen = objects_in(&stores, &base, scope(), &q, &[], &[]);
            assert!(!seen.iter().any(|o| o == "another study"), "{q}: {seen:?}");
        }
        let any_graph = "SELECT ?o WHERE { GRAPH ?g { ?s <urn:p> ?o } }";
        assert!(objects_in(&stores, &base, scope(), any_graph, &[], &[s2]).is_empty());
        assert!(objects_in(&stores, &base, scope(), "SELECT ?o WHERE { ?s ?p ?o }", &[s2], &[]).is_empty());
        assert_eq!(objects_in(&stores, &base, scope(), any_graph, &[], &[s1, s2]), ["study"]);
        // nothing permitted: the catalogue only
        let none = GraphScope::WithStudiesOf(Arc::default());
        assert_eq!(objects_in(&stores, &base, none, everything, &[], &[]), ["dataset", "provider"]);
    }

    /// A caller whose dataset lists graphs (its permitted studies') gets what the same graphs give
    /// as the union of the store: the evaluator reads a long list through one lookup over the
    /// union when a pattern binds something (the vendored spareval patch), and graph by graph
    /// otherwise; either way the same solutions, as many times.
    #[test]
    fn a_listed_dataset_answers_as_the_union_of_its_graphs() {
        let base = PublicBase::new("https://registry.example.eu").unwrap();
        let stores = stores(&base);
        let (p, rdf_type) = (NamedNode::new("urn:p").unwrap(), NamedNode::new(ns::RDF_TYPE).unwrap());
        let class = NamedNode::new(format!("{IMAGING}ImagingStudy")).unwrap();
        let mut studies = BTreeSet::new();
        for i in 0..100 {
            let g = NamedNode::new(format!("https://registry.example.eu/studies/x{i}")).unwrap();
            let value = Literal::new_simple_literal(format!("x{}", i % 7));
            stores.full.insert(&Quad::new(g.clone(), p.clone(), value, g.clone())).unwrap();
            stores.full.insert(&Quad::new(g.clone(), rdf_type.clone(), class.clone(), g.clone())).unwrap();
            studies.insert(g.as_str().to_owned());
        }
        // every study: the listed dataset against the union of the whole store
        let all = GraphScope::WithStudiesOf(Arc::new(
            studies
                .iter()
                .cloned()
                .chain([
                    "https://registry.example.eu/studies/s1".into(),
                    "https://registry.example.eu/studies/s2".into(),
                ])
                .collect(),
        ));
        let half = GraphScope::WithStudiesOf(Arc::new(studies.iter().take(50).cloned().collect()));
        let study = format!("<{IMAGING}ImagingStudy>");
        let x3 = "<https://registry.example.eu/studies/x3>";
        let count = |scope: &GraphScope, pattern: &str| {
            let q = format!("SELECT (COUNT(*) AS ?o) WHERE {{ {pattern} }}");
            objects_in(&stores, &base, scope.clone(), &q, &[], &[])
        };
        for pattern in [
            "?s ?p ?o".to_owned(),
            "?s a ?c".to_owned(),
            "?s <urn:p> ?o".to_owned(),
            format!("?s a {study}"),
            format!("?s a {study} . ?s <urn:p> ?o"),
            format!("?s a {study} . ?t <urn:p> ?o . FILTER(?s = ?t)"),
            format!("{x3} ?p ?o"),
            "?s <urn:p> \"x3\"".to_owned(),
            format!("GRAPH ?g {{ ?s a {study} . ?s <urn:p> ?o }}"),
            "GRAPH ?g { ?s ?p ?o }".to_owned(),
            format!("GRAPH {x3} {{ ?s ?p ?o }}"),
        ] {
            assert_eq!(count(&all, &pattern), count(&GraphScope::WithStudies, &pattern), "{pattern}");
        }
        assert_eq!(count(&half, &format!("?s a {study}")), ["50"]);
        assert_eq!(count(&half, &format!("?s a {study} . ?s <urn:p> ?o")), ["50"]);
        // (the catalogue's two graphs have the predicate too)
        assert_eq!(count(&half, "GRAPH ?g { ?s <urn:p> ?o }"), ["52"]);
        // x3 is in the first half (x0, x1, x10.. sort before x3), x9 is not
        let x9 = "<https://registry.example.eu/studies/x9>";
        assert_eq!(count(&half, &format!("GRAPH {x9} {{ ?s ?p ?o }}")), ["0"]);
        assert_eq!(count(&half, &format!("{x9} ?p ?o")), ["0"]);
        assert_eq!(count(&half, &format!("{x3} ?p ?o")), ["2"]);
    }

    #[test]
    fn service_never_leaves_the_process() {
        let base = PublicBase::new("https://registry.example.eu").unwrap();
        let stores = stores(&base);
        let service =
            ParsedQuery::parse("SELECT ?o WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }").unwrap();
        let request = SparqlRequest { query: service, default_graph_uris: Vec::new(), named_graph_uris: Vec::new() };
        let refused =
            evaluate(&stores, &base, &GraphScope::WithStudies, &request, Duration::from_secs(10), |results| {
                write_results(results, ResultsFormat::Solutions(QueryResultsFormat::Json), Vec::new(), 10)
            });
        assert!(matches!(refused, Err(QueryError::Parameter("query", ref m)) if m.contains("SERVICE is disabled")));
    }

    /// A query that materialises huge intermediate results (an ORDER BY over a cross product) is
    /// cancelled when the process's memory passes the limit, long before its time limit.
    #[test]
    fn a_query_that_fills_memory_stops_at_the_memory_limit() {
        let base = PublicBase::new("https://registry.example.eu").unwrap();
        let stores = stores(&base);
        let numbers: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
        let query = format!(
            "SELECT ?a ?b WHERE {{ VALUES ?a {{ {0} }} VALUES ?b {{ {0} }} }} ORDER BY DESC(?a) ?b LIMIT 1",
            numbers.join(" ")
        );
        let request = SparqlRequest {
            query: ParsedQuery::parse(&query).unwrap(),
            default_graph_uris: Vec::new(),
            named_graph_uris: Vec::new(),
        };
        let limit = resident_bytes().unwrap() + 64 * 1024 * 1024;
        let limits = QueryLimits { time: Duration::from_secs(120), memory: Some(limit) };
        let started = std::time::Instant::now();
        let outcome = evaluate(&stores, &base, &GraphScope::Public, &request, limits, |results| {
            write_results(results, ResultsFormat::Solutions(QueryResultsFormat::Json), Vec::new(), 10)
        });
        assert!(matches!(outcome, Err(QueryError::Memory(l)) if l == limit), "{:?}", outcome.map(|_| ()));
        assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    }

    /// Work that never reads the store (a cross product of VALUES under a FILTER that never
    /// holds) stops at the time limit: the evaluator checks its token in every operator.
    #[test]
    fn an_in_memory_query_stops_at_its_time_limit() {
        let base = PublicBase::new("https://registry.example.eu").unwrap();
        let stores = stores(&base);
        let query = cireg_testkit::sparql::in_memory_cross_product();
        let request = SparqlRequest {
            query: ParsedQuery::parse(&query).unwrap(),
            default_graph_uris: Vec::new(),
            named_graph_uris: Vec::new(),
        };
        let started = std::time::Instant::now();
        let outcome = evaluate(&stores, &base, &GraphScope::Public, &request, Duration::from_millis(300), |results| {
            write_results(results, ResultsFormat::Solutions(QueryResultsFormat::Json), Vec::new(), 10)
        });
        assert!(matches!(outcome, Err(QueryError::Timeout(_))), "{:?}", outcome.map(|_| ()));
        // 8·10⁹ combinations would take hours; a generous bound that only a missed cancellation
        // can exceed
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
}
