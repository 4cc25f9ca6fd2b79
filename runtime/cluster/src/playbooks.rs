//! The cluster's playbooks, so that one upload reaches every replica.
//!
//! - **The catalogue**, bucket `grace_playbooks`, key `playbook.<name>`: one value per playbook
//!   (its versions with their manifests and signatures, whether it is enabled, or that it was
//!   deleted), as the server describes it (opaque here). Written by compare-and-set on the
//!   revision its writer read, so two replicas changing one playbook at once never lose a
//!   version.
//! - **Components**, object store `grace_components`, object `sha256-<hex>`: each version's
//!   WebAssembly component by its digest, chunked by the engine (components are larger than one
//!   message).
//!
//! Playbook names are the manifests' (lowercase letters, digits and `-`) and digests are
//! `sha256:` and 64 lowercase hex digits; anything else is refused before a key or an object
//! name is built. Both are kept until deleted.

use std::time::Duration;

use async_nats::jetstream::object_store::ObjectStore;
use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use tokio::io::AsyncReadExt as _;

use crate::error::ClusterError;
use crate::keyed::{Keyed, Kind, Records};
use crate::members::within;
use crate::schema::{BucketSpec, create_checked};
use crate::settings::ClusterSettings;

/// The largest catalogue value: one engine message.
pub const MAX_RECORD_BYTES: i32 = 1000 * 1024;

/// The most playbooks listed.
pub const MAX_LISTED: usize = 100_000;

/// The catalogue's bucket: kept until deleted.
pub fn catalogue() -> BucketSpec {
    BucketSpec {
        name: "grace_playbooks",
        history: 1,
        max_age: Duration::ZERO,
        max_value_bytes: MAX_RECORD_BYTES,
    }
}

/// The components' object store name.
pub const COMPONENTS: &str = "grace_components";

/// The components' stream, as async-nats' `create_object_store` would make it (made here with
/// the other streams, so its settings are checked like theirs).
pub fn components_config(settings: &ClusterSettings) -> Config {
    Config {
        name: format!("OBJ_{COMPONENTS}"),
        subjects: vec![
            format!("$O.{COMPONENTS}.C.>"),
            format!("$O.{COMPONENTS}.M.>"),
        ],
        storage: StorageType::File,
        num_replicas: settings.engine_replicas,
        discard: DiscardPolicy::New,
        allow_rollup: true,
        allow_direct: true,
        // What the engine answers for "no limit": asked as such, so the check agrees (a
        // chunk is 128 KiB, a message at most the server's `max_payload`).
        max_messages_per_subject: -1,
        max_message_size: -1,
        ..Config::default()
    }
}

/// Whether `name` is a playbook name: 1 to 64 lowercase letters, digits and `-`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The object name of component `digest` (`sha256:<hex>` → `sha256-<hex>`).
fn object(digest: &str) -> Result<String, ClusterError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(format!("sha256-{hex}"))
        }
        _ => Err(ClusterError::Corrupt {
            key: format!(
                "component {:?}",
                digest.chars().take(80).collect::<String>()
            ),
            message: "a component digest is `sha256:` and 64 lowercase hex digits".into(),
        }),
    }
}

/// The cluster's playbooks.
#[derive(Clone)]
pub struct Catalogue {
    /// The catalogue's records, by playbook name.
    pub records: Records,
    components: ObjectStore,
    timeout: Duration,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").finish_non_exhaustive()
    }
}

impl Catalogue {
    /// Creates the bucket and the object store, or checks those there.
    pub async fn open(
        engine: &crate::Engine,
        settings: &ClusterSettings,
    ) -> Result<Self, ClusterError> {
        let bucket = catalogue().ensure(engine, settings.engine_replicas).await?;
        create_checked(
            engine,
            &components_config(settings),
            "every replica must have the same cluster.engine_replicas",
        )
        .await?;
        let components = engine
            .jetstream()
            .get_object_store(COMPONENTS)
            .await
            .map_err(|e| ClusterError::schema(COMPONENTS, e.to_string()))?;
        Ok(Catalogue {
            records: Records(Keyed::new(
                bucket,
                settings.request_timeout,
                Kind {
                    prefix: "playbook",
                    what: "playbook",
                    valid: valid_name,
                    rule: "a playbook name is 1 to 64 lowercase letters, digits and `-`",
                },
            )),
            components,
            timeout: settings.request_timeout,
        })
    }

    /// Stores component `digest` unless it is there already.
    pub async fn put_component(&self, digest: &str, bytes: &[u8]) -> Result<(), ClusterError> {
        let name = object(digest)?;
        // A component is large: its own deadline, a generous one per megabyte.
        let deadline = self.timeout * (4 + u32::try_from(bytes.len() >> 20).unwrap_or(u32::MAX));
        within(deadline, "store component", async {
            if self.components.info(&name).await.is_ok() {
                return Ok(());
            }
            let mut reader = bytes;
            self.components
                .put(name.as_str(), &mut reader)
                .await
                .map(drop)
                .map_err(|e| ClusterError::unavailable("store component", e))
        })
        .await
    }

    /// Component `digest`, if the engine has it and it is at most `max_bytes`.
    pub async fn component(
        &self,
        digest: &str,
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, ClusterError> {
        let name = object(digest)?;
        let deadline = self.timeout * (4 + u32::try_from(max_bytes >> 20).unwrap_or(u32::MAX));
        within(deadline, "read component", async {
            let mut object = match self.components.get(&name).await {
                Ok(object) => object,
                Err(e)
                    if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(ClusterError::unavailable("read component", e)),
            };
            if object.info().size > max_bytes {
                return Err(ClusterError::Corrupt {
                    key: name.clone(),
                    message: format!("larger than the {max_bytes} bytes an upload may have"),
                });
            }
            let mut bytes = Vec::with_capacity(object.info().size);
            (&mut object)
                .take(u64::try_from(max_bytes).unwrap_or(u64::MAX) + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| ClusterError::unavailable("read component", e))?;
            if bytes.len() > max_bytes {
                return Err(ClusterError::Corrupt {
                    key: name.clone(),
                    message: format!("larger than the {max_bytes} bytes an upload may have"),
                });
            }
            Ok(Some(bytes))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_digests_are_checked_before_a_key_or_an_object_is_named() {
        assert!(valid_name("scale-on-latency"));
        for bad in ["", "A", "a.b", "a*", ">", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            object(&format!("sha256:{hex}")).unwrap(),
            format!("sha256-{hex}")
        );
        for bad in [
            "sha256:".to_owned(),
            format!("sha512:{hex}"),
            format!("sha256:{}", hex.to_uppercase()),
            format!("sha256:{hex}0"),
            format!("sha256:../{}", &hex[3..]),
        ] {
            assert!(object(&bad).is_err(), "{bad:?}");
        }
    }
}
