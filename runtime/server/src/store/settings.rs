//! `[storage]` of `grace.toml`: how the data directory's database prepares for a crash.

use serde::Deserialize;

/// `[storage]`: the trade between commit speed and the time a restart after a crash takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Every durable commit records redb's allocator state and commits in two phases
    /// (`quick_repair`, default on), so the open after a crash takes milliseconds whatever the
    /// size of the file, instead of walking the whole file. It costs a second fsync per durable
    /// commit: on the machine measured, redb alone made 134 durable commits per second with it
    /// against 246 without (34 entries a commit). Off, a restart after a crash grows with the
    /// database (about 0.5 s for 640 MB there).
    pub quick_repair: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings { quick_repair: true }
    }
}

impl StorageSettings {
    /// What the ledger and every store sharing its database commit for.
    pub fn recovery(&self) -> grace_ledger::Recovery {
        if self.quick_repair {
            grace_ledger::Recovery::Quick
        } else {
            grace_ledger::Recovery::Full
        }
    }
}
