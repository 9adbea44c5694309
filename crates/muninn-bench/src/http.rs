//! The benchmark's HTTP/1.1 client, kept as cheap as possible because it shares two cores
//! with the server: by default one bare hyper connection per sender (no pool, no middleware,
//! bodies sent without copying); `--client reqwest` uses reqwest instead, to compare what the
//! client costs.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// `Bearer TOKEN`, sent with every request once `--auth` set it.
static BEARER: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();

/// Makes every request of the run carry `token` (`--auth`).
pub(crate) fn send_token(token: &str) -> anyhow::Result<()> {
    let value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    BEARER
        .set(value)
        .map_err(|_| anyhow::anyhow!("the bench's token is set once"))
}

/// Which client library the senders use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientKind {
    Hyper,
    Reqwest,
}

/// One keep-alive connection to the server.
pub(crate) enum Connection {
    Hyper {
        sender: SendRequest<Full<Bytes>>,
        host: HeaderValue,
    },
    Reqwest {
        client: reqwest::Client,
        base_url: String,
    },
}

/// Status and body of a response.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Connection {
    /// Connects; hyper's connection task runs on the current runtime.
    pub(crate) async fn open(kind: ClientKind, address: SocketAddr) -> anyhow::Result<Connection> {
        match kind {
            ClientKind::Hyper => {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .with_context(|| format!("connecting to {address}"))?;
                stream.set_nodelay(true)?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .with_context(|| format!("HTTP handshake with {address}"))?;
                tokio::spawn(async move {
                    // An error here surfaces as an error of the next request.
                    let _ = connection.await;
                });
                Ok(Connection::Hyper {
                    sender,
                    host: HeaderValue::from_str(&address.to_string())?,
                })
            }
            ClientKind::Reqwest => {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .build()
                    .context("building the reqwest client")?;
                Ok(Connection::Reqwest {
                    client,
                    base_url: format!("http://{address}"),
                })
            }
        }
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post_json(&mut self, path: &str, body: Bytes) -> anyhow::Result<Answer> {
        self.post(path, "application/json", None, body).await
    }

    /// `POST path` with a body of `content_type`, sent as `content_encoding` (e.g. `gzip`)
    /// when given.
    pub(crate) async fn post(
        &mut self,
        path: &str,
        content_type: &'static str,
        content_encoding: Option<&'static str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        self.send(
            Method::POST,
            path,
            Some(content_type),
            content_encoding,
            body,
        )
        .await
    }

    /// `GET path` (path and query).
    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.send(Method::GET, path, None, None, Bytes::new()).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        content_encoding: Option<&'static str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        match self {
            Connection::Hyper { sender, host } => {
                let mut request = Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .header(HOST, host.clone());
                if let Some(content_type) = content_type {
                    request = request.header(CONTENT_TYPE, content_type);
                }
                if let Some(content_encoding) = content_encoding {
                    request = request.header(CONTENT_ENCODING, content_encoding);
                }
                if let Some(bearer) = BEARER.get() {
                    request = request.header(AUTHORIZATION, bearer.clone());
                }
                let request = request
                    .body(Full::new(body))
                    .with_context(|| format!("building {method} {path}"))?;
                sender.ready().await.context("the connection closed")?;
                let response = sender
                    .send_request(request)
                    .await
                    .with_context(|| format!("{method} {path}"))?;
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .with_context(|| format!("reading {method} {path}"))?
                    .to_bytes();
                Ok(Answer { status, body })
            }
            Connection::Reqwest { client, base_url } => {
                let url = format!("{base_url}{path}");
                let mut request = match (method == Method::POST, content_type) {
                    (true, Some(content_type)) => client
                        .post(&url)
                        .header(CONTENT_TYPE, content_type)
                        .body(body),
                    (true, None) => client.post(&url).body(body),
                    (false, _) => client.get(&url),
                };
                if let Some(content_encoding) = content_encoding {
                    request = request.header(CONTENT_ENCODING, content_encoding);
                }
                if let Some(bearer) = BEARER.get() {
                    request = request.header(AUTHORIZATION, bearer.clone());
                }
                let response = request
                    .send()
                    .await
                    .with_context(|| format!("{method} {path}"))?;
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .await
                    .with_context(|| format!("reading {method} {path}"))?;
                Ok(Answer { status, body })
            }
        }
    }
}
