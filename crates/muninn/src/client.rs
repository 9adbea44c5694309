//! The HTTP client of the query, lineage and demo commands: builds API URLs (path segments are
//! percent-encoded), drops empty query parameters, and turns the server's error body
//! `{"error": {"message": ...}}` into an error carrying just that message. `--server` may name
//! several servers, comma-separated (query nodes, or nodes behind no load balancer): a request
//! that cannot reach one goes to the next (a POST only when the connection was never made, so
//! that nothing is sent twice), and the one that answered is asked first from then on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{StatusCode, Url};
use serde_json::Value;

/// A client for a Muninn server, or several that answer alike.
#[derive(Debug, Clone)]
pub struct ApiClient {
    bases: Vec<Url>,
    /// The server asked first: the last one that answered.
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
}

/// The certificates of a PEM file, or an error naming `--ca-cert` and the file.
fn read_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let pem =
        std::fs::read(path).with_context(|| format!("--ca-cert: reading {}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|certificates| !certificates.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "--ca-cert: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            )
        })?;
    Ok(certificates)
}

/// How long one request may take before the command gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl ApiClient {
    /// The servers of `--server`, sending `--token` when given and trusting `--ca-cert`.
    pub fn connect(server: &crate::server_args::ServerArg) -> Result<Self> {
        Self::with_options(
            &server.server,
            server.token.as_deref(),
            server.ca_cert.as_deref(),
        )
    }

    /// `server` is the base URL, like `http://127.0.0.1:4320`, or several separated by commas.
    pub fn new(server: &str) -> Result<Self> {
        Self::with_options(server, None, None)
    }

    /// As `new`, sending `Authorization: Bearer TOKEN` with every request, and trusting the
    /// certificates of the PEM file `ca_cert` for `https://` servers besides the system's.
    pub fn with_options(
        server: &str,
        token: Option<&str>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Self> {
        let bases = server
            .split(',')
            .map(|one| {
                let one = one.trim();
                Url::parse(one)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
                    .ok_or_else(|| anyhow!("--server: {one:?} is not a server URL; use http://HOST:PORT or https://HOST:PORT, like http://127.0.0.1:4320, or several separated by commas"))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .map_err(|_| {
                        anyhow!(
                            "--token: a token is printable ASCII, as `muninn token new` prints it"
                        )
                    })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .default_headers(headers);
        if let Some(path) = ca_cert {
            for certificate in read_certificates(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(ApiClient {
            bases,
            current: Arc::new(AtomicUsize::new(0)),
            http,
        })
    }

    /// The base URL asked first, without a trailing slash, for messages and `curl` lines.
    pub fn base_url(&self) -> String {
        self.base_at(self.current.load(Ordering::Relaxed))
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }

    fn base_at(&self, index: usize) -> &Url {
        &self.bases[index % self.bases.len()]
    }

    /// The URL of `segments` under the base URL asked first; each segment is percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        self.url_at(self.current.load(Ordering::Relaxed), segments)
    }

    fn url_at(&self, index: usize, segments: &[&str]) -> Url {
        let mut url = self.base_at(index).clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// GET returning JSON.
    pub async fn get_json(
        &self,
        segments: &[&str],
        query: &[(&str, Option<&str>)],
    ) -> Result<Value> {
        let text = self.get_text(segments, query).await?;
        serde_json::from_str(&text)
            .with_context(|| format!("the answer of {} is not JSON", self.url(segments)))
    }

    /// GET returning text (Mermaid, DOT).
    pub async fn get_text(
        &self,
        segments: &[&str],
        query: &[(&str, Option<&str>)],
    ) -> Result<String> {
        let query: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(name, value)| {
                value
                    .filter(|value| !value.is_empty())
                    .map(|value| (*name, value))
            })
            .collect();
        self.answer(segments, false, |url| self.http.get(url).query(&query))
            .await
    }

    /// POST of a prepared body; `content_encoding` is e.g. `gzip`.
    pub async fn post(
        &self,
        segments: &[&str],
        body: Vec<u8>,
        content_encoding: Option<&str>,
    ) -> Result<Value> {
        let text = self
            .answer(segments, true, |url| {
                let request = self
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                match content_encoding {
                    Some(encoding) => request.header("content-encoding", encoding),
                    None => request,
                }
            })
            .await?;
        serde_json::from_str(&text)
            .with_context(|| format!("the answer of {} is not JSON", self.url(segments)))
    }

    /// Sends the request `make` builds for each server in turn, from the one asked first,
    /// until one is reached (with `only_unconnected`, only past servers it could not connect
    /// to); its answer's text, or an error naming every server tried.
    async fn answer(
        &self,
        segments: &[&str],
        only_unconnected: bool,
        make: impl Fn(Url) -> reqwest::RequestBuilder,
    ) -> Result<String> {
        let first = self.current.load(Ordering::Relaxed);
        let mut unreachable = Vec::new();
        let mut reached = None;
        for step in 0..self.bases.len() {
            let index = (first + step) % self.bases.len();
            let url = self.url_at(index, segments);
            match make(url.clone()).send().await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    reached = Some((url, response));
                    break;
                }
                Err(error) => {
                    let base = self
                        .base_at(index)
                        .as_str()
                        .trim_end_matches('/')
                        .to_string();
                    unreachable.push(format!("{base}: {}", error_chain(&error)));
                    if only_unconnected && !error.is_connect() {
                        break;
                    }
                }
            }
        }
        let Some((url, response)) = reached else {
            bail!(
                "cannot reach muninn at {}; is `muninn serve` running there? (set --server or \
                 MUNINN_SERVER)",
                unreachable.join("; ")
            );
        };
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        if status.is_success() {
            return Ok(text);
        }
        bail!("{}", server_message(status, &text))
    }
}

/// The `error.message` of an error body, or the status and the start of the body.
fn server_message(status: StatusCode, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    match parsed
        .as_ref()
        .and_then(|value| value.pointer("/error/message"))
        .and_then(Value::as_str)
    {
        Some(message) => message.to_string(),
        None => {
            let excerpt: String = body.chars().take(200).collect();
            format!("the server answered {status}: {excerpt}")
        }
    }
}

/// reqwest's top-level message is vague ("error sending request"); the cause says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_under_the_base_path() {
        let client = ApiClient::new("http://127.0.0.1:4320/muninn/").unwrap();
        let url = client.url(&["api", "v1", "event-types", "order placed/v2", "producers"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4320/muninn/api/v1/event-types/order%20placed%2Fv2/producers"
        );
    }

    #[test]
    fn a_bad_server_url_says_what_is_valid() {
        let error = ApiClient::new("localhost:4320").unwrap_err().to_string();
        assert!(error.contains("http://HOST:PORT"), "{error}");
    }

    #[test]
    fn the_server_error_message_is_kept_alone() {
        let body = r#"{"error":{"status":404,"message":"no span carries event id \"x\""}}"#;
        assert_eq!(
            server_message(StatusCode::NOT_FOUND, body),
            "no span carries event id \"x\""
        );
        assert_eq!(
            server_message(StatusCode::BAD_GATEWAY, "oops"),
            "the server answered 502 Bad Gateway: oops"
        );
    }
}
