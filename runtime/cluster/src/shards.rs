//! Which shard a piece of work belongs to, and which shards a replica prefers.
//!
//! Work is cut by resource: everything about one resource (its events' windows, dedup and
//! cooldowns, its exclusivity locks, its runs) is in one shard, so one replica at a time decides
//! about it. The mapping is a hash every replica computes alike, on every platform and in every
//! version: SHA-256, not `std`'s hasher, whose output may change between releases.

use sha2::{Digest, Sha256};

/// The shard of `key` (a resource name, or `source:<name>` for a polled source) among `shards`.
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (hash64(&[key.as_bytes()]) % u64::from(shards.max(1))) as u32
}

/// How much `replica` prefers `shard` (highest random weight): each replica ranks the shards
/// differently, so replicas looking for free shards at once mostly reach for different ones, and
/// a replica gets the same shards back after a restart when they are free.
pub fn preference(replica: &str, shard: u32) -> u64 {
    hash64(&[replica.as_bytes(), &[0], &shard.to_be_bytes()])
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// How many shards each of `replicas` live replicas should hold: the ceiling of the share, so
/// every shard has room.
pub fn fair_share(shards: u32, replicas: usize) -> usize {
    (shards as usize).div_ceil(replicas.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_is_fixed_across_versions() {
        // Values computed once: a change here moves every resource to another shard, which
        // a running cluster must never see.
        assert_eq!(shard_of("web-1", 64), shard_of("web-1", 64));
        assert_eq!(shard_of("web-1", 1), 0);
        assert_eq!(hash64(&[b"abc"]), 0xba78_16bf_8f01_cfea);
    }

    #[test]
    fn resources_spread_over_the_shards() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[shard_of(&format!("host-{i}"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn replicas_rank_shards_differently() {
        let rank = |replica: &str| {
            let mut shards: Vec<u32> = (0..64).collect();
            shards.sort_by_key(|s| std::cmp::Reverse(preference(replica, *s)));
            shards
        };
        assert_ne!(rank("a")[..8], rank("b")[..8]);
        assert_eq!(rank("a"), rank("a"));
    }

    #[test]
    fn the_fair_share_leaves_no_shard_without_room() {
        assert_eq!(fair_share(64, 3), 22);
        assert_eq!(fair_share(64, 0), 64);
        assert_eq!(fair_share(2, 3), 1);
        for replicas in 1..10 {
            assert!(fair_share(64, replicas) * replicas >= 64);
        }
    }
}
