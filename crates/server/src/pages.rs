//! The landing page: what this registry holds and where to go next. Server-rendered, no
//! scripts, no external assets.

use axum::response::{Html, IntoResponse, Response};

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
<p>As RDF: <a href="{iri}?format=ttl">Turtle</a>, <a href="{iri}?format=jsonld">JSON-LD</a>, <a href="{iri}?format=rdf">RDF/XML</a>, <a href="{iri}?format=nt">N-Triples</a> (or ask the IRI with an <code>Accept</code> header).</p>
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
