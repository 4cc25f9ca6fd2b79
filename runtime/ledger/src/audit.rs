//! Verifying entries that someone else serves: what a client that trusts no server runs over
//! the entries it fetched (`grace ledger verify --server`).
//!
//! [`Audit`] takes entries one at a time, in order, as decoded from the server's JSON, and
//! recomputes everything from them: the entry's hash from its canonical encoding
//! ([`codec::encode_body`], [`codec::hash_body`]), the link to the previous entry, the sequence
//! number, and the Merkle tree over the entries so far ([`Frontier`]), whose root a client
//! compares with a checkpoint whose signature it verified. Nothing the server says about an
//! entry is taken on faith: a field changed in transit or at rest changes the recomputed hash.
//!
//! An audit can stop and resume: [`AuditState`] (the tree's frontier and the last entry's hash)
//! is all it needs to go on from where it stopped, so a client that keeps it verifies only the
//! entries added since. The state is the client's own record: keep it where the server cannot
//! write. [`AuditState::check_root`] ties it to a signed root when it is read back.

use serde::{Deserialize, Serialize};

use crate::merkle::{Frontier, entry_leaf};
use crate::{Entry, Hash, Problem, Tampering, codec};

/// Where an audit stands: the tree of the entries verified so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    /// How many entries were verified: entries 1 to `size`.
    pub size: u64,
    /// The roots of the complete subtrees of that tree, largest first ([`Frontier`]).
    pub frontier: Vec<Hash>,
    /// The hash of entry `size`, which entry `size + 1` links to ([`Hash::ZERO`] when empty).
    pub last_hash: Hash,
}

/// Why an [`AuditState`] cannot be resumed from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditStateError {
    /// The frontier does not have one root per set bit of the size.
    #[error("the state of {size} entries holds {got} subtree roots where it needs {expected}")]
    WrongFrontier {
        /// The state's size.
        size: u64,
        /// How many roots a tree of that size has.
        expected: usize,
        /// How many the state holds.
        got: usize,
    },
    /// The frontier leads to another root than the trusted one.
    #[error("the state's tree of {size} entries has root {computed}, not the trusted {trusted}")]
    RootMismatch {
        /// The state's size.
        size: u64,
        /// The root its frontier folds to.
        computed: Hash,
        /// The trusted root (a verified checkpoint's).
        trusted: Hash,
    },
    /// An empty state must link to nothing.
    #[error("the state of an empty ledger names a last entry hash")]
    LastHashOfEmpty,
}

impl AuditState {
    /// Checks that the state is the tree of `size` entries with root `root` (from a checkpoint
    /// whose signature was verified): the frontier must fold to it.
    pub fn check_root(&self, size: u64, root: &Hash) -> Result<(), AuditStateError> {
        let frontier = self.frontier()?;
        let computed = frontier.root();
        if self.size != size || computed != *root {
            return Err(AuditStateError::RootMismatch {
                size: self.size,
                computed,
                trusted: *root,
            });
        }
        Ok(())
    }

    fn frontier(&self) -> Result<Frontier, AuditStateError> {
        if self.size == 0 && self.last_hash != Hash::ZERO {
            return Err(AuditStateError::LastHashOfEmpty);
        }
        Frontier::from_roots(self.size, self.frontier.clone()).ok_or(
            AuditStateError::WrongFrontier {
                size: self.size,
                expected: self.size.count_ones() as usize,
                got: self.frontier.len(),
            },
        )
    }
}

/// A verification in progress over entries pushed in order.
#[derive(Debug, Clone)]
pub struct Audit {
    frontier: Frontier,
    last_hash: Hash,
}

impl Default for Audit {
    fn default() -> Audit {
        Audit::new()
    }
}

impl Audit {
    /// An audit from entry 1.
    pub fn new() -> Audit {
        Audit {
            frontier: Frontier::new(),
            last_hash: Hash::ZERO,
        }
    }

    /// An audit that goes on after the entries of `state`.
    pub fn resume(state: &AuditState) -> Result<Audit, AuditStateError> {
        Ok(Audit {
            frontier: state.frontier()?,
            last_hash: state.last_hash,
        })
    }

    /// Verifies the next entry and adds it to the tree: it must be entry `size + 1`, link to
    /// the previous entry's hash, and carry the hash of its own contents. The first problem
    /// found is returned as a [`Tampering`] naming the entry; the audit is then unchanged.
    pub fn push(&mut self, entry: &Entry) -> Result<(), Tampering> {
        let seq = self.frontier.size().saturating_add(1);
        let tampering = |problem| Tampering { seq, problem };
        if entry.seq != seq {
            return Err(tampering(Problem::Reordered {
                found_seq: entry.seq,
            }));
        }
        let body = codec::encode_body(entry).map_err(|e| {
            tampering(Problem::Undecodable {
                reason: e.to_string(),
            })
        })?;
        if codec::hash_body(&body) != entry.hash {
            return Err(tampering(Problem::Modified));
        }
        if entry.prev_hash != self.last_hash {
            return Err(tampering(Problem::BrokenLink));
        }
        // A tree of u64::MAX entries cannot be served page by page in any lifetime; refuse
        // rather than wrap.
        self.frontier
            .push(entry_leaf(&entry.hash), |_, _, _| {})
            .map_err(|_| tampering(Problem::Unexpected))?;
        self.last_hash = entry.hash;
        Ok(())
    }

    /// How many entries are verified: entries 1 to `size`.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The Merkle root of the verified entries, recomputed from them.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The hash of the last verified entry ([`Hash::ZERO`] before any).
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// Where the audit stands, to resume from later.
    pub fn state(&self) -> AuditState {
        AuditState {
            size: self.frontier.size(),
            frontier: self.frontier.roots().to_vec(),
            last_hash: self.last_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{Decision, merkle};

    /// A chain of `n` well-formed entries, hashed as the ledger hashes them.
    fn chain(n: u64) -> Vec<Entry> {
        let mut prev = Hash::ZERO;
        (1..=n)
            .map(|seq| {
                let mut entry = Entry {
                    seq,
                    recorded_millis: 1_700_000_000_000 + seq,
                    run_id: format!("run-{}", seq / 3),
                    playbook: "scale-on-latency".into(),
                    digest: "sha256:00".into(),
                    interface: "scaling".into(),
                    function: "set-desired-capacity".into(),
                    args: serde_json::json!({ "group": "web", "desired": seq }),
                    decision: Decision::allowed("grant"),
                    result: serde_json::json!({ "ok": 1.5 }),
                    at_millis: seq,
                    prev_hash: prev,
                    hash: Hash::ZERO,
                };
                entry.hash = codec::hash_body(&codec::encode_body(&entry).unwrap());
                prev = entry.hash;
                entry
            })
            .collect()
    }

    fn leaves(entries: &[Entry]) -> Vec<Hash> {
        entries.iter().map(|e| entry_leaf(&e.hash)).collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_its_root_is_the_merkle_root_of_its_leaves() {
        let entries = chain(13);
        let mut audit = Audit::new();
        for entry in &entries {
            audit.push(entry).unwrap();
        }
        assert_eq!(audit.size(), 13);
        assert_eq!(audit.root(), merkle::root(&leaves(&entries)));
        assert_eq!(audit.last_hash(), entries[12].hash);
    }

    #[test]
    fn a_changed_field_is_found_although_the_entry_keeps_its_hash() {
        let mut entries = chain(5);
        entries[2].args = serde_json::json!({ "group": "web", "desired": 99 });
        let mut audit = Audit::new();
        audit.push(&entries[0]).unwrap();
        audit.push(&entries[1]).unwrap();
        let err = audit.push(&entries[2]).unwrap_err();
        assert_eq!(err.seq, 3);
        assert_eq!(err.problem, Problem::Modified);
    }

    #[test]
    fn a_rehashed_entry_breaks_the_link_of_the_next() {
        let mut entries = chain(5);
        entries[2].args = serde_json::json!({ "desired": 99 });
        entries[2].hash = codec::hash_body(&codec::encode_body(&entries[2]).unwrap());
        let mut audit = Audit::new();
        for entry in &entries[..3] {
            audit.push(entry).unwrap();
        }
        let err = audit.push(&entries[3]).unwrap_err();
        assert_eq!((err.seq, err.problem), (4, Problem::BrokenLink));
    }

    #[test]
    fn a_skipped_entry_is_reported_as_out_of_place() {
        let entries = chain(5);
        let mut audit = Audit::new();
        audit.push(&entries[0]).unwrap();
        let err = audit.push(&entries[2]).unwrap_err();
        assert_eq!(
            (err.seq, err.problem),
            (2, Problem::Reordered { found_seq: 3 })
        );
    }

    #[test]
    fn a_resumed_audit_reaches_the_same_root_as_one_from_the_start() {
        let entries = chain(21);
        let mut first = Audit::new();
        for entry in &entries[..11] {
            first.push(entry).unwrap();
        }
        let state = first.state();
        state
            .check_root(11, &merkle::root(&leaves(&entries[..11])))
            .unwrap();
        let mut resumed = Audit::resume(&state).unwrap();
        for entry in &entries[11..] {
            resumed.push(entry).unwrap();
        }
        assert_eq!(resumed.root(), merkle::root(&leaves(&entries)));
    }

    #[test]
    fn a_state_that_does_not_fold_to_the_trusted_root_is_refused() {
        let entries = chain(6);
        let mut audit = Audit::new();
        for entry in &entries {
            audit.push(entry).unwrap();
        }
        let mut state = audit.state();
        state.frontier[0] = Hash([7; 32]);
        let trusted = merkle::root(&leaves(&entries));
        assert!(matches!(
            state.check_root(6, &trusted),
            Err(AuditStateError::RootMismatch { .. })
        ));
        state.frontier.pop();
        assert!(matches!(
            Audit::resume(&state),
            Err(AuditStateError::WrongFrontier { .. })
        ));
    }
}
