//! One kind of value in a key-value bucket, under keys `<prefix>.<id>`: the reads and writes
//! every clustered record shares (runs, approvals, published ledgers, playbooks), each id
//! checked by the record's own rule before a key is built from it.
//!
//! Writes are create-once ([`Keyed::create`]) or compare-and-set on the revision the writer read
//! ([`Keyed::update`]); ids are listed from the stream's own subjects (as replicas are, see
//! [`crate::members::live`]), and [`Keyed::changes`] follows every write from now on.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::{Stream, StreamExt};

use crate::error::ClusterError;
use crate::members::within;

/// How many values a listing reads at once.
const READS_AT_ONCE: usize = 16;

/// A value as the bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its id (the key without the prefix).
    pub id: String,
    /// What the server wrote.
    pub value: Vec<u8>,
    /// The revision to compare against in the next write.
    pub revision: u64,
}

/// A kind of value: where its keys are and what its ids may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    /// `run`, `approval`, ...: keys are `<prefix>.<id>`.
    pub prefix: &'static str,
    /// What a value is, for messages.
    pub what: &'static str,
    /// Whether an id may be part of a key.
    pub valid: fn(&str) -> bool,
    /// The rule ids follow, for messages.
    pub rule: &'static str,
}

/// Values of one kind in a bucket.
#[derive(Clone)]
pub(crate) struct Keyed {
    bucket: kv::Store,
    timeout: Duration,
    /// `run.3`, `approval`, ...: keys are `<prefix>.<id>`.
    prefix: String,
    /// Whether an id may be part of a key.
    valid: fn(&str) -> bool,
    /// What a value is, for messages (`run`, `approval`).
    what: &'static str,
    /// The rule ids follow, for messages.
    rule: &'static str,
}

impl Keyed {
    /// Values of `kind` in `bucket`.
    pub(crate) fn new(bucket: kv::Store, timeout: Duration, kind: Kind) -> Keyed {
        Keyed {
            bucket,
            timeout,
            prefix: kind.prefix.to_owned(),
            valid: kind.valid,
            what: kind.what,
            rule: kind.rule,
        }
    }

    /// Values of `kind` in the bucket `spec`, created or checked first.
    pub(crate) async fn open(
        engine: &crate::Engine,
        settings: &crate::ClusterSettings,
        spec: crate::schema::BucketSpec,
        kind: Kind,
    ) -> Result<Keyed, ClusterError> {
        let bucket = spec.ensure(engine, settings.engine_replicas).await?;
        Ok(Keyed::new(bucket, settings.request_timeout, kind))
    }

    /// The same values under another prefix (`run.<shard>`).
    pub(crate) fn under(&self, prefix: impl Into<String>) -> Keyed {
        Keyed {
            prefix: prefix.into(),
            ..self.clone()
        }
    }

    /// The key of `id`, once `id` is checked.
    pub(crate) fn key(&self, id: &str) -> Result<String, ClusterError> {
        if (self.valid)(id) {
            Ok(format!("{}.{id}", self.prefix))
        } else {
            Err(ClusterError::Corrupt {
                key: format!(
                    "{} {:?}",
                    self.what,
                    id.chars().take(80).collect::<String>()
                ),
                message: self.rule.to_owned(),
            })
        }
    }

    /// The subject of `id`'s values in the bucket's stream.
    pub(crate) fn subject(&self, id: &str) -> Result<String, ClusterError> {
        Ok(format!("{}{}", self.bucket.prefix, self.key(id)?))
    }

    /// The bucket.
    pub(crate) fn bucket(&self) -> &kv::Store {
        &self.bucket
    }

    /// The stream of the bucket.
    pub(crate) fn stream(&self) -> &async_nats::jetstream::stream::Stream {
        &self.bucket.stream
    }

    /// A failed request: `op` on a value of this kind.
    fn failed(&self, op: &'static str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::unavailable(op, format!("{}: {e}", self.what))
    }

    /// Value `id`, if there is one.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Stored>, ClusterError> {
        let key = self.key(id)?;
        let op = "read";
        let entry = within(self.timeout, op, async {
            self.bucket
                .entry(&key)
                .await
                .map_err(|e| self.failed(op, e))
        })
        .await?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| Stored {
                id: id.to_owned(),
                value: e.value.to_vec(),
                revision: e.revision,
            }))
    }

    /// Stores `value` as `id` unless one is there; `None` when one is.
    pub(crate) async fn create(
        &self,
        id: &str,
        value: Vec<u8>,
    ) -> Result<Option<u64>, ClusterError> {
        let key = self.key(id)?;
        let op = "create";
        within(self.timeout, op, async {
            match self.bucket.create(&key, value.into()).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(self.failed(op, e)),
            }
        })
        .await
    }

    /// Writes `id` if it is still at `revision`: [`ClusterError::Conflict`] when it was
    /// written since. Returns the new revision.
    pub(crate) async fn update(
        &self,
        id: &str,
        value: Vec<u8>,
        revision: u64,
    ) -> Result<u64, ClusterError> {
        let key = self.key(id)?;
        let op = "write";
        within(self.timeout, op, async {
            match self.bucket.update(&key, value.into(), revision).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Err(ClusterError::Conflict { key: key.clone() })
                }
                Err(e) => Err(self.failed(op, e)),
            }
        })
        .await
    }

    /// Writes `id`: created when `revision` is `None` ([`ClusterError::Conflict`] when another
    /// writer created it first), else if it is still at `revision`.
    pub(crate) async fn write(
        &self,
        id: &str,
        value: Vec<u8>,
        revision: Option<u64>,
    ) -> Result<u64, ClusterError> {
        match revision {
            Some(revision) => self.update(id, value, revision).await,
            None => self
                .create(id, value)
                .await?
                .ok_or_else(|| ClusterError::Conflict { key: id.to_owned() }),
        }
    }

    /// Writes `id` whatever it holds (a value only its one writer writes).
    pub(crate) async fn put(&self, id: &str, value: Vec<u8>) -> Result<u64, ClusterError> {
        let key = self.key(id)?;
        let op = "write";
        within(self.timeout, op, async {
            self.bucket
                .put(&key, value.into())
                .await
                .map_err(|e| self.failed(op, e))
        })
        .await
    }

    /// The ids with a value (at most `max`), from the stream's own subjects.
    pub(crate) async fn ids(&self, max: usize) -> Result<Vec<String>, ClusterError> {
        let prefix = format!("{}{}.", self.bucket.prefix, self.prefix);
        let op = "list";
        within(self.timeout, op, async {
            let mut subjects = self
                .bucket
                .stream
                .info_with_subjects(format!("{prefix}>"))
                .await
                .map_err(|e| self.failed(op, e))?;
            let mut ids = Vec::new();
            while let Some(subject) = subjects.next().await {
                let (subject, _) = subject.map_err(|e| self.failed(op, e))?;
                if ids.len() >= max {
                    tracing::warn!(what = self.what, "more values than one listing reads");
                    break;
                }
                if let Some(id) = subject.strip_prefix(prefix.as_str())
                    && (self.valid)(id)
                {
                    ids.push(id.to_owned());
                }
            }
            Ok(ids)
        })
        .await
    }

    /// Every value (at most `max`), a few read at once.
    pub(crate) async fn list(&self, max: usize) -> Result<Vec<Stored>, ClusterError> {
        let ids = self.ids(max).await?;
        let reads = futures_util::stream::iter(ids)
            .map(|id| async move { self.get(&id).await })
            .buffered(READS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            out.extend(read?);
        }
        Ok(out)
    }

    /// Every value written from now on, as it was written, from whichever replica. The stream
    /// ends when the engine connection does.
    pub(crate) async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<Stored, ClusterError>> + use<>, ClusterError> {
        let op = "watch";
        let watch = within(self.timeout, op, async {
            self.bucket
                .watch_all()
                .await
                .map_err(|e| self.failed(op, e))
        })
        .await?;
        let (prefix, valid, what) = (format!("{}.", self.prefix), self.valid, self.what);
        Ok(watch.filter_map(move |entry| {
            let found = match entry {
                Err(e) => Some(Err(ClusterError::unavailable(op, format!("{what}: {e}")))),
                Ok(e) if e.operation != kv::Operation::Put => None,
                Ok(e) => e
                    .key
                    .strip_prefix(prefix.as_str())
                    .filter(|id| valid(id))
                    .map(|id| {
                        Ok(Stored {
                            id: id.to_owned(),
                            value: e.value.to_vec(),
                            revision: e.revision,
                        })
                    }),
            };
            std::future::ready(found)
        }))
    }
}

/// How often a merged write that lost a race with another writer's is merged again.
const MERGE_RETRIES: usize = 8;

/// Records of one kind that any replica may write (playbooks, policy sets, tokens, a resource's
/// changes), the server's own format: read, written by compare-and-set, listed, followed.
#[derive(Clone)]
pub struct Records(pub(crate) Keyed);

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Records").field(&self.0.what).finish()
    }
}

impl Records {
    /// Record `id`, if there is one.
    pub async fn get(&self, id: &str) -> Result<Option<Stored>, ClusterError> {
        self.0.get(id).await
    }

    /// Writes record `id`: created when `revision` is `None` ([`ClusterError::Conflict`] when
    /// another replica created it first), else if it is still at `revision`.
    pub async fn put(
        &self,
        id: &str,
        value: Vec<u8>,
        revision: Option<u64>,
    ) -> Result<u64, ClusterError> {
        self.0.write(id, value, revision).await
    }

    /// Reads record `id`, asks `merge` what to write over what is there (`None`: nothing to
    /// add), and writes it by compare-and-set; merged again over what another replica wrote
    /// meanwhile, a few times.
    pub async fn merge<E: From<ClusterError>>(
        &self,
        id: &str,
        mut merge: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<(), E> {
        for _ in 0..MERGE_RETRIES {
            let stored = self.0.get(id).await?;
            let Some(value) = merge(stored.as_ref().map(|s| s.value.as_slice()))? else {
                return Ok(());
            };
            match self.0.write(id, value, stored.map(|s| s.revision)).await {
                Ok(_) => return Ok(()),
                Err(ClusterError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ClusterError::Conflict {
            key: self.0.key(id)?,
        }
        .into())
    }

    /// Every record (at most `max`).
    pub async fn list(&self, max: usize) -> Result<Vec<Stored>, ClusterError> {
        self.0.list(max).await
    }

    /// Every record written from now on, from whichever replica.
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<Stored, ClusterError>> + use<>, ClusterError> {
        self.0.changes().await
    }
}
