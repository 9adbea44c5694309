//! The Muninn SDK: trace every event a service produces or consumes, for any broker.

pub mod propagation;
