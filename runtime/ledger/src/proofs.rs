//! What the ledger proves about itself: its tree head, inclusion and consistency proofs, signed
//! checkpoints, and verification against a checkpoint.
//!
//! Proofs read O(log n) stored subtree hashes ([`tables::NODES`](crate::tables::NODES)) in one
//! read transaction, so they are consistent with each other and appends may continue meanwhile.
//! They are only as trustworthy as the root they lead to: a client checks them against a root it
//! trusts, from a checkpoint whose signature it verified.

use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableError};
use serde::{Deserialize, Serialize};

use crate::merkle::{self, ProofError, subtree_root};
use crate::tables::{CHECKPOINTS, CHECKPOINTS_KEPT, ENTRIES};
use crate::tree::{EntryTable, NodeTable, StoredTree};
use crate::{
    Checkpoint, Hash, Inconsistency, Ledger, LedgerError, SignedCheckpoint, SigningKey,
    VerifyReport, codec, verify,
};

/// The size and root of the ledger's Merkle tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// How many entries the tree covers: entries 1 to `size`.
    pub size: u64,
    /// The Merkle root of those entries.
    pub root: Hash,
}

/// Proof that an entry is in the tree of the first `tree_size` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The entry's sequence number; its leaf index is `seq - 1`.
    pub seq: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// The entry's chain hash: the leaf's data ([`merkle::entry_leaf`]).
    pub entry_hash: Hash,
    /// The root of the tree of `tree_size` entries, as the ledger computed it. Trust it only
    /// once it matches a verified checkpoint: see [`InclusionProof::verify_against`].
    pub root_hash: Hash,
    /// The audit path, lowest sibling first (RFC 9162 §2.1.3).
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// The entry's leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        merkle::entry_leaf(&self.entry_hash)
    }

    /// Checks that the path leads from the entry to `root`, the trusted root of the tree of
    /// `tree_size` entries.
    pub fn verify(&self, root: &Hash) -> Result<(), ProofError> {
        let index = self.seq.checked_sub(1).ok_or(ProofError::IndexOutOfRange {
            index: u64::MAX,
            tree_size: self.tree_size,
        })?;
        merkle::verify_inclusion(&self.leaf_hash(), index, self.tree_size, &self.path, root)
    }

    /// Checks the proof against a verified checkpoint of the same tree size.
    pub fn verify_against(&self, checkpoint: &Checkpoint) -> Result<(), ProofError> {
        if checkpoint.tree_size != self.tree_size {
            return Err(ProofError::TreeSizeMismatch {
                proof: self.tree_size,
                trusted: checkpoint.tree_size,
            });
        }
        self.verify(&checkpoint.root_hash)
    }
}

/// Proof that the tree of `new_size` entries extends the tree of `old_size` entries unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The earlier tree size.
    pub old_size: u64,
    /// The later tree size.
    pub new_size: u64,
    /// The root of the earlier tree, as the ledger computes it now.
    pub old_root: Hash,
    /// The root of the later tree, as the ledger computes it now.
    pub new_root: Hash,
    /// The proof, lowest hash first (RFC 9162 §2.1.4).
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks that the path shows `new_root` to extend `old_root` (both as the proof states
    /// them).
    pub fn verify(&self) -> Result<(), ProofError> {
        merkle::verify_consistency(
            self.old_size,
            self.new_size,
            &self.old_root,
            &self.new_root,
            &self.path,
        )
    }

    /// Checks that the tree of `new_size` entries with root `new_root` extends the tree of a
    /// verified checkpoint: the proof must start at the checkpoint's size and root. Then
    /// `new_root` is as trustworthy as the checkpoint.
    pub fn verify_from(&self, checkpoint: &Checkpoint) -> Result<(), ProofError> {
        if checkpoint.tree_size != self.old_size {
            return Err(ProofError::TreeSizeMismatch {
                proof: self.old_size,
                trusted: checkpoint.tree_size,
            });
        }
        merkle::verify_consistency(
            checkpoint.tree_size,
            self.new_size,
            &checkpoint.root_hash,
            &self.new_root,
            &self.path,
        )
    }
}

impl Ledger {
    /// The size and Merkle root of the tree of every committed entry.
    pub fn tree_head(&self) -> Result<TreeHead, LedgerError> {
        let txn = self.begin_read()?;
        let size = tree_size_of(&txn)?;
        let root = root_of(&txn, size)?;
        Ok(TreeHead { size, root })
    }

    /// The Merkle root of the tree of the first `tree_size` entries (any size up to the head:
    /// the roots of earlier trees never change).
    pub fn root_at(&self, tree_size: u64) -> Result<Hash, LedgerError> {
        let txn = self.begin_read()?;
        within_head(&txn, tree_size)?;
        root_of(&txn, tree_size)
    }

    /// The audit path of entry `seq` in the tree of the first `tree_size` entries: RFC 9162
    /// `PATH(seq - 1, D[0:tree_size])`, O(log n) reads. Verify it with
    /// [`merkle::verify_inclusion`] and leaf index `seq - 1`.
    pub fn inclusion_proof(&self, seq: u64, tree_size: u64) -> Result<Vec<Hash>, LedgerError> {
        let txn = self.begin_read()?;
        within_head(&txn, tree_size)?;
        inclusion_path(&txn, seq, tree_size)
    }

    /// The consistency proof from the tree of the first `old_size` entries to the tree of the
    /// first `new_size`: RFC 9162 `PROOF(old_size, D[0:new_size])`, O(log n) reads. Verify it
    /// with [`merkle::verify_consistency`].
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, LedgerError> {
        let txn = self.begin_read()?;
        within_head(&txn, new_size)?;
        consistency_path(&txn, old_size, new_size)
    }

    /// An inclusion proof of entry `seq` with everything a client needs to check it: the
    /// entry's hash and the root, for the tree of the first `tree_size` entries (default: the
    /// whole ledger).
    pub fn prove_inclusion(
        &self,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, LedgerError> {
        let txn = self.begin_read()?;
        let tree_size = match tree_size {
            Some(size) => within_head(&txn, size)?,
            None => tree_size_of(&txn)?,
        };
        let path = inclusion_path(&txn, seq, tree_size)?;
        let entry_hash = entry_hash(&txn, seq)?;
        let root_hash = root_of(&txn, tree_size)?;
        Ok(InclusionProof {
            seq,
            tree_size,
            entry_hash,
            root_hash,
            path,
        })
    }

    /// A consistency proof from the tree of the first `old_size` entries to the tree of the
    /// first `new_size` (default: the whole ledger), with both roots.
    pub fn prove_consistency(
        &self,
        old_size: u64,
        new_size: Option<u64>,
    ) -> Result<ConsistencyProof, LedgerError> {
        let txn = self.begin_read()?;
        let new_size = match new_size {
            Some(size) => within_head(&txn, size)?,
            None => tree_size_of(&txn)?,
        };
        let path = consistency_path(&txn, old_size, new_size)?;
        Ok(ConsistencyProof {
            old_size,
            new_size,
            old_root: root_of(&txn, old_size)?,
            new_root: root_of(&txn, new_size)?,
            path,
        })
    }

    /// Signs a checkpoint of the whole ledger as committed now with `key` (its name is the
    /// checkpoint's origin), stores it among the latest checkpoints
    /// ([`tables::CHECKPOINTS`](crate::tables::CHECKPOINTS)) and returns it.
    ///
    /// Refuses, with [`LedgerError::Inconsistent`], to sign a tree that does not extend the
    /// last checkpoint stored (C2SP tlog-checkpoint: a log never signs two inconsistent
    /// checkpoints); the check uses the stored tree, O(log n).
    pub fn sign_checkpoint(&self, key: &SigningKey) -> Result<SignedCheckpoint, LedgerError> {
        let head = self.tree_head()?;
        if let Some(previous) = self.latest_checkpoint()? {
            let previous = previous.unverified();
            if previous.tree_size > head.size {
                return Err(LedgerError::Inconsistent(Inconsistency::Truncated {
                    checkpoint_size: previous.tree_size,
                    ledger_size: head.size,
                }));
            }
            let root = self.root_at(previous.tree_size)?;
            if root != previous.root_hash {
                return Err(LedgerError::Inconsistent(Inconsistency::Rewritten {
                    tree_size: previous.tree_size,
                    checkpoint_root: previous.root_hash,
                    ledger_root: root,
                }));
            }
        }
        let checkpoint = Checkpoint {
            origin: key.name().to_owned(),
            tree_size: head.size,
            root_hash: head.root,
            timestamp_millis: now_millis(),
        };
        let signed = checkpoint.sign(key)?;
        self.store_checkpoint(&signed)?;
        tracing::debug!(size = head.size, root = %head.root, origin = key.name(), "checkpoint signed");
        Ok(signed)
    }

    fn store_checkpoint(&self, signed: &SignedCheckpoint) -> Result<(), LedgerError> {
        let txn = self.inner.db.begin_write().map_err(LedgerError::write)?;
        {
            let mut table = txn.open_table(CHECKPOINTS).map_err(LedgerError::write)?;
            table
                .insert(signed.unverified().tree_size, signed.as_str())
                .map_err(LedgerError::write)?;
            while table.len().map_err(LedgerError::write)? > CHECKPOINTS_KEPT as u64 {
                table.pop_first().map_err(LedgerError::write)?;
            }
        }
        txn.commit().map_err(LedgerError::write)
    }

    /// The checkpoint of the largest tree signed so far, if any: what a server hands out.
    pub fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, LedgerError> {
        let txn = self.begin_read()?;
        let Some(table) = open_checkpoints(&txn)? else {
            return Ok(None);
        };
        match table.last().map_err(LedgerError::read)? {
            Some((_, text)) => Ok(Some(SignedCheckpoint::parse(text.value())?)),
            None => Ok(None),
        }
    }

    /// The stored checkpoints (the latest
    /// [`crate::tables::CHECKPOINTS_KEPT`]), smallest tree first.
    pub fn checkpoints(&self) -> Result<Vec<SignedCheckpoint>, LedgerError> {
        let txn = self.begin_read()?;
        let Some(table) = open_checkpoints(&txn)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(LedgerError::read)? {
            let (_, text) = item.map_err(LedgerError::read)?;
            out.push(SignedCheckpoint::parse(text.value())?);
        }
        Ok(out)
    }

    /// Verifies the whole ledger like [`Ledger::verify`], and that it extends `checkpoint`:
    /// that it holds at least the checkpoint's entries ([`Inconsistency::Truncated`]
    /// otherwise) and that the root of those entries, recomputed from them rather than read
    /// from the stored tree, is the checkpoint's ([`Inconsistency::Rewritten`] otherwise).
    ///
    /// Verify the checkpoint's signature first ([`SignedCheckpoint::verify`]): this trusts it.
    pub fn verify_checkpoint(&self, checkpoint: &Checkpoint) -> Result<VerifyReport, LedgerError> {
        let (report, root) = verify::verify(&self.inner.db, Some(checkpoint.tree_size))?;
        let Some(root) = root.filter(|_| report.entries >= checkpoint.tree_size) else {
            return Err(LedgerError::Inconsistent(Inconsistency::Truncated {
                checkpoint_size: checkpoint.tree_size,
                ledger_size: report.entries,
            }));
        };
        if root != checkpoint.root_hash {
            return Err(LedgerError::Inconsistent(Inconsistency::Rewritten {
                tree_size: checkpoint.tree_size,
                checkpoint_root: checkpoint.root_hash,
                ledger_root: root,
            }));
        }
        Ok(report)
    }

    fn begin_read(&self) -> Result<ReadTransaction, LedgerError> {
        self.inner.db.begin_read().map_err(LedgerError::read)
    }
}

/// The tree covers the entries up to the head record.
fn tree_size_of(txn: &ReadTransaction) -> Result<u64, LedgerError> {
    Ok(verify::read_head(txn)?.map_or(0, |head| head.seq))
}

/// `tree_size`, if the ledger holds that many entries.
fn within_head(txn: &ReadTransaction, tree_size: u64) -> Result<u64, LedgerError> {
    let size = tree_size_of(txn)?;
    if tree_size > size {
        return Err(LedgerError::BeyondHead { tree_size, size });
    }
    Ok(tree_size)
}

/// Runs `f` over the stored tree.
fn with_tree<T>(
    txn: &ReadTransaction,
    f: impl FnOnce(&StoredTree<NodeTable, EntryTable>) -> Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    f(&StoredTree::open(txn)?)
}

fn root_of(txn: &ReadTransaction, size: u64) -> Result<Hash, LedgerError> {
    with_tree(txn, |tree| subtree_root(tree, 0, size))
}

fn inclusion_path(
    txn: &ReadTransaction,
    seq: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, LedgerError> {
    if seq == 0 || seq > tree_size {
        return Err(LedgerError::NotInTree { seq, tree_size });
    }
    with_tree(txn, |tree| merkle::inclusion_path(tree, seq - 1, tree_size))
}

fn consistency_path(
    txn: &ReadTransaction,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, LedgerError> {
    if old_size > new_size {
        return Err(LedgerError::SizesOutOfOrder { old_size, new_size });
    }
    with_tree(txn, |tree| {
        merkle::consistency_path(tree, old_size, new_size)
    })
}

/// The stored chain hash of entry `seq`.
fn entry_hash(txn: &ReadTransaction, seq: u64) -> Result<Hash, LedgerError> {
    let table = txn.open_table(ENTRIES).map_err(LedgerError::read)?;
    let stored = table
        .get(seq)
        .map_err(LedgerError::read)?
        .ok_or(LedgerError::Tampered(crate::Tampering {
            seq,
            problem: crate::Problem::Missing,
        }))?;
    codec::split(stored.value())
        .map(|(_, hash)| hash)
        .map_err(|source| LedgerError::Undecodable { seq, source })
}

fn open_checkpoints(
    txn: &ReadTransaction,
) -> Result<Option<redb::ReadOnlyTable<u64, &'static str>>, LedgerError> {
    match txn.open_table(CHECKPOINTS) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(LedgerError::read(e)),
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
