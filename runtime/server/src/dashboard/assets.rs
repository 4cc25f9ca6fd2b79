//! The dashboard's files, compiled into the binary: nothing is fetched from elsewhere, at build
//! or at run time, and the pages work offline.
//!
//! Vendored, each beside its licence in `assets/vendor/` (fetched once from the npm registry;
//! see `docs/dashboard.md` for the versions and how to update them):
//! - htmx 2.0.11 (0BSD): live regions fetch themselves again when `app.js` says their topic
//!   changed;
//! - uPlot 1.6.32 (MIT): the charts.
//!
//! Served with a strong `ETag` (a hash of the file) and `Cache-Control: no-cache`, so a browser
//! asks again each time and gets `304` until the server is upgraded.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: CSS,
        bytes: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: JS,
        bytes: include_bytes!("assets/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: JS,
        bytes: include_bytes!("assets/vendor/uPlot-1.6.32.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: CSS,
        bytes: include_bytes!("assets/vendor/uPlot-1.6.32.min.css"),
    },
    Asset {
        name: "licenses.txt",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("assets/vendor/LICENSES.txt"),
    },
];

static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.bytes)[..12])))
        .collect()
});

/// The URL of the asset `name` (which must be one of [`ASSETS`]: checked by a test).
pub fn url(name: &str) -> String {
    format!("/assets/{name}")
}

/// `GET /assets/{name}`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let etag_value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (header::ETAG, etag_value),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_pages_name_is_served() {
        let pages = include_str!("view.rs");
        for name in pages
            .split("assets::url(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
        {
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{name} is linked but not served"
            );
        }
    }

    #[test]
    fn every_vendored_file_carries_its_licence() {
        let licences =
            std::str::from_utf8(ASSETS.last().map_or(&[][..], |a| a.bytes)).unwrap_or_default();
        for name in ["htmx", "uPlot"] {
            assert!(licences.contains(&format!("== {name} ")), "{name}");
        }
    }
}
