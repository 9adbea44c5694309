//! Per-minute event counters, and running totals, that a calling thread bumps without a
//! locked instruction: each counter has one shard per thread slot, a slot belongs to one live
//! thread at a time, so its shard has a single writer and a plain load and store count
//! exactly; the export thread reads the shards' running totals and takes what grew since it
//! last looked.

use std::cell::Cell;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

/// Thread slots, hence shards per counter. Threads beyond this many (counting at once) share
/// one more shard with a locked increment: still exact, only slower.
pub(crate) const SHARDS: usize = 16;
/// Minute slots per shard (minute index mod 3): the minute before, this one and the next.
const MINUTES: usize = 3;

/// One thread slot's counts, on a cache line of its own so that two threads never write the
/// same line. `seen` is what the export thread has taken of `live` so far.
#[repr(align(64))]
#[derive(Default)]
struct Shard {
    live: [AtomicU64; MINUTES],
    seen: [AtomicU64; MINUTES],
}

/// Thread slots free for a new thread (lock-free; never more than [`SHARDS`]), and the next
/// never-used one.
static FREE_SLOTS: LazyLock<ArrayQueue<usize>> = LazyLock::new(|| ArrayQueue::new(SHARDS));
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// The calling thread's slot, handed back when the thread ends.
struct SlotGuard(Cell<Option<Option<usize>>>);

impl SlotGuard {
    /// The slot, taken on first use; `None` when every slot is held by a live thread.
    #[inline]
    fn get(&self) -> Option<usize> {
        match self.0.get() {
            Some(slot) => slot,
            None => {
                let slot = acquire_slot();
                self.0.set(Some(slot));
                slot
            }
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(Some(slot)) = self.0.get() {
            // The queue's release and acquire order this thread's last counts before the next
            // owner's first. It has room for every slot, so the push cannot fail.
            let _ = FREE_SLOTS.push(slot);
        }
    }
}

fn acquire_slot() -> Option<usize> {
    FREE_SLOTS.pop().or_else(|| {
        NEXT_SLOT
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
                (next < SHARDS).then_some(next + 1)
            })
            .ok()
    })
}

thread_local! {
    static SLOT: SlotGuard = const { SlotGuard(Cell::new(None)) };
}

/// The calling thread's slot; `None` without one (all held, or the thread is ending).
#[inline]
fn thread_slot() -> Option<usize> {
    SLOT.try_with(SlotGuard::get).ok().flatten()
}

/// Adds one to the calling thread's own shard, or, for a thread without a slot, to the shared
/// one with a locked add.
#[inline]
fn bump(own: Option<&AtomicU64>, shared: &AtomicU64) {
    match own {
        // The only writer of this shard: no read-modify-write needed.
        Some(shard) => shard.store(
            shard.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        ),
        None => {
            shared.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Events counted on a route for one action, in three minute slots (minute index mod 3): a
/// sampled event is counted in the minute its span starts, so its count and its span always
/// agree on the minute (the collector keeps the larger of the two per minute), and an
/// unsampled one in the export thread's current minute. The export thread takes the counts
/// every second.
pub(crate) struct MinuteCounter {
    shards: Box<[Shard]>,
    /// For threads without a slot (locked increments, emptied by `take`).
    shared: [AtomicU64; MINUTES],
    /// What the export thread has taken out so far.
    taken: AtomicU64,
}

impl MinuteCounter {
    pub(crate) fn new() -> Self {
        MinuteCounter {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            shared: Default::default(),
            taken: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn add(&self, minute: i64) {
        let index = minute.rem_euclid(MINUTES as i64) as usize;
        bump(
            thread_slot()
                .and_then(|slot| self.shards.get(slot))
                .map(|shard| &shard.live[index]),
            &self.shared[index],
        );
    }

    /// Takes the counts made since the last call; `current` is the minute index now. Returns
    /// (minute index, count). Call with the tracer's count lock held, so readers of the total
    /// see no dip.
    pub(crate) fn take(&self, current: i64) -> Vec<(i64, u64)> {
        (current - 1..=current + 1)
            .filter_map(|minute| {
                let index = minute.rem_euclid(MINUTES as i64) as usize;
                let mut count = self.shared[index].swap(0, Ordering::Relaxed);
                for shard in self.shards.iter() {
                    let live = shard.live[index].load(Ordering::Relaxed);
                    let seen = shard.seen[index].swap(live, Ordering::Relaxed);
                    count += live.wrapping_sub(seen);
                }
                self.taken.fetch_add(count, Ordering::Relaxed);
                (count > 0).then_some((minute, count))
            })
            .collect()
    }

    /// Every event counted so far (call with the count lock held).
    pub(crate) fn total(&self) -> u64 {
        let pending: u64 = self
            .shards
            .iter()
            .flat_map(|shard| shard.live.iter().zip(&shard.seen))
            .map(|(live, seen)| {
                live.load(Ordering::Relaxed)
                    .wrapping_sub(seen.load(Ordering::Relaxed))
            })
            .sum();
        self.taken.load(Ordering::Relaxed)
            + pending
            + self
                .shared
                .iter()
                .map(|slot| slot.load(Ordering::Relaxed))
                .sum::<u64>()
    }
}

/// A running total bumped without a locked instruction, one shard per thread slot as in
/// [`MinuteCounter`]. Reading sums the shards; as each shard only grows, a later read never
/// returns less than an earlier one.
pub(crate) struct Count {
    shards: Box<[Line]>,
    /// For threads without a slot (locked increments).
    shared: AtomicU64,
}

/// One shard on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Line(AtomicU64);

impl Count {
    pub(crate) fn new() -> Self {
        Count {
            shards: (0..SHARDS).map(|_| Line::default()).collect(),
            shared: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn add_one(&self) {
        bump(
            thread_slot()
                .and_then(|slot| self.shards.get(slot))
                .map(|Line(shard)| shard),
            &self.shared,
        );
    }

    pub(crate) fn get(&self) -> u64 {
        self.shards
            .iter()
            .map(|Line(shard)| shard.load(Ordering::Relaxed))
            .fold(self.shared.load(Ordering::Relaxed), u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::{Count, MinuteCounter, SHARDS, thread_slot};

    #[test]
    fn counts_keep_the_minute_they_were_made_in_across_a_boundary() {
        let counter = MinuteCounter::new();
        // Minute 100 ends; a sampled event already starts in 101 before the tick moves on.
        counter.add(100);
        counter.add(100);
        counter.add(101);
        assert_eq!(counter.take(100), vec![(100, 2), (101, 1)]);
        // An unsampled event still counted with the old minute after the tick moved to 101.
        counter.add(100);
        counter.add(101);
        assert_eq!(counter.take(101), vec![(100, 1), (101, 1)]);
        assert_eq!(counter.take(101), vec![]);
        assert_eq!(counter.total(), 5);
    }

    /// Starts `threads` threads that each run `work`, all at once: they and the caller wait
    /// on one barrier before any of them begins.
    fn start_together(
        threads: usize,
        work: impl Fn() + Send + Sync + 'static,
    ) -> Vec<std::thread::JoinHandle<()>> {
        let work = Arc::new(work);
        let start = Arc::new(Barrier::new(threads + 1));
        let workers = (0..threads)
            .map(|_| {
                let work = Arc::clone(&work);
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    work();
                })
            })
            .collect();
        start.wait();
        workers
    }

    /// More threads than slots count at once, while the export side takes the counts: nothing
    /// is lost or counted twice, whether a thread got a shard of its own or shares the locked one.
    #[test]
    fn many_threads_count_exactly_while_the_counts_are_taken() {
        const THREADS: usize = SHARDS * 2 + 3;
        const PER_THREAD: u64 = 20_000;
        let counter = Arc::new(MinuteCounter::new());
        let workers = start_together(THREADS, {
            let counter = Arc::clone(&counter);
            move || {
                for n in 0..PER_THREAD {
                    counter.add(7 + (n % 2) as i64);
                }
            }
        });
        let mut taken = 0;
        while workers.iter().any(|worker| !worker.is_finished()) {
            taken += counter
                .take(7)
                .into_iter()
                .map(|(_, count)| count)
                .sum::<u64>();
        }
        for worker in workers {
            worker.join().expect("worker");
        }
        let rest = counter.take(7);
        taken += rest.iter().map(|(_, count)| count).sum::<u64>();
        assert_eq!(taken, THREADS as u64 * PER_THREAD);
        assert_eq!(counter.total(), THREADS as u64 * PER_THREAD);
        assert_eq!(counter.take(7), vec![]);
    }

    /// Threads that end hand their slot to later threads, which go on from the counts their
    /// predecessors left in the shard: more threads get a shard over time than there are
    /// shards, and every count is kept.
    #[test]
    fn slots_of_ended_threads_are_reused_without_losing_counts() {
        const THREADS: usize = SHARDS * 3;
        let counter = Arc::new(MinuteCounter::new());
        let mut with_a_shard = 0;
        for _ in 0..THREADS {
            let counter = Arc::clone(&counter);
            let had_slot = std::thread::spawn(move || {
                for _ in 0..1_000 {
                    counter.add(42);
                }
                thread_slot().is_some()
            })
            .join()
            .expect("thread");
            with_a_shard += usize::from(had_slot);
        }
        // Other tests' threads may hold a few slots meanwhile, never most of them for long.
        assert!(
            with_a_shard > SHARDS,
            "only {with_a_shard} of {THREADS} threads, one after another, got a slot"
        );
        assert_eq!(counter.take(42), vec![(42, (THREADS * 1_000) as u64)]);
    }

    /// More threads than slots bump one total while it is read: every read is at least the
    /// one before it, and the last is exact.
    #[test]
    fn a_count_bumped_by_many_threads_is_exact_and_never_goes_back() {
        const THREADS: usize = SHARDS + 4;
        const PER_THREAD: u64 = 50_000;
        let count = Arc::new(Count::new());
        let workers = start_together(THREADS, {
            let count = Arc::clone(&count);
            move || {
                for _ in 0..PER_THREAD {
                    count.add_one();
                }
            }
        });
        let mut last = 0;
        while workers.iter().any(|worker| !worker.is_finished()) {
            let now = count.get();
            assert!(now >= last, "the total went back from {last} to {now}");
            last = now;
        }
        for worker in workers {
            worker.join().expect("worker");
        }
        assert_eq!(count.get(), THREADS as u64 * PER_THREAD);
    }
}
