//! # citybrain-console
//!
//! The operations console (指挥中心 wall map and work list): a static page embedded in the
//! binary and served by the same HTTP server as the incident API (`citybrain_ops::router`).
//!
//! ```text
//!  browser ── GET /, /assets/… ──▶ router() ──▶ FILES (web/ + Leaflet, h3-js; embedded by build.rs)
//!     │      GET /config.json ──▶ ConsoleConfig (tile URL, none by default)
//!     └───── /api/… (Bearer token) ──▶ the ops crate's router: incidents, units, cells, stream
//! ```
//!
//! - [`router`] / [`router_with`]: the axum [`Router`] of the page and its assets, with content
//!   types, strong ETags (`If-None-Match` → 304), `Cache-Control: no-cache` (revalidate, never a
//!   stale page after an upgrade) and a Content-Security-Policy that keeps the page on its own
//!   origin (a closed network: no fonts, tiles or scripts from outside unless a tile URL is
//!   configured).
//! - [`ConsoleConfig`]: what the page is told at `/config.json`, validated by
//!   [`ConsoleConfig::validated`].
//! - [`assets_embedded`]: false when the binary was built without npm; the page then says how to
//!   get the front-end libraries.
//!
//! The front end itself lives in `console/web/` (plain JavaScript modules; `docs/console.md`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// The console's errors: configuration only (serving static files cannot fail).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable; every problem found is listed.
    #[error("invalid console configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// `Result` with the console's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the page needs to know besides the API: served as `/config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A map tile URL template (`{z}/{x}/{y}`, Leaflet's syntax), e.g. the city GIS team's own
    /// tile server. Default: none; the map shows the jurisdiction boundaries only, so the page
    /// works on a closed network.
    #[serde(default)]
    pub tile_url: Option<String>,
    /// Attribution shown with the tiles (default: none).
    #[serde(default)]
    pub tile_attribution: Option<String>,
}

impl ConsoleConfig {
    /// Checks every field and reports every problem at once.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming each bad field.
    pub fn validated(self) -> Result<Self> {
        let mut problems = Vec::new();
        if let Some(url) = &self.tile_url {
            if tile_origin(url).is_none() {
                problems.push(format!(
                    "tile_url `{url}` must be an http(s) URL such as http://tiles.local/{{z}}/{{x}}/{{y}}.png"
                ));
            }
            if !(url.contains("{z}") && url.contains("{x}") && url.contains("{y}")) {
                problems.push(format!(
                    "tile_url `{url}` must contain {{z}}, {{x}} and {{y}}"
                ));
            }
        }
        if self.tile_attribution.is_some() && self.tile_url.is_none() {
            problems.push("tile_attribution is set but tile_url is not".to_string());
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(Error::Invalid(problems))
        }
    }
}

/// `scheme://host[:port]` of a tile URL (`{s}` subdomains become `*`), for the page's CSP.
fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    Some(format!("{scheme}://{}", host.replace("{s}", "*")))
}

/// Whether Leaflet and h3-js are in this binary (false: built where npm was unavailable).
pub fn assets_embedded() -> bool {
    embedded::VENDOR_EMBEDDED
}

/// The page and its assets with the default configuration (no tiles).
pub fn router() -> Router {
    router_with(ConsoleConfig::default())
}

/// The page (`/`), its assets (`/assets/…`) and `/config.json`.
pub fn router_with(config: ConsoleConfig) -> Router {
    let csp = content_security_policy(&config);
    let shared = Arc::new(Served {
        config_json: serde_json::to_vec(&config).expect("the console config serialises"),
        csp: HeaderValue::from_str(&csp).expect("CSP is ASCII"),
    });
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/config.json", get(config_json))
        .route("/assets/{*path}", get(asset))
        .with_state(shared)
}

struct Served {
    config_json: Vec<u8>,
    csp: HeaderValue,
}

fn content_security_policy(config: &ConsoleConfig) -> String {
    let tiles = config
        .tile_url
        .as_deref()
        .and_then(tile_origin)
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' data:{tiles}; style-src 'self' 'unsafe-inline'; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}

async fn index(State(served): State<Arc<Served>>, headers: HeaderMap) -> Response {
    let name = if assets_embedded() {
        "index.html"
    } else {
        "missing.html"
    };
    let mut response = file(name, &headers);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, served.csp.clone());
    response
}

async fn config_json(State(served): State<Arc<Served>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        served.config_json.clone(),
    )
        .into_response()
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file(&path, &headers)
}

/// One embedded file with its content type, ETag and caching headers; 304 when the browser's
/// copy is current, 404 when there is no such file.
fn file(name: &str, headers: &HeaderMap) -> Response {
    let Some((_, etag, body)) = embedded::FILES.iter().find(|(n, _, _)| *n == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found\n",
        )
            .into_response();
    };
    let common = [
        (header::ETAG, *etag),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == *etag || t.trim() == "*"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, content_type(name))], *body).into_response()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        _ => "text/plain; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(router: Router, uri: &str, etag: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(tag) = etag {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        router
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn page_and_assets_have_types_etags_and_revalidate() {
        let page = get(router(), "/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            header_of(&page, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert!(
            header_of(&page, header::CONTENT_SECURITY_POLICY).starts_with("default-src 'self'")
        );
        for (uri, ty) in [
            ("/assets/app.js", "text/javascript; charset=utf-8"),
            ("/assets/console.css", "text/css; charset=utf-8"),
        ] {
            let r = get(router(), uri, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri}");
            assert_eq!(header_of(&r, header::CONTENT_TYPE), ty, "{uri}");
            assert_eq!(header_of(&r, header::CACHE_CONTROL), "no-cache", "{uri}");
            let etag = header_of(&r, header::ETAG).to_string();
            assert!(etag.starts_with('"') && etag.len() == 18, "{uri}: {etag}");
            let again = get(router(), uri, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{uri}");
            let other = get(router(), uri, Some("\"0000000000000000\"")).await;
            assert_eq!(other.status(), StatusCode::OK, "{uri}");
        }
        assert_eq!(
            get(router(), "/assets/nope.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(router(), "/assets/../Cargo.toml", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    async fn page_text() -> String {
        let page = get(router(), "/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let body = axum::body::to_bytes(page.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// With npm at build time the page loads the pinned libraries from the binary; without
    /// (`CITYBRAIN_CONSOLE_ASSETS=/nowhere cargo test -p citybrain-console` builds that way)
    /// it says how to get them.
    #[tokio::test]
    async fn the_page_has_its_libraries_or_says_how_to_get_them() {
        let html = page_text().await;
        if !assets_embedded() {
            assert!(
                html.contains("scripts/console-build.sh")
                    && html.contains("CITYBRAIN_CONSOLE_ASSETS"),
                "{html}"
            );
            assert_eq!(
                get(router(), "/assets/vendor/leaflet/leaflet.js", None)
                    .await
                    .status(),
                StatusCode::NOT_FOUND
            );
            eprintln!(
                "this build has no Leaflet/h3-js (npm was unavailable): checked the page explaining it"
            );
            return;
        }
        for uri in [
            "/assets/vendor/leaflet/leaflet.js",
            "/assets/vendor/leaflet/leaflet.css",
            "/assets/vendor/leaflet/images/layers.png",
            "/assets/vendor/h3-js/h3-js.umd.js",
        ] {
            assert_eq!(
                get(router(), uri, None).await.status(),
                StatusCode::OK,
                "{uri}"
            );
        }
        for src in [
            "/assets/vendor/leaflet/leaflet.js",
            "/assets/vendor/h3-js/h3-js.umd.js",
            "/assets/app.js",
        ] {
            assert!(html.contains(src), "index.html must load {src}");
        }
    }

    #[test]
    fn tile_config_is_validated_as_a_whole_and_allowed_by_the_csp() {
        let bad = ConsoleConfig {
            tile_url: Some("ftp://tiles/{z}".into()),
            tile_attribution: None,
        };
        let Err(Error::Invalid(problems)) = bad.validated() else {
            panic!("ftp URL without {{x}}/{{y}} accepted")
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        let good = ConsoleConfig {
            tile_url: Some("http://{s}.tiles.city.local:8081/{z}/{x}/{y}.png".into()),
            tile_attribution: Some("市规划局".into()),
        }
        .validated()
        .unwrap();
        assert!(
            content_security_policy(&good)
                .contains("img-src 'self' data: http://*.tiles.city.local:8081;")
        );
        assert!(
            content_security_policy(&ConsoleConfig::default()).contains("img-src 'self' data:;")
        );
    }
}
