//! One replica's part in the cluster: its heartbeat, the shard leases it holds, and the loop
//! that keeps them — renewing what it holds, taking free shards up to its fair share, and giving
//! back what is beyond it when another replica has less.
//!
//! Balance: with `R` live replicas each aims at `ceil(shards / R)` shards (a live replica that
//! holds no shard and has not written to the lease bucket lately does not count: see
//! `takes_part`). A replica under its
//! share takes free shards in its own order of preference ([`crate::shards::preference`]); one
//! over it releases the surplus (its least preferred) while some other live replica is under
//! its share, and the others pick them up at their next round. A shard whose holder died is
//! free once its lease expired on the engine (at most `lease_ttl` after the holder's last
//! renewal).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::future::join_all;

use crate::connect::Engine;
use crate::error::ClusterError;
use crate::lease::{Holder, Lease, Leases, Slot};
use crate::members::{self, Heartbeat, Member};
use crate::schema;
use crate::settings::ClusterSettings;
use crate::shards::{fair_share, preference};

/// A replica of the cluster: the engine connection, its buckets and its shard ownership.
pub struct Cluster {
    engine: Engine,
    events: crate::events::EventStream,
    runs: crate::runs::RunBoard,
    approvals: crate::approvals::ApprovalBoard,
    ledgers: crate::ledgers::Ledgers,
    playbooks: crate::playbooks::Catalogue,
    policies: crate::Records,
    credentials: crate::credentials::Credentials,
    resource_changes: crate::Records,
    settings: ClusterSettings,
    leases: Leases,
    members: kv::Store,
    heartbeat: tokio::sync::Mutex<Heartbeat>,
    /// Serializes the writes to this replica's leases: a renewal and a fence check of the same
    /// lease must not race on its revision.
    lease_writes: tokio::sync::Mutex<()>,
    state: Mutex<View>,
    counters: Counters,
    /// Changes being made under a fence permit, per shard: a shard is given back only once its
    /// calls in flight returned (or its lease's trusted end passed).
    in_flight: Vec<AtomicUsize>,
    /// Set when the replica stops: it takes nothing more, and every permit is void.
    leaving: AtomicBool,
}

/// What the loop saw last.
#[derive(Default)]
struct View {
    owned: BTreeMap<u32, Lease>,
    holders: Vec<Option<Holder>>,
    /// The replica last seen holding each shard, kept after its lease is gone: a shard taken
    /// from another replica is a takeover.
    last_holder: Vec<Option<String>>,
    members: Vec<Member>,
    last_beat: Option<Instant>,
    registered: bool,
    /// The event log's leader as last read.
    event_leader: Option<String>,
    last_error: Option<String>,
}

/// Counters since start, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Leases renewed.
    pub renewals: AtomicU64,
    /// Leases acquired.
    pub acquisitions: AtomicU64,
    /// Leases acquired that another replica held before.
    pub takeovers: AtomicU64,
    /// Leases lost (not renewed in time, or taken).
    pub losses: AtomicU64,
    /// Leases given back.
    pub releases: AtomicU64,
    /// Fence checks refused.
    pub fence_rejections: AtomicU64,
    /// Renewals the engine did not answer (retried while the lease is trusted).
    pub renewal_failures: AtomicU64,
    /// Times the event log's leader was seen to change (an engine node lost or restarted).
    pub event_leader_changes: AtomicU64,
    /// Runs taken over from another replica (or from an earlier attempt here) off the run
    /// board.
    pub runs_taken_over: AtomicU64,
    /// Playbook versions from the cluster's catalogue this replica refused to install (a
    /// signer it does not trust, a digest that does not match, over its caps).
    pub installs_refused: AtomicU64,
}

/// Why an action on a shard may not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// This replica does not hold the shard.
    #[error("this replica does not hold shard {0}")]
    NotOwner(u32),
    /// The lease is past the time this replica may trust it.
    #[error("the lease of shard {0} expired before the action")]
    Expired(u32),
    /// The engine refused the compare-and-set: another replica holds the shard now.
    #[error("shard {0} was taken over (the fencing token is stale)")]
    Stale(u32),
    /// The engine could not confirm the lease.
    #[error("the lease of shard {shard} could not be confirmed: {message}")]
    Unconfirmed {
        /// The shard.
        shard: u32,
        /// Why.
        message: String,
    },
}

/// A passed fence check: valid while this replica holds the shard under the same token, trusts
/// its lease and is not stopping; counted as a change in flight until dropped.
pub struct FencePermit {
    cluster: Arc<Cluster>,
    /// The shard.
    pub shard: u32,
    /// The tenure's fencing token.
    pub token: u64,
    /// The engine revision the check wrote (the lease key's).
    pub engine_revision: u64,
    valid_until: Instant,
}

impl FencePermit {
    /// Whether the change may still be made now.
    pub fn holds(&self) -> bool {
        Instant::now() < self.valid_until && self.cluster.owns(self.shard) == Some(self.token)
    }
}

impl std::fmt::Debug for FencePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FencePermit")
            .field("shard", &self.shard)
            .field("token", &self.token)
            .field("engine_revision", &self.engine_revision)
            .finish_non_exhaustive()
    }
}

impl Drop for FencePermit {
    fn drop(&mut self) {
        self.cluster.in_flight[self.shard as usize].fetch_sub(1, Ordering::SeqCst);
    }
}

impl Cluster {
    /// Connects to the engine, creates or checks the streams and buckets, and checks that this
    /// replica agrees with the cluster on its fixed settings. Nothing is owned until
    /// [`Cluster::run`] runs.
    pub async fn start(settings: &ClusterSettings) -> Result<Cluster, ClusterError> {
        Cluster::start_on(Engine::connect(settings).await?, settings).await
    }

    /// As [`Cluster::start`], on an engine connection made by the caller.
    pub async fn start_on(
        engine: Engine,
        settings: &ClusterSettings,
    ) -> Result<Cluster, ClusterError> {
        settings.validate()?;
        let replicas = settings.engine_replicas;
        let leases = schema::leases(settings).ensure(&engine, replicas).await?;
        let members = schema::replicas(settings).ensure(&engine, replicas).await?;
        let facts = schema::facts().ensure(&engine, replicas).await?;
        agree_on_shards(&facts, settings.shards).await?;
        let events = crate::events::EventStream::open(&engine, settings).await?;
        let runs = crate::runs::RunBoard::open(&engine, settings).await?;
        let approvals = crate::approvals::ApprovalBoard::open(&engine, settings).await?;
        let ledgers = crate::ledgers::Ledgers::open(&engine, settings).await?;
        let playbooks = crate::playbooks::Catalogue::open(&engine, settings).await?;
        let policies = crate::policies::open(&engine, settings).await?;
        let credentials = crate::credentials::Credentials::open(&engine, settings).await?;
        let resource_changes = crate::resource_changes::open(&engine, settings).await?;
        let replica = settings.replica_name();
        let incarnation = uuid::Uuid::new_v4().to_string();
        let shards = settings.shards as usize;
        Ok(Cluster {
            heartbeat: tokio::sync::Mutex::new(Heartbeat::new(
                members.clone(),
                replica.clone(),
                incarnation.clone(),
                settings.request_timeout,
            )),
            leases: Leases::new(
                leases,
                replica,
                incarnation,
                settings.lease_ttl,
                settings.margin(),
            ),
            members,
            events,
            runs,
            approvals,
            ledgers,
            playbooks,
            policies,
            credentials,
            resource_changes,
            engine,
            settings: settings.clone(),
            lease_writes: tokio::sync::Mutex::new(()),
            state: Mutex::new(View {
                holders: vec![None; shards],
                last_holder: vec![None; shards],
                ..View::default()
            }),
            counters: Counters::default(),
            in_flight: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            leaving: AtomicBool::new(false),
        })
    }

    /// Keeps this replica's heartbeat and leases, every `renew_every`, until the task is
    /// aborted. Never returns an error: a failed round is logged and kept in the status.
    pub async fn run(&self) {
        let mut every = tokio::time::interval(self.settings.renew_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.round().await;
        }
    }

    /// One round: heartbeat, renewals, then balance.
    pub async fn round(&self) {
        // At once: a heartbeat waiting on a stream electing its leader must not hold renewals
        // back (each may take up to request_timeout).
        tokio::join!(self.beat(), self.renew_all());
        self.watch_event_leader().await;
        if let Err(e) = self.balance().await {
            tracing::warn!("cluster round: {e}");
            self.view().last_error = Some(e.to_string());
        }
        // Told in the next beat: this replica can take shards (see `takes_part`).
        if self
            .leases
            .probe(self.settings.request_timeout)
            .await
            .is_ok()
        {
            self.heartbeat
                .lock()
                .await
                .leases_ok(crate::lease::now_millis());
        }
    }

    /// Notes a change of the event log's leader: the readers' consumers may have gone with
    /// the old one (see [`Cluster::disturbances`]).
    async fn watch_event_leader(&self) {
        let Ok(Some(leader)) = self.events.leader().await else {
            return;
        };
        let mut view = self.view();
        if view.event_leader.as_ref().is_some_and(|l| *l != leader) {
            self.counters
                .event_leader_changes
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(leader = %leader, "the event log has a new leader");
        }
        view.event_leader = Some(leader);
    }

    async fn beat(&self) {
        if self.leaving.load(Ordering::SeqCst) {
            return;
        }
        let result = self.heartbeat.lock().await.beat().await;
        let mut view = self.view();
        match result {
            Ok(()) => {
                view.last_beat = Some(Instant::now());
                view.registered = true;
                view.last_error = None;
            }
            Err(e) => {
                // Only another process holding the name unregisters this one; an unanswered
                // write leaves readiness to the heartbeat's age.
                if matches!(e, ClusterError::Conflict { .. }) {
                    view.registered = false;
                }
                let message = match e {
                    ClusterError::Conflict { .. } => format!(
                        "another process holds replica name `{}` (or did less than lease_ttl \
                         ago): waiting for it to go",
                        self.leases.replica()
                    ),
                    e => e.to_string(),
                };
                tracing::warn!("{message}");
                view.last_error = Some(message);
            }
        }
    }

    async fn renew_all(&self) {
        let _writes = self.lease_writes.lock().await;
        let owned: Vec<Lease> = self.view().owned.values().cloned().collect();
        let renewed = join_all(owned.into_iter().map(|mut lease| async move {
            let result = self.leases.renew(&mut lease).await;
            (lease, result)
        }))
        .await;
        let now = Instant::now();
        let mut view = self.view();
        for (lease, result) in renewed {
            let shard = lease.shard();
            match result {
                Ok(()) => {
                    self.counters.renewals.fetch_add(1, Ordering::Relaxed);
                    // Unless it was given up meanwhile.
                    if let Some(held) = view.owned.get_mut(&shard) {
                        *held = lease;
                    }
                }
                Err(ClusterError::Conflict { .. }) => {
                    self.lost(&mut view, shard, "another replica holds it now");
                }
                Err(e) if !lease.valid_at(now) => {
                    self.lost(&mut view, shard, &format!("not renewed in time: {e}"));
                }
                Err(e) => {
                    self.counters
                        .renewal_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(shard, "lease renewal failed, retrying: {e}");
                }
            }
        }
    }

    fn lost(&self, view: &mut View, shard: u32, why: &str) {
        if view.owned.remove(&shard).is_some() {
            self.counters.losses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(shard, "lease lost: {why}");
        }
    }

    async fn balance(&self) -> Result<(), ClusterError> {
        if self.leaving.load(Ordering::SeqCst)
            || !self.view().registered
            || !self.engine.connected()
        {
            return Ok(());
        }
        let timeout = self.settings.request_timeout;
        let shards = self.settings.shards;
        let slots = members::within(timeout, "read leases", async {
            join_all((0..shards).map(|s| self.leases.slot(s)))
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        let released: Vec<bool> = slots.iter().map(|s| *s == Slot::Released).collect();
        let holders: Vec<Option<Holder>> = slots
            .into_iter()
            .map(|s| match s {
                Slot::Held(h) => Some(h),
                Slot::Released | Slot::Free => None,
            })
            .collect();
        let live = members::live(&self.members, timeout).await?;
        let me = self.leases.replica().to_owned();
        let held_by = |replica: &str| {
            holders
                .iter()
                .flatten()
                .filter(|h| h.value.replica == replica)
                .count()
        };
        // Who shares the shards: the live replicas, less those that have held none for longer
        // than a replica needs to take its first (one stuck, or cut off from the leases but
        // not from its heartbeat); counting those would leave their share held by nobody.
        let sharing: Vec<&Member> = live
            .iter()
            .filter(|m| {
                takes_part(
                    m,
                    &me,
                    held_by(&m.replica),
                    crate::lease::now_millis(),
                    self.settings.lease_ttl * 3,
                )
            })
            .collect();
        let share = fair_share(shards, sharing.len().max(1));
        let (free, surplus) = {
            let mut view = self.view();
            for (s, holder) in holders.iter().enumerate() {
                if let Some(h) = holder {
                    view.last_holder[s] = Some(h.value.replica.clone());
                }
            }
            view.holders = holders.clone();
            view.members = live.clone();
            let owned = view.owned.len();
            let mut free: Vec<u32> = (0..shards)
                .filter(|s| holders[*s as usize].is_none() && !view.owned.contains_key(s))
                .collect();
            free.sort_by_key(|s| std::cmp::Reverse(preference(&me, *s)));
            free.truncate(share.saturating_sub(owned));
            let others: Vec<usize> = sharing
                .iter()
                .filter(|m| m.replica != me)
                .map(|m| held_by(&m.replica))
                .collect();
            let keep =
                keep_after_balance(owned, share, floor_share(shards, sharing.len()), &others);
            let mut surplus: Vec<Lease> = Vec::new();
            if owned > keep {
                let mut mine: Vec<&Lease> = view.owned.values().collect();
                mine.sort_by_key(|l| preference(&me, l.shard()));
                surplus = mine.into_iter().take(owned - keep).cloned().collect();
            }
            (free, surplus)
        };
        for shard in free {
            match self.leases.acquire(shard).await {
                Ok(lease) => {
                    self.counters.acquisitions.fetch_add(1, Ordering::Relaxed);
                    let mut view = self.view();
                    // Taken from a holder that stopped renewing (not one that gave it back).
                    let before = view.last_holder[shard as usize].replace(me.clone());
                    if before.is_some_and(|b| b != me) && !released[shard as usize] {
                        self.counters.takeovers.fetch_add(1, Ordering::Relaxed);
                    }
                    view.holders[shard as usize] = Some(self.leases.holder_of(&lease));
                    tracing::info!(shard, token = lease.token(), "shard lease acquired");
                    view.owned.insert(shard, lease);
                }
                Err(ClusterError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for lease in surplus {
            self.release(lease.shard()).await?;
        }
        Ok(())
    }

    /// Gives shard `shard` back: from now on no permit of it holds and no fence check passes;
    /// once the changes in flight under its permits returned (or its lease's trusted end passed,
    /// after which the engine drops it anyway), the lease is deleted so that another replica
    /// may take it at once.
    pub async fn release(&self, shard: u32) -> Result<(), ClusterError> {
        let lease = {
            // No renewal of it is in flight while it is taken out.
            let _writes = self.lease_writes.lock().await;
            let Some(lease) = self.view().owned.remove(&shard) else {
                return Ok(());
            };
            lease
        };
        let calls = &self.in_flight[shard as usize];
        while calls.load(Ordering::SeqCst) > 0 && lease.valid_at(Instant::now()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.counters.releases.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = self.view().holders.get_mut(shard as usize) {
            *h = None;
        }
        tracing::info!(shard, "shard lease released");
        let _writes = self.lease_writes.lock().await;
        self.leases.release(lease).await
    }

    /// Gives every shard back and removes the heartbeat: a replica stopping cleanly, whose
    /// shards then move at once rather than after `lease_ttl`.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        let shards: Vec<u32> = self.view().owned.keys().copied().collect();
        for shard in shards {
            if let Err(e) = self.release(shard).await {
                tracing::warn!(shard, "could not release the lease: {e}");
            }
        }
        self.heartbeat.lock().await.leave().await;
    }

    /// Proves, immediately before an action on `shard`, that this replica still holds it: a
    /// compare-and-set of the lease on the engine (which also renews it), then the local
    /// deadline. Only a write can prove it; a read may be answered by a stream replica that is
    /// behind.
    pub async fn fence(self: &Arc<Self>, shard: u32) -> Result<FencePermit, Fenced> {
        if shard >= self.settings.shards {
            return Err(self.rejected(Fenced::NotOwner(shard)));
        }
        let _writes = self.lease_writes.lock().await;
        let Some(mut lease) = self.view().owned.get(&shard).cloned() else {
            return Err(self.rejected(Fenced::NotOwner(shard)));
        };
        if !lease.valid_at(Instant::now()) {
            self.lost(&mut self.view(), shard, "expired before an action");
            return Err(self.rejected(Fenced::Expired(shard)));
        }
        match self.leases.renew(&mut lease).await {
            Ok(()) => {}
            Err(ClusterError::Conflict { .. }) => {
                self.lost(&mut self.view(), shard, "taken over");
                return Err(self.rejected(Fenced::Stale(shard)));
            }
            Err(e) => {
                return Err(self.rejected(Fenced::Unconfirmed {
                    shard,
                    message: e.to_string(),
                }));
            }
        }
        self.counters.renewals.fetch_add(1, Ordering::Relaxed);
        // Counted before the lease is put back: a release from here on waits for it.
        self.in_flight[shard as usize].fetch_add(1, Ordering::SeqCst);
        let permit = FencePermit {
            cluster: self.clone(),
            shard,
            token: lease.token(),
            engine_revision: lease.revision(),
            valid_until: lease.valid_until(),
        };
        if let Some(held) = self.view().owned.get_mut(&shard) {
            *held = lease;
        }
        Ok(permit)
    }

    /// Whether this replica may act on `shard` now, by its own clock (no engine request): for
    /// decisions that are checked again by [`Cluster::fence`] before any change.
    pub fn owns(&self, shard: u32) -> Option<u64> {
        if self.leaving.load(Ordering::SeqCst) {
            return None;
        }
        let view = self.view();
        let lease = view.owned.get(&shard)?;
        lease.valid_at(Instant::now()).then_some(lease.token())
    }

    fn rejected(&self, fenced: Fenced) -> Fenced {
        self.counters
            .fence_rejections
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!("fence check refused: {fenced}");
        fenced
    }

    /// Whether this replica can take part now: connected to the engine, registered, and its
    /// heartbeat written within the time a lease is trusted.
    pub fn ready(&self) -> bool {
        self.ready_locked(&self.view())
    }

    /// The counters since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The runs in the engine and their change journals.
    pub fn runs(&self) -> &crate::runs::RunBoard {
        &self.runs
    }

    /// The approval requests in the engine.
    pub fn approvals(&self) -> &crate::approvals::ApprovalBoard {
        &self.approvals
    }

    /// Every replica's ledger: published checkpoints, and reads from any replica.
    pub fn ledgers(&self) -> &crate::ledgers::Ledgers {
        &self.ledgers
    }

    /// The cluster's playbooks: the catalogue and the components.
    pub fn playbooks(&self) -> &crate::playbooks::Catalogue {
        &self.playbooks
    }

    /// The cluster's Cedar policy sets.
    pub fn policies(&self) -> &crate::Records {
        &self.policies
    }

    /// The cluster's API tokens and principals.
    pub fn credentials(&self) -> &crate::credentials::Credentials {
        &self.credentials
    }

    /// Each resource's recent changes, by any replica.
    pub fn resource_changes(&self) -> &crate::Records {
        &self.resource_changes
    }

    /// The cluster's event log.
    pub fn events(&self) -> &crate::events::EventStream {
        &self.events
    }

    /// The shards this replica holds now, by its own clock, with their tokens.
    pub fn owned(&self) -> Vec<(u32, u64)> {
        if self.leaving.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let now = Instant::now();
        self.view()
            .owned
            .values()
            .filter(|l| l.valid_at(now))
            .map(|l| (l.shard(), l.token()))
            .collect()
    }

    /// The engine connection.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// This replica's name, as fixed at start.
    pub fn replica(&self) -> &str {
        self.leases.replica()
    }

    /// The settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// What `grace cluster status` and `GET /v1/cluster` show.
    pub fn status(&self) -> crate::status::ClusterStatus {
        let view = self.view();
        let now = Instant::now();
        crate::status::ClusterStatus::new(
            &self.settings,
            self.leases.replica(),
            self.leases.incarnation(),
            self.ready_locked(&view),
            self.engine.connected(),
            // Only what this replica would act on: a lease past its trusted end is not shown
            // as held while the next renewal round has not dropped it yet.
            view.owned
                .values()
                .filter(|l| l.valid_at(now) && !self.leaving.load(Ordering::SeqCst))
                .map(|l| {
                    (
                        l.shard(),
                        l.token(),
                        l.valid_until().saturating_duration_since(now),
                    )
                })
                .collect(),
            &view.holders,
            &view.members,
            view.last_error.clone(),
            &self.counters,
        )
    }

    fn ready_locked(&self, view: &View) -> bool {
        self.engine.connected()
            && view.registered
            && view
                .last_beat
                .is_some_and(|t| t.elapsed() < self.settings.lease_ttl - self.settings.margin())
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A number that changes whenever the engine may have lost something of this replica's
    /// (its connection dropped, a renewal went unanswered, the event log changed leader): readers
    /// kept open across such an event are opened again rather than trusted to notice (an
    /// ordered consumer on a lost node takes some 20 s to).
    pub fn disturbances(&self) -> u64 {
        self.engine.disconnects()
            + self.counters.renewal_failures.load(Ordering::Relaxed)
            + self.counters.event_leader_changes.load(Ordering::Relaxed)
    }

    /// How long a lease is trusted after its last renewal was sent.
    pub fn trust_for(&self) -> Duration {
        self.settings.lease_ttl - self.settings.margin()
    }
}

/// Whether live replica `member` shares the shards this round: this replica, one that holds
/// some (`held`), or one that wrote to the lease bucket less than `settle` ago (by its own
/// clock, `now` by this one's): it can take shards, and is owed its share.
fn takes_part(member: &Member, me: &str, held: usize, now: u64, settle: Duration) -> bool {
    let settle = u64::try_from(settle.as_millis()).unwrap_or(u64::MAX);
    member.replica == me || held > 0 || now.saturating_sub(member.leases_ok_millis) < settle
}

/// The floor of each live replica's share (at least 1 when there are enough shards).
fn floor_share(shards: u32, replicas: usize) -> usize {
    (shards as usize / replicas.max(1))
        .max(1)
        .min(shards as usize)
}

/// How many of its `owned` shards a replica keeps this round, given the ceiling and floor of
/// the fair share and how many the other live replicas hold: while another holds less than the
/// floor, down to the floor (several replicas at the ceiling each give one, so the one below
/// gets them: 6, 6, 4 of 16 becomes 5, 5, 6); else, while another holds less than the ceiling,
/// down to the ceiling; else all.
fn keep_after_balance(owned: usize, ceil: usize, floor: usize, others: &[usize]) -> usize {
    if others.iter().any(|n| *n < floor) {
        owned.min(floor)
    } else if others.iter().any(|n| *n < ceil) {
        owned.min(ceil)
    } else {
        owned
    }
}

/// Writes `shards` as the cluster's shard count if none is there, else checks it is the same.
async fn agree_on_shards(facts: &kv::Store, shards: u32) -> Result<(), ClusterError> {
    let ours = shards.to_string();
    match facts.create("shards", ours.clone().into()).await {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
        Err(e) => return Err(ClusterError::unavailable("write cluster facts", e)),
    }
    let entry = facts
        .entry("shards")
        .await
        .map_err(|e| ClusterError::unavailable("read cluster facts", e))?
        .ok_or_else(|| ClusterError::unavailable("read cluster facts", "no value"))?;
    let theirs = String::from_utf8_lossy(&entry.value).into_owned();
    if theirs == ours {
        Ok(())
    } else {
        Err(ClusterError::Mismatch {
            field: "shards",
            ours,
            theirs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_replica_counts_while_it_can_write_leases_or_holds_shards() {
        let member = |name: &str, leases_ok_millis: u64| Member {
            replica: name.into(),
            incarnation: "i".into(),
            started_millis: 0,
            at_millis: 0,
            version: "v".into(),
            leases_ok_millis,
        };
        let settle = Duration::from_secs(45);
        let now = 1_000_000;
        // Wrote to the lease bucket lately, nothing held (just started, or lost its shards for
        // a moment): counted, and owed its share.
        assert!(takes_part(
            &member("new", now - 10_000),
            "me",
            0,
            now,
            settle
        ));
        // No lease write for a minute and nothing held: stuck, or cut off from the leases but
        // not from its heartbeat; not counted, so its share is held by the others.
        assert!(!takes_part(
            &member("stuck", now - 60_000),
            "me",
            0,
            now,
            settle
        ));
        // A replica that does not say (an older version): counted only while it holds shards.
        assert!(!takes_part(&member("older", 0), "me", 0, now, settle));
        assert!(takes_part(&member("older", 0), "me", 3, now, settle));
        // This replica always.
        assert!(takes_part(&member("me", 0), "me", 0, now, settle));
        // Its clock ahead of ours: counted.
        assert!(takes_part(
            &member("ahead", now + 5_000),
            "me",
            0,
            now,
            settle
        ));
    }

    #[test]
    fn balance_converges_to_the_fair_share() {
        // 16 shards over 3 replicas: ceiling 6, floor 5.
        let (ceil, floor) = (fair_share(16, 3), floor_share(16, 3));
        assert_eq!((ceil, floor), (6, 5));
        // 6, 6, 4: each replica at 6 gives one back; the one at 4 takes both (up to 6).
        assert_eq!(keep_after_balance(6, ceil, floor, &[6, 4]), 5);
        // 5, 5, 6: stable.
        assert_eq!(keep_after_balance(6, ceil, floor, &[5, 5]), 6);
        assert_eq!(keep_after_balance(5, ceil, floor, &[5, 6]), 5);
        // A replica alone with every shard, another joins: down to the share.
        assert_eq!(
            keep_after_balance(8, fair_share(8, 2), floor_share(8, 2), &[0]),
            4
        );
        // Nobody under the floor or the ceiling: keep everything.
        assert_eq!(keep_after_balance(4, 4, 4, &[4]), 4);
        // More replicas than shards: one each at most, never zero kept by force.
        assert_eq!(floor_share(2, 3), 1);
        assert_eq!(
            keep_after_balance(1, fair_share(2, 3), floor_share(2, 3), &[1, 0]),
            1
        );
    }
}
