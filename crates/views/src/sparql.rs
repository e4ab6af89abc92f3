//! SPARQL 1.1 query evaluation over the graphs a caller may see (the datasets' and providers',
//! and for a researcher the studies'), with the default graph as their union.
//! Read-only by construction (only queries are parsed), with a time limit that cancels the
//! evaluation.

use std::{io::Write, time::Duration};

use cireg_projector::{ns, PublicBase, IMAGING};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphScope {
    /// The datasets' and the providers' graphs: the catalogue.
    Public,
    /// Those and the studies' graphs (pseudonymised subject data): for a researcher.
    WithStudies,
}

/// The graphs a query in `scope` may see, by an allowlist: a graph is visible when it is named
/// under one of the listed IRI prefixes and holds the resource of the listed class it is named
/// after. Anything else in the store (the projector's bookkeeping, study graphs for the public,
/// any graph a later projection adds) is left out unless it is listed here. Found through the
/// store's type index, so the cost follows the visible graphs, not every graph in the store.
fn visible_graphs(store: &Store, base: &PublicBase, scope: GraphScope) -> Result<Vec<NamedOrBlankNode>, QueryError> {
    let mut kinds = vec![
        (format!("{}/datasets/", base.as_str()), format!("{}Dataset", ns::DCAT)),
        (format!("{}/providers/", base.as_str()), format!("{}Agent", ns::FOAF)),
    ];
    if scope == GraphScope::WithStudies {
        kinds.push((format!("{}/studies/", base.as_str()), format!("{IMAGING}ImagingStudy")));
    }
    let rdf_type = NamedNode::new_unchecked(ns::RDF_TYPE);
    let mut visible = std::collections::BTreeSet::new();
    for (prefix, class) in &kinds {
        let class = NamedNode::new_unchecked(class.as_str());
        for quad in store.quads_for_pattern(None, Some(rdf_type.as_ref()), Some(class.as_ref().into()), None) {
            let quad = quad.map_err(|e| QueryError::Evaluation(e.to_string()))?;
            if let GraphName::NamedNode(g) = quad.graph_name {
                if g.as_str().starts_with(prefix.as_str()) {
                    visible.insert(g);
                }
            }
        }
    }
    Ok(visible.into_iter().map(NamedOrBlankNode::NamedNode).collect())
}

fn graph_list(
    param: &'static str,
    iris: &[String],
    public: &[NamedOrBlankNode],
) -> Result<Vec<NamedOrBlankNode>, QueryError> {
    iris.iter()
        .map(|s| {
            let node =
                NamedNode::new(s).map_err(|e| QueryError::Parameter(param, format!("{s:?} is not an IRI: {e}")))?;
            Ok(NamedOrBlankNode::from(node))
        })
        // a graph that is not public reads as empty: the same answer as a graph that does not exist
        .filter(|g| g.as_ref().map(|g| public.contains(g)).unwrap_or(true))
        .collect()
}

/// Evaluates `request` and hands the results to `write` while the evaluation is still bound to
/// the store. Blocking: call it from a blocking thread. `timeout` cancels evaluation and
/// serialisation.
pub fn evaluate<T>(
    store: &Store,
    base: &PublicBase,
    scope: GraphScope,
    request: &SparqlRequest,
    timeout: Duration,
    write: impl FnOnce(QueryResults<'_>) -> Result<T, QueryError>,
) -> Result<T, QueryError> {
    let token = CancellationToken::new();
    let mut prepared = SparqlEvaluator::new()
        // a federated call could reach anything the server can reach (this endpoint too, with
        // the server's rights): refused, whatever oxigraph's features (the SHACL crate turns its
        // HTTP client on)
        .with_default_service_handler(ServiceDisabled)
        .with_cancellation_token(token.clone())
        .for_query(request.query.0.clone());
    let public = visible_graphs(store, base, scope)?;
    let from = request.query.dataset().cloned();
    let dataset = prepared.dataset_mut();
    // the protocol parameters win over the query's FROM / FROM NAMED (SPARQL 1.1 Protocol
    // §2.1.4); either way only visible graphs are ever in the dataset
    if !request.default_graph_uris.is_empty() || !request.named_graph_uris.is_empty() {
        let default = graph_list("default-graph-uri", &request.default_graph_uris, &public)?;
        let named = graph_list("named-graph-uri", &request.named_graph_uris, &public)?;
        dataset.set_default_graph(default.into_iter().map(GraphName::from).collect());
        dataset.set_available_named_graphs(named);
    } else if let Some(from) = from {
        let only_public = |graphs: Vec<NamedNode>| -> Vec<NamedOrBlankNode> {
            graphs.into_iter().map(NamedOrBlankNode::from).filter(|g| public.contains(g)).collect()
        };
        dataset.set_default_graph(only_public(from.default).into_iter().map(GraphName::from).collect());
        dataset.set_available_named_graphs(only_public(from.named.unwrap_or_default()));
    } else {
        // no dataset given: the default graph is the union of the public graphs
        dataset.set_default_graph(public.iter().cloned().map(GraphName::from).collect());
        dataset.set_available_named_graphs(public.clone());
    }
    let timer_token = token.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            timer_token.cancel();
        }
    });
    let result = prepared.on_store(store).execute().map_err(|e| evaluation_error(e, timeout)).and_then(write);
    let _ = done_tx.send(());
    let _ = timer.join();
    if token.is_cancelled() && result.is_err() {
        return Err(QueryError::Timeout(timeout));
    }
    result
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

fn evaluation_error(e: QueryEvaluationError, timeout: Duration) -> QueryError {
    match e {
        QueryEvaluationError::Cancelled => QueryError::Timeout(timeout),
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
                let solution = solution.map_err(|e| evaluation_error(e, Duration::ZERO))?;
                out.serialize(&solution).map_err(io)?;
            }
            out.finish().map_err(io)
        }
        (QueryResults::Graph(triples), ResultsFormat::Graph(f)) => {
            let mut out = RdfSerializer::from_format(f).for_writer(writer);
            for triple in triples {
                one_more()?;
                let triple = triple.map_err(|e| evaluation_error(e, Duration::ZERO))?;
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
    use oxigraph::model::{Literal, Quad, Term};

    /// Runs a SELECT and returns the values of `?o`.
    fn objects(store: &Store, base: &PublicBase, query: &str, named: &[&str]) -> Vec<String> {
        objects_in(store, base, GraphScope::Public, query, named)
    }

    fn objects_in(store: &Store, base: &PublicBase, scope: GraphScope, query: &str, named: &[&str]) -> Vec<String> {
        let request = SparqlRequest {
            query: ParsedQuery::parse(query).unwrap(),
            default_graph_uris: Vec::new(),
            named_graph_uris: named.iter().map(|s| (*s).to_owned()).collect(),
        };
        evaluate(store, base, scope, &request, Duration::from_secs(10), |results| {
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
        .unwrap()
    }

    #[test]
    fn only_dataset_and_provider_graphs_are_public() {
        let base = PublicBase::new("https://registry.example.eu").unwrap();
        let store = Store::new().unwrap();
        let p = NamedNode::new("urn:p").unwrap();
        let rdf_type = NamedNode::new(ns::RDF_TYPE).unwrap();
        let dataset = NamedNode::new(format!("{}Dataset", ns::DCAT)).unwrap();
        let study = NamedNode::new(format!("{IMAGING}ImagingStudy")).unwrap();
        for (graph, value, class) in [
            ("https://registry.example.eu/datasets/a/b", "dataset", dataset.clone()),
            (
                "https://registry.example.eu/providers/a",
                "provider",
                NamedNode::new(format!("{}Agent", ns::FOAF)).unwrap(),
            ),
            ("https://registry.example.eu/studies/s1", "study", study.clone()),
            // a dataset's class, but not under a listed prefix; and a listed prefix without the class
            ("urn:anything:else", "other", dataset.clone()),
            ("https://registry.example.eu/datasets/c/d", "untyped", study.clone()),
            (ns::PROJECTION_GRAPH, "bookkeeping", dataset.clone()),
        ] {
            let g = NamedNode::new(graph).unwrap();
            store.insert(&Quad::new(g.clone(), p.clone(), Literal::new_simple_literal(value), g.clone())).unwrap();
            store.insert(&Quad::new(g.clone(), rdf_type.clone(), class, g)).unwrap();
        }
        let everything = "SELECT ?o WHERE { { ?s <urn:p> ?o } UNION { GRAPH ?g { ?s <urn:p> ?o } } }";
        let mut all = objects(&store, &base, everything, &[]);
        all.sort();
        all.dedup();
        assert_eq!(all, vec!["dataset", "provider"]);
        let mut with_studies = objects_in(&store, &base, GraphScope::WithStudies, everything, &[]);
        with_studies.sort();
        with_studies.dedup();
        assert_eq!(with_studies, vec!["dataset", "provider", "study"]);
        // naming a private graph, by FROM, FROM NAMED or the protocol, reads as empty
        for q in [
            "SELECT ?o FROM <https://registry.example.eu/studies/s1> WHERE { ?s ?p ?o }",
            "SELECT ?o FROM NAMED <urn:anything:else> WHERE { GRAPH ?g { ?s ?p ?o } }",
            "SELECT ?o WHERE { GRAPH <https://registry.example.eu/studies/s1> { ?s ?p ?o } }",
        ] {
            assert!(objects(&store, &base, q, &[]).is_empty(), "{q}");
        }
        // SERVICE never leaves the process (nor calls this endpoint back)
        let service =
            ParsedQuery::parse("SELECT ?o WHERE { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }").unwrap();
        let request = SparqlRequest { query: service, default_graph_uris: Vec::new(), named_graph_uris: Vec::new() };
        let refused = evaluate(&store, &base, GraphScope::WithStudies, &request, Duration::from_secs(10), |results| {
            write_results(results, ResultsFormat::Solutions(QueryResultsFormat::Json), Vec::new(), 10)
        });
        assert!(matches!(refused, Err(QueryError::Parameter("query", ref m)) if m.contains("SERVICE is disabled")));
        let via_protocol = objects(
            &store,
            &base,
            "SELECT ?o WHERE { GRAPH ?g { ?s ?p ?o } }",
            &["https://registry.example.eu/studies/s1"],
        );
        assert!(via_protocol.is_empty());
    }
}
