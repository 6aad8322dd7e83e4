//! The management console at `/console`: a built single-page app (the `console/`
//! folder's `npm run build`) served as static files from a directory the gateway is
//! given (`gateway.console_dir`). The files are public — the console asks for a log-in
//! or an API key and then calls the API like any client, so it shows nothing its user
//! could not read anyway. Paths that are no file answer the app's `index.html` (its own
//! routes), under a content security policy that admits only the gateway's own scripts,
//! styles and API.
//!
//! Without a directory, `/console` answers 404 saying how to install it.

use std::path::Path;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;
use vectron_model::status::WireError;
use vectron_proto::v1::ErrorCode;

use super::ApiError;

/// Where the console lives.
pub const PREFIX: &str = "/console";

/// What the browser may load and call from a console page: the gateway's own files and
/// API only; no frames, no inline scripts, no other origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's routes: its files from `dir` (`/console` and `/console/` are its
/// `index.html`; the app refers to its files by absolute paths under `/console/`), or
/// (none) the 404 explaining it is not installed.
pub fn routes(dir: Option<&Path>) -> Router {
    let Some(dir) = dir else {
        let absent = get(|| async {
            ApiError(WireError::new(
                ErrorCode::NotFound,
                "the console is not installed on this gateway: build it (npm --prefix console ci && npm --prefix \
                 console run build) and give the gateway its directory (gateway.console_dir / --console-dir)",
                false,
            ))
        });
        return Router::new()
            .route(PREFIX, absent.clone())
            .route("/console/", absent.clone())
            .route("/console/{*path}", absent);
    };
    let files =
        ServeDir::new(dir).append_index_html_on_directories(true).fallback(ServeFile::new(dir.join("index.html")));
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    Router::new().nest_service(
        PREFIX,
        tower::ServiceBuilder::new()
            .layer(header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(header(header::X_FRAME_OPTIONS, "DENY"))
            .layer(header(header::REFERRER_POLICY, "no-referrer"))
            // Revalidated on every load (ETag / Last-Modified): a new build shows at once.
            .layer(header(header::CACHE_CONTROL, "no-cache"))
            .service(files),
    )
}
