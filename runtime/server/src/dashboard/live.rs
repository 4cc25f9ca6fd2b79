//! Pages that follow the server without being reloaded: one watcher, many streams.
//!
//! One background task ([`watch`]) looks at what the pages show once per [`TICK`] and keeps a
//! fingerprint per topic (runs, approvals, the ledger, sources, the fleet, playbooks). Each open
//! page holds one server-sent event stream ([`stream`]) that only waits on a
//! `tokio::sync::watch` of those fingerprints and sends the names of the topics that changed;
//! the page's live regions then fetch themselves again (htmx, `hx-trigger="sse:<topic>"`). So
//! the cost of looking does not grow with the number of people looking, and the stream carries
//! nothing but topic names.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::app::App;
use crate::supervisor::TaskError;
use crate::trust::approvals::ApprovalState;

/// How often the watcher looks.
pub const TICK: Duration = Duration::from_millis(500);
/// The most streams open at once; more get `503` (the page still works, without live updates).
pub const MAX_STREAMS: usize = 256;

/// What the pages show, one fingerprint per topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprints {
    runs: u64,
    approvals: u64,
    ledger: u64,
    sources: u64,
    fleet: u64,
    playbooks: u64,
}

impl Fingerprints {
    const TOPICS: [&'static str; 6] = [
        "runs",
        "approvals",
        "ledger",
        "sources",
        "fleet",
        "playbooks",
    ];

    fn values(&self) -> [u64; 6] {
        [
            self.runs,
            self.approvals,
            self.ledger,
            self.sources,
            self.fleet,
            self.playbooks,
        ]
    }

    /// The topics whose fingerprint differs from `before`'s.
    pub fn changed_since(&self, before: &Fingerprints) -> Vec<&'static str> {
        Self::TOPICS
            .into_iter()
            .zip(self.values().into_iter().zip(before.values()))
            .filter(|(_, (now, then))| now != then)
            .map(|(topic, _)| topic)
            .collect()
    }
}

/// The watcher's output and the streams' bound.
pub struct Live {
    sender: watch::Sender<Fingerprints>,
    streams: Arc<Semaphore>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            sender: watch::Sender::new(Fingerprints::default()),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }
}

impl Live {
    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        MAX_STREAMS - self.streams.available_permits()
    }
}

fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Looks at everything the pages show, once.
async fn look(app: &App) -> Fingerprints {
    let transitions: u64 = crate::sync::lock(&app.metrics.run_transitions)
        .values()
        .sum();
    let counts = app.store.run_counts().unwrap_or_default();
    let runs = fingerprint(&(
        transitions,
        app.metrics.events_accepted.load(Ordering::Relaxed),
        counts
            .iter()
            .map(|(s, n)| (s.name(), *n))
            .collect::<Vec<_>>(),
    ));
    let approvals = match app
        .trust
        .approvals()
        .list(Some(ApprovalState::Pending), 1000)
        .await
    {
        Ok(list) => fingerprint(
            &list
                .iter()
                .map(|a| (&a.id, a.approved_by.len()))
                .collect::<Vec<_>>(),
        ),
        Err(_) => 0,
    };
    let ledger = app.ledger.head().ok().flatten().map_or(0, |h| h.entries);
    let sources = fingerprint(
        &app.sources
            .health()
            .snapshot()
            .iter()
            .map(|s| (&s.name, s.successes, s.failures, s.events))
            .collect::<Vec<_>>(),
    );
    let fleet = match &app.sim {
        Some(sim) => {
            let snapshot = sim.snapshot();
            fingerprint(
                &serde_json::to_string(&(
                    &snapshot.groups,
                    &snapshot.containers,
                    &snapshot.deployments,
                ))
                .unwrap_or_default(),
            )
        }
        None => app.cluster.as_ref().map_or(0, |c| {
            fingerprint(&serde_json::to_string(&c.status().holders).unwrap_or_default())
        }),
    };
    let playbooks = fingerprint(
        &app.registry
            .playbooks()
            .unwrap_or_default()
            .iter()
            .map(|p| (&p.name, p.enabled, &p.active_version))
            .collect::<Vec<_>>(),
    );
    Fingerprints {
        runs,
        approvals,
        ledger,
        sources,
        fleet,
        playbooks,
    }
}

/// The watcher: a supervised background task.
pub async fn watch(app: App) -> Result<(), TaskError> {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = look(&app).await;
        app.dashboard.live.sender.send_if_modified(|before| {
            let changed = *before != now;
            *before = now;
            changed
        });
    }
}

/// `GET /ui/stream`: the names of the topics that change, as server-sent events, for as long
/// as the page is open.
pub async fn stream(State(app): State<App>) -> Response {
    let live = &app.dashboard.live;
    let Ok(permit) = live.streams.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboards are open: this page will not update by itself",
        )
            .into_response();
    };
    let receiver = live.sender.subscribe();
    Sse::new(topics(receiver, permit))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn topics(
    receiver: watch::Receiver<Fingerprints>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let seen = *receiver.borrow();
    let state = (receiver, seen, Vec::<&'static str>::new(), permit);
    stream::unfold(
        state,
        |(mut receiver, mut seen, mut pending, permit)| async move {
            loop {
                if let Some(topic) = pending.pop() {
                    let event = Event::default().event(topic).data(topic);
                    return Some((Ok(event), (receiver, seen, pending, permit)));
                }
                // The server shutting down drops the sender: the stream ends.
                receiver.changed().await.ok()?;
                let now = *receiver.borrow_and_update();
                pending = now.changed_since(&seen);
                seen = now;
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_topics_that_changed_are_named() {
        let before = Fingerprints::default();
        let now = Fingerprints {
            runs: 1,
            ledger: 7,
            ..before
        };
        assert_eq!(now.changed_since(&before), vec!["runs", "ledger"]);
        assert!(now.changed_since(&now).is_empty());
    }

    #[tokio::test]
    async fn a_stream_sends_each_change_and_gives_its_place_back_when_closed() {
        use futures_util::StreamExt;
        let live = Live::default();
        let permit = live
            .streams
            .clone()
            .try_acquire_owned()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(live.open_streams(), 1);
        let mut events = Box::pin(topics(live.sender.subscribe(), permit));
        live.sender.send_replace(Fingerprints {
            approvals: 3,
            ..Fingerprints::default()
        });
        let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))));
        drop(events);
        assert_eq!(live.open_streams(), 0);
    }
}
