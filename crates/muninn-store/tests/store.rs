//! The store's integration tests, one binary with a module per topic: look-ups, restarts,
//! a crash in the middle of a flush, retention, and the committed golden data directory.

mod support;

mod crash_mid_flush;
mod golden;
mod lookup;
mod restart;
mod retention;
