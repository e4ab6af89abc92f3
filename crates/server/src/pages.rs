//! The landing page: what this registry holds and where to go next. Server-rendered, no
//! scripts, no external assets.

use axum::{
    extract::State,
    response::{Html, IntoResponse, Response},
};

use crate::AppState;

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
<li>Catalogue: <a href="{base}/catalog.ttl">Turtle</a>, <a href="{base}/catalog.jsonld">JSON-LD</a>, <a href="{base}/catalog.rdf">RDF/XML</a>, <a href="{base}/catalog.nt">N-Triples</a></li>
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
