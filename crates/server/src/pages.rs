//! The landing page: what this registry holds and where to go next. Server-rendered, no
//! scripts, no external assets.

use axum::{
    extract::State,
    response::{Html, IntoResponse, Response},
};

use crate::AppState;

/// The catalogue as a page for people: one page of datasets, linked to their own pages.
pub fn catalog(
    state: &AppState,
    rows: &[(String, String)],
    page: u64,
    last: u64,
    total: u64,
    previous: Option<String>,
    next: Option<String>,
) -> Response {
    let items: String =
        rows.iter().map(|(iri, title)| format!("<li><a href=\"{}\">{}</a></li>", escape(iri), escape(title))).collect();
    let nav = |label: &str, target: Option<String>| {
        target.map(|t| format!("<a href=\"{}\" rel=\"{label}\">{label}</a> ", escape(&t))).unwrap_or_default()
    };
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: datasets</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}</style></head>
<body><p><a href="{base}/">{title}</a></p><h1>Datasets</h1>
<p>{total} datasets; page {page} of {last}. As RDF: <a href="{base}/catalog.ttl">Turtle</a>, <a href="{base}/catalog.jsonld">JSON-LD</a>, <a href="{base}/catalog.rdf">RDF/XML</a>, <a href="{base}/catalog.nt">N-Triples</a>; changes: <a href="{base}/feed">feed</a>.</p>
<ul>{items}</ul>
<nav>{prev}{next}</nav></body></html>
"#,
        title = escape(&state.catalog.title),
        base = escape(state.base.as_str()),
        prev = nav("previous", previous),
        next = nav("next", next),
    );
    Html(page).into_response()
}

/// A minted resource as a page for people: its statements, with links for IRIs.
pub fn resource(state: &AppState, iri: &str, triples: &[oxigraph::model::Triple]) -> Response {
    use oxigraph::model::{NamedOrBlankNode, Term};
    let term = |t: &Term| match t {
        Term::NamedNode(n) => format!("<a href=\"{0}\">{0}</a>", escape(n.as_str())),
        Term::Literal(l) => match l.language() {
            Some(lang) => format!("<span lang=\"{}\">{}</span>", escape(lang), escape(l.value())),
            None => escape(l.value()),
        },
        other => escape(&other.to_string()),
    };
    let mut rows = String::new();
    let mut last_subject = String::new();
    for t in triples {
        let subject = match &t.subject {
            NamedOrBlankNode::NamedNode(n) => n.as_str().to_owned(),
            other => other.to_string(),
        };
        if subject != last_subject {
            rows.push_str(&format!("<tr><th colspan=\"2\" scope=\"rowgroup\">{}</th></tr>", escape(&subject)));
            last_subject = subject;
        }
        let predicate = t.predicate.as_str();
        rows.push_str(&format!(
            "<tr><td><a href=\"{0}\">{1}</a></td><td>{2}</td></tr>",
            escape(predicate),
            escape(predicate.rsplit(['#', '/']).next().unwrap_or(predicate)),
            term(&t.object)
        ));
    }
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{iri}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}}
table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;vertical-align:top;padding:.2rem .5rem;border-bottom:1px solid #ddd;overflow-wrap:anywhere}}th{{background:#f3f3f3}}</style></head>
<body><p><a href="{base}/">{title}</a></p><h1>{iri}</h1>
<p>The same IRI answers RDF: ask with <code>Accept: text/turtle</code>, <code>application/ld+json</code>, <code>application/rdf+xml</code> or <code>application/n-triples</code>.</p>
<table><tbody>{rows}</tbody></table></body></html>
"#,
        iri = escape(iri),
        base = escape(state.base.as_str()),
        title = escape(&state.catalog.title),
    );
    Html(page).into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub async fn landing(State(state): State<AppState>) -> Response {
    let summary = state.summary().await;
    let synthetic = if summary.synthetic_datasets > 0 {
        format!(
            "<p class=\"warn\"><strong>Synthetic demo data:</strong> {} of these datasets are made up for demonstration. They describe no real patients.</p>",
            summary.synthetic_datasets
        )
    } else {
        String::new()
    };
    let title = escape(&state.catalog.title);
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
dl{{display:grid;grid-template-columns:max-content auto;gap:.25rem 1rem}}dt{{font-weight:600}}.warn{{background:#fff3cd;padding:.5rem 1rem;border-radius:.25rem}}</style></head>
<body><h1>{title}</h1>
<p>A metadata registry of cancer imaging datasets: providers announce their datasets as events; the registry serves them as a DCAT-AP catalogue and through SPARQL.</p>
{synthetic}
<h2>In the catalogue</h2>
<dl><dt>Datasets</dt><dd>{datasets}</dd><dt>Providers</dt><dd>{providers}</dd><dt>Individuals</dt><dd>{subjects}</dd><dt>Imaging studies</dt><dd>{studies}</dd><dt>Image series</dt><dd>{series}</dd></dl>
<h2>Use it</h2>
<ul>
<li>Catalogue (DCAT-AP 3, HealthDCAT-AP, EUCAIM): <a href="{base}/catalog">browse</a>, or as <a href="{base}/catalog.ttl">Turtle</a>, <a href="{base}/catalog.jsonld">JSON-LD</a>, <a href="{base}/catalog.rdf">RDF/XML</a>, <a href="{base}/catalog.nt">N-Triples</a>; paged for harvesters: <a href="{base}/catalog.ttl?page=1">?page=1</a> (Hydra), <code>?modified_since=</code>, <code>?at=</code></li>
<li>Change feed (LDES, ActivityStreams): <a href="{base}/feed">/feed</a></li>
<li>SPARQL endpoint: <a href="{base}/sparql?query=SELECT%20%3Fdataset%20%3Ftitle%20WHERE%20%7B%20%3Fdataset%20a%20%3Chttp%3A%2F%2Fwww.w3.org%2Fns%2Fdcat%23Dataset%3E%20%3B%20%3Chttp%3A%2F%2Fpurl.org%2Fdc%2Fterms%2Ftitle%3E%20%3Ftitle%20%7D%20LIMIT%2050">/sparql</a> (SPARQL 1.1 Protocol, read-only)</li>
<li>Event schemas for providers: <a href="{base}/schemas">/schemas</a>; send events to <code>POST /events</code></li>
<li>Operations: <a href="{base}/healthz">/healthz</a>, <a href="{base}/readyz">/readyz</a>, <a href="{base}/metrics">/metrics</a></li>
</ul></body></html>
"#,
        base = escape(state.base.as_str()),
        datasets = summary.datasets,
        providers = summary.providers,
        subjects = summary.subjects,
        studies = summary.studies,
        series = summary.series,
    );
    Html(page).into_response()
}
