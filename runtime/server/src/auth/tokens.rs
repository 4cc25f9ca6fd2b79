//! API tokens: made from the operating system's randomness, shown once, stored only as their
//! SHA-256 hash in the data directory's database (table `server/tokens`, keyed by the hash).
//!
//! A token reads `grace_` followed by 64 hex digits (256 random bits), so that it is recognisable
//! in a leaked file or a secret scanner's rules. Its record keeps an id (`tok_` and 12 hex
//! digits, random, safe to show and to log), a name, scopes, who created it and when, an optional
//! expiry and whether it is revoked. Revoked tokens stay listed: the ledger's audit entries name
//! them.
//!
//! Every token belongs to a principal (see [`super::principals`]): the person or system it
//! speaks for. Records written before principals existed name none; [`TokenStore::open`] gives
//! each the local principal named like the token and writes it back.
//!
//! [`TokenStore`] keeps every record in memory too, so that authenticating a request is a hash
//! and a map lookup; only this process changes the table while the server runs (redb allows one
//! process per database file), so the copy never goes stale.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use grace_ledger::Database;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Scopes;
use super::principals::{MIGRATION, PrincipalStore, valid_name};

/// Token records by the hex SHA-256 of the token: JSON [`TokenRecord`].
pub const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("server/tokens");

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "grace_";

/// The name of the token `grace init` makes for the local CLI (its principal has the same name).
pub const LOCAL_ADMIN: &str = super::principals::LOCAL_ADMIN;

/// Why the token table failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// redb reported an error.
    #[error("token storage error: {0}")]
    Db(String),
    /// A stored record could not be read back.
    #[error("stored token record is unreadable: {0}")]
    Corrupt(String),
    /// The operating system gave no randomness.
    #[error("no randomness for a new token: {0}")]
    Random(String),
    /// A token name is empty, too long or holds characters other than letters, digits, spaces
    /// and `.-_@'`.
    #[error(
        "token name `{0}` is invalid: use 1 to 64 letters, digits, spaces and `.-_@'` (names are shown to people, so nothing invisible)"
    )]
    BadName(String),
    /// A token without scopes could do nothing.
    #[error("a token needs at least one scope (read, operate, approve, admin)")]
    NoScopes,
    /// The principal a token would belong to does not exist.
    #[error(transparent)]
    Principal(#[from] super::principals::PrincipalError),
}

fn db<E: std::fmt::Display>(e: E) -> TokenError {
    TokenError::Db(e.to_string())
}

/// A token as stored: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// `tok_` and 12 hex digits; what lists, logs and the ledger show.
    pub id: String,
    /// A name for people (`local-admin`, `alertmanager`, `ci-deploy`).
    pub name: String,
    /// The id of the principal it belongs to (`local:alice`); empty only in records written
    /// before principals, until [`TokenStore::open`] migrates them.
    #[serde(default)]
    pub principal: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Milliseconds since the epoch.
    pub created_at: u64,
    /// Who made it: a caller's name, or `grace init`.
    pub created_by: String,
    /// When it stops working, milliseconds since the epoch.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Whether it was revoked.
    #[serde(default)]
    pub revoked: bool,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at: Option<u64>,
}

impl TokenRecord {
    /// Whether it authenticates at `now` (milliseconds since the epoch).
    pub fn is_live(&self, now: u64) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| now < at)
    }
}

/// A new token: its secret, to show once, and its record.
#[derive(Clone)]
pub struct NewToken {
    /// `grace_...`: the secret. Never logged.
    pub secret: String,
    /// What is stored.
    pub record: TokenRecord,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// What a new token should be.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// Its name.
    pub name: String,
    /// The id of the existing principal it belongs to (`local:alice`).
    pub principal: String,
    /// Its scopes (at least one).
    pub scopes: Scopes,
    /// Who asks for it.
    pub created_by: String,
    /// When it expires, milliseconds since the epoch.
    pub expires_at: Option<u64>,
}

/// The hex SHA-256 of a presented token: the key it is stored under.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, TokenError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

fn now_millis() -> u64 {
    grace_engine::event::system_now_millis()
}

/// The token table, with every record in memory.
#[derive(Clone)]
pub struct TokenStore {
    db: Arc<Database>,
    principals: PrincipalStore,
    /// Records by hash.
    cache: Arc<RwLock<HashMap<String, Arc<TokenRecord>>>>,
}

impl TokenStore {
    /// The table in `database` (created if missing), read into memory; tokens written before
    /// principals are given the local principal of their name (created by `migration`).
    pub fn open(
        database: Arc<Database>,
        principals: PrincipalStore,
    ) -> Result<TokenStore, TokenError> {
        let tx = database.begin_write().map_err(db)?;
        tx.open_table(TOKENS).map_err(db)?;
        tx.commit().map_err(db)?;
        let mut cache = HashMap::<String, TokenRecord>::new();
        {
            let tx = database.begin_read().map_err(db)?;
            let table = tx.open_table(TOKENS).map_err(db)?;
            for row in table.iter().map_err(db)? {
                let (k, v) = row.map_err(db)?;
                let record: TokenRecord = serde_json::from_slice(v.value())
                    .map_err(|e| TokenError::Corrupt(e.to_string()))?;
                cache.insert(k.value().to_owned(), record);
            }
        }
        let store = TokenStore {
            db: database,
            principals,
            cache: Arc::new(RwLock::new(HashMap::new())),
        };
        for (key, mut record) in cache {
            if record.principal.is_empty() {
                // The previous version counted approvers by token name: the principal named
                // like the token is exactly whom it counted.
                let p = store.principals.ensure(&record.name, MIGRATION)?;
                record.principal = p.id;
                store.put(&key, &record)?;
                tracing::info!(token = %record.id, principal = %record.principal, "a token from before principals now belongs to the principal of its name");
            } else {
                crate::sync::write(&store.cache).insert(key, Arc::new(record));
            }
        }
        Ok(store)
    }

    /// The principal table and the token table of `database`, opened together (see
    /// [`TokenStore::open`]).
    pub fn open_database(database: Arc<Database>) -> Result<TokenStore, TokenError> {
        let principals = PrincipalStore::open(database.clone())?;
        TokenStore::open(database, principals)
    }

    /// The principals tokens belong to.
    pub fn principals(&self) -> &PrincipalStore {
        &self.principals
    }

    /// The record of a presented token, live or not; `None` for a token never issued here.
    pub fn lookup(&self, secret: &str) -> Option<Arc<TokenRecord>> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return None;
        }
        crate::sync::read(&self.cache).get(&hash(secret)).cloned()
    }

    /// Makes, stores and returns a new token.
    pub fn create(&self, spec: TokenSpec) -> Result<NewToken, TokenError> {
        let name = spec.name.trim();
        // Names are shown to people (who uploaded, which token): letters, digits, spaces and
        // `.-_@'` only, so that two names never look alike through invisible or bidi characters.
        if !valid_name(name) {
            return Err(TokenError::BadName(spec.name.escape_debug().to_string()));
        }
        if spec.scopes.is_empty() {
            return Err(TokenError::NoScopes);
        }
        // Local principals only: an OIDC principal signs in with its identity provider's
        // tokens, and who exists there is the provider's to say, not a local admin's.
        if self.principals.get(&spec.principal).is_none() {
            let name = spec
                .principal
                .strip_prefix("local:")
                .unwrap_or(&spec.principal);
            return Err(super::principals::PrincipalError::NotFound(name.to_owned()).into());
        }
        let secret = format!("{TOKEN_PREFIX}{}", random_hex(32)?);
        let record = TokenRecord {
            id: format!("tok_{}", random_hex(6)?),
            name: name.to_owned(),
            principal: spec.principal,
            scopes: spec.scopes,
            created_at: now_millis(),
            created_by: spec.created_by,
            expires_at: spec.expires_at,
            revoked: false,
            revoked_at: None,
        };
        let key = hash(&secret);
        self.put(&key, &record)?;
        Ok(NewToken { secret, record })
    }

    /// Revokes the token `id`: it no longer authenticates. `None` if there is no such id.
    pub fn revoke(&self, id: &str) -> Result<Option<TokenRecord>, TokenError> {
        let found = crate::sync::read(&self.cache)
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(k, r)| (k.clone(), (**r).clone()));
        let Some((key, mut record)) = found else {
            return Ok(None);
        };
        if !record.revoked {
            record.revoked = true;
            record.revoked_at = Some(now_millis());
            self.put(&key, &record)?;
        }
        Ok(Some(record))
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Vec<TokenRecord> {
        let mut all: Vec<TokenRecord> = crate::sync::read(&self.cache)
            .values()
            .map(|r| (**r).clone())
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all
    }

    /// Every token with the key it is stored under (the hash of its secret).
    pub fn keyed(&self) -> Vec<(String, TokenRecord)> {
        crate::sync::read(&self.cache)
            .iter()
            .map(|(k, r)| (k.clone(), (**r).clone()))
            .collect()
    }

    /// Token `id` with the key it is stored under.
    pub fn keyed_by_id(&self, id: &str) -> Option<(String, TokenRecord)> {
        crate::sync::read(&self.cache)
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(k, r)| (k.clone(), (**r).clone()))
    }

    /// Stores `record` under `key` as another replica of the cluster has it: a token new here,
    /// or one revoked there. A revocation is never undone: a token revoked here stays revoked
    /// whatever the other says. Whether anything changed.
    pub fn adopt(&self, key: &str, record: &TokenRecord) -> Result<bool, TokenError> {
        if !grace_cluster::credentials::valid_key(key) || record.scopes.is_empty() {
            return Err(TokenError::Corrupt(format!(
                "token `{}` from the cluster is not one this server could have made",
                record.id.escape_debug()
            )));
        }
        let here = crate::sync::read(&self.cache).get(key).cloned();
        let merged = match here {
            Some(here) if here.id != record.id => {
                return Err(TokenError::Corrupt(format!(
                    "token `{}` from the cluster has the key of `{}`",
                    record.id.escape_debug(),
                    here.id
                )));
            }
            Some(here) if here.revoked || !record.revoked => return Ok(false),
            // Revoked there: revoked here, as it was told.
            Some(here) => TokenRecord {
                revoked: true,
                revoked_at: record.revoked_at,
                ..(*here).clone()
            },
            None => record.clone(),
        };
        self.put(key, &merged)?;
        Ok(true)
    }

    fn put(&self, key: &str, record: &TokenRecord) -> Result<(), TokenError> {
        let bytes = serde_json::to_vec(record).map_err(db)?;
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut table = tx.open_table(TOKENS).map_err(db)?;
            table.insert(key, bytes.as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        crate::sync::write(&self.cache).insert(key.to_owned(), Arc::new(record.clone()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::Scope;
    use super::*;

    fn open(db: Database) -> TokenStore {
        let db = Arc::new(db);
        let principals = PrincipalStore::open(db.clone()).unwrap();
        principals.ensure("test", "test").unwrap();
        TokenStore::open(db, principals).unwrap()
    }

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let db =
            Database::create(dir.path().join("grace.redb"), grace_ledger::Recovery::Quick).unwrap();
        (dir, open(db))
    }

    fn spec(name: &str, scopes: &[Scope]) -> TokenSpec {
        TokenSpec {
            name: name.into(),
            principal: "local:test".into(),
            scopes: scopes.iter().copied().collect(),
            created_by: "test".into(),
            expires_at: None,
        }
    }

    #[test]
    fn a_token_from_another_replica_authenticates_and_a_revocation_is_never_undone() {
        let (_a_dir, a) = store();
        let (_b_dir, b) = store();
        let made = a.create(spec("ci", &[Scope::Read])).unwrap();
        let key = hash(&made.secret);
        // b learns of it: the secret made on a works on b.
        assert!(b.adopt(&key, &made.record).unwrap());
        assert_eq!(b.lookup(&made.secret).unwrap().id, made.record.id);
        assert!(!b.adopt(&key, &made.record).unwrap(), "nothing new");
        // Revoked on b; a late copy of the live record does not bring it back.
        b.revoke(&made.record.id).unwrap();
        assert!(!b.adopt(&key, &made.record).unwrap());
        assert!(b.lookup(&made.secret).unwrap().revoked);
        // a learns of the revocation.
        let (_, revoked) = b.keyed_by_id(&made.record.id).unwrap();
        assert!(a.adopt(&key, &revoked).unwrap());
        assert!(!a.lookup(&made.secret).unwrap().is_live(now_millis()));
    }

    #[test]
    fn a_record_under_a_key_it_cannot_have_is_refused() {
        let (_a_dir, a) = store();
        let (_b_dir, b) = store();
        let made = a.create(spec("ci", &[Scope::Read])).unwrap();
        let other = a.create(spec("other", &[Scope::Read])).unwrap();
        assert!(b.adopt("not-a-hash", &made.record).is_err());
        b.adopt(&hash(&made.secret), &made.record).unwrap();
        // Another token's record under an existing token's key.
        assert!(b.adopt(&hash(&made.secret), &other.record).is_err());
        let mut scopeless = other.record.clone();
        scopeless.scopes = Scopes::default();
        assert!(b.adopt(&hash(&other.secret), &scopeless).is_err());
    }

    #[test]
    fn a_token_is_256_random_bits_with_a_prefix_and_only_its_hash_is_stored() {
        let (_dir, store) = store();
        let t = store.create(spec("ci", &[Scope::Read])).unwrap();
        assert!(t.secret.starts_with("grace_"));
        assert_eq!(t.secret.len(), "grace_".len() + 64);
        assert!(t.record.id.starts_with("tok_"));
        let other = store.create(spec("ci", &[Scope::Read])).unwrap();
        assert_ne!(t.secret, other.secret);

        let tx = store.db.begin_read().unwrap();
        let table = tx.open_table(TOKENS).unwrap();
        for row in table.iter().unwrap() {
            let (k, v) = row.unwrap();
            let stored = String::from_utf8_lossy(v.value()).into_owned();
            assert!(!stored.contains(&t.secret[6..]), "{stored}");
            assert!(!k.value().contains(&t.secret[6..]));
        }
        assert!(table.get(hash(&t.secret).as_str()).unwrap().is_some());
    }

    #[test]
    fn lookup_finds_issued_tokens_only_and_revoked_ones_are_not_live() {
        let (_dir, store) = store();
        let t = store.create(spec("ops", &[Scope::Operate])).unwrap();
        assert_eq!(store.lookup(&t.secret).unwrap().name, "ops");
        assert!(store.lookup("grace_0000").is_none());
        assert!(store.lookup(&t.secret[6..]).is_none());
        let revoked = store.revoke(&t.record.id).unwrap().unwrap();
        assert!(revoked.revoked);
        assert!(!store.lookup(&t.secret).unwrap().is_live(now_millis()));
        assert!(store.revoke("tok_nope").unwrap().is_none());
    }

    #[test]
    fn tokens_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grace.redb");
        let secret = {
            let store = open(Database::create(&path, grace_ledger::Recovery::Quick).unwrap());
            store.create(spec("kept", &[Scope::Admin])).unwrap().secret
        };
        let store = open(Database::create(&path, grace_ledger::Recovery::Quick).unwrap());
        assert_eq!(store.lookup(&secret).unwrap().name, "kept");
        assert_eq!(store.lookup(&secret).unwrap().principal, "local:test");
    }

    #[test]
    fn a_token_belongs_to_an_existing_principal_only() {
        let (_dir, store) = store();
        let mut s = spec("ghost", &[Scope::Approve]);
        s.principal = "local:nobody".into();
        let err = store.create(s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no local principal `nobody`: create it first with `grace principals create nobody`"
        );
    }

    #[test]
    fn tokens_written_before_principals_get_the_principal_of_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grace.redb");
        {
            // A record exactly as the previous version wrote it: no `principal`.
            let db = Database::create(&path, grace_ledger::Recovery::Quick).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(TOKENS).unwrap();
                let old = r#"{"id":"tok_0123456789ab","name":"alice","scopes":["approve"],"created_at":5,"created_by":"local-admin","expires_at":null,"revoked":false,"revoked_at":null}"#;
                t.insert(hash("grace_old").as_str(), old.as_bytes())
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let store = open(Database::create(&path, grace_ledger::Recovery::Quick).unwrap());
        let t = store.lookup("grace_old").unwrap();
        assert_eq!(
            (t.name.as_str(), t.principal.as_str()),
            ("alice", "local:alice")
        );
        let p = store.principals().get("local:alice").unwrap();
        assert_eq!(p.created_by, MIGRATION);
        // Written back: the next open finds it migrated and changes nothing.
        drop(store);
        let store = open(Database::create(&path, grace_ledger::Recovery::Quick).unwrap());
        assert_eq!(store.lookup("grace_old").unwrap().principal, "local:alice");
    }

    #[test]
    fn an_expired_token_is_not_live() {
        let mut r = TokenRecord {
            id: "tok_1".into(),
            name: "n".into(),
            principal: "local:n".into(),
            scopes: Scopes::all(),
            created_at: 0,
            created_by: "t".into(),
            expires_at: Some(1_000),
            revoked: false,
            revoked_at: None,
        };
        assert!(r.is_live(999));
        assert!(!r.is_live(1_000));
        r.expires_at = None;
        assert!(r.is_live(u64::MAX));
    }

    #[test]
    fn names_and_scopes_are_checked() {
        let (_dir, store) = store();
        assert!(matches!(
            store.create(spec("", &[Scope::Read])),
            Err(TokenError::BadName(_))
        ));
        assert!(matches!(
            store.create(spec("x", &[])),
            Err(TokenError::NoScopes)
        ));
        // Two approvers must not be able to look like one: no invisible or bidi characters.
        for lookalike in ["alice\u{200B}", "ali\u{202E}ce", "alice\u{FEFF}", "al\nice"] {
            assert!(
                matches!(
                    store.create(spec(lookalike, &[Scope::Approve])),
                    Err(TokenError::BadName(_))
                ),
                "{lookalike:?}"
            );
        }
        assert!(store.create(spec("Zoë O'Neil", &[Scope::Approve])).is_ok());
        assert!(store.create(spec("Zoë Neil-2", &[Scope::Approve])).is_ok());
        assert!(
            store
                .create(spec("ci.deploy@team_x", &[Scope::Read]))
                .is_ok()
        );
    }
}
