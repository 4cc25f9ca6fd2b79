//! The HTTP API, one module per resource (see `docs/api.md`).

mod events;
mod health;
mod ledger;
mod playbooks;
mod runs;
mod sources;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::app::App;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route of the server.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.config.max_body_bytes;
    Router::new()
        .nest(
            "/v1/playbooks",
            playbooks::router(app.config.max_upload_bytes),
        )
        .nest("/v1/events", events::router())
        .nest("/v1/runs", runs::router())
        .nest("/v1/ledger", ledger::router())
        .nest("/v1/sources", sources::router())
        .route("/v1/fleet", get(health::fleet))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}
