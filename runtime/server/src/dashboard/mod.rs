//! The dashboard: web pages served by `grace serve` itself at `/` (the API stays under `/v1`).
//!
//! **How it is built, and why.** Pages are rendered on the server as HTML (`maud`: templates
//! are Rust, checked by the compiler, and every value is escaped unless said otherwise), so each
//! page reads completely without JavaScript. htmx and its server-sent-events extension make
//! the pages live: one event stream per page names the topics that changed ([`live`]), and each
//! live region fetches itself again. Charts are uPlot. The three are vendored, small, and served
//! from the binary ([`assets`]); there is no JavaScript build to keep alive, and nothing comes
//! from a CDN.
//!
//! **Pages.** [`overview`] (`/`), [`runs`] (`/runs`, `/runs/{id}`), [`approvals`], [`playbooks`],
//! [`charts`], [`graph`]; sign-in at `/login`.
//!
//! **Safety.** Sign-in, sessions, CSRF and same-origin checks are [`session`]'s. Every response
//! carries a strict Content-Security-Policy ([`CSP`]: scripts, styles and connections only from
//! this server, no inline script or style, no framing), `nosniff`, `same-origin` referrers (the browser then still sends `Origin` on its own forms) and, for pages,
//! `no-store`. No token is ever rendered; the session's token lives in an `HttpOnly` cookie.

pub mod approvals;
pub mod assets;
pub mod charts;
pub mod graph;
pub mod history;
pub mod live;
pub mod overview;
pub mod playbooks;
pub mod runs;
pub mod session;
pub mod view;

use std::sync::{Arc, Mutex};

use axum::Form;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use grace_ledger::LedgerError;
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::App;
use crate::error::ApiError;
use crate::store::StoreError;
use session::{Guard, Sessions, Viewer};
use view::Nav;

/// The Content-Security-Policy of every dashboard response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's state, in [`App`].
pub struct Dashboard {
    /// Sessions and CSRF.
    pub sessions: Arc<Sessions>,
    /// The watcher's fingerprints and the open streams.
    pub live: live::Live,
    /// The charts' samples.
    pub history: history::History,
    /// The ledger's last verification.
    pub ledger_checks: Arc<LedgerChecks>,
    /// One scan of the stored events at a time for the charts: their memory is bounded
    /// whatever the number of charts open.
    pub scans: tokio::sync::Semaphore,
}

impl Dashboard {
    /// The dashboard of a server keeping its data in `data_dir` (where the sessions' key is
    /// kept), speaking TLS when `tls`.
    pub fn new(data_dir: &std::path::Path, tls: bool) -> Result<Dashboard, session::KeyError> {
        let key = Sessions::key_at(&data_dir.join("dashboard.key"))?;
        Ok(Dashboard {
            sessions: Arc::new(Sessions::new(key, tls)),
            live: live::Live::default(),
            history: history::History::default(),
            ledger_checks: Arc::new(LedgerChecks::default()),
            scans: tokio::sync::Semaphore::new(1),
        })
    }
}

/// One verification of the whole ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCheck {
    /// When it finished (wall clock, ms).
    pub at_millis: u64,
    /// Whether every entry recomputed to its hash.
    pub ok: bool,
    /// Entries recomputed, when the whole chain was.
    pub entries: Option<u64>,
    /// What was wrong, if anything.
    pub problem: Option<String>,
}

/// The last verification of the ledger since this start, by `/v1/ledger/verify` or the
/// dashboard; and the one running, so that the dashboard starts at most one at a time.
#[derive(Debug, Default)]
pub struct LedgerChecks {
    last: Mutex<Option<LedgerCheck>>,
    running: tokio::sync::Mutex<()>,
}

impl LedgerChecks {
    /// The last one.
    pub fn last(&self) -> Option<LedgerCheck> {
        crate::sync::lock(&self.last).clone()
    }

    /// Keeps what `verify` answered.
    pub fn record(&self, result: &Result<grace_ledger::VerifyReport, LedgerError>) {
        let at_millis = grace_engine::event::system_now_millis();
        let check = match result {
            Ok(report) => LedgerCheck {
                at_millis,
                ok: true,
                entries: Some(report.entries),
                problem: None,
            },
            Err(LedgerError::Tampered(t)) => LedgerCheck {
                at_millis,
                ok: false,
                entries: None,
                problem: Some(t.to_string()),
            },
            // Not a verdict on the ledger: the database could not be read.
            Err(_) => return,
        };
        *crate::sync::lock(&self.last) = Some(check);
    }
}

/// A rendered page.
pub struct Page(pub Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        Html(self.0.into_string()).into_response()
    }
}

/// A page that could not be shown: an HTML page with the status and the reason.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
    /// Boxed: an error is rare, and the `Result`s carrying it stay small.
    viewer: Option<Box<Viewer>>,
}

impl PageError {
    /// A bad query field.
    pub fn field(field: &str, message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: format!("`{field}`: {}", message.into()),
            viewer: None,
        }
    }

    /// Nothing there.
    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            viewer: None,
        }
    }

    /// Our fault: logged, not shown.
    pub fn internal(detail: impl Into<String>) -> PageError {
        tracing::error!("dashboard: internal error: {}", detail.into());
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "something went wrong on the server; its log says what".to_owned(),
            viewer: None,
        }
    }

    /// Shown with the viewer's navigation.
    pub fn with_viewer(mut self, viewer: Viewer) -> PageError {
        self.viewer = Some(Box::new(viewer));
        self
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        PageError::internal(e.to_string())
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        // The API's errors are already worded for people (internal ones are logged there).
        PageError {
            status: e.status(),
            message: e.to_string(),
            viewer: None,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::CONFLICT => "Not possible now",
            s if s.is_client_error() => "Not accepted",
            _ => "Server error",
        };
        (
            self.status,
            view::message(self.viewer.as_deref(), title, &self.message),
        )
            .into_response()
    }
}

/// The dashboard's routes, each in [`crate::auth::routes::ROUTES`], behind [`session::require`].
pub fn router(app: &App) -> Router<App> {
    let guard = Guard {
        auth: app.auth.clone(),
        sessions: app.dashboard.sessions.clone(),
        audit: app.audit.clone(),
        body_read_timeout: app.config.body_read_timeout,
    };
    Router::new()
        .route("/", get(overview::show))
        .route("/login", get(sign_in_form).post(sign_in))
        .route("/logout", post(sign_out))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/deny", post(approvals::deny))
        .route("/playbooks", get(playbooks::list))
        .route("/playbooks/{name}/enable", post(playbooks::enable))
        .route("/playbooks/{name}/disable", post(playbooks::disable))
        .route("/charts", get(charts::show))
        .route("/charts/data", get(charts::data))
        .route("/charts/series", get(charts::series))
        .route("/graph", get(graph::show))
        .route("/ledger/verify", get(verify_ledger))
        .route("/ui/stream", get(live::stream))
        .route("/assets/{name}", get(assets::serve))
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            session::require,
        ))
        .layer(axum::middleware::from_fn(security_headers))
}

/// The headers of every dashboard response.
async fn security_headers(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `?next=` (where to go after signing in) and `?error=`.
#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

/// `GET /login`.
async fn sign_in_form(State(app): State<App>, Query(q): Query<SignInQuery>) -> Response {
    sign_in_page(&app, q.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_page(
    app: &App,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let next = session::local_path(next);
    let oidc = app.config.auth.oidc.is_some();
    let body = html! {
        div class="signin" {
            h1 { "Sign in to GRACE" }
            @if let Some(e) = error { p class="error" role="alert" { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input type="password" id="token" name="token" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
            p class="muted" {
                "A token made by " code { "grace tokens create" } " (or " code { "grace init" } " for the admin)"
                @if oidc { ", or an ID token from your identity provider" }
                ". It is kept in a cookie only this server can read (HttpOnly, SameSite=Strict), for at most 12 hours; a read token sees, it cannot act."
            }
        }
    };
    (status, view::page(None, "Sign in", Nav::None, body)).into_response()
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
struct SignInForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: checks the token as the API would (any scope), then sets the cookie.
async fn sign_in(State(app): State<App>, Form(form): Form<SignInForm>) -> Response {
    let token = form.token.trim();
    if let Some(why) = session::unfit_for_cookie(token) {
        return sign_in_page(
            &app,
            form.next.as_deref(),
            Some(&why),
            StatusCode::BAD_REQUEST,
        );
    }
    let mut headers = axum::http::HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return sign_in_page(
            &app,
            form.next.as_deref(),
            Some("that is not a token"),
            StatusCode::BAD_REQUEST,
        );
    };
    headers.insert(header::AUTHORIZATION, value);
    match app
        .auth
        .authenticate(&headers, crate::auth::Scope::Read)
        .await
    {
        Ok(caller)
            if !caller.scopes.is_empty() && !caller.token_id.is_empty()
                || app.auth.is_insecure() =>
        {
            tracing::info!(caller = %caller.name, token = %caller.token_id, "signed in to the dashboard");
            let mut response =
                Redirect::to(session::local_path(form.next.as_deref())).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, app.dashboard.sessions.cookie(token));
            response
        }
        Ok(_) => sign_in_page(
            &app,
            form.next.as_deref(),
            Some("this token grants none of GRACE's scopes"),
            StatusCode::FORBIDDEN,
        ),
        Err(e) => sign_in_page(
            &app,
            form.next.as_deref(),
            Some(&format!("not signed in: {e}")),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

/// `POST /logout`.
async fn sign_out(State(app): State<App>) -> Response {
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, app.dashboard.sessions.cleared());
    response
}

/// `GET /ledger/verify`: recomputes every entry's hash, keeps the verdict, and goes back to the
/// overview's ledger panel.
async fn verify_ledger(State(app): State<App>) -> Result<Redirect, PageError> {
    // One at a time: a verification asked for while one runs waits for it and shows its verdict.
    let Ok(_running) = app.dashboard.ledger_checks.running.try_lock() else {
        let _done = app.dashboard.ledger_checks.running.lock().await;
        return Ok(Redirect::to("/#ledger"));
    };
    let ledger = app.ledger.clone();
    let result = tokio::task::spawn_blocking(move || ledger.verify())
        .await
        .map_err(|e| PageError::internal(e.to_string()))?;
    app.dashboard.ledger_checks.record(&result);
    if let Err(e) = &result
        && !matches!(e, LedgerError::Tampered(_))
    {
        return Err(PageError::internal(e.to_string()));
    }
    Ok(Redirect::to("/#ledger"))
}
