//! This replica's ledger in the cluster: its state published to the engine at every
//! `checkpoint_every`, and questions about it answered for the other replicas, so that
//! `/v1/cluster/ledgers/<replica>/…` on any replica reads any replica's chain
//! ([`grace_cluster::ledgers`]).
//!
//! The questions are exactly those `grace ledger verify --server` asks of `/v1/ledger` (tree
//! head, signed checkpoint, a page of entries, a consistency proof), and the answers are what
//! those routes answer, so the same client-side audit verifies a replica's chain whichever
//! replica passed it on: a replica in between can withhold an answer, never forge one that
//! verifies.

use std::sync::Arc;
use std::time::Duration;

use grace_cluster::Cluster;
use grace_cluster::ledgers::AskError;
use grace_ledger::{Ledger, LedgerError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::supervisor::TaskError;

/// The most entries one question asks for.
pub const MAX_ENTRIES_ASKED: usize = 10_000;

/// A question about a replica's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Question {
    /// Its tree head (`GET /v1/ledger/tree-head`).
    TreeHead {},
    /// Its latest signed checkpoint, as text (`GET /v1/ledger/checkpoint`).
    Checkpoint {},
    /// Entries from `from` on, at most `limit`, cut short to fit one engine message
    /// (`GET /v1/ledger/entries`).
    Entries {
        /// The first entry.
        from: u64,
        /// The most entries.
        limit: usize,
    },
    /// The consistency proof between two sizes (`GET /v1/ledger/consistency`).
    Consistency {
        /// The older size.
        old_size: u64,
        /// The newer size; the whole ledger when absent.
        new_size: Option<u64>,
    },
}

/// A replica's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// The answer, as `/v1/ledger` gives it (the checkpoint as a string).
    Ok(Value),
    /// Nothing there (no checkpoint signed, sizes beyond the ledger).
    NotFound(String),
    /// One entry is larger than one engine message.
    TooLarge(String),
    /// The replica could not read its ledger.
    Failed(String),
}

/// What a replica publishes about its ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The replica.
    pub replica: String,
    /// How many entries its chain had.
    pub tree_size: u64,
    /// Their Merkle root.
    pub root: String,
    /// Its latest signed checkpoint, as text (none without `checkpoint_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// When it was published (wall clock, ms).
    pub published_at: u64,
}

/// Answers `question` from `ledger`, in at most `max_bytes` (an entries page is cut short).
pub fn answer(ledger: &Ledger, question: &Question, max_bytes: usize) -> Answer {
    let failed = |e: LedgerError| Answer::Failed(e.to_string());
    match question {
        Question::TreeHead {} => match ledger.tree_head() {
            Ok(head) => to_answer(&head),
            Err(e) => failed(e),
        },
        Question::Checkpoint {} => match ledger.latest_checkpoint() {
            Ok(Some(signed)) => Answer::Ok(Value::String(signed.as_str().to_owned())),
            Ok(None) => Answer::NotFound(
                "no checkpoint signed yet: set `checkpoint_key` in grace.toml (grace keys generate)"
                    .to_owned(),
            ),
            Err(e) => failed(e),
        },
        Question::Consistency { old_size, new_size } => {
            match ledger.prove_consistency(*old_size, *new_size) {
                Ok(proof) => to_answer(&proof),
                Err(e @ (LedgerError::BeyondHead { .. } | LedgerError::SizesOutOfOrder { .. })) => {
                    Answer::NotFound(e.to_string())
                }
                Err(e) => failed(e),
            }
        }
        Question::Entries { from, limit } => {
            let entries = match ledger.entries(*from, (*limit).clamp(1, MAX_ENTRIES_ASKED)) {
                Ok(entries) => entries,
                Err(e) => return failed(e),
            };
            // As many as fit, at least one: the asker asks again from where this page ends.
            let mut page = Vec::new();
            let mut bytes = 64;
            for entry in entries {
                let value = match serde_json::to_value(&entry) {
                    Ok(v) => v,
                    Err(e) => return Answer::Failed(e.to_string()),
                };
                bytes += value.to_string().len() + 1;
                if bytes > max_bytes {
                    if page.is_empty() {
                        return Answer::TooLarge(format!(
                            "entry {} is larger than one message of the engine ({max_bytes} bytes): read it on its replica, `/v1/ledger/entries`",
                            entry.seq
                        ));
                    }
                    break;
                }
                page.push(value);
            }
            Answer::Ok(Value::Array(page))
        }
    }
}

fn to_answer<T: Serialize>(value: &T) -> Answer {
    serde_json::to_value(value).map_or_else(|e| Answer::Failed(e.to_string()), Answer::Ok)
}

/// Asks `replica` `question` through the engine.
pub async fn ask(
    cluster: &Cluster,
    replica: &str,
    question: &Question,
) -> Result<Answer, AskError> {
    let body = serde_json::to_vec(question).map_err(|e| {
        AskError::Cluster(grace_cluster::ClusterError::Corrupt {
            key: "ledger question".into(),
            message: e.to_string(),
        })
    })?;
    let answer = cluster.ledgers().ask(replica, body).await?;
    serde_json::from_slice(&answer).map_err(|e| {
        AskError::Cluster(grace_cluster::ClusterError::Corrupt {
            key: format!("the answer of replica `{replica}` about its ledger"),
            message: e.to_string(),
        })
    })
}

/// Why answering stopped.
#[derive(Debug, thiserror::Error)]
enum ServiceError {
    #[error("cannot listen for questions about this replica's ledger: {0}")]
    Listen(#[from] grace_cluster::ClusterError),
    #[error("the engine connection closed: no more questions about this replica's ledger")]
    Closed,
    #[error(
        "this replica's ledger ({now} entries) does not extend the {published} entries it published to the engine before: it was rolled back or rewritten; not published over (bring the data directory back, or start the replica under another name)"
    )]
    NotExtending { published: u64, now: u64 },
    #[error(
        "{0} (refused before: remove `{REFUSED_MARKER}` from the data directory only once this is settled)"
    )]
    Refused(String),
}

/// The file, in the data directory, that keeps a refusal to publish.
pub const REFUSED_MARKER: &str = "ledger-not-published";

/// Answers the other replicas' questions about this replica's ledger, one at a time (each a
/// short read of the ledger, on a blocking thread).
pub async fn serve(cluster: Arc<Cluster>, ledger: Arc<Ledger>) -> Result<(), TaskError> {
    let ledgers = cluster.ledgers().clone();
    let mut questions = ledgers
        .questions(cluster.replica())
        .await
        .map_err(|e| TaskError::new(ServiceError::Listen(e)))?;
    let max_bytes = ledgers.max_answer_bytes();
    while let Some(question) = questions.next().await {
        let answer = match serde_json::from_slice::<Question>(&question.body) {
            Ok(asked) => {
                let ledger = ledger.clone();
                tokio::task::spawn_blocking(move || answer(&ledger, &asked, max_bytes))
                    .await
                    .unwrap_or_else(|e| Answer::Failed(e.to_string()))
            }
            Err(e) => Answer::Failed(format!("not a question about a ledger: {e}")),
        };
        let bytes = serde_json::to_vec(&answer).unwrap_or_default();
        if let Err(e) = ledgers.answer(question, bytes).await {
            tracing::warn!("cannot answer a question about this replica's ledger: {e}");
        }
    }
    Err(TaskError::new(ServiceError::Closed))
}

/// Publishes this replica's ledger (its size, root and latest signed checkpoint) to the engine
/// at start and every `every`.
pub async fn publish(
    cluster: Arc<Cluster>,
    ledger: Arc<Ledger>,
    every: Duration,
    data_dir: std::path::PathBuf,
) -> Result<(), TaskError> {
    // Once refused, refused for good on this data directory: the witness in the engine may
    // age out (`event_retention`), and must not be replaced by the chain it caught.
    let refused = data_dir.join(REFUSED_MARKER);
    if let Ok(why) = std::fs::read_to_string(&refused) {
        return Err(TaskError::new(ServiceError::Refused(
            why.chars().take(1000).collect(),
        )));
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let replica = cluster.replica().to_owned();
    loop {
        tick.tick().await;
        // What this replica published before must stay a prefix of its chain: a chain rolled
        // back or rewritten (a disk restored, a data directory replaced) is not published over
        // it, so the engine keeps the witness `grace ledger verify --cluster` checks against.
        let before = match cluster.ledgers().get(&replica).await {
            Ok(bytes) => bytes.and_then(|b| serde_json::from_slice::<Published>(&b).ok()),
            Err(e) => {
                tracing::warn!("cannot read what this replica published of its ledger: {e}");
                continue;
            }
        };
        let read = ledger.clone();
        let state = tokio::task::spawn_blocking(move || {
            let head = read.tree_head()?;
            let extends = match &before {
                Some(b) if b.tree_size > 0 => {
                    match read.prove_consistency(b.tree_size, Some(head.size)) {
                        Ok(proof) => proof.old_root.to_string() == b.root,
                        Err(
                            LedgerError::BeyondHead { .. } | LedgerError::SizesOutOfOrder { .. },
                        ) => false,
                        Err(e) => return Err(e),
                    }
                }
                _ => true,
            };
            Ok::<_, LedgerError>((
                head,
                read.latest_checkpoint()?,
                extends.then_some(()).ok_or(before),
            ))
        })
        .await;
        let (head, checkpoint) = match state {
            Ok(Ok((head, checkpoint, Ok(())))) => (head, checkpoint),
            Ok(Ok((head, _, Err(before)))) => {
                let size = before.map_or(0, |b| b.tree_size);
                let error = ServiceError::NotExtending {
                    published: size,
                    now: head.size,
                };
                if let Err(e) = std::fs::write(&refused, error.to_string()) {
                    tracing::error!(
                        "cannot keep the refusal to publish in `{}`: {e}",
                        refused.display()
                    );
                }
                return Err(TaskError::new(error));
            }
            Ok(Err(e)) => {
                tracing::error!("cannot read the ledger to publish it: {e}");
                continue;
            }
            Err(e) => {
                tracing::error!("cannot read the ledger to publish it: {e}");
                continue;
            }
        };
        let published = Published {
            replica: cluster.replica().to_owned(),
            tree_size: head.size,
            root: head.root.to_string(),
            checkpoint: checkpoint.map(|c| c.as_str().to_owned()),
            published_at: grace_engine::event::system_now_millis(),
        };
        let Ok(bytes) = serde_json::to_vec(&published) else {
            continue;
        };
        if let Err(e) = cluster.ledgers().publish(&published.replica, bytes).await {
            tracing::warn!("cannot publish this replica's ledger to the engine: {e}");
        }
    }
}

/// Every replica's last publication.
pub async fn published(cluster: &Cluster) -> Result<Vec<Published>, grace_cluster::ClusterError> {
    let mut out = Vec::new();
    for (replica, bytes) in cluster.ledgers().list().await? {
        match serde_json::from_slice::<Published>(&bytes) {
            Ok(p) if p.replica == replica => out.push(p),
            Ok(_) => tracing::warn!(replica = %replica, "a published ledger names another replica"),
            Err(e) => tracing::warn!(replica = %replica, "a published ledger cannot be read: {e}"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use grace_ledger::{Decision, Durability, NewEntry};
    use serde_json::json;

    fn ledger_of(n: u64) -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.redb"), Durability::None).unwrap();
        for i in 0..n {
            ledger
                .append_blocking(NewEntry {
                    run_id: format!("run-{i}"),
                    playbook: "p".into(),
                    digest: "sha256:00".into(),
                    interface: "log".into(),
                    function: "info".into(),
                    args: json!({ "text": "x".repeat(200) }),
                    decision: Decision::allowed("test"),
                    result: json!({ "ok": null }),
                    at_millis: i,
                })
                .unwrap();
        }
        (dir, ledger)
    }

    #[test]
    fn a_page_of_entries_is_cut_to_fit_one_message_and_never_left_empty() {
        let (_dir, ledger) = ledger_of(20);
        let asked = Question::Entries { from: 3, limit: 20 };
        let Answer::Ok(Value::Array(all)) = answer(&ledger, &asked, 1 << 20) else {
            panic!()
        };
        assert_eq!(all.len(), 18);
        let Answer::Ok(Value::Array(some)) = answer(&ledger, &asked, 2_000) else {
            panic!()
        };
        assert!(!some.is_empty() && some.len() < 18, "{}", some.len());
        assert_eq!(some[0]["seq"], 3, "from where it was asked");
        assert!(matches!(
            answer(&ledger, &asked, 100),
            Answer::TooLarge(m) if m.contains("entry 3")
        ));
    }

    #[test]
    fn questions_are_read_strictly() {
        for bad in [
            r#"{"op":"entries","from":1}"#,
            r#"{"op":"tree-head","extra":1}"#,
            r#"{"op":"delete"}"#,
        ] {
            assert!(serde_json::from_str::<Question>(bad).is_err(), "{bad}");
        }
        let q: Question = serde_json::from_str(r#"{"op":"consistency","old_size":2}"#).unwrap();
        assert_eq!(
            q,
            Question::Consistency {
                old_size: 2,
                new_size: None
            }
        );
        let (_dir, ledger) = ledger_of(2);
        assert!(matches!(
            answer(&ledger, &Question::Checkpoint {}, 1 << 20),
            Answer::NotFound(_)
        ));
        assert!(matches!(
            answer(
                &ledger,
                &Question::Consistency {
                    old_size: 5,
                    new_size: None
                },
                1 << 20
            ),
            Answer::NotFound(_)
        ));
    }
}
