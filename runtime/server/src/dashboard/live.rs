//! Pages that follow the server without being reloaded: one watcher, many streams.
//!
//! One background task ([`watch`]) looks at what the pages show once per [`TICK`], while any
//! page is open, and keeps a fingerprint per topic (runs, approvals, the ledger, sources, the
//! fleet, playbooks). Each open page holds one server-sent event stream ([`stream`]) that only
//! waits on a `tokio::sync::watch` of those fingerprints and sends the names of the topics that
//! changed; the page's live regions then fetch themselves again (`app.js` dispatches
//! `grace:<topic>`, and htmx's `hx-trigger` fetches). So the cost of looking does not grow with
//! the number of people looking, and the stream carries nothing but topic names.
//!
//! Streams are bounded: [`MAX_STREAMS`] in all, [`MAX_STREAMS_PER_PRINCIPAL`] per person, each
//! ending after [`MAX_STREAM_AGE`] (the browser connects again, and is authenticated again: a
//! revoked token or an ended session stops its updates within that time), and all ending when
//! the server shuts down. A page hidden in a background tab closes its stream (`app.js`), so
//! that a browser's few connections per server are not all held by streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::session::Viewer;
use crate::app::App;
use crate::supervisor::TaskError;
use crate::trust::approvals::ApprovalState;

/// How often the watcher looks.
pub const TICK: Duration = Duration::from_secs(1);
/// The most streams open at once; more get `503` (the page still works, without live updates).
pub const MAX_STREAMS: usize = 256;
/// The most streams one principal holds at once.
pub const MAX_STREAMS_PER_PRINCIPAL: usize = 16;
/// How long a stream lasts before the browser must connect (and authenticate) again.
pub const MAX_STREAM_AGE: Duration = Duration::from_secs(600);

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
    /// The topics, as the pages name them.
    pub const TOPICS: [&'static str; 6] = [
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

/// The watcher's output and the streams' bounds.
pub struct Live {
    sender: watch::Sender<Fingerprints>,
    streams: Arc<Semaphore>,
    per_principal: Arc<Mutex<HashMap<String, usize>>>,
    closing: watch::Sender<bool>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            sender: watch::Sender::new(Fingerprints::default()),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            per_principal: Arc::default(),
            closing: watch::Sender::new(false),
        }
    }
}

/// One open stream's place, given back when the stream ends.
struct Place {
    _permit: OwnedSemaphorePermit,
    principal: String,
    per_principal: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = crate::sync::lock(&self.per_principal);
        if let Some(n) = counts.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.principal);
            }
        }
    }
}

impl Live {
    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        MAX_STREAMS - self.streams.available_permits()
    }

    /// Ends every stream: the server is shutting down.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A place for one more stream of `principal`, if there is room.
    fn hold(&self, principal: &str) -> Option<Place> {
        let mut counts = crate::sync::lock(&self.per_principal);
        let held = counts.get(principal).copied().unwrap_or(0);
        if held >= MAX_STREAMS_PER_PRINCIPAL {
            return None;
        }
        let permit = self.streams.clone().try_acquire_owned().ok()?;
        counts.insert(principal.to_owned(), held + 1);
        Some(Place {
            _permit: permit,
            principal: principal.to_owned(),
            per_principal: self.per_principal.clone(),
        })
    }
}

fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Looks at everything the pages show, once.
async fn look(app: &App) -> Fingerprints {
    // Through the index of pending approvals: what waits, not every approval ever asked.
    let approvals = match app
        .trust
        .approvals()
        .list(Some(ApprovalState::Pending), usize::MAX)
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
    let read = app.clone();
    let rest = tokio::task::spawn_blocking(move || look_in_store(&read))
        .await
        .unwrap_or_default();
    Fingerprints { approvals, ..rest }
}

/// The topics read from the store and the in-memory models, off the async workers.
fn look_in_store(app: &App) -> Fingerprints {
    // Every transition counts (a run finishing while another starts leaves the counts as they
    // were); accepted events do not, or a busy server would refresh every page every second.
    let transitions: u64 = crate::sync::lock(&app.metrics.run_transitions)
        .values()
        .sum();
    let counts = app.store.run_counts().unwrap_or_default();
    let runs = fingerprint(&(
        transitions,
        counts
            .iter()
            .map(|(s, n)| (s.name(), *n))
            .collect::<Vec<_>>(),
    ));
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
        approvals: 0,
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
        // Nobody looking: nothing to look at. A page opening later is sent every topic that
        // changed meanwhile, once.
        if app.dashboard.live.sender.receiver_count() == 0 {
            continue;
        }
        let now = look(&app).await;
        app.dashboard.live.sender.send_if_modified(|before| {
            let changed = *before != now;
            *before = now;
            changed
        });
    }
}

/// `GET /ui/stream`: the names of the topics that change, as server-sent events, for
/// [`MAX_STREAM_AGE`] at most.
pub async fn stream(State(app): State<App>, viewer: Viewer) -> Response {
    let live = &app.dashboard.live;
    let Some(place) = live.hold(&viewer.caller.principal) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many dashboards are open: this page will not update by itself",
        )
            .into_response();
    };
    let ends = tokio::time::Instant::now() + MAX_STREAM_AGE;
    Sse::new(topics(
        live.sender.subscribe(),
        live.closing.subscribe(),
        place,
        ends,
    ))
    .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    .into_response()
}

fn topics(
    receiver: watch::Receiver<Fingerprints>,
    closing: watch::Receiver<bool>,
    place: Place,
    ends: tokio::time::Instant,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let seen = *receiver.borrow();
    let state = (receiver, closing, seen, Vec::<&'static str>::new(), place);
    stream::unfold(
        state,
        move |(mut receiver, mut closing, mut seen, mut pending, place)| async move {
            loop {
                if let Some(topic) = pending.pop() {
                    let event = Event::default().event(topic).data(topic);
                    return Some((Ok(event), (receiver, closing, seen, pending, place)));
                }
                if *closing.borrow() {
                    return None;
                }
                tokio::select! {
                    changed = receiver.changed() => changed.ok()?,
                    _ = closing.changed() => return None,
                    () = tokio::time::sleep_until(ends) => return None,
                }
                let now = *receiver.borrow_and_update();
                pending = now.changed_since(&seen);
                seen = now;
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn far() -> tokio::time::Instant {
        tokio::time::Instant::now() + MAX_STREAM_AGE
    }

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
        let live = Live::default();
        let place = live.hold("local:alice").unwrap_or_else(|| unreachable!());
        assert_eq!(live.open_streams(), 1);
        let mut events = Box::pin(topics(
            live.sender.subscribe(),
            live.closing.subscribe(),
            place,
            far(),
        ));
        live.sender.send_replace(Fingerprints {
            approvals: 3,
            ..Fingerprints::default()
        });
        let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))));
        drop(events);
        assert_eq!(live.open_streams(), 0);
    }

    #[test]
    fn one_person_cannot_hold_every_stream() {
        let live = Live::default();
        let alice: Vec<_> = (0..MAX_STREAMS_PER_PRINCIPAL)
            .filter_map(|_| live.hold("local:alice"))
            .collect();
        assert_eq!(alice.len(), MAX_STREAMS_PER_PRINCIPAL);
        assert!(live.hold("local:alice").is_none());
        assert!(live.hold("local:bob").is_some(), "Bob still gets one");
        drop(alice);
        assert!(live.hold("local:alice").is_some());
    }

    #[tokio::test]
    async fn streams_end_at_shutdown_and_at_their_age() {
        let live = Live::default();
        let place = live.hold("local:alice").unwrap_or_else(|| unreachable!());
        let mut events = Box::pin(topics(
            live.sender.subscribe(),
            live.closing.subscribe(),
            place,
            far(),
        ));
        live.close();
        let end = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        assert!(matches!(end, Ok(None)), "closed at shutdown");

        let live = Live::default();
        let place = live.hold("local:alice").unwrap_or_else(|| unreachable!());
        let soon = tokio::time::Instant::now() + Duration::from_millis(50);
        let mut events = Box::pin(topics(
            live.sender.subscribe(),
            live.closing.subscribe(),
            place,
            soon,
        ));
        let end = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        assert!(matches!(end, Ok(None)), "ended at its age");
        drop(events);
        assert_eq!(live.open_streams(), 0);
    }
}
