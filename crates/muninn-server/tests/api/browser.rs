//! A real browser for the UI's tests: Debian's `chromium`, headless, driven over WebDriver by
//! its `chromedriver` (started here on a loopback port and stopped with the value). Paths come
//! from `MUNINN_CHROMIUM` and `MUNINN_CHROMEDRIVER` (scripts/browser.sh sets them), else
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`; a missing browser fails the test, it never
//! skips. Pages say they are ready with `data-ready` on `<main>`; the time they took is printed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The rules of a `GET /api/v1/sampling/rules` answer as (id, rate).
pub fn sampling_rules(answer: &Value) -> Vec<(String, f64)> {
    answer["rules"]
        .as_array()
        .expect("rules are a list")
        .iter()
        .map(|rule| {
            (
                rule["id"].as_str().unwrap_or_default().to_owned(),
                rule["rate"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// Longest wait for a page or an element (a loaded CI machine is slow, never this slow).
const WAIT: Duration = Duration::from_secs(30);

pub struct Browser {
    pub client: Client,
    driver: Child,
    pub base_url: String,
}

fn tool(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium and chromium-driver (bash scripts/test.sh does) or set {variable}"
    );
    path
}

impl Browser {
    /// A headless chromium at 1280×800 (or `width`×`height`) looking at `base_url`.
    pub async fn open(base_url: &str, width: u32, height: u32) -> Browser {
        let chromium = tool("MUNINN_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("MUNINN_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--lang=en-US", format!("--window-size={width},{height}")],
            }),
        );
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(error) if started.elapsed() < WAIT => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    panic!("chromedriver on port {port} did not start a session: {error}")
                }
            }
        };
        // Headless windows count the browser's frame in; make the viewport the size asked for.
        let inner: Value = client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap();
        let (inner_width, inner_height) = (
            inner[0].as_u64().unwrap_or(u64::from(width)) as u32,
            inner[1].as_u64().unwrap_or(u64::from(height)) as u32,
        );
        client
            .set_window_size(
                width + width.saturating_sub(inner_width),
                height + height.saturating_sub(inner_height),
            )
            .await
            .unwrap();
        Browser {
            client,
            driver,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Loads `path` and waits until the page `page` is ready; returns the milliseconds from the
    /// navigation's start to ready (what a user waits for), and prints them.
    pub async fn visit(&self, path: &str, page: &str) -> f64 {
        self.client
            .goto(&format!("{}{path}", self.base_url))
            .await
            .unwrap();
        self.until_ready(page).await;
        let ms = self.ready_ms("sinceLoad").await;
        report(&format!(
            "time to interactive: {path} ({page}, loaded) {ms:.0} ms"
        ));
        ms
    }

    /// Waits until `<main data-ready>` names `page` after an in-page navigation, and prints
    /// the milliseconds from the navigation to ready.
    pub async fn wait_ready(&self, page: &str) {
        self.until_ready(page).await;
        let ms = self.ready_ms("ms").await;
        let path = self.path().await;
        report(&format!(
            "time to interactive: {path} ({page}, in-page navigation) {ms:.0} ms"
        ));
    }

    async fn ready_ms(&self, which: &str) -> f64 {
        let ms: Value = self
            .client
            .execute(
                &format!("return window.muninnReady && window.muninnReady.{which};"),
                vec![],
            )
            .await
            .unwrap();
        ms.as_f64().unwrap_or(f64::NAN)
    }

    async fn until_ready(&self, page: &str) {
        let started = Instant::now();
        loop {
            let ready: Value = self
                .client
                .execute(
                    "const main = document.getElementById('main'); return main && main.dataset.ready || null;",
                    vec![],
                )
                .await
                .unwrap();
            if ready.as_str() == Some(page) {
                return;
            }
            if started.elapsed() > WAIT {
                let text = self.main_text().await;
                panic!("page {page} not ready (data-ready {ready}): {text}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css}: {error}"))
    }

    /// Clicks the first element matching `css`, waiting for it to appear.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("clicking {css}: {error}"));
    }

    /// Every element matching `css` now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// The visible text of `<main>`.
    pub async fn main_text(&self) -> String {
        match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until `<main>`'s text contains `text`.
    pub async fn wait_for_text(&self, text: &str) {
        let started = Instant::now();
        loop {
            let now = self.main_text().await;
            if now.contains(text) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{text:?} never appeared; the page says: {now}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The lineage's drawn nodes and how many pairs of them overlap on screen.
    pub async fn overlapping_nodes(&self) -> (u64, u64) {
        let drawn: Value = self
            .client
            .execute(
                r#"const boxes = [...document.querySelectorAll("a[data-node]")].map((a) => a.getBoundingClientRect());
let overlapping = 0;
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const [a, b] = [boxes[i], boxes[j]];
  if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlapping++;
}
return [boxes.length, overlapping];"#,
                vec![],
            )
            .await
            .unwrap();
        (drawn[0].as_u64().unwrap(), drawn[1].as_u64().unwrap())
    }

    /// On the sampling page: a rule for `service` at a bad rate is refused with the error next
    /// to its field; then it is created at 50%, edited to 25% and deleted, each change checked
    /// in the API's rules (`rules` reads them as (id, rate)). Takes a screenshot once the
    /// error shows when `screenshot` names one.
    pub async fn sampling_rule_round_trip<F, Fut>(
        &self,
        service: &str,
        screenshot: Option<&str>,
        rules: F,
    ) where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Vec<(String, f64)>>,
    {
        self.click(r#"header nav a[href="/sampling"]"#).await;
        self.wait_ready("sampling").await;
        let field = |name: &'static str| async move {
            self.find(&format!(r#".rule-form input[name="{name}"]"#))
                .await
        };
        field("id").await.send_keys("ui-test").await.unwrap();
        field("service").await.send_keys(service).await.unwrap();
        field("rate").await.send_keys("2").await.unwrap();
        self.click(".rule-form button[type=submit]").await;
        let error = self
            .find(r#".rule-form [data-field="rate"] .field-error"#)
            .await;
        assert!(error.text().await.unwrap().contains("rate"));
        if let Some(name) = screenshot {
            self.screenshot(name).await;
        }
        field("rate").await.clear().await.unwrap();
        field("rate").await.send_keys("0.5").await.unwrap();
        self.click(".rule-form button[type=submit]").await;
        self.wait_for_text("ui-test").await;
        self.wait_ready("sampling").await;
        assert!(rules().await.contains(&("ui-test".to_owned(), 0.5)));
        self.click(r#"a[href="/sampling?edit=ui-test"]"#).await;
        self.wait_for_text("Edit rule ui-test").await;
        field("rate").await.clear().await.unwrap();
        field("rate").await.send_keys("0.25").await.unwrap();
        self.click(".rule-form button[type=submit]").await;
        self.wait_for_text("25%").await;
        assert!(rules().await.contains(&("ui-test".to_owned(), 0.25)));
        self.click(r#"button.danger[data-rule="ui-test"]"#).await;
        self.client.accept_alert().await.unwrap();
        let started = Instant::now();
        while rules().await.iter().any(|(id, _)| id == "ui-test") {
            assert!(started.elapsed() < WAIT, "the rule was not deleted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The lowest contrast ratio (WCAG 2) of any visible text on the page against the
    /// background behind it, with the element it belongs to. Text in SVG and canvas (charts,
    /// the graph) is left out: its colours are checked by eye in the screenshots.
    pub async fn lowest_text_contrast(&self) -> (f64, String) {
        let answer: Value = self
            .client
            .execute(
                r#"
const parse = (colour) => {
  const m = colour.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const [r, g, b, a = 1] = m[1].split(",").map(Number);
  return { r, g, b, a };
};
const luminance = ({ r, g, b }) => {
  const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
};
const background = (element) => {
  for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
    const colour = parse(getComputedStyle(node).backgroundColor);
    if (colour && colour.a > 0.5) return colour;
  }
  return { r: 255, g: 255, b: 255, a: 1 };
};
let worst = [21, ""];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let text = walker.nextNode(); text; text = walker.nextNode()) {
  const element = text.parentElement;
  if (!text.textContent.trim() || !element || element.closest("svg, canvas, noscript, .visually-hidden, .skip")) continue;
  const style = getComputedStyle(element);
  const box = element.getBoundingClientRect();
  if (style.visibility === "hidden" || style.display === "none" || box.width === 0 || box.height === 0) continue;
  const fg = parse(style.color);
  if (!fg) continue;
  const [l1, l2] = [luminance(fg), luminance(background(element))].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  if (ratio < worst[0]) worst = [ratio, `${element.tagName.toLowerCase()}.${element.className}: ${text.textContent.trim().slice(0, 40)}`];
}
return worst;
"#,
                vec![],
            )
            .await
            .unwrap();
        (
            answer[0].as_f64().unwrap_or(0.0),
            answer[1].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Writes a PNG of the viewport to `docs/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Writes a line to the test process's standard error directly, past the test harness's
/// capture (which keeps `println!` of passing tests to itself), so that the times show in the
/// test command's output.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `docs/screenshots` of the workspace: the folder the README names.
pub fn screenshots_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}
