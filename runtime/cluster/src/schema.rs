//! Every stream and bucket GRACE keeps in the engine, declared once, and their creation.
//!
//! Buckets are made the way async-nats makes key-value buckets (a stream `KV_<bucket>` on the
//! subjects `$KV.<bucket>.>`, per-subject history, roll-ups allowed, deletes by marker only),
//! but with `create_stream`, not `create_key_value`: the latter asks for the account's
//! information first and async-nats 0.52 cannot read nats-server 2.9's answer (it lacks
//! `reserved_memory`). The bucket is then opened with `get_key_value`, which only reads the
//! stream.
//!
//! A server older than the client ignores options it does not know, so the configuration the
//! server answers with is compared with the one asked for, field by field; and a stream that
//! exists with other settings (another replica started with other `[cluster]` values) is
//! refused by the server, which names nothing, so the error here says which settings must agree.

use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};

use crate::connect::Engine;
use crate::error::ClusterError;
use crate::settings::ClusterSettings;

/// A key-value bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// The bucket's name (the stream is `KV_<name>`).
    pub name: &'static str,
    /// How many values of one key are kept.
    pub history: i64,
    /// How long a value lives after it was written; zero keeps it.
    pub max_age: Duration,
    /// The largest value.
    pub max_value_bytes: i32,
}

/// Shard leases, `shard.<n>`: a value lives `lease_ttl` after it was written, so a lease not
/// renewed is dropped by the engine itself. One value per key: a renewal replaces it.
pub fn leases(settings: &ClusterSettings) -> BucketSpec {
    BucketSpec {
        name: "grace_leases",
        history: 1,
        max_age: settings.lease_ttl,
        max_value_bytes: 4096,
    }
}

/// Replica heartbeats, `replica.<name>`: a replica that stops writing disappears after
/// `lease_ttl`, as its leases do.
pub fn replicas(settings: &ClusterSettings) -> BucketSpec {
    BucketSpec {
        name: "grace_replicas",
        history: 1,
        max_age: settings.lease_ttl,
        max_value_bytes: 4096,
    }
}

/// What every replica of the cluster must agree on (`shards`), written once by the first.
pub fn facts() -> BucketSpec {
    BucketSpec {
        name: "grace_cluster",
        history: 1,
        max_age: Duration::ZERO,
        max_value_bytes: 4096,
    }
}

impl BucketSpec {
    /// The stream configuration of the bucket with `replicas` copies.
    pub fn stream_config(&self, replicas: usize) -> Config {
        Config {
            name: format!("KV_{}", self.name),
            subjects: vec![format!("$KV.{}.>", self.name)],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: replicas,
            max_messages_per_subject: self.history,
            max_age: self.max_age,
            max_message_size: self.max_value_bytes,
            discard: DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            ..Config::default()
        }
    }

    /// Creates the bucket, or checks the one there has the same settings, and opens it.
    pub async fn ensure(
        &self,
        engine: &Engine,
        replicas: usize,
    ) -> Result<kv::Store, ClusterError> {
        let wanted = self.stream_config(replicas);
        create_checked(
            engine,
            &wanted,
            "every replica must have the same cluster.lease_ttl and cluster.engine_replicas; \
             engine_replicas cannot exceed the engine's nodes",
        )
        .await?;
        engine
            .jetstream()
            .get_key_value(self.name)
            .await
            .map_err(|e| ClusterError::schema(&wanted.name, e))
    }
}

/// How many times a stream creation that timed out is tried: a stream just created, or one
/// whose nodes are electing a leader, may not answer for a few seconds.
const CREATE_ATTEMPTS: u32 = 3;

/// Creates the stream `wanted` (or finds it with the same settings), and checks the settings the
/// engine answers with. `hint` says which settings must agree, for the error.
pub async fn create_checked(
    engine: &Engine,
    wanted: &Config,
    hint: &str,
) -> Result<Config, ClusterError> {
    let mut attempt = 1;
    let stream = loop {
        match engine.jetstream().create_stream(wanted.clone()).await {
            Ok(stream) => break stream,
            Err(e)
                if e.kind() == async_nats::jetstream::context::CreateStreamErrorKind::TimedOut
                    && attempt < CREATE_ATTEMPTS =>
            {
                tracing::warn!(stream = %wanted.name, attempt, "creating the stream timed out; trying again");
                attempt += 1;
            }
            Err(e) => return Err(ClusterError::schema(&wanted.name, format!("{e} ({hint})"))),
        }
    };
    let got = stream.cached_info().config.clone();
    same_config(wanted, &got)?;
    Ok(got)
}

/// Refuses a stream whose configuration differs from the one asked for in a field GRACE set.
pub fn same_config(wanted: &Config, got: &Config) -> Result<(), ClusterError> {
    let differs = |field: &str, w: String, g: String| {
        Err(ClusterError::schema(
            &wanted.name,
            format!(
                "the engine answered with {field} = {g}, not {w}: the server ignored or changed it"
            ),
        ))
    };
    macro_rules! check {
        ($($field:ident),*) => {$(
            if wanted.$field != got.$field {
                return differs(
                    stringify!($field),
                    format!("{:?}", wanted.$field),
                    format!("{:?}", got.$field),
                );
            }
        )*};
    }
    check!(
        subjects,
        retention,
        storage,
        num_replicas,
        max_messages_per_subject,
        max_age,
        max_message_size,
        discard,
        allow_rollup,
        deny_delete,
        deny_purge,
        allow_direct
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_the_server_dropped_is_named() {
        let spec = leases(&ClusterSettings::default());
        let wanted = spec.stream_config(3);
        same_config(&wanted, &wanted.clone()).unwrap();
        let got = Config {
            allow_direct: false,
            ..wanted.clone()
        };
        let err = same_config(&wanted, &got).unwrap_err().to_string();
        assert!(err.contains("allow_direct = false, not true"), "{err}");
        assert!(err.contains("KV_grace_leases"), "{err}");
    }

    #[test]
    fn lease_and_heartbeat_buckets_expire_with_the_lease() {
        let settings = ClusterSettings {
            lease_ttl: Duration::from_secs(20),
            ..ClusterSettings::default()
        };
        assert_eq!(leases(&settings).max_age, Duration::from_secs(20));
        assert_eq!(replicas(&settings).max_age, Duration::from_secs(20));
        assert_eq!(facts().max_age, Duration::ZERO);
        assert_eq!(
            leases(&settings).stream_config(3).subjects,
            ["$KV.grace_leases.>"]
        );
    }
}
