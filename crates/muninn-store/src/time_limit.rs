//! A query's time limit: the server runs each query inside `TimeLimit::scope`, and the reads of
//! blocks check it. Past the limit no further block is read and reads still running are
//! abandoned; each such block is named in the answer's unreadable blocks, so the answer is
//! partial and says why, as with a block that cannot be read. Memory (the head) is always read.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{StoreError, StoreErrorKind};

tokio::task_local! {
    static TIME_LIMIT: TimeLimit;
}

/// When a query must have its answer by, and whether its reads reached that point.
#[derive(Debug, Clone)]
pub struct TimeLimit {
    at: Instant,
    limit: Duration,
    reached: Arc<AtomicBool>,
}

impl TimeLimit {
    /// A limit of `limit` from `started` (when the query arrived, so that waiting for a place
    /// counts too).
    pub fn new(started: Instant, limit: Duration) -> Self {
        TimeLimit {
            at: started + limit,
            limit,
            reached: Arc::new(AtomicBool::new(false)),
        }
    }

    /// When the limit is reached.
    pub fn deadline(&self) -> Instant {
        self.at
    }

    /// Runs `query` with this limit on its block reads.
    pub async fn scope<F: Future>(&self, query: F) -> F::Output {
        TIME_LIMIT.scope(self.clone(), query).await
    }

    /// Whether a read was skipped or abandoned because of the limit: the answer is partial.
    pub fn reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    /// The limit of the query running in this task, if it has one.
    pub(crate) fn current() -> Option<TimeLimit> {
        TIME_LIMIT.try_with(Clone::clone).ok()
    }

    /// Whether a read starting now would start past the limit.
    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The error a block not read because of the limit is named with; notes that it was.
    pub(crate) fn not_read(&self) -> StoreError {
        self.reached.store(true, Ordering::Relaxed);
        StoreError::new(
            StoreErrorKind::TimedOut,
            format!(
                "not read: the query's time limit ({:?}) was reached",
                self.limit
            ),
        )
    }

    /// Waits for a block read until the limit; past it, abandons the read.
    pub(crate) async fn wait<T>(
        &self,
        reading: JoinHandle<Result<T, StoreError>>,
    ) -> Result<Result<T, StoreError>, tokio::task::JoinError> {
        let abort = reading.abort_handle();
        match tokio::time::timeout_at(self.at, reading).await {
            Ok(result) => result,
            Err(_) => {
                abort.abort();
                Ok(Err(self.not_read()))
            }
        }
    }
}

/// Starts `read` as a task of its own unless the running query's limit has passed, and waits
/// for it within the limit: the read's result, or the error that names a block not read.
pub(crate) fn spawn_within_limit<T, Fut, Read>(
    limit: Option<&TimeLimit>,
    read: Read,
) -> impl Future<Output = Result<T, StoreError>> + use<T, Fut, Read>
where
    Read: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
{
    let limit = limit.cloned();
    let reading = match &limit {
        Some(limit) if limit.passed() => None,
        _ => Some(tokio::spawn(read())),
    };
    async move {
        let Some(reading) = reading else {
            return Err(limit.map(|limit| limit.not_read()).unwrap_or_else(|| {
                StoreError::new(StoreErrorKind::TimedOut, "not read: the query's time limit")
            }));
        };
        let joined = match &limit {
            Some(limit) => limit.wait(reading).await,
            None => reading.await,
        };
        crate::engine::joined(joined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_past_the_limit_are_not_started_and_running_ones_are_abandoned() {
        let limit = TimeLimit::new(Instant::now(), Duration::from_millis(100));
        let (quick, slow, late) = limit
            .scope(async {
                let current = TimeLimit::current();
                let quick = spawn_within_limit(current.as_ref(), || async { Ok(1) }).await;
                let slow = spawn_within_limit(current.as_ref(), || async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(2)
                })
                .await;
                let late = spawn_within_limit(current.as_ref(), || async { Ok(3) }).await;
                (quick, slow, late)
            })
            .await;
        assert_eq!(quick.unwrap(), 1);
        for error in [slow.unwrap_err(), late.unwrap_err()] {
            assert_eq!(error.kind, StoreErrorKind::TimedOut);
            assert_eq!(
                error.message,
                "not read: the query's time limit (100ms) was reached"
            );
        }
        assert!(limit.reached());
        assert!(limit.deadline() <= Instant::now());
    }

    #[tokio::test]
    async fn without_a_limit_every_read_runs() {
        assert!(TimeLimit::current().is_none());
        let read = spawn_within_limit(None, || async { Ok("read") }).await;
        assert_eq!(read.unwrap(), "read");
    }
}
