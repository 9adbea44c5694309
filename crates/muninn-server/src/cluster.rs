//! Several nodes on one bucket (docs/scaling.md): an ingest node registers the URL where query
//! nodes ask for its head (`nodes/<node>/node.json`) and serves that head at
//! `GET /api/v1/internal/head?after=SEQ` (the store's `HeadRecords`, postcard-encoded); a query
//! node asks each ingest node for it at every refresh, with a short timeout, so that a node that
//! is down is named in the answers rather than holding them up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use muninn_store::Store;

use crate::error::ApiError;
use crate::server::{AppState, ServerConfig};

/// How long a query node waits for an ingest node's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// After the listener is bound: an ingest node with `[storage] node` registers its URL; a query
/// node gets its way of asking for heads.
pub(crate) async fn start(store: &Store, config: &ServerConfig, local_addr: SocketAddr) {
    if store.is_read_only() {
        install_head_fetcher(store, config.peer_token.clone());
        return;
    }
    let Some(blocks) = &config.store.blocks else {
        return;
    };
    let Some(node) = blocks.node.clone() else {
        return;
    };
    let url = blocks
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("http://{local_addr}"));
    if let Err(error) = store.register_node(&node, &url).await {
        tracing::warn!(%error, node, "registering this ingest node for the query nodes failed; they answer from its flushed blocks alone");
    }
}

fn install_head_fetcher(store: &Store, peer_token: Option<String>) {
    let client = match reqwest::Client::builder()
        .timeout(HEAD_TIMEOUT)
        .connect_timeout(HEAD_TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "no HTTP client for asking the ingest nodes' heads");
            return;
        }
    };
    store.set_head_fetcher(Arc::new(move |url: String, after: u64| {
        let client = client.clone();
        let peer_token = peer_token.clone();
        Box::pin(async move {
            let mut request = client
                .get(format!("{url}/api/v1/internal/head"))
                .query(&[("after", after)]);
            if let Some(token) = &peer_token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|error| error.to_string())?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("answered {status}"));
            }
            let bytes = response.bytes().await.map_err(|error| error.to_string())?;
            Ok(bytes.to_vec())
        })
    }));
}

/// `GET /api/v1/internal/head?after=SEQ`: this node's head past WAL record `SEQ`.
pub(crate) async fn head(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if state.store.is_read_only() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this node is a query node: it has no head to serve",
        ));
    }
    let after = match params.get("after") {
        None => 0,
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_field(
                "after",
                format!("after: {text:?} is not a WAL sequence number; use a whole number, like 0"),
            )
        })?,
    };
    let records = state.store.head_since(after).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the head: {error}"),
        )
    })?;
    let bytes = postcard::to_allocvec(&records).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the head: {error}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
