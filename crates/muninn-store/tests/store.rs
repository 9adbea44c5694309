//! The store's integration tests, one binary with a module per topic: look-ups, restarts,
//! a crash in the middle of a flush, compaction, power losses at random points, retention, and the
//! committed golden data directories.
//! The modules live in `tests/store/` (a crate root's `mod` would look next to this file).

#[path = "store/support.rs"]
mod support;

#[path = "store/backpressure.rs"]
mod backpressure;
#[path = "store/compaction.rs"]
mod compaction;
#[path = "store/crash_mid_flush.rs"]
mod crash_mid_flush;
#[path = "store/flush_filter.rs"]
mod flush_filter;
#[path = "store/golden.rs"]
mod golden;
#[path = "store/golden_queries.rs"]
mod golden_queries;
#[path = "store/links.rs"]
mod links;
#[path = "store/lookup.rs"]
mod lookup;
#[path = "store/power_loss.rs"]
mod power_loss;
#[path = "store/restart.rs"]
mod restart;
#[path = "store/retention.rs"]
mod retention;
