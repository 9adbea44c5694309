//! Trace context and event metadata in message headers: W3C Trace Context and B3.
