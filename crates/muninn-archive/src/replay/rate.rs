//! The replay's rate limit: a token bucket refilled at `rate` tokens a second that holds at
//! most 50 ms worth (at least one), so sends are spread evenly instead of bursting at the top
//! of each second, and high rates need not sleep between every two messages.

use std::time::Duration;

use tokio::time::Instant;

const MAX_SAVED: Duration = Duration::from_millis(50);

pub(crate) struct RateLimit {
    /// Time one token takes to refill.
    interval: Duration,
    /// How far `next` may lag behind now: the tokens the bucket can hold, as time.
    saved: Duration,
    /// When the next token is due; earlier than now while tokens are saved up.
    next: Instant,
}

impl RateLimit {
    /// At most `per_second` tokens a second (must be above zero).
    pub fn new(per_second: u32) -> RateLimit {
        let interval = Duration::from_secs(1) / per_second.max(1);
        RateLimit {
            interval,
            saved: MAX_SAVED.saturating_sub(interval),
            next: Instant::now(),
        }
    }

    /// Waits for a token and takes it.
    pub async fn acquire(&mut self) {
        let now = Instant::now();
        if let Some(oldest) = now.checked_sub(self.saved)
            && self.next < oldest
        {
            self.next = oldest;
        }
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next += self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lower bounds only: a loaded machine may be slower, never faster.
    #[tokio::test]
    async fn the_rate_is_held_and_a_pause_saves_up_50_ms_worth_at_most() {
        let mut limit = RateLimit::new(200);
        let start = Instant::now();
        for _ in 0..101 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        // After a pause, 10 tokens (50 ms at 200/s) go at once, the next 10 at 5 ms each.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        for _ in 0..21 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "{:?}",
            start.elapsed()
        );
    }
}
