//! Black-box, in a real browser: headless Chromium driven through chromedriver (W3C WebDriver)
//! searches the demo catalogue, filters, goes back, opens a dataset, requests access to it, and
//! takes screenshots.
//! Needs Debian's `chromium` and `chromium-driver`, which `scripts/ensure-deps.sh` installs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use serde_json::{json, Value};
use support::Cireg;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    url: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Self {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        assert!(
            std::path::Path::new(&bin).exists(),
            "this test needs chromedriver at {bin} (Debian: chromium chromium-driver; scripts/ensure-deps.sh installs them)"
        );
        let port = cireg_testkit::free_port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let chrome = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/lib/chromium/chromium".to_owned());
        let session: Value = http
            .post(format!("{url}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1400"]
            }}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
        Driver { child, url, session: id, http }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}/session/{}{path}", self.url, self.session));
        if let Some(body) = body {
            r = r.json(&body);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "{path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().unwrap().to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let v =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), None).await.as_str().unwrap().to_owned()
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/click"), Some(json!({}))).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({ "text": text }))).await;
    }

    async fn checked(&self, css: &str) -> bool {
        let e = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/property/checked"), None).await == json!(true)
    }

    /// Waits until the page's URL satisfies `f`.
    async fn wait_url(&self, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.current_url().await;
            if f(&url) {
                return url;
            }
            assert!(Instant::now() < deadline, "the browser stayed at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the text of `css` satisfies `f`.
    async fn wait_text(&self, css: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text(css).await;
            if f(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{css} stayed at {text:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        let dir = PathBuf::from(
            std::env::var("CIREG_SCREENSHOTS").unwrap_or_else(|_| "/var/tmp/cireg-screenshots".to_owned()),
        );
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        println!("screenshot: {}", path.display());
        path
    }
}

async fn api_total(c: &Cireg, query: &str) -> u64 {
    let v: Value = reqwest::get(c.url(&format!("/api/v1/datasets?{query}"))).await.unwrap().json().await.unwrap();
    v["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_person_searches_filters_opens_a_dataset_and_requests_access() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cireg::start(&dir.path().join("data"), &["--demo"]);
    c.wait_ready().await;
    let browser = Driver::start().await;

    // the landing page: figures and charts
    browser.go(&c.url("/")).await;
    assert!(browser.text("h1").await.contains("catalogue"));
    browser.screenshot("landing").await;

    // search from the landing page's box, with the keyboard
    browser.type_into("#q", "glioblastoma\u{E007}").await;
    let url = browser.wait_url(|u| u.contains("/search?")).await;
    assert!(url.contains("q=glioblastoma"), "{url}");
    let total = api_total(&c, "q=glioblastoma").await;
    assert!(total > 0);
    assert!(browser.text("#total").await.starts_with(&format!("{total} dataset")));

    // a filter applies as soon as it is ticked, and the URL holds it
    browser.click("input[name=modality][value=MR]").await;
    let url = browser.wait_url(|u| u.contains("modality=MR")).await;
    assert!(url.contains("q=glioblastoma"), "{url}");
    let filtered = api_total(&c, "q=glioblastoma&modality=MR").await;
    assert!(browser.text("#total").await.starts_with(&format!("{filtered} dataset")));
    assert!(browser.checked("input[name=modality][value=MR]").await);
    browser.screenshot("search-filtered").await;

    // the back button returns to the unfiltered search
    browser.call(reqwest::Method::POST, "/back", Some(json!({}))).await;
    browser.wait_url(|u| !u.contains("modality=MR")).await;
    assert!(browser.text("#total").await.starts_with(&format!("{total} dataset")));
    assert!(!browser.checked("input[name=modality][value=MR]").await);

    // open the first result
    let title = browser.text("ol.results li a").await;
    browser.click("ol.results li a").await;
    browser.wait_url(|u| u.contains("/datasets/")).await;
    assert_eq!(browser.text("h1").await, title);
    assert!(browser.text("main").await.contains("Requesting access"));
    browser.screenshot("dataset").await;

    // from there, a researcher requests access to it with the page's form and sees it requested
    browser.click(r#"a[href^="/access?dataset="]"#).await;
    browser.wait_url(|u| u.contains("/access?dataset=")).await;
    let token = support::test_key().key.mint(&support::token_claims("dr-browser", &[], true)).unwrap();
    browser.type_into("#token", &token).await;
    browser.click("#use").await;
    browser.wait_text("#status", |t| t.contains("0 request")).await;
    browser.type_into("#title", "Radiomics of response").await;
    browser.type_into("#description", "A model of treatment response.").await;
    browser.type_into("#ethics", "EC-2026-117").await;
    browser.click("#request button[type=submit]").await;
    browser.wait_text("#status", |t| t.contains("1 request")).await;
    let table = browser.text("#requests").await;
    assert!(table.contains("Radiomics of response") && table.contains("requested"), "{table}");
    let listed: Value = reqwest::Client::new()
        .get(c.url("/api/v1/access-requests"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["requests"][0]["title"], "Radiomics of response", "{listed}");
    assert_eq!(listed["requests"][0]["datasets"].as_array().unwrap().len(), 1);
    browser.screenshot("access").await;

    // readable on a phone
    browser.call(reqwest::Method::POST, "/window/rect", Some(json!({"width": 390, "height": 844}))).await;
    browser.go(&c.url("/search?modality=CT")).await;
    assert!(browser.text("#total").await.contains("dataset"));
    browser.screenshot("search-phone").await;
}
