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

use futures_util::StreamExt;

use crate::error::ClusterError;
use crate::keyed::{Keyed, Kind};
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

fn valid(replica: &str) -> bool {
    check_replica_name(replica).is_ok()
}

/// What a replica name may be, for messages.
const RULE: &str = "a replica name is 1 to 64 letters, digits, `-` and `_`";

/// The subject a replica answers questions about its ledger on.
fn subject(replica: &str) -> Result<String, ClusterError> {
    if valid(replica) {
        Ok(format!("grace.ledger.{replica}"))
    } else {
        Err(ClusterError::Corrupt {
            key: format!("replica {:?}", replica.chars().take(80).collect::<String>()),
            message: RULE.to_owned(),
        })
    }
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
    published: Keyed,
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
            published: Keyed::new(
                bucket,
                settings.request_timeout,
                Kind {
                    prefix: "ledger",
                    what: "published ledger",
                    valid,
                    rule: RULE,
                },
            ),
            timeout: settings.request_timeout,
        })
    }

    /// Publishes `replica`'s description of its ledger, replacing the one before.
    pub async fn publish(&self, replica: &str, value: Vec<u8>) -> Result<u64, ClusterError> {
        self.published.put(replica, value).await
    }

    /// `replica`'s last publication.
    pub async fn get(&self, replica: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        Ok(self.published.get(replica).await?.map(|p| p.value))
    }

    /// Every replica's last publication, by replica (at most [`MAX_LISTED`]).
    pub async fn list(&self) -> Result<Vec<(String, Vec<u8>)>, ClusterError> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .published
            .list(MAX_LISTED)
            .await?
            .into_iter()
            .map(|p| (p.id, p.value))
            .collect();
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
