//! Black-box: who may write and who may read, tried against the real binary. Tokens that should
//! fail (bad signature, wrong issuer or audience, expired, another provider's), every SPARQL trick
//! for reaching study graphs as an anonymous caller, the FHIR API without a researcher's token,
//! and the limits (rate, body size, SPARQL results) and CORS.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{example, provider_token, researcher_client, test_key, token_claims, Cireg};

const PROVIDER: &str = "synthetic-breast-consortium";
const STUDY_UID: &str = "2.25.1780631250";
const PSEUDONYM_FIELD: &str = "subject";

/// The log's last sequence, as `/readyz` reports it.
async fn log_length(c: &Cireg) -> u64 {
    let v: Value = reqwest::get(c.url("/readyz")).await.unwrap().json().await.unwrap();
    v["log"].as_u64().unwrap()
}

async fn post_raw(c: &Cireg, event: &Value, authorization: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .post(c.url("/events"))
        .header("content-type", "application/cloudevents+json")
        .body(serde_json::to_vec(event).unwrap());
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let r = request.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn http_ingest_takes_only_valid_tokens_of_the_events_provider() {
    let dir = tempfile::tempdir().unwrap();
    // a second key, RSA, as identity providers (LS-AAI, Keycloak) sign with: openssl makes it and
    // signs the token (cireg itself never signs with RSA), the node trusts both keys
    let rsa_key = dir.path().join("rsa.pem");
    let openssl = |args: &[&str], input: Option<&[u8]>| {
        use std::io::Write;
        let mut child = std::process::Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("openssl (Debian package openssl) makes and uses the test's RSA key");
        child.stdin.take().unwrap().write_all(input.unwrap_or_default()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let rsa_path = rsa_key.to_str().unwrap();
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa_path], None);
    let modulus = String::from_utf8(openssl(&["rsa", "-in", rsa_path, "-noout", "-modulus"], None)).unwrap();
    let modulus: Vec<u8> = (0..modulus.trim().trim_start_matches("Modulus=").len() / 2)
        .map(|i| u8::from_str_radix(&modulus.trim().trim_start_matches("Modulus=")[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    // `cireg token` refuses the RSA key, saying why
    let (ok, _, err) = support::run_cli(&["token", "--key", rsa_path, "--provider", PROVIDER]);
    assert!(!ok && err.contains("RSA") && err.contains("P-256"), "{err}");
    // the claims of a token of the tests' key, under an RS256 header, signed by openssl
    let claims_of = key_token(&token_claims("rsa-publisher", &[PROVIDER], false));
    let header = base64_url_encode(br#"{"alg":"RS256","typ":"JWT","kid":"openssl-rsa"}"#);
    let signing_input = format!("{header}.{}", claims_of.split('.').nth(1).unwrap());
    let signature = openssl(&["dgst", "-sha256", "-sign", rsa_path], Some(signing_input.as_bytes()));
    let rs256_token = format!("{signing_input}.{}", base64_url_encode(&signature));
    let rsa = json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "openssl-rsa",
        "n": base64_url_encode(&modulus), "e": "AQAB"}]});
    let mut jwks: Value = serde_json::from_slice(&std::fs::read(&test_key().jwks).unwrap()).unwrap();
    jwks["keys"].as_array_mut().unwrap().push(rsa["keys"][0].clone());
    let both = dir.path().join("both.jwks.json");
    std::fs::write(&both, serde_json::to_vec(&jwks).unwrap()).unwrap();
    let c = Cireg::start_with_env(
        &dir.path().join("data"),
        &["--jwks", both.to_str().unwrap(), "--token-issuer", support::ISSUER, "--token-audience", support::AUDIENCE],
        // the log at debug level must not hold a token either
        &[("CIREG_LOG", "debug")],
    );
    let provider = example("provider.registered");
    let key = &test_key().key;
    let mut used_tokens = Vec::new();

    // no token, or not a bearer one: 401 with a challenge
    for authorization in [None, Some("Basic c3ludGhldGljOnNlY3JldA=="), Some("Bearer "), Some("Bearer not.a.jwt")] {
        let (status, headers, body) = post_raw(&c, &provider, authorization).await;
        assert_eq!(status, 401, "{authorization:?}: {body}");
        assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Bearer realm=\"cireg\""), "{headers:?}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    // an anonymous upload is refused for who sends it, before its body is read (413 would mean it
    // was read up to the limit; the client may instead see the connection closed mid-upload)
    let r = reqwest::Client::new()
        .post(c.url("/events"))
        .header("content-type", "application/cloudevents-batch+json")
        .body(vec![b' '; 17 * 1024 * 1024])
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 401, "an anonymous upload");
    }
    // tokens that must fail, each saying why, none echoed
    let (other_key, _) = cireg_auth::DevKey::load_or_create(&dir.path().join("other.pem")).unwrap();
    let claims = || token_claims("mallory", &[PROVIDER], false);
    let bad = [
        ("signature", other_key.mint_with_kid(&claims(), key.kid()).unwrap()),
        ("key", other_key.mint(&claims()).unwrap()),
        (
            "not issued by",
            key.mint(&cireg_auth::DevToken { issuer: "https://evil.example/".into(), ..claims() }).unwrap(),
        ),
        ("not meant for", key.mint(&cireg_auth::DevToken { audience: "another-service".into(), ..claims() }).unwrap()),
        ("expired", key.mint_expired(&claims(), Duration::from_secs(3600)).unwrap()),
        (
            "not valid yet",
            key.mint(&cireg_auth::DevToken { not_before: Some(Duration::from_secs(3600)), ..claims() }).unwrap(),
        ),
    ];
    for (why, token) in &bad {
        let (status, headers, body) = post_raw(&c, &provider, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(headers["www-authenticate"].to_str().unwrap().contains("invalid_token"));
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(why), "{why}: {problem}");
        assert!(!body.contains(token.as_str()) && !body.contains(token.split('.').nth(1).unwrap()), "echoed: {body}");
        used_tokens.push(token.clone());
    }
    assert_eq!(log_length(&c).await, 0, "nothing was appended");

    // a valid token of another provider, or of none: 403, nothing appended
    let someone_else = provider_token(&["another-hospital"]);
    let (status, _, body) = post_raw(&c, &provider, Some(&format!("Bearer {someone_else}"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may publish for another-hospital"), "{body}");
    let reader = key.mint(&token_claims("reader", &[], true)).unwrap();
    let (status, _, body) = post_raw(&c, &provider, Some(&format!("Bearer {reader}"))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(log_length(&c).await, 0, "nothing was appended");
    used_tokens.extend([someone_else.clone(), reader]);

    // the provider's own tokens, ES256 and RS256 (the scheme's case does not matter)
    let own = provider_token(&[PROVIDER]);
    let (status, _, body) = post_raw(&c, &provider, Some(&format!("bearer {own}"))).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = post_raw(&c, &example("dataset.published"), Some(&format!("Bearer {rs256_token}"))).await;
    assert_eq!(status, 201, "{body}");
    used_tokens.extend([own.clone(), rs256_token.clone()]);
    // a token for two providers may publish for either; a batch is judged event by event
    let two = provider_token(&["another-hospital", PROVIDER]);
    let mut foreign = example("dataset.updated");
    foreign["source"] = json!("urn:cireg:provider:a-third-one");
    foreign["id"] = json!("foreign-1");
    let r = reqwest::Client::new()
        .post(c.url("/events"))
        .bearer_auth(&two)
        .header("content-type", "application/cloudevents-batch+json")
        .body(serde_json::to_vec(&json!([example("dataset.updated"), foreign])).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(outcome["results"][0]["status"], 201, "{outcome}");
    assert_eq!(outcome["results"][1]["status"], 403, "{outcome}");
    assert_eq!(log_length(&c).await, 3);
    used_tokens.push(two);

    assert_eq!(c.metric("cireg_auth_failures_total").await, 9, "3 malformed headers and 6 bad tokens");
    assert!(c.metric("cireg_ingest_forbidden_total").await >= 2);
    let log = c.log();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    for token in &used_tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token is in the log");
    }
}

fn base64_url_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token of the tests' own key with these claims.
fn key_token(claims: &cireg_auth::DevToken) -> String {
    test_key().key.mint(claims).unwrap()
}

#[tokio::test]
async fn a_node_without_keys_takes_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--no-test-keys"]);
    let (status, body) = c.post_event(&example("provider.registered")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("no token keys configured"), "{body}");
    let r = researcher_client().get(c.url("/fhir/ImagingStudy")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(log_length(&c).await, 0);
    assert!(c.log().contains("no token keys"), "the operator is told at start");
}

#[tokio::test]
async fn ingest_is_rate_limited_per_caller() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--ingest-rate", "1", "--ingest-burst", "2"]);
    let alice = support::test_key().key.mint(&token_claims("alice", &[PROVIDER], false)).unwrap();
    let bob = support::test_key().key.mint(&token_claims("bob", &[PROVIDER], false)).unwrap();
    assert_eq!(c.post_event_with(&example("provider.registered"), &alice).await.0, 201);
    assert_eq!(c.post_event_with(&example("dataset.published"), &alice).await.0, 201);
    let (_, headers, body) = post_raw(&c, &example("dataset.updated"), Some(&format!("Bearer {alice}"))).await;
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 429, "{problem}");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(log_length(&c).await, 2, "the limited event was not appended");
    // another caller has its own bucket
    assert_eq!(c.post_event_with(&example("dataset.updated"), &bob).await.0, 201);
    assert_eq!(c.metric("cireg_ingest_rate_limited_total").await, 1);
    // and the bucket fills again
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut again = example("dataset.updated");
    again["id"] = json!("update-again");
    again["expectedversion"] = json!(2);
    let (status, body) = c.post_event_with(&again, &alice).await;
    assert_eq!(status, 201, "{body}");
}

/// What a SPARQL request answers: (status, body).
async fn sparql(c: &Cireg, client: &reqwest::Client, params: &[(&str, &str)], accept: &str) -> (u16, String) {
    let r = client.get(c.url("/sparql")).query(params).header("accept", accept).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn study_data_reaches_researchers_only() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--public-base", "https://registry.example.eu"]);
    for name in ["provider.registered", "dataset.published", "study.registered"] {
        let (status, body) = c.post_event(&example(name)).await;
        assert_eq!(status, 201, "{name}: {body}");
    }
    c.wait_ready().await;
    let pseudonym = example("study.registered")[PSEUDONYM_FIELD].as_str().unwrap().to_owned();
    let researcher = researcher_client();
    let anonymous = reqwest::Client::new();

    // where the study is, as a researcher sees it
    let (status, body) = sparql(
        &c,
        &researcher,
        &[("query", "SELECT ?s ?g WHERE { GRAPH ?g { ?s a <https://w3id.org/cireg/imaging#ImagingStudy> } }")],
        "application/sparql-results+json",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let found: Value = serde_json::from_str(&body).unwrap();
    let study = found["results"]["bindings"][0]["s"]["value"].as_str().unwrap().to_owned();
    let graph = found["results"]["bindings"][0]["g"]["value"].as_str().unwrap().to_owned();
    assert!(graph.starts_with("https://registry.example.eu/studies/"), "{graph}");

    // every trick, anonymous; then the same request as a researcher, which must see the study
    let everything_in = format!("SELECT * WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}");
    let from = format!("SELECT * FROM <{graph}> WHERE {{ ?s ?p ?o }}");
    let from_named = format!("SELECT * FROM NAMED <{graph}> WHERE {{ GRAPH ?g {{ ?s ?p ?o }} }}");
    let describe = format!("DESCRIBE <{study}>");
    let construct = "CONSTRUCT { ?s ?p ?o } WHERE { GRAPH ?g { ?s ?p ?o } }".to_owned();
    let ask = format!("ASK {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}");
    let json = "application/sparql-results+json";
    // (trick, protocol parameters, Accept)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        ("GRAPH ?g", vec![("query", "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }")], json),
        ("GRAPH <study>", vec![("query", &everything_in)], json),
        ("FROM", vec![("query", &from)], json),
        ("FROM NAMED", vec![("query", &from_named)], json),
        ("default-graph-uri", vec![("query", "SELECT * WHERE { ?s ?p ?o }"), ("default-graph-uri", &graph)], json),
        (
            "named-graph-uri",
            vec![("query", "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } }"), ("named-graph-uri", &graph)],
            json,
        ),
        ("DESCRIBE", vec![("query", &describe)], "application/n-triples"),
        ("CONSTRUCT", vec![("query", &construct)], "application/n-triples"),
        ("ASK", vec![("query", &ask)], json),
    ];
    for (trick, params, accept) in &cases {
        let (status, body) = sparql(&c, &anonymous, params, accept).await;
        assert_eq!(status, 200, "{trick}: {body}");
        for secret in [STUDY_UID, pseudonym.as_str(), graph.as_str(), "ImagingStudy"] {
            assert!(!body.contains(secret), "{trick}: anonymous sees {secret}:\n{body}");
        }
        if *trick == "ASK" {
            assert!(body.contains("false"), "{body}");
        }
        let (status, body) = sparql(&c, &researcher, params, accept).await;
        assert_eq!(status, 200, "{trick}: {body}");
        assert!(body.contains(STUDY_UID) || body.contains("true"), "{trick}: a researcher sees the study:\n{body}");
    }
    // the same through POST (form and direct), which take other paths through the protocol
    let r = anonymous
        .post(c.url("/sparql"))
        .header("content-type", "application/sparql-query")
        .body(from.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.text().await.unwrap().contains(STUDY_UID));
    let r = anonymous
        .post(c.url("/sparql"))
        .form(&[("query", "SELECT * WHERE { ?s ?p ?o }"), ("named-graph-uri", &graph), ("default-graph-uri", &graph)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.text().await.unwrap().contains(STUDY_UID));
    // SERVICE is disabled: to the endpoint itself (which a researcher could reach) or elsewhere
    for target in [c.url("/sparql"), "https://query.wikidata.org/sparql".to_owned()] {
        let query = format!("SELECT * WHERE {{ SERVICE <{target}> {{ GRAPH ?g {{ ?s ?p ?o }} }} }}");
        for client in [&anonymous, &researcher] {
            let (status, body) = sparql(&c, client, &[("query", &query)], json).await;
            assert_eq!(status, 400, "{body}");
            assert!(body.contains("SERVICE is disabled"), "{body}");
        }
    }
    // a token that fails is refused, not read as anonymous
    let (status, body) = sparql(
        &c,
        &reqwest::Client::builder()
            .default_headers([(reqwest::header::AUTHORIZATION, "Bearer x.y.z".parse().unwrap())].into_iter().collect())
            .build()
            .unwrap(),
        &[("query", "ASK {}")],
        json,
    )
    .await;
    assert_eq!(status, 401, "{body}");

    // FHIR: the capability statement is public, the studies are not
    let r = anonymous.get(c.url("/fhir/metadata")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let capabilities: Value = r.json().await.unwrap();
    assert!(
        capabilities["rest"][0]["security"]["description"].as_str().unwrap().contains("Bearer"),
        "the CapabilityStatement says how to authenticate: {capabilities}"
    );
    let search: Value = researcher.get(c.url("/fhir/ImagingStudy")).send().await.unwrap().json().await.unwrap();
    assert_eq!(search["total"], 1, "{search}");
    let id = search["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    let nobody = test_key().key.mint(&token_claims("nobody", &[], false)).unwrap();
    let another_provider = provider_token(&["another-hospital"]);
    let own_provider = provider_token(&[PROVIDER]);
    let full_uid = example("study.registered")["data"]["studyInstanceUid"].as_str().unwrap().to_owned();
    for path in [
        "/fhir/ImagingStudy".to_owned(),
        format!("/fhir/ImagingStudy/{id}"),
        format!("/fhir/ImagingStudy/{id}/_history"),
        format!("/fhir/ImagingStudy/{id}/_history/1"),
        format!("/fhir/ImagingStudy?identifier=urn:dicom:uid|urn:oid:{full_uid}"),
    ] {
        let r = anonymous.get(c.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(body["issue"][0]["code"], "login", "{body}");
        assert!(!body.to_string().contains(&pseudonym));
        // a token that can read no study at all: 403
        let r = anonymous.get(c.url(&path)).bearer_auth(&nobody).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}: a token with no role, provider or visa");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["issue"][0]["code"], "forbidden", "{body}");
        // another provider's token reads its own studies, not these (tests/access.rs: the rest)
        let r = anonymous.get(c.url(&path)).bearer_auth(&another_provider).send().await.unwrap();
        let searched = path.starts_with("/fhir/ImagingStudy?") || path == "/fhir/ImagingStudy";
        assert_eq!(r.status(), if searched { 200 } else { 404 }, "{path}: another provider's study");
        let body: Value = r.json().await.unwrap();
        if searched {
            assert!(body["total"] == 0 && body.get("entry").is_none(), "{path}: {body}");
        }
        assert!(!body.to_string().contains(&pseudonym), "{path}: {body}");
        let r = researcher.get(c.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let r = anonymous.get(c.url(&path)).bearer_auth(&own_provider).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}: the provider reads its own studies");
    }
    let r = anonymous
        .post(c.url("/fhir/ImagingStudy/_search"))
        .form(&[("identifier", &format!("urn:dicom:uid|urn:oid:{full_uid}"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // what the public does see: the dataset and its counts, which the study makes
    let d: Value = anonymous
        .get(c.url(&format!("/api/v1/datasets/{PROVIDER}/breast-mri-screening-2024")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((d["subjects"].clone(), d["studies"].clone()), (json!(1), json!(1)), "{d}");
}

#[tokio::test]
async fn limits_and_cors() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--sparql-max-results", "5"]);
    assert_eq!(c.post_event(&example("provider.registered")).await.0, 201);
    assert_eq!(c.post_event(&example("dataset.published")).await.0, 201);
    c.wait_ready().await;
    let client = reqwest::Client::new();

    // more results than the endpoint serves: refused, not cut
    let (status, body) =
        sparql(&c, &client, &[("query", "SELECT * WHERE { ?s ?p ?o }")], "application/sparql-results+json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("result-too-large") && body.contains("LIMIT"), "{body}");
    let (status, body) =
        sparql(&c, &client, &[("query", "SELECT * WHERE { ?s ?p ?o } LIMIT 5")], "application/sparql-results+json")
            .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = sparql(&c, &client, &[("query", "CONSTRUCT WHERE { ?s ?p ?o }")], "application/n-triples").await;
    assert_eq!(status, 400);

    // a read request's body is small; the events' may be large
    let r = client
        .post(c.url("/sparql"))
        .header("content-type", "application/sparql-query")
        .body(vec![b' '; 1024 * 1024 + 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // CORS: read endpoints answer any origin, the write endpoint none
    let origin = "https://portal.example.org";
    for (method, path) in
        [("GET", "/sparql"), ("POST", "/sparql"), ("GET", "/api/v1/datasets"), ("GET", "/fhir/ImagingStudy")]
    {
        let r = client
            .request(reqwest::Method::OPTIONS, c.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{method} {path}");
        assert!(r.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    }
    let r = client.get(c.url("/api/v1/datasets")).header("origin", origin).send().await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = client
        .request(reqwest::Method::OPTIONS, c.url("/events"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none(), "{:?}", r.headers());
    let (_, headers, _) = {
        let r = client
            .post(c.url("/events"))
            .header("origin", origin)
            .bearer_auth(provider_token(&[PROVIDER]))
            .header("content-type", "application/cloudevents+json")
            .body(serde_json::to_vec(&example("dataset.updated")).unwrap())
            .send()
            .await
            .unwrap();
        (r.status(), r.headers().clone(), ())
    };
    assert!(headers.get("access-control-allow-origin").is_none());
}
