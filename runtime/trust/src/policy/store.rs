//! The policy store: named policy sets, versioned in redb (every version kept, with who wrote
//! it and when), and the active compiled policies in memory, swapped after every change.
//!
//! A change is checked before anything is written: a set that does not parse or validate is
//! rejected and the active policies stay as they were.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::source::{self, Compiled};
use super::{Policies, PolicyInfo};
use crate::error::{PolicyError, TrustError};
use crate::tables::{META, POLICY_HEADS, POLICY_VERSIONS, REVISION_KEY};

/// One version of a policy set, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySetVersion {
    /// The set's name.
    pub name: String,
    /// Its version, from 1, incremented by every change of this set (removal included).
    pub version: u64,
    /// The store's revision this version created (incremented by every change of any set).
    pub revision: u64,
    /// The Cedar text (empty for a removal).
    pub text: String,
    /// Who made the change.
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_millis: u64,
    /// Whether this version removed the set.
    pub removed: bool,
}

/// What the writer keeps of each live set.
struct Live {
    version: PolicySetVersion,
    compiled: Vec<Compiled>,
}

/// Named, versioned policy sets in redb, and the active policies compiled from them.
pub struct PolicyStore {
    db: Arc<grace_ledger::Database>,
    /// The live sets; held by writers for the whole change, so changes apply one at a time.
    live: Mutex<BTreeMap<String, Live>>,
    active: RwLock<Arc<Policies>>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("active", &self.active())
            .finish_non_exhaustive()
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn decode(what: &str, bytes: &[u8]) -> Result<PolicySetVersion, TrustError> {
    serde_json::from_slice(bytes).map_err(|e| TrustError::Corrupt {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

impl PolicyStore {
    /// Opens the store in `db` (creating its tables) and compiles the live sets. Fails if a
    /// stored set no longer compiles (e.g. after a schema change): running with part of the
    /// operator's policies silently missing would be worse.
    pub fn open(db: Arc<grace_ledger::Database>) -> Result<Self, TrustError> {
        let op = "open the policy store";
        let txn = db.begin_write().map_err(|e| TrustError::storage(op, e))?;
        txn.open_table(POLICY_VERSIONS)
            .map_err(|e| TrustError::storage(op, e))?;
        txn.open_table(POLICY_HEADS)
            .map_err(|e| TrustError::storage(op, e))?;
        txn.open_table(META)
            .map_err(|e| TrustError::storage(op, e))?;
        txn.commit().map_err(|e| TrustError::storage(op, e))?;

        let (revision, stored) = stored_sets(&*db)?;
        let mut live = BTreeMap::new();
        for stored in stored {
            let compiled = source::compile(&stored.name, &stored.text)?;
            live.insert(
                stored.name.clone(),
                Live {
                    version: stored,
                    compiled,
                },
            );
        }
        let active = Arc::new(activate(revision, &live)?);
        tracing::info!(
            sets = live.len(),
            policies = active.len(),
            revision,
            "policy store opened"
        );
        Ok(PolicyStore {
            db,
            live: Mutex::new(live),
            active: RwLock::new(active),
        })
    }

    /// The active policies (cheap: an `Arc` clone).
    pub fn active(&self) -> Arc<Policies> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The store's revision: 0 before any change, then incremented by every change.
    pub fn revision(&self) -> u64 {
        self.active().revision()
    }

    /// Checks a policy set without storing it: the policies it would add, or why it is
    /// rejected (syntax and schema problems with line and column).
    pub fn check(name: &str, text: &str) -> Result<Vec<PolicyInfo>, PolicyError> {
        Ok(source::compile(name, text)?
            .into_iter()
            .map(|c| c.info)
            .collect())
    }

    /// Adds a new policy set `name` written by `by`; fails if it exists.
    pub fn add(&self, name: &str, text: &str, by: &str) -> Result<PolicySetVersion, TrustError> {
        self.write(name, Some(text), by, Expect::Absent)
    }

    /// Replaces policy set `name` with a new version; fails if it does not exist.
    pub fn replace(
        &self,
        name: &str,
        text: &str,
        by: &str,
    ) -> Result<PolicySetVersion, TrustError> {
        self.write(name, Some(text), by, Expect::Present)
    }

    /// Removes policy set `name` (its history is kept); fails if it does not exist.
    pub fn remove(&self, name: &str, by: &str) -> Result<PolicySetVersion, TrustError> {
        self.write(name, None, by, Expect::Present)
    }

    /// The live policy sets, by name, at their current version.
    pub fn list(&self) -> Vec<PolicySetVersion> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|l| l.version.clone())
            .collect()
    }

    /// The current version of live policy set `name`.
    pub fn get(&self, name: &str) -> Result<PolicySetVersion, TrustError> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|l| l.version.clone())
            .ok_or_else(|| TrustError::NotFound {
                name: name.to_owned(),
            })
    }

    /// Every version of policy set `name`, oldest first, removals included (empty if it never
    /// existed).
    pub fn history(&self, name: &str) -> Result<Vec<PolicySetVersion>, TrustError> {
        let op = || format!("read the history of policy set `{name}`");
        let read = self
            .db
            .begin_read()
            .map_err(|e| TrustError::storage(op(), e))?;
        let table = read
            .open_table(POLICY_VERSIONS)
            .map_err(|e| TrustError::storage(op(), e))?;
        let rows = table
            .range((name, 0)..=(name, u64::MAX))
            .map_err(|e| TrustError::storage(op(), e))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, value) = row.map_err(|e| TrustError::storage(op(), e))?;
            let (_, version) = key.value();
            out.push(decode(
                &format!("`{name}` version {version}"),
                value.value(),
            )?);
        }
        Ok(out)
    }

    /// Version `version` of policy set `name`.
    pub fn version(&self, name: &str, version: u64) -> Result<PolicySetVersion, TrustError> {
        let op = || format!("read policy set `{name}` version {version}");
        let read = self
            .db
            .begin_read()
            .map_err(|e| TrustError::storage(op(), e))?;
        let table = read
            .open_table(POLICY_VERSIONS)
            .map_err(|e| TrustError::storage(op(), e))?;
        let row = table
            .get((name, version))
            .map_err(|e| TrustError::storage(op(), e))?
            .ok_or_else(|| TrustError::NotFound {
                name: format!("{name}@{version}"),
            })?;
        decode(&format!("`{name}` version {version}"), row.value())
    }

    fn write(
        &self,
        name: &str,
        text: Option<&str>,
        by: &str,
        expect: Expect,
    ) -> Result<PolicySetVersion, TrustError> {
        source::check_name(name)?;
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        match (expect, live.get(name)) {
            (Expect::Absent, Some(l)) => {
                return Err(TrustError::AlreadyExists {
                    name: name.to_owned(),
                    version: l.version.version,
                });
            }
            (Expect::Present, None) => {
                return Err(TrustError::NotFound {
                    name: name.to_owned(),
                });
            }
            _ => {}
        }
        // Checked before anything is written.
        let compiled = text.map(|t| source::compile(name, t)).transpose()?;

        let op = || format!("write policy set `{name}`");
        let txn = self
            .db
            .begin_write()
            .map_err(|e| TrustError::storage(op(), e))?;
        let record = {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| TrustError::storage(op(), e))?;
            let revision = meta
                .get(REVISION_KEY)
                .map_err(|e| TrustError::storage(op(), e))?
                .map_or(0, |v| v.value())
                + 1;
            meta.insert(REVISION_KEY, revision)
                .map_err(|e| TrustError::storage(op(), e))?;
            let mut versions = txn
                .open_table(POLICY_VERSIONS)
                .map_err(|e| TrustError::storage(op(), e))?;
            // Versions continue after a removal, so `name@3` always means one text.
            let last = versions
                .range((name, 0)..=(name, u64::MAX))
                .map_err(|e| TrustError::storage(op(), e))?
                .next_back()
                .transpose()
                .map_err(|e| TrustError::storage(op(), e))?
                .map_or(0, |(k, _)| k.value().1);
            let record = PolicySetVersion {
                name: name.to_owned(),
                version: last + 1,
                revision,
                text: text.unwrap_or("").to_owned(),
                by: by.to_owned(),
                at_millis: now_millis(),
                removed: text.is_none(),
            };
            let bytes = serde_json::to_vec(&record).map_err(|e| TrustError::Corrupt {
                what: format!("`{name}` version {}", record.version),
                message: e.to_string(),
            })?;
            versions
                .insert((name, record.version), bytes.as_slice())
                .map_err(|e| TrustError::storage(op(), e))?;
            let mut heads = txn
                .open_table(POLICY_HEADS)
                .map_err(|e| TrustError::storage(op(), e))?;
            if record.removed {
                heads
                    .remove(name)
                    .map_err(|e| TrustError::storage(op(), e))?;
            } else {
                heads
                    .insert(name, record.version)
                    .map_err(|e| TrustError::storage(op(), e))?;
            }
            record
        };
        // Built before the commit, so a set that cannot be activated is never stored.
        let mut next = live
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(n, l)| (n.clone(), l.compiled.clone()))
            .collect::<BTreeMap<_, _>>();
        if let Some(c) = &compiled {
            next.insert(name.to_owned(), c.clone());
        }
        let active = Policies::build(
            record.revision,
            &next.into_values().flatten().collect::<Vec<_>>(),
        )
        .map_err(|message| PolicyError::Rejected {
            set: name.to_owned(),
            problems: vec![crate::Problem {
                line: 0,
                column: 0,
                policy: None,
                message,
            }],
        })?;
        txn.commit().map_err(|e| TrustError::storage(op(), e))?;

        match compiled {
            Some(compiled) => {
                live.insert(
                    name.to_owned(),
                    Live {
                        version: record.clone(),
                        compiled,
                    },
                );
            }
            None => {
                live.remove(name);
            }
        }
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(active);
        tracing::info!(
            set = name,
            version = record.version,
            revision = record.revision,
            removed = record.removed,
            by,
            "policy set changed"
        );
        Ok(record)
    }
}

/// The store's revision and its live policy sets at their current version, read from `db` with
/// read transactions only, so a database another process writes (or a read-only one) can be
/// listed without changing it. A database with no policy tables holds no policies.
pub fn stored_sets(db: &impl ReadableDatabase) -> Result<(u64, Vec<PolicySetVersion>), TrustError> {
    let op = "read the stored policy sets";
    let read = db.begin_read().map_err(|e| TrustError::storage(op, e))?;
    let heads = match read.open_table(POLICY_HEADS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, Vec::new())),
        Err(e) => return Err(TrustError::storage(op, e)),
    };
    let versions = read
        .open_table(POLICY_VERSIONS)
        .map_err(|e| TrustError::storage(op, e))?;
    let revision = match read.open_table(META) {
        Ok(meta) => meta
            .get(REVISION_KEY)
            .map_err(|e| TrustError::storage(op, e))?
            .map_or(0, |v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => 0,
        Err(e) => return Err(TrustError::storage(op, e)),
    };
    let mut sets = Vec::new();
    for head in heads.iter().map_err(|e| TrustError::storage(op, e))? {
        let (name, version) = head.map_err(|e| TrustError::storage(op, e))?;
        let (name, version) = (name.value().to_owned(), version.value());
        let what = format!("`{name}` version {version}");
        let bytes = versions
            .get((name.as_str(), version))
            .map_err(|e| TrustError::storage(op, e))?
            .ok_or_else(|| TrustError::Corrupt {
                what: what.clone(),
                message: "the current version is missing".into(),
            })?;
        sets.push(decode(&what, bytes.value())?);
    }
    Ok((revision, sets))
}

#[derive(Clone, Copy)]
enum Expect {
    Absent,
    Present,
}

/// The active policies of the live sets.
fn activate(revision: u64, live: &BTreeMap<String, Live>) -> Result<Policies, TrustError> {
    let all: Vec<Compiled> = live.values().flat_map(|l| l.compiled.clone()).collect();
    Policies::build(revision, &all).map_err(|message| {
        TrustError::Policy(PolicyError::Rejected {
            set: String::new(),
            problems: vec![crate::Problem {
                line: 0,
                column: 0,
                policy: None,
                message,
            }],
        })
    })
}
