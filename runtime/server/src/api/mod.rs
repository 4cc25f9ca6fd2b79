//! The HTTP API, one module per resource (see `docs/api.md`).

pub(crate) mod approvals;
pub mod body;
mod cluster_ledgers;
mod events;
mod graph;
mod health;
mod incidents;
mod integrations;
mod ledger;
mod outcomes;
mod pauses;
pub(crate) mod playbooks;
mod policies;
mod principals;
mod runs;
mod sources;
pub mod state;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

use crate::app::App;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route of the server; each handler takes only the parts of `app` it needs (see
/// [`state`]).
pub fn router(app: Arc<App>) -> Router {
    let app = App::clone(&app);
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
        .nest("/v1/tokens", tokens::router())
        .nest("/v1/principals", principals::router())
        .nest("/v1/approvals", approvals::router())
        .nest("/v1/policies", policies::router())
        .nest("/v1/graph", graph::router())
        .nest("/v1/incidents", incidents::router())
        .nest("/v1/outcomes", outcomes::router())
        .nest("/v1/pauses", pauses::router())
        .nest("/v1/notifications", integrations::notifications_router())
        .route(
            "/v1/integrations/slack/interactions",
            axum::routing::post(integrations::slack_interactions),
        )
        .route("/v1/fleet", get(health::fleet))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/v1/cluster", get(health::cluster))
        .nest("/v1/cluster/ledgers", cluster_ledgers::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        // Bodies read within their limit and deadline (`body`), after authentication (the
        // layer below wraps this one), so an unauthenticated client cannot make us read one;
        // the routes vendors sign are public, and take at most 256 KiB before their signature
        // is checked.
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            body::guard,
        ))
        // Every route above, and only routes: authenticated and authorised by the one table in
        // `crate::auth::routes` (unknown paths and methods get the fallbacks' 404 and 405).
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::auth::require,
        ))
        // The dashboard's pages, behind their own middleware (sessions, CSRF; the same route
        // table): see `crate::dashboard`.
        .merge(crate::dashboard::router(&app))
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}
