//! The explorer's static files, embedded in the binary (`crates/orrery-node/explorer/`):
//! `GET /` is the page, `GET /explorer/<file>` its scripts, styles and the vendored uPlot.
//! Nothing is fetched from outside the node. Each answer carries a strong `ETag` (the file's
//! SHA-256) and `Cache-Control: no-cache`, so browsers revalidate and get `304` when nothing
//! changed; a new node version changes the tags.

use crate::api::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use orrery_types::hash::Hash;
use std::sync::OnceLock;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:literal) => {
        Asset {
            name: $name,
            content_type: $ct,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/explorer/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("pages.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/LICENSE-uPlot", "text/plain; charset=utf-8"),
];

/// Set to a folder (`crates/orrery-node/explorer`) to serve the explorer's files from there
/// instead of the copies built in — for working on the pages without rebuilding the node.
/// Only the files the binary embeds are served either way (no other path is read).
pub const DEV_DIR_ENV: &str = "ORRERY_EXPLORER_DEV_DIR";

/// The page's security policy: everything from this node only; uPlot sets inline styles
/// through the DOM, which `style-src 'unsafe-inline'` allows.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &Hash::of(a.bytes).to_string()[..32]))
            .collect()
    })
}

/// `/` and `/explorer/*`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/explorer/{*path}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::not_found(
            "no_such_route",
            format!("the explorer has no file {name:?}"),
        )
        .into_response();
    };
    let asset = &ASSETS[i];
    // Working on the explorer: serve the files from disk, so an edit needs no rebuild.
    let from_disk = std::env::var_os(DEV_DIR_ENV)
        .and_then(|dir| std::fs::read(std::path::Path::new(&dir).join(asset.name)).ok());
    let disk_tag = from_disk
        .as_ref()
        .map(|b| format!("\"{}\"", &Hash::of(b).to_string()[..32]));
    let tag = disk_tag.as_ref().unwrap_or(&etags()[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match from_disk {
            Some(bytes) => bytes.into_response(),
            None => asset.bytes.into_response(),
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.name == "index.html" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    resp
}
