//! Limits on queries: at most `max_concurrent_queries` run at once, as many again times four
//! wait in line for a place (beyond that, `503` with `Retry-After`), and each has
//! `query_timeout` from its arrival, waiting included. Past it, the store reads no further
//! block and abandons the reads still running (`muninn_store::TimeLimit`): the answer is what
//! was read, partial and saying so (the blocks not read are named where the answer names
//! unreadable blocks, and the `Muninn-Partial: time-limit` header is set). A query whose own
//! work still runs at twice its limit is stopped with `503`.
//!
//! Queries are the `GET` routes that read stored data; `/healthz`, `/metrics`, the OpenAPI
//! document, the SDKs' sampling routes and the peers' head route are never held back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use muninn_store::TimeLimit;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::server::AppState;

/// The header that marks an answer cut short by its time limit.
pub(crate) const PARTIAL_HEADER: &str = "muninn-partial";

/// How many queries run and wait, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    pub max_concurrent_queries: usize,
    pub query_timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_concurrent_queries: 16,
            query_timeout: Duration::from_secs(30),
        }
    }
}

/// Queries waiting in line, per place.
const QUEUED_PER_PLACE: usize = 4;

/// The places queries run in, and the line before them.
pub(crate) struct QueryLimiter {
    limits: QueryLimits,
    places: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Why a query was not run.
enum Refused {
    /// The line is full.
    Busy,
    /// No place came free within the query's time limit.
    Waited,
}

impl QueryLimiter {
    pub(crate) fn new(limits: QueryLimits) -> Self {
        QueryLimiter {
            limits,
            places: Arc::new(Semaphore::new(limits.max_concurrent_queries.max(1))),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A place for a query whose time limit is `limit`: at once, or after waiting in line.
    async fn place(&self, limit: &TimeLimit) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = self.places.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let max_waiting = self.limits.max_concurrent_queries.max(1) * QUEUED_PER_PLACE;
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Busy);
        }
        let waited =
            tokio::time::timeout_at(limit.deadline(), self.places.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::Waited),
        }
    }

    /// Queries running now.
    fn running(&self) -> usize {
        self.limits.max_concurrent_queries.max(1) - self.places.available_permits()
    }
}

/// Whether `request` is a query that the limits apply to.
fn is_limited(request: &Request) -> bool {
    if request.method() != Method::GET {
        return false;
    }
    let path = request.uri().path();
    !(path == "/healthz"
        || path == "/metrics"
        || path == "/api/v1/openapi.yaml"
        || path.starts_with("/api/v1/sampling/")
        || path.starts_with("/api/v1/internal/"))
}

/// The middleware: a place, then the query within its time limit.
pub(crate) async fn limit_queries(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_limited(&request) {
        return next.run(request).await;
    }
    let limiter = &state.queries;
    let timeout = limiter.limits.query_timeout;
    let limit = TimeLimit::new(Instant::now(), timeout);
    let metrics = &state.metrics.limits;
    let _place = match limiter.place(&limit).await {
        Ok(place) => place,
        Err(refused) => {
            let (reason, message) = match refused {
                Refused::Busy => (
                    "busy",
                    format!(
                        "too many queries at once: {} run (max_concurrent_queries) and {} wait; \
                         retry shortly",
                        limiter.running(),
                        limiter.limits.max_concurrent_queries.max(1) * QUEUED_PER_PLACE
                    ),
                ),
                Refused::Waited => (
                    "waited",
                    format!(
                        "no query place came free within the query time limit ({timeout:?}, \
                         query_timeout); retry shortly"
                    ),
                ),
            };
            metrics
                .queries_refused
                .get_or_create(&vec![("reason".to_string(), reason.to_string())])
                .inc();
            let mut response =
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(1));
            return response;
        }
    };
    metrics.queries_running.inc();
    let stop_at = limit.deadline() + timeout;
    let answered = tokio::time::timeout_at(stop_at, limit.scope(next.run(request))).await;
    metrics.queries_running.dec();
    match answered {
        Ok(mut response) => {
            if limit.reached() {
                metrics.query_time_limits.inc();
                response
                    .headers_mut()
                    .insert(PARTIAL_HEADER, HeaderValue::from_static("time-limit"));
            }
            response
        }
        Err(_) => {
            metrics.query_time_limits.inc();
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the query was stopped at twice its time limit ({timeout:?}, query_timeout): \
                     narrow it (a shorter time range, fewer results) or raise query_timeout"
                ),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_line_is_refused_and_a_wait_ends_at_the_time_limit() {
        let limiter = QueryLimiter::new(QueryLimits {
            max_concurrent_queries: 1,
            query_timeout: Duration::from_millis(50),
        });
        let limit = || TimeLimit::new(Instant::now(), Duration::from_millis(50));
        let first = limiter.place(&limit()).await.ok().expect("a free place");
        assert_eq!(limiter.running(), 1);
        // Four wait in line; the fifth is refused at once.
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit();
                let limiter = &limiter;
                async move { limiter.place(&limit).await }
            })
            .collect();
        let refused = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            matches!(limiter.place(&limit()).await, Err(Refused::Busy))
        };
        let (waited, busy) = tokio::join!(futures::future::join_all(waiting), refused);
        assert!(busy, "the fifth in line is refused");
        assert!(
            waited
                .iter()
                .all(|result| matches!(result, Err(Refused::Waited))),
            "no place came free within their limit"
        );
        drop(first);
        assert!(
            limiter.place(&limit()).await.is_ok(),
            "a freed place is taken"
        );
    }
}
