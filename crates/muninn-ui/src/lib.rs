//! Muninn's browser UI, served by the binary itself: every page answers the same HTML shell
//! and the browser's scripts render it from the URL with the JSON API the CLI uses. The assets
//! are embedded at compile time (no build step, no network at run time); the one vendored
//! library (uPlot, for charts) sits in `assets/vendor` with its licence.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file under `/ui/`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

/// Every file the pages load.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("lib.js", "text/javascript; charset=utf-8"),
    asset!("search_box.js", "text/javascript; charset=utf-8"),
    asset!("waterfall.js", "text/javascript; charset=utf-8"),
    asset!("graph.js", "text/javascript; charset=utf-8"),
    asset!("layout.js", "text/javascript; charset=utf-8"),
    asset!("pages/journey.js", "text/javascript; charset=utf-8"),
    asset!("pages/trace.js", "text/javascript; charset=utf-8"),
    asset!("pages/lineage.js", "text/javascript; charset=utf-8"),
    asset!("pages/catalog.js", "text/javascript; charset=utf-8"),
    asset!("pages/search.js", "text/javascript; charset=utf-8"),
    asset!("pages/sampling.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/LICENSE-uPlot", "text/plain; charset=utf-8"),
];

/// The shell every page answers.
const SHELL: &str = include_str!("../assets/index.html");

/// The UI's pages. Each answers the shell; the script renders the page the URL names, so every
/// page has a stable URL to share.
pub const PAGES: &[&str] = &[
    "/",
    "/lineage",
    "/search",
    "/sampling",
    "/events/{id}",
    "/traces/{id}",
    "/event-types/{name}",
    "/services/{name}",
    "/streams/{name}",
];

/// Only what the binary serves: its own scripts and styles, the API on the same origin, and
/// `blob:`/`data:` for downloads and inline images. Nothing from any other host.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The UI's routes: the pages and `/ui/{file}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/ui/{*path}", get(asset));
    for page in PAGES {
        router = router.route(page, get(shell));
    }
    router
}

/// The shell with a 404, for a path that is no page: the script says so.
pub async fn page_not_found() -> Response {
    let mut response = shell().await;
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

async fn shell() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SHELL,
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.path == path) {
        // `no-cache`: the browser revalidates, so a new binary's assets are used at once.
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no UI file {path:?}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_shell_and_scripts_import_is_embedded() {
        let mut texts: Vec<&str> = vec![SHELL];
        texts.extend(
            ASSETS
                .iter()
                .filter(|asset| asset.path.ends_with(".js") && !asset.path.starts_with("vendor/"))
                .map(|asset| std::str::from_utf8(asset.bytes).unwrap()),
        );
        for text in texts {
            for reference in text.split("\"/ui/").skip(1) {
                let path = reference.split('"').next().unwrap();
                if path.is_empty() {
                    continue; // the prefix itself, as in `startsWith("/ui/")`
                }
                assert!(
                    ASSETS.iter().any(|asset| asset.path == path),
                    "{path} is referenced but not embedded"
                );
            }
        }
    }
}
