//! `grace cluster status`: a replica's view of the cluster (`GET /v1/cluster`).

use grace_cluster::ClusterStatus;
use grace_engine::text::escape;

use super::{Exit, client};
use crate::cli::{ClusterCommand, Server};
use crate::render::table;

pub fn run(cmd: ClusterCommand) -> Exit {
    match cmd {
        ClusterCommand::Status { json, server } => status(server, json),
    }
}

fn status(server: Server, json: bool) -> Exit {
    let result = (|| {
        let client = client(&server.url)?;
        if json {
            let value = client
                .get_value(&["v1", "cluster"], &[])
                .map_err(|e| e.into_exit())?;
            println!("{value}");
            return Ok(Exit::Ok);
        }
        let status: ClusterStatus = client
            .get(&["v1", "cluster"], &[])
            .map_err(|e| e.into_exit())?;
        print!("{}", render(&status));
        Ok(if status.ready { Exit::Ok } else { Exit::Failed })
    })();
    result.unwrap_or_else(|exit| exit)
}

/// The status for people: this replica, the replicas with their shard counts, the shards
/// nobody holds, then who holds which shard.
fn render(s: &ClusterStatus) -> String {
    let mut out = format!(
        "replica {} ({}), {} shards, leases of {} ms\n",
        escape(&s.replica),
        if s.ready {
            "ready"
        } else if !s.engine_connected {
            "NOT READY: not connected to the engine"
        } else {
            "NOT READY"
        },
        s.shards,
        s.lease_ttl_millis,
    );
    if let Some(e) = &s.last_error {
        out.push_str(&format!("last error: {}\n", escape(e)));
    }
    let c = &s.counters;
    out.push_str(&format!(
        "leases here: {} held; {} renewals, {} acquired ({} taken over), {} lost, {} released; {} fence checks refused; {} runs taken over; {} playbook versions refused\n\n",
        s.owned.len(),
        c.renewals,
        c.acquisitions,
        c.takeovers,
        c.losses,
        c.releases,
        c.fence_rejections,
        c.runs_taken_over,
        c.installs_refused
    ));
    let rows: Vec<Vec<String>> = s
        .replicas
        .iter()
        .map(|r| {
            vec![
                r.member.replica.clone(),
                r.shards.to_string(),
                r.member.version.clone(),
                r.member.incarnation.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["REPLICA", "SHARDS", "VERSION", "INCARNATION"],
        &rows,
    ));
    let unowned = s.unowned();
    if !unowned.is_empty() {
        out.push_str(&format!("\nshards nobody holds: {}\n", ranges(&unowned)));
    }
    let rows: Vec<Vec<String>> = s
        .holders
        .iter()
        .enumerate()
        .filter_map(|(shard, h)| {
            h.as_ref().map(|h| {
                vec![
                    shard.to_string(),
                    h.replica.clone(),
                    h.token.to_string(),
                    h.revision.to_string(),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(&["SHARD", "HOLDER", "TOKEN", "REVISION"], &rows));
    }
    out
}

/// `0-3, 7, 9-10`.
fn ranges(shards: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < shards.len() {
        let start = shards[i];
        let mut end = start;
        while i + 1 < shards.len() && shards[i + 1] == end + 1 {
            i += 1;
            end = shards[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_lists_read_as_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[5]), "5");
    }
}
