//! The HTTP client of the query, lineage and demo commands: builds API URLs (path segments are
//! percent-encoded), drops empty query parameters, and turns the server's error body
//! `{"error": {"message": ...}}` into an error carrying just that message.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{StatusCode, Url};
use serde_json::Value;

/// A client for one Muninn server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: Url,
    http: reqwest::Client,
}

/// How long one request may take before the command gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl ApiClient {
    /// `server` is the base URL, like `http://127.0.0.1:4320`.
    pub fn new(server: &str) -> Result<Self> {
        let base = Url::parse(server)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| anyhow!("--server: {server:?} is not a server URL; use http://HOST:PORT, like http://127.0.0.1:4320"))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient { base, http })
    }

    /// The base URL without a trailing slash, for messages and `curl` lines.
    pub fn base_url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// The URL of `segments` under the base URL; each segment is percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
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
        let url = self.url(segments);
        let query: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(name, value)| {
                value
                    .filter(|value| !value.is_empty())
                    .map(|value| (*name, value))
            })
            .collect();
        let request = self.http.get(url.clone()).query(&query);
        self.answer(&url, request).await
    }

    /// POST of a prepared body; `content_encoding` is e.g. `gzip`.
    pub async fn post(
        &self,
        segments: &[&str],
        body: Vec<u8>,
        content_encoding: Option<&str>,
    ) -> Result<Value> {
        let url = self.url(segments);
        let mut request = self
            .http
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body);
        if let Some(encoding) = content_encoding {
            request = request.header("content-encoding", encoding);
        }
        let text = self.answer(&url, request).await?;
        serde_json::from_str(&text).with_context(|| format!("the answer of {url} is not JSON"))
    }

    async fn answer(&self, url: &Url, request: reqwest::RequestBuilder) -> Result<String> {
        let response = request.send().await.map_err(|error| {
            anyhow!(
                "cannot reach muninn at {}: {}; is `muninn serve` running there? (set --server or MUNINN_SERVER)",
                self.base_url(),
                error_chain(&error)
            )
        })?;
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
