//! Each replica's ledger, as the cluster sees it: its latest signed checkpoint published to the
//! engine, and its entries readable from any replica.
//!
//! - **Published checkpoints**, bucket `grace_ledgers`, key `ledger.<replica>`: what the replica
//!   wrote last about its ledger (the server's description, opaque here), at each checkpoint it
//!   signs. A witness outside the replica's disk: a replica whose ledger was rolled back or
//!   rewritten no longer extends what it published.
//! - **Reads from any replica**, core NATS request-reply on `grace.ledger.<replica>`: a replica
//!   answers questions about its own ledger (its tree head, a page of entries, ...) put by
//!   another, so one API and one token reach every replica's chain. Whoever asks verifies what
//!   comes back (hashes, Merkle roots, signatures); the replica passing it on can withhold, not
//!   forge.
//!
//! Replica names are checked ([`crate::settings::check_replica_name`]) before a key or subject
//! is built from them.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;

use crate::error::ClusterError;
use crate::members::within;
use crate::schema::BucketSpec;
use crate::settings::{ClusterSettings, check_replica_name};

/// The largest published description.
pub const MAX_PUBLISHED_BYTES: i32 = 64 * 1024;

/// The most replicas listed.
pub const MAX_LISTED: usize = 10_000;

/// The published checkpoints' bucket: kept `event_retention` after a replica's last
/// publication, so a replica gone for good leaves the list.
pub fn bucket(settings: &ClusterSettings) -> BucketSpec {
    BucketSpec {
        name: "grace_ledgers",
        history: 1,
        max_age: settings.event_retention,
        max_value_bytes: MAX_PUBLISHED_BYTES,
    }
}

fn checked(replica: &str) -> Result<&str, ClusterError> {
    check_replica_name(replica).map_err(|message| ClusterError::Corrupt {
        key: format!("replica {:?}", replica.chars().take(80).collect::<String>()),
        message,
    })?;
    Ok(replica)
}

/// The subject a replica answers questions about its ledger on.
fn subject(replica: &str) -> Result<String, ClusterError> {
    Ok(format!("grace.ledger.{}", checked(replica)?))
}

/// Why a question to a replica got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// No process of that replica listens: it is down, or cut off from the engine.
    #[error("replica `{0}` does not answer: it is down or cut off from the engine")]
    NoAnswer(String),
    /// The replica name cannot be a subject, or the engine failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Questions about this replica's ledger, as they come.
pub struct Questions(async_nats::Subscriber);

impl Questions {
    /// The next question; `None` once the engine connection closed for good.
    pub async fn next(&mut self) -> Option<Question> {
        self.0.next().await.map(|m| Question {
            body: m.payload.to_vec(),
            reply: m.reply,
        })
    }
}

/// One question.
pub struct Question {
    /// What is asked (the server's format; at most the engine's message size).
    pub body: Vec<u8>,
    reply: Option<async_nats::Subject>,
}

/// The cluster's view of every replica's ledger.
#[derive(Clone)]
pub struct Ledgers {
    engine: crate::Engine,
    bucket: kv::Store,
    timeout: Duration,
}

impl std::fmt::Debug for Ledgers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledgers").finish_non_exhaustive()
    }
}

impl Ledgers {
    /// Creates the bucket, or checks the one there.
    pub async fn open(
        engine: &crate::Engine,
        settings: &ClusterSettings,
    ) -> Result<Self, ClusterError> {
        let bucket = bucket(settings)
            .ensure(engine, settings.engine_replicas)
            .await?;
        Ok(Ledgers {
            engine: engine.clone(),
            bucket,
            timeout: settings.request_timeout,
        })
    }

    /// Publishes `replica`'s description of its ledger, replacing the one before.
    pub async fn publish(&self, replica: &str, value: Vec<u8>) -> Result<u64, ClusterError> {
        let key = format!("ledger.{}", checked(replica)?);
        within(self.timeout, "publish ledger", async {
            self.bucket
                .put(&key, value.into())
                .await
                .map_err(|e| ClusterError::unavailable("publish ledger", e))
        })
        .await
    }

    /// `replica`'s last publication.
    pub async fn get(&self, replica: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        let key = format!("ledger.{}", checked(replica)?);
        let entry = within(self.timeout, "read ledger", async {
            self.bucket
                .entry(&key)
                .await
                .map_err(|e| ClusterError::unavailable("read ledger", e))
        })
        .await?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| e.value.to_vec()))
    }

    /// Every replica's last publication, by replica (at most [`MAX_LISTED`]).
    pub async fn list(&self) -> Result<Vec<(String, Vec<u8>)>, ClusterError> {
        let prefix = format!("{}ledger.", self.bucket.prefix);
        let names = within(self.timeout, "list ledgers", async {
            let mut subjects = self
                .bucket
                .stream
                .info_with_subjects(format!("{prefix}*"))
                .await
                .map_err(|e| ClusterError::unavailable("list ledgers", e))?;
            let mut names = Vec::new();
            while let Some(subject) = subjects.next().await {
                let (subject, _) =
                    subject.map_err(|e| ClusterError::unavailable("list ledgers", e))?;
                if names.len() >= MAX_LISTED {
                    break;
                }
                if let Some(name) = subject.strip_prefix(prefix.as_str())
                    && check_replica_name(name).is_ok()
                {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
        .await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(value) = self.get(&name).await? {
                out.push((name, value));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Listens for questions about `replica`'s ledger; answer each with [`Ledgers::answer`].
    pub async fn questions(&self, replica: &str) -> Result<Questions, ClusterError> {
        let subject = subject(replica)?;
        within(self.timeout, "listen for ledger questions", async {
            self.engine
                .jetstream()
                .client()
                .subscribe(subject)
                .await
                .map(Questions)
                .map_err(|e| ClusterError::unavailable("listen for ledger questions", e))
        })
        .await
    }

    /// Answers `question`.
    pub async fn answer(&self, question: Question, answer: Vec<u8>) -> Result<(), ClusterError> {
        let Some(reply) = question.reply else {
            return Ok(());
        };
        within(self.timeout, "answer a ledger question", async {
            self.engine
                .jetstream()
                .client()
                .publish(reply, answer.into())
                .await
                .map_err(|e| ClusterError::unavailable("answer a ledger question", e))
        })
        .await
    }

    /// The most bytes one answer may carry: the engine's message size limit, less room for its
    /// headers.
    pub fn max_answer_bytes(&self) -> usize {
        self.engine
            .jetstream()
            .client()
            .server_info()
            .max_payload
            .saturating_sub(4096)
            .max(64 * 1024)
    }

    /// Asks `replica` `question` about its ledger; its answer, at most
    /// [`Ledgers::max_answer_bytes`] (the engine's own limit).
    pub async fn ask(&self, replica: &str, question: Vec<u8>) -> Result<Vec<u8>, AskError> {
        let subject = subject(replica)?;
        let client = self.engine.jetstream().client();
        match tokio::time::timeout(self.timeout * 10, client.request(subject, question.into()))
            .await
        {
            Err(_) => Err(AskError::NoAnswer(replica.to_owned())),
            Ok(Ok(message)) => Ok(message.payload.to_vec()),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    async_nats::RequestErrorKind::NoResponders
                        | async_nats::RequestErrorKind::TimedOut
                ) =>
            {
                Err(AskError::NoAnswer(replica.to_owned()))
            }
            Ok(Err(e)) => {
                Err(ClusterError::unavailable("ask a replica about its ledger", e).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_name_is_checked_before_a_subject_is_built() {
        assert_eq!(subject("r-1_b").unwrap(), "grace.ledger.r-1_b");
        for bad in ["", "a.b", "a*", ">", "a b", "ä"] {
            assert!(subject(bad).is_err(), "{bad:?}");
        }
    }
}
