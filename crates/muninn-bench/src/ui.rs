//! The browser UI's time to interactive with the benchmark's data stored: Debian's chromium,
//! headless, driven through its chromedriver, loads each page `visits` times (rotating over
//! the workload's event types, services, streams and sampled events), and the time from the
//! navigation's start to the page's ready mark (`window.muninnReady.sinceLoad`, set when the
//! page has drawn its answer) is summarized per page.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::report::LatencySummary;
use crate::workload::{EVENT_TYPES, SERVICES, STREAMS, Sample};

/// One page's times.
pub(crate) struct PageTimes {
    pub page: &'static str,
    pub example: String,
    pub times: LatencySummary,
}

/// The longest a page may take before the run fails (a page that never says it is ready).
const PAGE_LIMIT: Duration = Duration::from_secs(30);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn executable(variable: &str, default: &str) -> anyhow::Result<String> {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    if !std::path::Path::new(&path).exists() {
        bail!(
            "{path} is missing: `bash scripts/browser.sh` installs chromium and chromium-driver (or set {variable}); `--ui-visits 0` skips this phase"
        );
    }
    Ok(path)
}

async fn open(width: u32, height: u32) -> anyhow::Result<(Client, Driver)> {
    let chromium = executable("MUNINN_CHROMIUM", "/usr/bin/chromium")?;
    let chromedriver = executable("MUNINN_CHROMEDRIVER", "/usr/bin/chromedriver")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?,
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--no-first-run", format!("--window-size={width},{height}")],
        }),
    );
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return Ok((client, driver)),
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => bail!("chromedriver did not start a session: {error}"),
        }
    }
}

/// Loads `url` and returns the milliseconds to the page's ready mark; an error page or no mark
/// within `PAGE_LIMIT` is an error naming the page.
async fn time_page(client: &Client, url: &str, page: &str) -> anyhow::Result<Duration> {
    client
        .goto(url)
        .await
        .with_context(|| format!("loading {url}"))?;
    let started = Instant::now();
    loop {
        let ready: Value = client
            .execute(
                "return window.muninnReady ? [window.muninnReady.page, window.muninnReady.sinceLoad] : null;",
                vec![],
            )
            .await?;
        if let Some(mark) = ready.as_array() {
            let shown = mark.first().and_then(Value::as_str).unwrap_or_default();
            if shown == page {
                let ms = mark.get(1).and_then(Value::as_f64).unwrap_or(f64::NAN);
                return Ok(Duration::from_secs_f64(ms / 1000.0));
            }
            if shown == "error" {
                let text: Value = client
                    .execute("return document.getElementById('main').innerText;", vec![])
                    .await?;
                bail!(
                    "{url} showed an error: {}",
                    text.as_str().unwrap_or_default()
                );
            }
        }
        if started.elapsed() > PAGE_LIMIT {
            bail!("{url} never said it was ready as page {page}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Visits every page `visits` times at 1280×800 against `base_url`.
pub(crate) async fn run(
    base_url: &str,
    samples: &[Sample],
    visits: usize,
) -> anyhow::Result<Vec<PageTimes>> {
    let (client, _driver) = open(1280, 800).await?;
    let base = base_url.trim_end_matches('/');
    // Trace ids: the traces of sampled journeys, read through the API from a page of the
    // server's own origin (a blank page may not fetch).
    client.goto(&format!("{base}/ui/favicon.svg")).await?;
    let mut traces = Vec::new();
    for sample in samples.iter().take(visits.max(1)) {
        let answer: Value = client
            .execute(
                "return fetch(arguments[0]).then((r) => r.json()).then((j) => j.traces[0]);",
                vec![json!(format!("/api/v1/events/{}", sample.event_id))],
            )
            .await?;
        if let Some(trace) = answer.as_str() {
            traces.push(trace.to_owned());
        }
    }
    let nth = |names: &[String], index: usize| names[index % names.len().max(1)].clone();
    let owned = |names: &[&str]| {
        names
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<Vec<_>>()
    };
    let event_types = owned(&EVENT_TYPES.map(|event_type| event_type.name));
    let services = owned(&SERVICES);
    let streams = owned(&STREAMS.map(|stream| stream.name));
    let events: Vec<String> = samples
        .iter()
        .map(|sample| sample.event_id.clone())
        .collect();
    if events.is_empty() || traces.is_empty() {
        bail!("no sampled event to open");
    }
    type PathOf<'a> = Box<dyn Fn(usize) -> String + 'a>;
    let pages: Vec<(&'static str, PathOf<'_>)> = vec![
        ("lineage", Box::new(|_| "/".to_owned())),
        (
            "event-type",
            Box::new(|index| format!("/event-types/{}", nth(&event_types, index))),
        ),
        (
            "service",
            Box::new(|index| format!("/services/{}", nth(&services, index))),
        ),
        (
            "stream",
            Box::new(|index| format!("/streams/{}", nth(&streams, index))),
        ),
        (
            "journey",
            Box::new(|index| format!("/events/{}", nth(&events, index))),
        ),
        (
            "trace",
            Box::new(|index| format!("/traces/{}", nth(&traces, index))),
        ),
        (
            "search",
            Box::new(|index| {
                format!(
                    "/search?service={}&lookback=1h&limit=20",
                    nth(&services, index)
                )
            }),
        ),
        ("sampling", Box::new(|_| "/sampling".to_owned())),
    ];
    let mut results = Vec::new();
    for (page, path_of) in &pages {
        let mut times = Vec::with_capacity(visits);
        for index in 0..visits {
            let url = format!("{base}{}", path_of(index));
            times.push(time_page(&client, &url, page).await?);
        }
        results.push(PageTimes {
            page,
            example: path_of(0),
            times: LatencySummary::of(times),
        });
    }
    let _ = client.close().await;
    Ok(results)
}
