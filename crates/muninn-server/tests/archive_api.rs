//! The event archive in the server, end to end over HTTP: an archive directory written with
//! `muninn_archive::Archive`, a real server started with it configured, and every archive
//! route, error, journey link, metric and health report read through the API. Every answer is
//! checked against `openapi.yaml` by the shared test client.

// The shared client and its OpenAPI checks (whose own tests run here too); this binary uses
// part of the support module.
#[allow(dead_code)]
#[path = "api/support.rs"]
mod support;

#[path = "api/openapi.rs"]
mod openapi;

// The browser driver; this binary uses part of it.
#[allow(dead_code)]
#[path = "api/browser.rs"]
mod browser;

// The archive every test reads is written by `archive_api/common.rs`; the archive routes are
// tested in `archive_api/routes.rs`, the links from journeys (API and UI) in
// `archive_api/journeys.rs`, the recorders and maintenance the server runs in
// `archive_api/operation.rs`.

#[path = "archive_api/common.rs"]
mod common;

#[path = "archive_api/routes.rs"]
mod routes;

#[path = "archive_api/journeys.rs"]
mod journeys;

#[path = "archive_api/operation.rs"]
mod operation;
