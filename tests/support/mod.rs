//! Starts the real `cireg` binary (the one `cargo test` built) and talks to it over HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

pub fn cireg_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cireg")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn example(name: &str) -> Value {
    let path = repo_root().join(format!("schemas/examples/eu.cancerimage.{name}.v1.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The issuer and audience of the tests' tokens.
pub const ISSUER: &str = "https://login.test.invalid/oidc/";
pub const AUDIENCE: &str = "cireg-tests";

/// The tests' signing key (made once per test binary) and the JWKS file `cireg serve --jwks`
/// reads it from.
pub struct TestKey {
    pub key: cireg_auth::DevKey,
    pub jwks: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn test_key() -> &'static TestKey {
    static KEY: std::sync::OnceLock<TestKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = cireg_auth::DevKey::load_or_create(&dir.path().join("key.pem")).unwrap();
        let jwks = dir.path().join("jwks.json");
        key.write_jwks(&jwks).unwrap();
        TestKey { key, jwks, _dir: dir }
    })
}

/// What the tests' tokens say unless a test changes it.
pub fn token_claims(subject: &str, providers: &[&str], researcher: bool) -> cireg_auth::DevToken {
    cireg_auth::DevToken {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        subject: subject.into(),
        providers: providers.iter().map(|p| p.to_string()).collect(),
        researcher,
        all_studies: false,
        operator: false,
        visas: Vec::new(),
        claims: cireg_auth::Claims::default(),
        lifetime: Duration::from_secs(3600),
        not_before: None,
    }
}

/// A token of the tests' key that may publish for `providers`.
pub fn provider_token(providers: &[&str]) -> String {
    test_key().key.mint(&token_claims(&format!("publisher-{}", providers.join("+")), providers, false)).unwrap()
}

/// A researcher's token of the tests' key that also holds the role reading every study (the
/// tests of the study views read all of them; tests/access.rs is about who reads what).
pub fn researcher_token() -> String {
    test_key().key.mint(&cireg_auth::DevToken { all_studies: true, ..token_claims("researcher-1", &[], true) }).unwrap()
}

/// An operator's token of the tests' key (backups).
pub fn operator_token() -> String {
    test_key().key.mint(&cireg_auth::DevToken { operator: true, ..token_claims("operator-1", &[], false) }).unwrap()
}

/// A client that sends [`researcher_token`] with every request.
pub fn researcher_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", researcher_token()).parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// The provider an event's `source` names (as the registry reads it).
pub fn provider_of(event: &Value) -> String {
    event["source"]
        .as_str()
        .and_then(cireg_model::ProviderId::from_source)
        .map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A running `cireg serve`.
pub struct Cireg {
    child: Option<Child>,
    /// The public base URL the registry mints IRIs under.
    pub base: String,
    /// Where it really listens (http://127.0.0.1:port).
    pub listen: String,
    pub data: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log_file: PathBuf,
}

impl Cireg {
    /// `cireg serve --listen 127.0.0.1:0 --data <data> <extra>`, trusting the tests' token key
    /// (unless `extra` names other keys, or holds `--no-test-keys`: then no key at all); waits for
    /// the address line.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data, extra, &[])
    }

    /// As [`Cireg::start`], with `env` in the process's environment (after `CIREG_LOG=info`, so a
    /// test may change the log level too).
    pub fn start_with_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args: Vec<String> =
            vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into(), "--data".into(), data.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--jwks") && !extra.contains(&"--no-test-keys") {
            let jwks = test_key().jwks.display().to_string();
            args.extend(["--jwks".into(), jwks, "--token-issuer".into(), ISSUER.into()]);
            args.extend(["--token-audience".into(), AUDIENCE.into()]);
        }
        args.retain(|a| a != "--no-test-keys");
        let mut c = Cireg {
            child: None,
            base: String::new(),
            listen: String::new(),
            data: data.to_owned(),
            args,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log_file: data.with_extension("stderr.log"),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(&self.data).unwrap();
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_file).unwrap();
        let mut child = Command::new(cireg_bin())
            .args(&self.args)
            .env("CIREG_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cireg starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("cireg is serving on ") {
                    let base = rest.split_whitespace().next().unwrap_or_default().trim_end_matches('/').to_owned();
                    let listen = rest
                        .split("listening on ")
                        .nth(1)
                        .and_then(|r| r.split(',').next())
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send((base, listen));
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok((base, listen)) => {
                self.base = base;
                self.listen = listen;
            }
            Err(_) => panic!("cireg did not start; its log:\n{}", self.log()),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.listen)
    }

    /// The process id of the running registry.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("cireg runs").id()
    }

    /// CPU seconds (user + system) the running registry has used so far, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        cireg_testkit::process::cpu_seconds(self.pid())
    }

    /// Whether the process ended by itself.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Kills the process at once (SIGKILL): no cleanup, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops the process the polite way (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again with the same arguments (a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Waits until /readyz says the projector has caught up with the log.
    pub async fn wait_ready(&self) -> Value {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return r.json().await.unwrap();
                }
            }
            assert!(Instant::now() < deadline, "cireg never became ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts `event` with a token of the provider its `source` names.
    pub async fn post_event(&self, event: &Value) -> (u16, Value) {
        self.post_event_with(event, &provider_token(&[&provider_of(event)])).await
    }

    /// Posts `event` with `token`.
    pub async fn post_event_with(&self, event: &Value, token: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(self.url("/events"))
            .bearer_auth(token)
            .header("content-type", "application/cloudevents+json")
            .body(serde_json::to_vec(event).unwrap())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Runs a SELECT as an anonymous caller and returns the bindings of `var`, as strings.
    pub async fn select(&self, query: &str, var: &str) -> Vec<String> {
        self.select_with(reqwest::Client::new(), query, var).await
    }

    /// Runs a SELECT as a researcher.
    pub async fn select_as_researcher(&self, query: &str, var: &str) -> Vec<String> {
        self.select_with(researcher_client(), query, var).await
    }

    async fn select_with(&self, client: reqwest::Client, query: &str, var: &str) -> Vec<String> {
        let r = client
            .get(self.url("/sparql"))
            .query(&[("query", query)])
            .header("accept", "application/sparql-results+json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        v["results"]["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b[var]["value"].as_str().map(str::to_owned))
            .collect()
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let text = reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }
}

impl Drop for Cireg {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cireg <args>` to completion; returns (success, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cireg_bin()).args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The English titles of every dataset SPARQL can see.
pub const TITLES: &str =
    "SELECT ?t WHERE { ?d a <http://www.w3.org/ns/dcat#Dataset> ; <http://purl.org/dc/terms/title> ?t FILTER(langMatches(lang(?t), 'en')) } ORDER BY ?t";
