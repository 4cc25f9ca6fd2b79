//! Failures a test asks for, and the log of every request the server saw.
//!
//! Faults apply to every request, in order: a test queues `n` of them ([`Fault::Status`] answers
//! a `Status` with that HTTP code; [`Fault::Hang`] never answers until the server stops), or sets
//! one for every request until it clears it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::routes::App;
use crate::status::ApiError;

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (e.g. 500, 503, 429) and a matching `Status` object.
    Status(u16),
    /// Accept the request and never answer (until the server stops, when it answers 503).
    Hang,
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The HTTP status of the answer; `None` while it is being answered (or hangs).
    pub status: Option<u16>,
}

impl RequestRecord {
    /// Whether this is `method` on a path ending with `suffix`.
    pub fn is(&self, method: &str, suffix: &str) -> bool {
        self.method == method && self.path.ends_with(suffix)
    }
}

#[derive(Debug, Default)]
struct Inner {
    queued: VecDeque<Fault>,
    always: Option<Fault>,
    log: Vec<RequestRecord>,
}

/// The faults to come and the request log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hooks {
    inner: Arc<Mutex<Inner>>,
}

impl Hooks {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn fail_next(&self, n: usize, fault: Fault) {
        self.lock().queued.extend(std::iter::repeat_n(fault, n));
    }

    pub(crate) fn fail_always(&self, fault: Fault) {
        self.lock().always = Some(fault);
    }

    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.queued.clear();
        inner.always = None;
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    /// Logs a request and takes the fault it meets, if any.
    fn arrive(&self, request: &Request) -> (usize, Option<Fault>) {
        let mut inner = self.lock();
        inner.log.push(RequestRecord {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().map(str::to_owned),
            status: None,
        });
        let index = inner.log.len() - 1;
        let fault = inner.queued.pop_front().or(inner.always);
        (index, fault)
    }

    fn answered(&self, index: usize, status: StatusCode) {
        if let Some(record) = self.lock().log.get_mut(index) {
            record.status = Some(status.as_u16());
        }
    }
}

/// The middleware in front of every route: logs, then injects a fault or passes on.
pub(crate) async fn middleware(State(app): State<App>, request: Request, next: Next) -> Response {
    let (index, fault) = app.hooks.arrive(&request);
    let response = match fault {
        None => next.run(request).await,
        Some(Fault::Status(code)) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            tracing::debug!(%code, path = %request.uri().path(), "injected failure");
            ApiError::injected(code).into_response()
        }
        Some(Fault::Hang) => {
            tracing::debug!(path = %request.uri().path(), "injected hang");
            let mut stop = app.stop.clone();
            let _ = stop.wait_for(|stopping| *stopping).await;
            ApiError::shutting_down().into_response()
        }
    };
    app.hooks.answered(index, response.status());
    response
}
