//! `?watch=true`: a chunked response of newline-delimited watch events
//! (`{"type":"MODIFIED","object":{...}}`), as the real server streams them.
//!
//! Without `resourceVersion` (or with `0`) the watch starts with every selected object as
//! `ADDED`; with one, it replays the kept history after that version, or sends an `ERROR` event
//! with a `410 Expired` `Status` when that history is gone. `sendInitialEvents=true` ends the
//! initial objects with a `BOOKMARK` annotated `k8s.io/initial-events-end`. The stream ends after
//! `timeoutSeconds`, when the server stops, or when the watcher falls too far behind (the client
//! then watches again, as it must on a real cluster).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures_util::stream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::selectors::Filter;
use crate::status::ApiError;
use crate::store::{Event, EventKind, Store, WatchStart};

/// What a watch request asked for.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    pub filter: Filter,
    pub start: WatchStart,
    pub timeout: Duration,
    pub send_initial_events: bool,
}

fn line(event: &WatchEvent<Deployment>) -> Bytes {
    let mut text = serde_json::to_vec(event).unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

fn event_line(event: &Event) -> Bytes {
    let object = event.object.clone();
    line(&match event.kind {
        EventKind::Added => WatchEvent::Added(object),
        EventKind::Modified => WatchEvent::Modified(object),
        EventKind::Deleted => WatchEvent::Deleted(object),
    })
}

/// The end of the initial events of a `sendInitialEvents` watch: a bookmark with `apiVersion`
/// and `kind`, as the real server sends it (k8s-openapi's own form omits them).
fn initial_events_end(resource_version: u64) -> Bytes {
    let mut text = serde_json::to_vec(&json!({
        "type": "BOOKMARK",
        "object": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "resourceVersion": resource_version.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"}
            }
        }
    }))
    .unwrap_or_default();
    text.push(b'\n');
    Bytes::from(text)
}

struct Feed {
    pending: VecDeque<Bytes>,
    live: Option<broadcast::Receiver<Arc<Event>>>,
    last_rv: u64,
    filter: Filter,
    deadline: tokio::time::Instant,
    stop: watch::Receiver<bool>,
}

impl Feed {
    /// The next line to send, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(line) = self.pending.pop_front() {
            return Some(line);
        }
        let live = self.live.as_mut()?;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) if event.rv > self.last_rv && self.filter.matches(&event.object) => {
                        self.last_rv = event.rv;
                        return Some(event_line(&event));
                    }
                    Ok(_) => {}
                    // Too slow to keep up, or the store is gone: end, and let the client re-watch.
                    Err(_) => return None,
                },
                () = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.stop.wait_for(|stopping| *stopping) => return None,
            }
        }
    }
}

/// Starts a watch: the streaming response.
pub(crate) fn respond(
    store: &Store,
    request: WatchRequest,
    stop: watch::Receiver<bool>,
) -> Response {
    let deadline = tokio::time::Instant::now() + request.timeout;
    let subscription = store.lock().subscribe(&request.filter, request.start);
    let feed = match subscription {
        Ok(sub) => {
            let mut pending: VecDeque<Bytes> = sub.initial.iter().map(event_line).collect();
            if request.send_initial_events {
                pending.push_back(initial_events_end(sub.last_rv));
            }
            Feed {
                pending,
                live: Some(sub.live),
                last_rv: sub.last_rv,
                filter: request.filter,
                deadline,
                stop,
            }
        }
        // The real server answers 200 and reports an expired version as an ERROR event.
        Err(error) => Feed {
            pending: VecDeque::from([line(&WatchEvent::<Deployment>::ErrorStatus(error.status()))]),
            live: None,
            last_rv: 0,
            filter: request.filter,
            deadline,
            stop,
        },
    };
    let body = Body::from_stream(stream::unfold(feed, |mut feed| async move {
        feed.next()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), feed))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| {
            axum::response::IntoResponse::into_response(ApiError::bad_request(
                "cannot start the watch",
            ))
        })
}
