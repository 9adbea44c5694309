//! The memory request bodies may hold at once (`max_body_memory`): an ingest request reserves
//! its body's size (its `Content-Length`, or the body limit when it has none) before the body
//! is read, and its decompressed size before it is decoded, and keeps both until its spans are
//! appended (from then on the store's `memory_limit` counts them). Past the budget a request
//! waits for others to finish, and after the store's `max_append_wait` is refused with `503`
//! and `Retry-After`: nothing of it was acknowledged.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Reservations are counted in units of this many bytes (a semaphore counts in `u32`s).
const UNIT_BYTES: u64 = 1024;

/// The bytes all request bodies in flight may hold.
pub(crate) struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: u32,
    total_bytes: u64,
    wait: Duration,
}

/// What one request holds of the budget; given back when dropped.
pub(crate) struct BodyReservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    /// A budget of `total_bytes` (at least one unit); a reservation waits at most `wait`.
    pub(crate) fn new(total_bytes: u64, wait: Duration) -> BodyBudget {
        let total_units = u32::try_from(total_bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        BodyBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            total_bytes,
            wait,
        }
    }

    /// The bytes request bodies hold now.
    pub(crate) fn held_bytes(&self) -> u64 {
        let free = self.units.available_permits() as u64;
        u64::from(self.total_units).saturating_sub(free) * UNIT_BYTES
    }

    /// The budget, in bytes.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// An empty reservation, to grow.
    pub(crate) fn none() -> BodyReservation {
        BodyReservation { permit: None }
    }

    /// Adds `bytes` to `reservation`, waiting for room; a body larger than the whole budget
    /// takes all of it. Refused with `503` when no room is made within the wait.
    pub(crate) async fn reserve(
        &self,
        reservation: &mut BodyReservation,
        bytes: u64,
    ) -> Result<(), ApiError> {
        let units = u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .min(self.total_units);
        if units == 0 {
            return Ok(());
        }
        let acquired =
            tokio::time::timeout(self.wait, self.units.clone().acquire_many_owned(units)).await;
        let permit = match acquired {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is stopping; retry shortly",
                ));
            }
            Err(_elapsed) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "request bodies in flight hold {} MiB of the {} MiB they may hold \
                         (max_body_memory); retry shortly",
                        self.held_bytes() >> 20,
                        self.total_bytes >> 20
                    ),
                ));
            }
        };
        match &mut reservation.permit {
            Some(held) => held.merge(permit),
            None => reservation.permit = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_are_refused_when_none_is_made() {
        let budget = BodyBudget::new(10 * 1024, Duration::from_millis(50));
        let mut first = BodyBudget::none();
        budget.reserve(&mut first, 6 * 1024).await.unwrap();
        budget.reserve(&mut first, 1).await.unwrap();
        assert_eq!(budget.held_bytes(), 7 * 1024, "counted in whole KiB");

        let mut second = BodyBudget::none();
        let refused = budget.reserve(&mut second, 4 * 1024).await.unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            refused.message.contains("max_body_memory"),
            "{}",
            refused.message
        );

        drop(first);
        assert_eq!(budget.held_bytes(), 0);
        budget.reserve(&mut second, 4 * 1024).await.unwrap();
        drop(second);
        let mut huge = BodyBudget::none();
        budget.reserve(&mut huge, 1 << 30).await.unwrap();
        assert_eq!(
            budget.held_bytes(),
            10 * 1024,
            "a body larger than the budget takes all of it"
        );
    }
}
