//! The pages people use: the landing page with the figures that matter and charts, the faceted
//! search, the dataset page and the access requests page. Server-rendered HTML; the search page's
//! script submits the search form when a filter changes (without it, the Apply button does); the
//! access page's script calls the access-request API with the person's own bearer token (a page
//! cannot send one otherwise). No frameworks, no external assets: hospital networks often have no
//! internet.

use std::collections::BTreeMap;

use axum::{
    extract::{RawQuery, State},
    response::{Html, IntoResponse, Response},
};
use cireg_model::english;
use cireg_views::{access_label, SearchDoc, SearchIndex, SearchQuery, FACETS};

use crate::{search::parse_query, AppState};

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const STYLE: &str = r#"
:root{--ink:#1d2733;--muted:#5b6776;--line:#d8dee6;--accent:#1f5fa8;--bg:#f6f8fb;--warn:#fff3cd}
*{box-sizing:border-box}body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);margin:0;line-height:1.5;background:#fff}
a{color:var(--accent)}a:focus,button:focus,input:focus,select:focus,summary:focus{outline:3px solid #f0a500;outline-offset:2px}
header.top{background:var(--ink);color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;flex-wrap:wrap;align-items:center}
header.top a{color:#fff;text-decoration:none;font-weight:600}header.top nav a{font-weight:400;margin-right:1rem}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:var(--ink);padding:.5rem;z-index:9}
main{max-width:72rem;margin:0 auto;padding:1rem}
.figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.75rem;margin:1rem 0}
.figure{background:var(--bg);border:1px solid var(--line);border-radius:.4rem;padding:.75rem}.figure b{display:block;font-size:1.6rem}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:1rem}
.chart{border:1px solid var(--line);border-radius:.4rem;padding:.5rem .75rem}.chart h3{margin:.2rem 0 .5rem;font-size:1rem}
.warn{background:var(--warn);padding:.5rem 1rem;border-radius:.25rem}
.layout{display:grid;grid-template-columns:17rem 1fr;gap:1.5rem}@media (max-width:48rem){.layout{grid-template-columns:1fr}}
fieldset{border:1px solid var(--line);border-radius:.4rem;margin:0 0 .75rem;padding:.4rem .75rem}legend{font-weight:600}
fieldset label{display:flex;justify-content:space-between;gap:.5rem}.count{color:var(--muted)}
.searchbar{display:flex;gap:.5rem;flex-wrap:wrap;margin:.5rem 0 1rem}.searchbar input[type=search]{flex:1;min-width:12rem;font-size:1rem;padding:.45rem}
button{font-size:1rem;padding:.45rem .9rem;border-radius:.3rem;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
ol.results{list-style:none;padding:0}ol.results li{border-bottom:1px solid var(--line);padding:.75rem 0}
.tags{display:flex;flex-wrap:wrap;gap:.3rem;margin:.3rem 0}.tag{background:var(--bg);border:1px solid var(--line);border-radius:1rem;padding:0 .55rem;font-size:.85rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dl.facts dt{font-weight:600}
.pager{display:flex;gap:1rem;margin:1rem 0}
"#;

/// A page of the site's frame around `body` (HTML the caller escaped).
pub(crate) fn plain_page(state: &AppState, title: &str, body: &str) -> Response {
    page(state, title, body)
}

fn page(state: &AppState, title: &str, body: &str) -> Response {
    let site = escape(&state.catalog.title);
    Html(format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{STYLE}</style></head>
<body><a class="skip" href="#main">Skip to content</a>
<header class="top"><a href="/">{site}</a><nav aria-label="Main"><a href="/search">Search datasets</a><a href="/catalog">Catalogue (DCAT-AP)</a><a href="/access">Access requests</a><a href="/sparql?query=SELECT%20*%20WHERE%20%7B%20%3Fs%20%3Fp%20%3Fo%20%7D%20LIMIT%2010">SPARQL</a><a href="/api/openapi.json">API</a></nav></header>
<main id="main">{body}</main></body></html>
"##,
        title = escape(title),
    ))
    .into_response()
}

/// A horizontal bar chart as inline SVG, with the numbers in the accessible text as well.
fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let shown: Vec<&(String, u64)> = bars.iter().take(12).collect();
    let max = shown.iter().map(|(_, v)| *v).max().unwrap_or(1).max(1);
    let row = 26;
    let height = row * shown.len().max(1) + 6;
    let mut svg = format!(
        r#"<svg role="img" aria-labelledby="t-{id}" viewBox="0 0 360 {height}" width="100%" preserveAspectRatio="xMinYMin meet"><title id="t-{id}">{title}: {desc}</title>"#,
        id = escape(&title.to_lowercase().replace(' ', "-")),
        title = escape(title),
        desc = escape(&shown.iter().map(|(l, v)| format!("{l} {v}")).collect::<Vec<_>>().join(", ")),
    );
    for (i, (label, value)) in shown.iter().enumerate() {
        let y = i * row + 3;
        let width = (*value as f64 / max as f64 * 150.0).max(1.0);
        svg.push_str(&format!(
            r##"<text x="0" y="{ty}" font-size="13" fill="#1d2733">{label}</text><rect x="150" y="{y}" width="{width:.1}" height="18" rx="3" fill="#1f5fa8"/><text x="{tx:.1}" y="{ty}" font-size="13" fill="#1d2733">{value}</text>"##,
            ty = y + 13,
            label = escape(&truncate(label, 20)),
            tx = 155.0 + width,
        ));
    }
    svg.push_str("</svg>");
    format!(r#"<figure class="chart"><h3>{}</h3>{svg}</figure>"#, escape(title))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn sum_by<'a>(
    docs: &'a [SearchDoc],
    keys: impl Fn(&'a SearchDoc) -> Vec<String>,
    value: impl Fn(&SearchDoc) -> u64,
) -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for d in docs {
        for k in keys(d) {
            *m.entry(k).or_default() += value(d);
        }
    }
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// `GET /`: what the registry holds, in figures and pictures, and where to go next.
pub async fn landing(State(state): State<AppState>) -> Response {
    let index = match crate::search::index(&state).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    page(&state, &state.catalog.title, &landing_body(&state, &index))
}

fn landing_body(state: &AppState, index: &SearchIndex) -> String {
    let docs = &index.docs;
    let distinct = |f: &dyn Fn(&SearchDoc) -> Vec<String>| {
        docs.iter().flat_map(f).collect::<std::collections::BTreeSet<_>>().len()
    };
    let figures = [
        ("Datasets", docs.len() as u64),
        ("Cancer types", distinct(&|d| vec![d.cancer.code.clone()]) as u64),
        ("Individuals", docs.iter().map(|d| d.subjects).sum()),
        ("Imaging studies", docs.iter().map(|d| d.studies).sum()),
        ("Image series", docs.iter().filter_map(|d| d.series).sum()),
        ("Providers", distinct(&|d| vec![d.provider.clone()]) as u64),
        ("Countries", distinct(&|d| d.countries.iter().map(|c| c.code.clone()).collect()) as u64),
    ];
    let figures: String =
        figures.iter().map(|(label, n)| format!(r#"<div class="figure"><b>{}</b>{label}</div>"#, group(*n))).collect();
    let synthetic = docs.iter().filter(|d| d.synthetic).count();
    let warn = if synthetic > 0 {
        format!(
            r#"<p class="warn"><strong>Synthetic demo data:</strong> {synthetic} of these datasets are made up for demonstration. They describe no real patients.</p>"#
        )
    } else {
        String::new()
    };
    let charts = [
        bar_chart(
            "Imaging studies per modality",
            &sum_by(docs, |d| d.modalities.iter().map(|m| m.label.clone()).collect(), |d| d.studies),
        ),
        bar_chart(
            "Imaging studies per body part",
            &sum_by(docs, |d| d.body_parts.iter().map(|m| m.label.clone()).collect(), |d| d.studies),
        ),
        bar_chart("Datasets per cancer type", &sum_by(docs, |d| vec![d.cancer.label.clone()], |_| 1)),
        bar_chart(
            "Datasets per country",
            &sum_by(docs, |d| d.countries.iter().map(|c| c.label.clone()).collect(), |_| 1),
        ),
    ]
    .concat();
    format!(
        r#"<h1>{title}</h1>
<p>A public catalogue of cancer imaging datasets held by hospitals and research projects across Europe, and a search tool to find them. Study counts per modality and body part count the studies of the datasets that list them.</p>
{warn}
<form class="searchbar" action="/search" method="get" role="search"><label for="q" class="skip">Search datasets</label><input id="q" name="q" type="search" placeholder="Search datasets: cancer type, modality, body part, provider…"><button type="submit">Search</button></form>
<section aria-label="In figures"><div class="figures">{figures}</div></section>
<section aria-label="Charts"><div class="charts">{charts}</div></section>
<h2>For machines</h2>
<ul><li>DCAT-AP 3 / HealthDCAT-AP / EUCAIM catalogue: <a href="{base}/catalog.ttl">Turtle</a>, <a href="{base}/catalog.jsonld">JSON-LD</a>, <a href="{base}/catalog.rdf">RDF/XML</a>, <a href="{base}/catalog.nt">N-Triples</a>; paged for harvesters: <a href="{base}/catalog.ttl?page=1">?page=1</a> (Hydra), <code>?modified_since=</code>, <code>?at=</code></li>
<li>Change feed (LDES, ActivityStreams): <a href="{base}/feed">/feed</a></li>
<li>Search API: <a href="{base}/api/v1/datasets">/api/v1/datasets</a> (<a href="{base}/api/openapi.json">OpenAPI</a>); EUCAIM federated search: <code>POST /api/eucaim/search</code></li>
<li>SPARQL endpoint: <a href="{base}/sparql?query=SELECT%20%3Fdataset%20%3Ftitle%20WHERE%20%7B%20%3Fdataset%20a%20%3Chttp%3A%2F%2Fwww.w3.org%2Fns%2Fdcat%23Dataset%3E%20%3B%20%3Chttp%3A%2F%2Fpurl.org%2Fdc%2Fterms%2Ftitle%3E%20%3Ftitle%20%7D%20LIMIT%2050">/sparql</a> (read-only)</li>
<li>Event schemas for providers: <a href="{base}/schemas">/schemas</a>; send events to <code>POST /events</code></li>
<li>Operations: <a href="{base}/healthz">/healthz</a>, <a href="{base}/readyz">/readyz</a>, <a href="{base}/metrics">/metrics</a></li></ul>"#,
        title = escape(&state.catalog.title),
        base = escape(state.base.as_str()),
    )
}

/// 12345 → "12,345".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn facet_title(facet: &str) -> &'static str {
    match facet {
        "cancer" => "Cancer type",
        "modality" => "Modality",
        "bodyPart" => "Body part",
        "country" => "Country",
        "provider" => "Provider / project",
        "node" => "Node",
        "access" => "Access",
        "sex" => "Sex",
        "size" => "Size (individuals)",
        _ => "Other",
    }
}

/// The query string of `q` with one page number.
fn query_string(q: &SearchQuery, page: usize) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    if !q.text.is_empty() {
        s.append_pair("q", &q.text);
    }
    for facet in FACETS {
        for v in q.selected(facet) {
            s.append_pair(facet, v);
        }
    }
    if let Some(a) = q.age_min {
        s.append_pair("ageMin", &a.to_string());
    }
    if let Some(a) = q.age_max {
        s.append_pair("ageMax", &a.to_string());
    }
    match q.sort {
        cireg_views::Sort::Size => {
            s.append_pair("sort", "size");
        }
        cireg_views::Sort::Title => {
            s.append_pair("sort", "title");
        }
        cireg_views::Sort::Relevance => {}
    }
    if page > 1 {
        s.append_pair("page", &page.to_string());
    }
    s.finish()
}

/// `GET /search`: faceted search; the URL holds the whole state.
pub async fn search(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = match parse_query(query.as_deref()) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let index = match crate::search::index(&state).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let results = index.search(&q);
    let mut facets = String::new();
    for facet in FACETS {
        let values = results.facets.get(facet).cloned().unwrap_or_default();
        if values.is_empty() {
            continue;
        }
        let boxes: String = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let label = if facet == "access" { access_label(&v.value).to_owned() } else { v.label.clone() };
                format!(
                    r#"<label for="f-{facet}-{i}"><span><input type="checkbox" id="f-{facet}-{i}" name="{facet}" value="{value}"{checked}> {label}</span><span class="count">{count}</span></label>"#,
                    value = escape(&v.value),
                    checked = if v.selected { " checked" } else { "" },
                    label = escape(&label),
                    count = v.count,
                )
            })
            .collect();
        facets.push_str(&format!(r#"<fieldset><legend>{}</legend>{boxes}</fieldset>"#, facet_title(facet)));
    }
    let age = |v: Option<u32>| v.map(|a| a.to_string()).unwrap_or_default();
    facets.push_str(&format!(
        r#"<fieldset><legend>Age range overlaps</legend><label for="ageMin">From <input id="ageMin" name="ageMin" type="number" min="0" max="150" inputmode="numeric" value="{}" style="width:5rem"></label><label for="ageMax">to <input id="ageMax" name="ageMax" type="number" min="0" max="150" inputmode="numeric" value="{}" style="width:5rem"></label></fieldset>"#,
        age(q.age_min),
        age(q.age_max)
    ));
    let sort_option = |value: &str, label: &str, on: bool| {
        format!(r#"<option value="{value}"{}>{label}</option>"#, if on { " selected" } else { "" })
    };
    let sorts = [
        sort_option("relevance", "Relevance", q.sort == cireg_views::Sort::Relevance),
        sort_option("size", "Size", q.sort == cireg_views::Sort::Size),
        sort_option("title", "Title", q.sort == cireg_views::Sort::Title),
    ]
    .concat();
    let items: String = results.results.iter().map(result_item).collect();
    let last_page = results.total.div_ceil(results.page_size).max(1);
    let mut pager = String::new();
    if results.page > 1 {
        pager.push_str(&format!(
            r#"<a rel="prev" href="/search?{}">Previous</a>"#,
            escape(&query_string(&q, results.page - 1))
        ));
    }
    if results.page < last_page {
        pager.push_str(&format!(
            r#"<a rel="next" href="/search?{}">Next</a>"#,
            escape(&query_string(&q, results.page + 1))
        ));
    }
    let api = format!("/api/v1/datasets?{}", query_string(&q, results.page));
    let body = format!(
        r#"<h1>Search datasets</h1>
<form id="search" action="/search" method="get" role="search" autocomplete="off">
<div class="searchbar"><label for="q" class="skip">Search text</label><input id="q" name="q" type="search" value="{text}" placeholder="Cancer type, modality, body part, provider…"><label for="sort">Sort by</label><select id="sort" name="sort">{sorts}</select><button type="submit">Search</button></div>
<div class="layout"><aside aria-label="Filters">{facets}<button type="submit">Apply filters</button> <a href="/search">Clear all</a></aside>
<section aria-label="Results" aria-live="polite"><p id="total"><strong>{total}</strong> dataset{plural} found. <a href="{api}">As JSON</a></p><ol class="results">{items}</ol><nav class="pager" aria-label="Pages">{pager}</nav></section></div>
</form>
<script>
// progressive: apply a filter as soon as it changes; without scripts the buttons do it
document.querySelectorAll('#search input[type=checkbox], #search select').forEach(function (el) {{
  el.addEventListener('change', function () {{ document.getElementById('search').submit(); }});
}});
// back and forward show the page from the cache, with the boxes as last clicked: show the URL's state
window.addEventListener('pageshow', function () {{
  document.querySelectorAll('#search input[type=checkbox]').forEach(function (el) {{ el.checked = el.defaultChecked; }});
  document.querySelectorAll('#search select option').forEach(function (el) {{ el.selected = el.defaultSelected; }});
}});
</script>"#,
        text = escape(&q.text),
        total = results.total,
        plural = if results.total == 1 { "" } else { "s" },
        api = escape(&api),
    );
    page(&state, "Search datasets", &body)
}

fn result_item(d: &SearchDoc) -> String {
    let mut tags = vec![d.cancer.label.clone()];
    tags.extend(d.modalities.iter().map(|m| m.label.clone()));
    tags.extend(d.body_parts.iter().map(|b| b.label.clone()));
    tags.extend(d.countries.iter().map(|c| c.label.clone()));
    tags.push(access_label(&d.access).to_owned());
    if d.synthetic {
        tags.push("Synthetic".to_owned());
    }
    if d.deprecated {
        tags.push("Deprecated".to_owned());
    }
    let tags: String = tags.iter().map(|t| format!(r#"<span class="tag">{}</span>"#, escape(t))).collect();
    format!(
        r#"<li class="result"><h2 style="font-size:1.1rem;margin:0"><a href="{href}">{title}</a></h2><div class="tags">{tags}</div><p style="margin:.2rem 0">{subjects} individuals, {studies} imaging studies · {provider}</p></li>"#,
        href = escape(&dataset_path(d)),
        title = escape(&d.title),
        subjects = group(d.subjects),
        studies = group(d.studies),
        provider = match &d.node {
            Some(node) => format!("{} (node {})", escape(&d.provider_name), escape(node)),
            None => escape(&d.provider_name),
        },
    )
}

/// The dataset page's path on this server.
fn dataset_path(d: &SearchDoc) -> String {
    format!("/datasets/{}/{}", url_encode(&d.provider), url_encode(&d.id))
}

/// The dataset page: everything search knows, with labels for every code and links onward.
pub fn dataset_page(state: &AppState, d: &SearchDoc) -> Response {
    let list = |labels: &[cireg_views::Label]| {
        labels
            .iter()
            .map(|l| format!("{} <span class=\"count\">({})</span>", escape(&l.label), escape(&l.code)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut facts = vec![
        (
            "Cancer type",
            format!("{} <span class=\"count\">({})</span>", escape(&d.cancer.label), escape(&d.cancer.code)),
        ),
        ("Modalities", list(&d.modalities)),
        ("Body parts", list(&d.body_parts)),
        ("Individuals", group(d.subjects)),
        ("Imaging studies", group(d.studies)),
    ];
    if let Some(series) = d.series {
        facts.push(("Image series", group(series)));
    }
    facts.push(("Birth sex", list(&d.sex)));
    if let Some((lo, hi)) = d.age_range {
        facts.push(("Ages", format!("{lo} to {hi} years")));
    }
    if let Some((a, b)) = d.years {
        facts.push(("Acquired", if a == b { a.to_string() } else { format!("{a} to {b}") }));
    }
    facts.push(("Countries", list(&d.countries)));
    facts.push(("Provider", escape(&d.provider_name)));
    if let Some(node) = &d.node {
        let statuses = state.nodes.read().map(|n| n.clone()).unwrap_or_default();
        let text = match statuses.iter().find(|s| &s.node == node) {
            Some(s) if !s.reachable => format!(
                "{node} (cannot be reached now; last confirmed {})",
                s.last_confirmed.as_deref().unwrap_or("before this node started")
            ),
            _ => node.clone(),
        };
        facts.push(("Node", escape(&text)));
    }
    facts.push(("Equipment", escape(&d.manufacturers.join(", "))));
    facts.push(("Access", escape(access_label(&d.access))));
    if !d.keywords.is_empty() {
        facts.push(("Keywords", escape(&d.keywords.join(", "))));
    }
    facts.extend(more_facts(&d.document));
    let facts: String = facts.iter().map(|(k, v)| format!("<dt>{k}</dt><dd>{v}</dd>")).collect();
    let access: String =
        d.access_urls.iter().map(|u| format!(r#"<li><a href="{0}">{0}</a></li>"#, escape(u))).collect();
    let iri = &d.iri;
    let describe = format!("/sparql?query={}", url_encode(&format!("DESCRIBE <{iri}>")));
    let warn = if d.synthetic {
        r#"<p class="warn"><strong>Synthetic:</strong> made up for demonstration; it describes no real patients.</p>"#
    } else {
        ""
    };
    let deprecated =
        if d.deprecated { r#"<p class="warn">This dataset is <strong>deprecated</strong>.</p>"# } else { "" };
    let path = dataset_path(d);
    let body = format!(
        r#"<p><a href="/search">← Search</a></p><h1>{title}</h1>{warn}{deprecated}
<p>{description}</p>
<dl class="facts">{facts}</dl>
<h2>Requesting access</h2><p>Researchers <a href="/access?dataset={iri_q}">request access to this dataset's imaging studies here</a> (the provider decides; the request and each decision are recorded). The provider's own access paths:</p><ul>{access}</ul>
{parties}
{distributions}
<h2>Metadata</h2><ul>
<li>DCAT-AP: <code>{iri}</code> as <a href="{path}?format=ttl">Turtle</a>, <a href="{path}?format=jsonld">JSON-LD</a>, <a href="{path}?format=rdf">RDF/XML</a>, <a href="{path}?format=nt">N-Triples</a> (or ask the IRI with an <code>Accept</code> header)</li>
<li><a href="{describe}">SPARQL description</a> (DESCRIBE)</li>
<li><a href="/api/v1/datasets/{p}/{i}">As JSON (search API)</a></li>
<li>Imaging studies (FHIR ImagingStudy, pseudonymised): for researchers granted access to this dataset (an approved access request, or a GA4GH Passport visa naming <code>{iri}</code> from a visa issuer this node trusts) and for its provider, with a bearer token, at <code>/fhir/ImagingStudy?dataset={p}/{i}</code>; every read is recorded</li></ul>"#,
        title = escape(&d.title),
        description = escape(&d.description),
        parties = parties(&d.document),
        distributions = distributions(&d.document),
        path = escape(&path),
        iri = escape(iri),
        iri_q = escape(&url_encode(iri)),
        describe = escape(&describe),
        p = escape(&url_encode(&d.provider)),
        i = escape(&url_encode(&d.id)),
    );
    page(state, &d.title, &body)
}

fn link(url: &str) -> String {
    format!(r#"<a href="{0}">{0}</a>"#, escape(url))
}

fn coding(c: &cireg_model::Coding) -> String {
    format!("{} <span class=\"count\">({})</span>", escape(c.display.as_deref().unwrap_or(&c.code)), escape(&c.code))
}

/// A code of a controlled vocabulary with its label where the registry knows it.
fn vocabulary(iri: &str, code: &str) -> String {
    match cireg_views::vocabulary_label(iri) {
        Some(label) => format!("{} <span class=\"count\">({})</span>", escape(label), escape(code)),
        None => escape(code),
    }
}

fn period(p: &cireg_model::Period) -> String {
    format!("{} to {}", p.start.as_deref().unwrap_or("…"), p.end.as_deref().unwrap_or("…"))
}

/// What the dataset page shows besides the search facts: the rest of the catalogue's record.
fn more_facts(d: &cireg_model::Dataset) -> Vec<(&'static str, String)> {
    use cireg_model::vocab;
    let join = |v: Vec<String>| v.join(", ");
    let mut facts = vec![("Version", escape(&d.version))];
    if !d.dataset_types.is_empty() {
        facts.push(("Dataset type", join(d.dataset_types.iter().map(coding).collect())));
    }
    if !d.health_categories.is_empty() {
        facts.push((
            "Health categories",
            join(d.health_categories.iter().map(|c| vocabulary(&vocab::health_category_iri(c), c)).collect()),
        ));
    }
    if !d.health_themes.is_empty() {
        facts.push((
            "Health themes",
            join(d.health_themes.iter().map(|c| vocabulary(&vocab::health_theme_iri(c), c)).collect()),
        ));
    }
    facts.push(("Collection", join(d.collection_methods.iter().map(coding).collect())));
    if let Some(level) = &d.interoperability_level {
        facts.push(("Interoperability tier", coding(level)));
    }
    if let Some(structured) = d.structured_data {
        facts.push(("Structured data", if structured { "yes" } else { "no" }.to_owned()));
    }
    if let Some(coverage) = &d.population_coverage {
        facts.push(("Population", escape(&english(coverage))));
    }
    if let Some(provenance) = &d.provenance {
        facts.push(("Provenance", escape(&english(provenance))));
    }
    if !d.languages.is_empty() {
        facts.push(("Languages", escape(&d.languages.join(", "))));
    }
    if let Some(f) = &d.frequency {
        // the common EU frequency codes in words
        let words = match f.as_str() {
            "NEVER" => "never (a closed collection)",
            "IRREG" => "irregularly",
            "CONT" => "continuously",
            "DAILY" => "daily",
            "WEEKLY" => "weekly",
            "MONTHLY" => "monthly",
            "QUARTERLY" => "quarterly",
            "ANNUAL" => "every year",
            other => other,
        };
        facts.push(("Updated", escape(words)));
    }
    facts.push(("Legislation", join(d.applicable_legislation.iter().map(|l| link(l)).collect())));
    if !d.legal_bases.is_empty() {
        facts.push(("Legal basis", join(d.legal_bases.iter().map(|l| link(l)).collect())));
    }
    if !d.purposes.is_empty() {
        facts.push(("Purposes", join(d.purposes.iter().map(|l| link(l)).collect())));
    }
    if !d.personal_data.is_empty() {
        facts.push(("Personal data", join(d.personal_data.iter().map(|l| link(l)).collect())));
    }
    if let Some(r) = &d.retention_period {
        facts.push(("Retention", escape(&period(r))));
    }
    if let Some(page) = &d.landing_page {
        facts.push(("Landing page", link(page)));
    }
    if !d.documentation.is_empty() {
        facts.push(("Documentation", join(d.documentation.iter().map(|l| link(l)).collect())));
    }
    if !d.quality_certificates.is_empty() {
        facts.push(("Quality certificates", join(d.quality_certificates.iter().map(|l| link(l)).collect())));
    }
    facts
}

fn contact(c: &cireg_model::Contact) -> String {
    let mut parts = Vec::new();
    if let Some(name) = &c.name {
        parts.push(escape(name));
    }
    if let Some(email) = &c.email {
        parts.push(format!(r#"<a href="mailto:{0}">{0}</a>"#, escape(email)));
    }
    if let Some(url) = &c.url {
        parts.push(link(url));
    }
    if let Some(tel) = &c.telephone {
        parts.push(escape(tel));
    }
    parts.join(", ")
}

/// Who is who: publisher, health data access body, custodian, contact point.
fn parties(d: &cireg_model::Dataset) -> String {
    let agent = |role: &str, a: &cireg_model::Agent| {
        let home = a.homepage.as_deref().map(|h| format!(" ({})", link(h))).unwrap_or_default();
        format!("<dt>{role}</dt><dd>{}{home}; contact: {}</dd>", escape(&english(&a.name)), contact(&a.contact_point))
    };
    let mut out = agent("Publisher", &d.publisher);
    if let Some(hdab) = &d.hdab {
        out.push_str(&agent("Health data access body", hdab));
    }
    if let Some(custodian) = &d.custodian {
        out.push_str(&agent("Custodian", custodian));
    }
    out.push_str(&format!("<dt>Contact point</dt><dd>{}</dd>", contact(&d.contact_point)));
    format!(r#"<h2>Who</h2><dl class="facts">{out}</dl>"#)
}

/// The distributions, samples and analytics, each with what it is and under which terms.
fn distributions(d: &cireg_model::Dataset) -> String {
    let one = |x: &cireg_model::Distribution| {
        let title = x.title.as_ref().map(english).unwrap_or_else(|| x.id.clone());
        let mut facts = vec![format!("format {}", escape(&x.format))];
        if let Some(m) = &x.media_type {
            facts.push(escape(m));
        }
        if let Some(c) = &x.access_condition {
            facts.push(format!("access: {}", escape(&c.to_lowercase().replace('_', " "))));
        }
        facts.push(format!(r#"<a href="{}">licence</a>"#, escape(&x.licence)));
        let download = x.download_url.as_deref().map(|u| format!(", download: {}", link(u))).unwrap_or_default();
        format!(
            "<li><strong>{}</strong> ({}): {}{download}</li>",
            escape(&title),
            facts.join(", "),
            link(&x.access_url)
        )
    };
    let mut out = String::new();
    for (heading, list) in [("Distributions", &d.distributions), ("Samples", &d.samples), ("Analytics", &d.analytics)] {
        if !list.is_empty() {
            out.push_str(&format!("<h2>{heading}</h2><ul>{}</ul>", list.iter().map(one).collect::<String>()));
        }
    }
    out
}

/// `GET /access`: the access requests page. The datasets of `?dataset=` (repeatable) fill the
/// request form. Everything else happens in the browser with the person's bearer token, which
/// stays in this tab (sessionStorage) and goes only to this node's API.
pub async fn access_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let datasets: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "dataset")
        .map(|(_, v)| v.into_owned())
        .collect();
    let body = format!(
        r#"<h1>Access to imaging studies</h1>
<p>Study-level data (pseudonymised imaging studies) is served per dataset to researchers whose request its provider approved, for the time approved. Each step is recorded; each provider sees the requests for its own datasets.</p>
<section aria-labelledby="who"><h2 id="who">Your token</h2>
<p><label for="token">Bearer token from your identity provider</label><br><input id="token" type="password" autocomplete="off" size="60"> <button id="use" type="button">Use</button></p>
<p id="status" role="status"></p></section>
<section aria-labelledby="new"><h2 id="new">Request access</h2>
<form id="request"><dl class="facts">
<dt><label for="title">Project title</label></dt><dd><input id="title" name="title" required size="60"></dd>
<dt><label for="purpose">Purpose</label></dt><dd><select id="purpose" name="purpose"><option value="https://w3id.org/dpv#AcademicResearch">Academic research</option><option value="https://w3id.org/dpv#ResearchAndDevelopment">Research and development</option><option value="https://w3id.org/dpv#CommercialResearch">Commercial research</option><option value="https://w3id.org/dpv#NonCommercialResearch">Non-commercial research</option></select></dd>
<dt><label for="description">Project description</label></dt><dd><textarea id="description" name="description" rows="4" cols="60" required></textarea></dd>
<dt><label for="ethics">Ethics approval reference</label></dt><dd><input id="ethics" name="ethics" required size="40"></dd>
<dt><label for="datasets">Datasets (one IRI per line)</label></dt><dd><textarea id="datasets" name="datasets" rows="3" cols="60" required>{datasets}</textarea></dd>
</dl><button type="submit">Send the request</button></form></section>
<section aria-labelledby="mine"><h2 id="mine">Requests</h2><p>Yours as a researcher; as a provider, those for your datasets.</p><div id="requests"></div></section>
<script>
// the token stays in this tab; every text from the API is set as text, never as markup
const $ = (id) => document.getElementById(id);
const say = (t) => {{ $("status").textContent = t; }};
$("token").value = sessionStorage.getItem("cireg-token") || "";
async function api(method, path, body) {{
  const r = await fetch(path, {{ method, headers: Object.assign({{ "Authorization": "Bearer " + $("token").value.trim() }}, body ? {{ "Content-Type": "application/json" }} : {{}}), body: body ? JSON.stringify(body) : undefined }});
  const data = await r.json().catch(() => ({{}}));
  if (!r.ok) throw new Error((data.detail || data.title || r.status) + (data.errors && data.errors.length ? " (at " + data.errors.map(e => e.pointer || "the body").join(", ") + ")" : ""));
  return data;
}}
function cell(row, text) {{ const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }}
async function load() {{
  sessionStorage.setItem("cireg-token", $("token").value.trim());
  try {{
    const data = await api("GET", "/api/v1/access-requests");
    const table = document.createElement("table");
    const head = table.insertRow();
    ["Request", "Title", "Researcher", "Dataset", "Status", "Until / reason / question"].forEach((h) => {{ const th = document.createElement("th"); th.textContent = h; head.appendChild(th); }});
    for (const req of data.requests) {{
      for (const d of req.datasets) {{
        const row = table.insertRow();
        [req.id, req.title, req.researcher, d.dataset, d.status, d.until || d.reason || d.question || ""].forEach((t) => cell(row, t));
      }}
    }}
    $("requests").replaceChildren(data.requests.length ? table : document.createTextNode("No requests."));
    say("Signed in: " + data.requests.length + " request(s).");
  }} catch (e) {{ say("Cannot list requests: " + e.message); }}
}}
$("use").addEventListener("click", load);
$("request").addEventListener("submit", async (ev) => {{
  ev.preventDefault();
  try {{
    const made = await api("POST", "/api/v1/access-requests", {{
      title: $("title").value, purposes: [$("purpose").value], description: $("description").value,
      ethicsApproval: $("ethics").value, datasets: $("datasets").value.split(/\s+/).filter(Boolean) }});
    say("Request " + made.id + " sent.");
    load();
  }} catch (e) {{ say("The request was not sent: " + e.message); }}
}});
if ($("token").value) load();
</script>"#,
        datasets = escape(&datasets.join("\n")),
    );
    page(&state, "Access requests", &body)
}
