//! The meta-loop: GRACE watching its own behaviour (`docs/outcomes.md#the-meta-loop`).
//!
//! **Flapping** ([`flapping`]): when runs make opposite capacity changes of one resource in
//! quick succession (`[meta] reversals` reversals within `window`, each less than `min_hold`
//! after the change it reverses), every playbook that made those changes is **paused** for the
//! resource its runs responded to: its triggers no longer start runs there. The pause is stored
//! (it survives restarts), recorded in the ledger with the changes that made it, counted in
//! `/metrics` and logged; it lasts until a person resumes it (`POST /v1/pauses/resume`,
//! `grace pauses resume`), which the API's audit records in the ledger too.
//!
//! Runs that never clear their incident are the learning's (see
//! [`crate::outcomes::learning`]): after `[trust.learning] approval_after` of them a change
//! needs a person's approval.

pub mod flapping;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use grace_ledger::{Decision, Ledger, NewEntry};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::outcomes::words;
use crate::runs::RunRecord;
use crate::store::{Store, StoreError};
use crate::sync::lock;
use flapping::{Change, Flapping, Rule};

/// `[meta]` in `grace.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    /// Reversals of one resource's capacity that make it flap (default 3; 0: never pause; at
    /// most [`flapping::MAX_REVERSALS`]).
    pub reversals: u32,
    /// Within how long (default 30m).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// A change reversing one at least this old is planned (capacity given back), not a
    /// reversal (default 10m).
    #[serde(with = "humantime_serde")]
    pub min_hold: Duration,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            reversals: 3,
            window: Duration::from_secs(30 * 60),
            min_hold: Duration::from_secs(10 * 60),
        }
    }
}

impl MetaConfig {
    /// Checks the ranges; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let day = Duration::from_secs(86_400);
        if self.reversals > flapping::MAX_REVERSALS {
            return Err((
                "meta.reversals",
                format!("must be at most {}", flapping::MAX_REVERSALS),
            ));
        }
        if self.reversals > 0 && self.min_hold.is_zero() {
            return Err((
                "meta.min_hold",
                "must be more than 0s (no change would be a reversal)".to_owned(),
            ));
        }
        if self.window < Duration::from_secs(1) || self.window > day {
            return Err(("meta.window", "must be between 1s and 1 day".to_owned()));
        }
        if self.min_hold > self.window {
            return Err(("meta.min_hold", "must be at most `window`".to_owned()));
        }
        Ok(())
    }

    fn rule(&self) -> Rule {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Rule {
            reversals: self.reversals,
            window_ms: ms(self.window),
            min_hold_ms: ms(self.min_hold),
        }
    }
}

/// A playbook paused for a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    /// The playbook.
    pub playbook: String,
    /// The resource its runs responded to (their triggering events').
    pub resource: String,
    /// The resource whose capacity flapped (its trust key, e.g. `group/api-asg`): the
    /// playbook's changes of it are refused by the trust core while it is paused, whatever
    /// run asks (one queued before the pause, one waiting for approval, one fired by another
    /// resource's event).
    #[serde(default)]
    pub changed: String,
    /// Since when (wall clock, ms).
    pub since: u64,
    /// Why, in words.
    pub reason: String,
    /// The runs whose changes made it.
    pub runs: Vec<String>,
}

/// The run id of the meta-loop's ledger entries (as the API's are under `api`):
/// `grace ledger show --run meta` lists them.
pub const META_RUN_ID: &str = "meta";

/// Pauses kept at most (each is a playbook and a resource a person has to look at).
pub const MAX_PAUSES: usize = 10_000;

/// The meta-loop's state.
pub struct Meta {
    store: Store,
    ledger: Arc<Ledger>,
    rule: Rule,
    flapping: Mutex<Flapping>,
    paused: RwLock<HashMap<(String, String), Pause>>,
}

impl Meta {
    /// The meta-loop over `store`, with the pauses stored there.
    pub fn open(
        store: Store,
        ledger: Arc<Ledger>,
        config: &MetaConfig,
    ) -> Result<Meta, StoreError> {
        let paused = store
            .pauses()?
            .into_iter()
            .map(|p| ((p.playbook.clone(), p.resource.clone()), p))
            .collect();
        Ok(Meta {
            store,
            ledger,
            rule: config.rule(),
            flapping: Mutex::new(Flapping::default()),
            paused: RwLock::new(paused),
        })
    }

    /// The pause that holds `playbook`'s changes of `changed` (a resource's trust key), if any.
    pub fn holding(&self, playbook: &str, changed: &str) -> Option<Pause> {
        self.paused
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|p| p.playbook == playbook && p.changed == changed)
            .cloned()
    }

    /// Whether `playbook` is paused for `resource`.
    pub fn is_paused(&self, playbook: &str, resource: &str) -> bool {
        self.paused
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(playbook.to_owned(), resource.to_owned()))
    }

    /// Every pause, by playbook then resource.
    pub fn pauses(&self) -> Vec<Pause> {
        let mut out: Vec<Pause> = self
            .paused
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.playbook, &a.resource).cmp(&(&b.playbook, &b.resource)));
        out
    }

    /// Looks at the capacity changes `run` (over) made; pauses what flaps. Returns the pauses
    /// made.
    pub async fn run_finished(&self, run: &RunRecord, now: u64) -> Vec<Pause> {
        let mut flapped = Vec::new();
        for (resource, change) in capacity_changes(run) {
            let verdict = lock(&self.flapping).observe(self.rule, &resource, change);
            if let Some(changes) = verdict {
                flapped.push((resource, changes));
            }
        }
        let mut made = Vec::new();
        for (resource, changes) in flapped {
            made.extend(self.pause_flapping(&resource, &changes, now).await);
        }
        made
    }

    async fn pause_flapping(&self, resource: &str, changes: &[Change], now: u64) -> Vec<Pause> {
        let mut pairs: Vec<(String, String)> = changes
            .iter()
            .map(|c| (c.playbook.clone(), c.about.clone()))
            .collect();
        pairs.sort();
        pairs.dedup();
        let ups = changes.iter().filter(|c| c.up).count();
        let reason = format!(
            "`{resource}` flapped: {} reversals among {} capacity changes ({ups} up, {} down) within {}, each less than {} after the one before",
            self.rule.reversals,
            changes.len(),
            changes.len() - ups,
            words(self.rule.window_ms),
            words(self.rule.min_hold_ms),
        );
        let mut runs: Vec<String> = changes.iter().map(|c| c.run.clone()).collect();
        runs.dedup();
        let mut made = Vec::new();
        for (playbook, about) in pairs {
            if self.is_paused(&playbook, &about) {
                continue;
            }
            if self.paused.read().unwrap_or_else(|e| e.into_inner()).len() >= MAX_PAUSES {
                tracing::error!(%playbook, resource = %about, "too many pauses: this one is not made");
                continue;
            }
            let pause = Pause {
                playbook: playbook.clone(),
                resource: about.clone(),
                changed: resource.to_owned(),
                since: now,
                reason: reason.clone(),
                runs: runs.clone(),
            };
            // Stored first, then recorded: a crash between the two leaves a pause the ledger
            // does not tell yet (it holds until a person lifts it, which is recorded), never a
            // ledger entry for a pause that was lost.
            if let Err(e) = self.store.put_pause(&pause) {
                tracing::error!(%playbook, resource = %about, "the pause cannot be stored, so it is not made: {e}");
                continue;
            }
            let entry = NewEntry {
                run_id: META_RUN_ID.to_owned(),
                playbook: playbook.clone(),
                digest: String::new(),
                interface: "meta".into(),
                function: "pause".into(),
                args: json!({ "playbook": playbook, "resource": about, "flapping": resource, "runs": runs }),
                decision: Decision::allowed(reason.clone()),
                result: json!({ "ok": { "paused": true } }),
                at_millis: now,
            };
            if let Err(e) = self.ledger.append(entry).await {
                match self.store.remove_pause(&playbook, &about) {
                    Ok(_) => {
                        tracing::error!(%playbook, resource = %about, "the pause cannot be recorded in the ledger, so it is not made: {e}");
                        continue;
                    }
                    Err(removing) => {
                        tracing::error!(%playbook, resource = %about, "the pause cannot be recorded in the ledger ({e}) nor taken back ({removing}): it holds until a person resumes it")
                    }
                }
            }
            tracing::warn!(%playbook, resource = %about, "playbook paused: {reason}");
            self.paused
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert((playbook, about), pause.clone());
            made.push(pause);
        }
        made
    }

    /// Resumes `playbook` for `resource`: the pause removed, if there was one.
    pub fn resume(&self, playbook: &str, resource: &str) -> Result<Option<Pause>, StoreError> {
        let removed = self.store.remove_pause(playbook, resource)?;
        self.paused
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(playbook.to_owned(), resource.to_owned()));
        Ok(removed)
    }
}

/// The capacity changes `run` (over) made, by the resource changed (its trust key): from each
/// effective change's decision (the state the trust core saw, and the change it allowed). A
/// run's changes of one resource count as one, their net (a stop then a start of the same
/// container is no change): a run does not flap with itself.
fn capacity_changes(run: &RunRecord) -> Vec<(String, Change)> {
    let mut net: Vec<(String, i64, u64)> = Vec::new();
    for e in run.timeline.iter().filter(|e| e.is_effective_action()) {
        let Some(details) = e.trust.as_ref() else {
            continue;
        };
        let (Some(resource), Some(added)) = (
            details.get("resource").and_then(|r| r.as_str()),
            crate::outcomes::cost::added_by(details),
        ) else {
            continue;
        };
        match net.iter_mut().find(|(r, _, _)| r == resource) {
            Some((_, sum, at)) => {
                *sum += added;
                *at = (*at).max(e.at);
            }
            None => net.push((resource.to_owned(), added, e.at)),
        }
    }
    net.into_iter()
        .filter(|(_, added, _)| *added != 0)
        .map(|(resource, added, at)| {
            (
                resource,
                Change {
                    at,
                    up: added > 0,
                    playbook: run.playbook.clone(),
                    about: run.resource.clone(),
                    run: run.id.clone(),
                },
            )
        })
        .collect()
}
