//! Slack, PagerDuty and Jira as local test servers, for the vendors that have no server of their
//! own to run here. Each checks every request exactly as its vendor documents it (method, path,
//! authentication, content type, the body's schema and limits) and answers as the vendor does,
//! errors and rate limits included; and keeps the state a test looks at (messages, incidents,
//! issues). A request a real vendor would refuse is refused the same way and recorded in
//! [`Log::violations`], so a test can assert there were none.
//!
//! The sources of each vendor's rules are listed in `docs/integrations.md`.
//!
//! - [`slack::SlackServer`]: `chat.postMessage`, `chat.update`, `chat.postEphemeral`; and
//!   Slack's side of a button press, signed with the app's signing secret;
//! - [`pagerduty::PagerDutyServer`]: Events API v2 (`/v2/enqueue`); and webhooks v3, signed;
//! - [`jira::JiraServer`]: REST v3 issues, comments, transitions and JQL search by label;
//! - [`github`]: deliveries of `deployment` and `deployment_status`, signed.
//!
//! Faults are queued per server ([`Faults`]): the next requests answer `429` (with or without
//! `Retry-After`, as the vendor does) or a `5xx`.

pub mod github;
pub mod jira;
pub mod pagerduty;
pub mod slack;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// A failure the next request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The vendor's rate-limit answer, with `Retry-After` in seconds when the vendor sends one.
    RateLimited(Option<u64>),
    /// A server error with this status.
    Status(u16),
    /// The answer comes after this many milliseconds (a slow vendor; the request is then
    /// handled as usual).
    Delay(u64),
}

/// One request, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `POST`, `GET`.
    pub method: String,
    /// The path.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

/// What a server saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Every request, in order.
    pub requests: Vec<Received>,
    /// Requests the vendor would refuse, with why.
    pub violations: Vec<String>,
}

/// The faults queued and the log, shared by a server's handlers.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    queued: Arc<Mutex<VecDeque<Fault>>>,
    log: Arc<Mutex<Log>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Faults {
    /// Queues `fault` for the next request (after those queued before).
    pub fn push(&self, fault: Fault) {
        lock(&self.queued).push_back(fault);
    }

    /// The next queued fault, left queued.
    pub fn peek(&self) -> Option<Fault> {
        lock(&self.queued).front().copied()
    }

    /// The next queued fault, if any.
    pub fn next(&self) -> Option<Fault> {
        lock(&self.queued).pop_front()
    }

    /// Records a request.
    pub fn received(&self, method: &str, path: &str, status: u16) {
        lock(&self.log).requests.push(Received {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
        });
    }

    /// Records a violation.
    pub fn violation(&self, what: impl Into<String>) {
        lock(&self.log).violations.push(what.into());
    }

    /// The violations so far.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.log).violations.clone()
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.log).requests.clone()
    }
}

/// Serves `router` on a free loopback port, on the current tokio runtime.
pub(crate) async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Starts `make`'s server on a runtime of its own, on a thread that lives as long as the test
/// process: for tests that are not async.
pub(crate) fn on_own_runtime<T: Send + 'static>(
    make: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
    + Send
    + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("no runtime for a vendor test server: {e}"));
        runtime.block_on(async move {
            let _ = tx.send(make().await);
            std::future::pending::<()>().await;
        });
    });
    rx.recv()
        .unwrap_or_else(|e| panic!("the vendor test server did not start: {e}"))
}
