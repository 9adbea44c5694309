//! The clock spans are timed with: the CPU's time-stamp counter (through `quanta`) once it is
//! calibrated, on a thread of its own when the first tracer starts; the system's wall clock
//! until then, or where there is no usable counter.
//!
//! A span's start is wall time (`unix nanos`), its duration the difference of two counter
//! readings, so a wall-clock step between a span's start and end does not change its duration.
//! The counter is turned into wall time with an offset that the export thread measures again
//! every second ([`anchor`]), so a step of the wall clock shows in spans within a second.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Once, OnceLock};
#[cfg(not(unix))]
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in nanoseconds since the Unix epoch (0 before it).
#[cfg(unix)]
#[inline]
#[allow(
    clippy::useless_conversion,
    reason = "tv_nsec is narrower than i64 on some targets"
)]
pub(crate) fn wall_nanos() -> i64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    if now.tv_sec < 0 {
        return 0;
    }
    now.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(now.tv_nsec))
}

#[cfg(not(unix))]
pub(crate) fn wall_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// The calibrated counter, its reading at calibration, and wall time minus counter time.
struct Counter {
    clock: quanta::Clock,
    base: u64,
    offset: AtomicI64,
}

impl Counter {
    /// Nanoseconds since calibration.
    #[inline]
    fn nanos(&self, raw: u64) -> i64 {
        i64::try_from(self.clock.delta_as_nanos(self.base, raw)).unwrap_or(i64::MAX)
    }
}

static COUNTER: OnceLock<Counter> = OnceLock::new();

/// When a span started: wall time, and the counter's time when it was read (0 without one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub unix_nanos: i64,
    counter_nanos: i64,
}

/// Now, as a span's start.
#[inline]
pub(crate) fn now() -> Stamp {
    match COUNTER.get() {
        Some(counter) => {
            let counter_nanos = counter.nanos(counter.clock.raw());
            Stamp {
                unix_nanos: counter_nanos
                    .saturating_add(counter.offset.load(Ordering::Relaxed))
                    .max(0),
                counter_nanos,
            }
        }
        None => Stamp {
            unix_nanos: wall_nanos(),
            counter_nanos: 0,
        },
    }
}

/// Nanoseconds from `start` to now (0 if the clocks say earlier).
#[inline]
pub(crate) fn since(start: Stamp) -> i64 {
    match COUNTER.get() {
        // The counter was read at the start too (a start read before calibration has 0).
        Some(counter) if start.counter_nanos > 0 => {
            (counter.nanos(counter.clock.raw()) - start.counter_nanos).max(0)
        }
        _ => (wall_nanos() - start.unix_nanos).max(0),
    }
}

/// Starts calibrating the counter on a thread of its own, once per process, so that neither a
/// caller nor a tracer's export waits for it. If the thread cannot start, spans keep the wall
/// clock.
pub(crate) fn calibrate_in_background() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("muninn-clock".to_string())
            .spawn(calibrate);
    });
}

/// Calibrates the counter (once per process: it spins for a millisecond or so, up to 200 ms)
/// and measures its offset from the wall clock.
pub(crate) fn calibrate() {
    COUNTER.get_or_init(|| {
        let clock = quanta::Clock::new();
        // 0 in a `Stamp` means "no counter reading": count from a million ticks back (a
        // fraction of a millisecond), so that later readings, even on a core whose counter
        // is slightly behind this one's, are above 0.
        let base = clock.raw().wrapping_sub(1_000_000);
        let counter = Counter {
            clock,
            base,
            offset: AtomicI64::new(0),
        };
        measure_offset(&counter);
        counter
    });
}

/// Measures the counter's offset from the wall clock again (the export thread, every second).
pub(crate) fn anchor() {
    if let Some(counter) = COUNTER.get() {
        measure_offset(counter);
    }
}

fn measure_offset(counter: &Counter) {
    let before = counter.clock.raw();
    let wall = wall_nanos();
    let after = counter.clock.raw();
    let middle =
        counter.nanos(before) + counter.nanos(after).saturating_sub(counter.nanos(before)) / 2;
    counter
        .offset
        .store(wall.saturating_sub(middle), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{calibrate, now, since, wall_nanos};

    #[test]
    fn the_wall_clock_is_the_system_time_in_nanoseconds() {
        let std_nanos = |time: SystemTime| {
            time.duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_nanos() as i64
        };
        let before = std_nanos(SystemTime::now());
        let ours = wall_nanos();
        let after = std_nanos(SystemTime::now());
        assert!(
            before <= ours && ours <= after,
            "{before} <= {ours} <= {after}"
        );
    }

    #[test]
    fn span_times_follow_the_wall_clock_before_and_after_calibration() {
        for calibrated in [false, true] {
            if calibrated {
                calibrate();
            }
            let wall_before = wall_nanos();
            let start = now();
            std::thread::sleep(Duration::from_millis(20));
            let elapsed = since(start);
            let wall_after = wall_nanos();
            // The start is wall time, within the calibration's error of a millisecond.
            assert!(
                (start.unix_nanos - wall_before).abs() < 1_000_000,
                "start {} against the wall clock's {wall_before} (calibrated: {calibrated})",
                start.unix_nanos
            );
            assert!(
                (20_000_000..wall_after - wall_before + 1_000_000).contains(&elapsed),
                "slept 20 ms, measured {elapsed} ns (calibrated: {calibrated})"
            );
        }
    }
}
