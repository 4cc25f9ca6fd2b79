//! In a cluster, the check before every change a run makes: this replica still holds the lease
//! of the run's shard (the shard of the resource of the event that started it), proven by a
//! compare-and-set on the engine at that moment. The change's ledger record carries the proof
//! (`fence`: shard, token, engine revision, replica), so the ledger shows under which tenure
//! every change was made.

use std::sync::Arc;

use grace_cluster::Cluster;
use grace_cluster::shards::shard_of;
use grace_engine::TriggerEvent;
use grace_engine::fence::{Fence, FencePermit, FenceProof};

use crate::shared_runs::SharedRuns;
use serde_json::json;

/// The shard-lease fence of a clustered replica.
pub struct ShardFence {
    cluster: Arc<Cluster>,
    runs: Arc<SharedRuns>,
}

impl ShardFence {
    /// The fence of `cluster`'s leases, for the runs of `runs`.
    pub fn new(cluster: Arc<Cluster>, runs: Arc<SharedRuns>) -> ShardFence {
        ShardFence { cluster, runs }
    }
}

/// The engine's view of a cluster permit.
struct Held(grace_cluster::FencePermit);

impl FencePermit for Held {
    fn holds(&self) -> bool {
        self.0.holds()
    }
}

#[async_trait::async_trait]
impl Fence for ShardFence {
    async fn check(
        &self,
        run_id: &str,
        event: Option<&TriggerEvent>,
    ) -> Result<FenceProof, String> {
        // A run without an event (none start that way today) is fenced by its own id's shard.
        let key = event.map_or(run_id, |e| e.resource.as_str());
        let shard = shard_of(key, self.cluster.settings().shards);
        let permit = self.cluster.fence(shard).await.map_err(|e| e.to_string())?;
        // The shard held now is not enough: the attempt must have started under this very
        // tenure, or another replica may have taken the run over in between.
        match self.runs.tenure_of(run_id) {
            Some(tenure) if tenure == permit.token => {}
            Some(tenure) => {
                return Err(format!(
                    "this attempt started under the shard's tenure {tenure}, and the shard is held under token {} now: the run may have been taken over meanwhile",
                    permit.token
                ));
            }
            None => {
                return Err("this replica does not hold the run on the run board".into());
            }
        }
        Ok(FenceProof {
            record: json!({
                "shard": permit.shard,
                "token": permit.token,
                "engine_revision": permit.engine_revision,
                "replica": self.cluster.replica(),
            }),
            permit: Box::new(Held(permit)),
        })
    }
}
