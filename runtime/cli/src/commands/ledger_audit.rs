//! `grace ledger verify --server URL --key PUB [--checkpoint FILE | --since FILE]`: verifies a
//! server's ledger here, taking nothing the server says on faith.
//!
//! The server hands out data, never verdicts: its latest signed checkpoint (whose signature is
//! checked with a key the operator gave out of band), its tree head, its entries page by page,
//! and a consistency proof. Every entry's hash is recomputed from its fields, every link and
//! sequence number checked, and the Merkle root of the entries recomputed and compared with the
//! signed one ([`grace_ledger::Audit`]). An older checkpoint the user kept must be extended: a
//! consistency proof from it to the new checkpoint, and, when every entry is fetched, its root
//! recomputed from the first entries too. `--since` keeps the audit's state between runs (the
//! checkpoint and the tree's frontier), so a cron job fetches only the entries added since.
//! `--max-age` refuses a newest signed checkpoint older than allowed: a server replaying an old
//! checkpoint (whose signature still holds) could otherwise hide every entry after it.
//!
//! What is reported as verified is only what a signature verified here covers: the entries
//! after the newest signed checkpoint chain on from it but are reported apart, as the unsigned
//! tail, in the text and in `--json`.
//!
//! Every answer is read with a bound: checkpoints and tree heads are small, entry pages are
//! capped in entries and bytes (a page too large is asked again, smaller, down to one entry).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use grace_ledger::merkle::verify_consistency;
use grace_ledger::{
    Audit, AuditState, Checkpoint, ConsistencyProof, Entry, SignedCheckpoint, TreeHead, VerifierKey,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Exit, client};
use crate::client::{Client, ClientError};

/// Entries asked for per page.
const PAGE_ENTRIES: usize = 1000;
/// The most bytes of a page of several entries read; a larger page is asked again, smaller.
const PAGE_BYTES: usize = 64 * 1024 * 1024;
/// The most bytes of a page of one entry: the largest entry the ledger stores, as JSON with
/// every byte escaped (`\u00xx`), and room for its other fields.
const ONE_ENTRY_BYTES: usize = 6 * grace_ledger::codec::MAX_ENTRY_BYTES + 1024 * 1024;
/// The most bytes of a signed checkpoint, a tree head or a consistency proof (64 hashes).
const SMALL_ANSWER_BYTES: usize = 64 * 1024;
/// The most bytes of a `--checkpoint` or `--since` file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// What a `--since` file says it is, so another JSON file is not taken for one.
const STATE_FORMAT: &str = "grace-ledger-verify-state/1";

/// What the user asked for.
pub struct Request {
    /// The server's base URL.
    pub server: String,
    /// The checkpoint signer's public key.
    pub key: Option<PathBuf>,
    /// An older checkpoint the ledger must extend.
    pub checkpoint: Option<PathBuf>,
    /// The incremental state file.
    pub since: Option<PathBuf>,
    /// The oldest the newest signed checkpoint may be.
    pub max_age: Option<std::time::Duration>,
    /// Machine-readable output.
    pub json: bool,
}

/// What a `--since` file holds: the last verified checkpoint and the audit at its size.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedState {
    format: String,
    /// The signed checkpoint, verbatim.
    checkpoint: String,
    #[serde(flatten)]
    audit: AuditState,
}

/// Why verification failed: each kind is a word in the message and in `--json`.
pub(super) enum Finding {
    /// An entry, or the root recomputed from entries, is not what the server's signed
    /// checkpoint or its own tree head says.
    Tampered {
        first_bad_seq: Option<u64>,
        message: String,
    },
    /// The ledger does not extend a checkpoint the user kept.
    Rewritten(String),
    /// A checkpoint is not signed by the key.
    NotSigned(String),
    /// The server shows no signed checkpoint, or answers what cannot be checked.
    NotVerified(String),
    /// The newest signed checkpoint is older than `--max-age`.
    Stale(String),
}

impl Finding {
    pub(super) fn report(self, server: &str, as_json: bool) -> Exit {
        let (kind, label, first_bad_seq, message) = match self {
            Finding::Tampered {
                first_bad_seq,
                message,
            } => ("tampered", "ledger TAMPERED", first_bad_seq, message),
            Finding::Rewritten(m) => ("rewritten", "ledger REWRITTEN", None, m),
            Finding::NotSigned(m) => ("not-signed", "checkpoint NOT SIGNED", None, m),
            Finding::NotVerified(m) => ("not-verified", "ledger NOT VERIFIED", None, m),
            Finding::Stale(m) => ("stale", "checkpoint TOO OLD", None, m),
        };
        let exit = if kind == "stale" {
            Exit::Stale
        } else {
            Exit::Failed
        };
        if as_json {
            println!(
                "{}",
                json!({ "ok": false, "server": server, "problem": kind, "first_bad_seq": first_bad_seq, "message": message })
            );
        } else {
            println!("{label} ({server}): {message}");
        }
        exit
    }
}

/// A failed step: a finding, or an exit for bad input or an unreachable server.
pub(super) enum Stop {
    Finding(Finding),
    Exit(Exit),
}

impl From<Finding> for Stop {
    fn from(f: Finding) -> Stop {
        Stop::Finding(f)
    }
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Stop {
        Stop::Exit(e.into_exit())
    }
}

/// A trusted earlier state of the ledger: a checkpoint the user kept or the saved audit.
pub(super) struct Earlier {
    pub(super) checkpoint: Checkpoint,
    /// The audit at the checkpoint's size, when `--since` saved one.
    pub(super) audit: Option<AuditState>,
    /// Where it came from, for messages.
    pub(super) source: String,
}

/// What a successful verification covered.
pub(super) struct Verified {
    first_seq: u64,
    pub(super) tree_size: u64,
    signed: Option<(Checkpoint, String)>,
    extends: Option<u64>,
    /// The state to save for `--since`.
    saved: Option<SavedState>,
}

/// Where a ledger is read: a server's own (`/v1/ledger/…`), or a replica's through any replica
/// of its cluster (`/v1/cluster/ledgers/<replica>/…`), which answer alike.
pub(super) struct Source<'a> {
    pub(super) client: &'a Client,
    base: Vec<String>,
}

impl<'a> Source<'a> {
    /// The server's own ledger.
    pub(super) fn server(client: &'a Client) -> Self {
        Source {
            client,
            base: vec!["v1".into(), "ledger".into()],
        }
    }

    /// `replica`'s ledger, read through the server `client` talks to.
    pub(super) fn replica(client: &'a Client, replica: &str) -> Self {
        Source {
            client,
            base: vec![
                "v1".into(),
                "cluster".into(),
                "ledgers".into(),
                replica.to_owned(),
            ],
        }
    }

    fn get(
        &self,
        op: &str,
        query: &[(&str, String)],
        max_bytes: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let mut segments: Vec<&str> = self.base.iter().map(String::as_str).collect();
        segments.push(op);
        self.client.get_bounded(&segments, query, max_bytes)
    }

    /// `GET /v1/ledger/<op>`, for messages.
    fn route(&self, op: &str) -> String {
        format!("GET /{}/{op}", self.base.join("/"))
    }
}

/// `grace ledger verify --server`.
pub fn run(request: Request) -> Exit {
    let client = match client(&request.server) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let server = client.server().to_owned();
    match verify(&Source::server(&client), &request) {
        Ok(verified) => {
            if let (Some(path), Some(saved)) = (&request.since, &verified.saved)
                && let Err(e) = save_state(path, saved)
            {
                return Exit::Internal(e);
            }
            print_verified(&server, &verified, request.json);
            Exit::Ok
        }
        Err(Stop::Finding(finding)) => finding.report(&server, request.json),
        Err(Stop::Exit(exit)) => exit,
    }
}

/// The size and root the ledger `source` serves.
pub(super) fn tree_head(source: &Source<'_>) -> Result<TreeHead, Stop> {
    decode(
        &source.get("tree-head", &[], SMALL_ANSWER_BYTES)?,
        &source.route("tree-head"),
    )
}

/// `--key`, loaded.
pub(super) fn load_key(path: Option<&Path>) -> Result<Option<VerifierKey>, Stop> {
    path.map(|path| {
        VerifierKey::load(path).map_err(|e| invalid(anyhow!("--key `{}`: {e}", path.display())))
    })
    .transpose()
}

fn verify(source: &Source<'_>, request: &Request) -> Result<Verified, Stop> {
    let key = load_key(request.key.as_deref())?;
    let earlier = match (&key, &request.checkpoint, &request.since) {
        (Some(key), Some(path), _) => Some(kept_checkpoint(path, key)?),
        (Some(key), None, Some(path)) => saved_state(path, key)?,
        _ => None,
    };
    audit(source, key.as_ref(), earlier, request.max_age, &mut |_| {})
}

/// Verifies the ledger `source` serves: against `key`'s signature on its newest checkpoint,
/// extending `earlier`, with a newest checkpoint no older than `max_age`; `seen` is shown every
/// entry once it is verified to chain on.
pub(super) fn audit(
    source: &Source<'_>,
    key: Option<&VerifierKey>,
    earlier: Option<Earlier>,
    max_age: Option<std::time::Duration>,
    seen: &mut dyn FnMut(&Entry),
) -> Result<Verified, Stop> {
    // The newest signed state of the ledger, checked against the key before anything else.
    let latest = match key {
        Some(key) => Some(latest_checkpoint(source, key)?),
        None => None,
    };
    let head = tree_head(source)?;
    if let Some((cp, _)) = &latest
        && cp.tree_size > head.size
    {
        return Err(Finding::Tampered {
            first_bad_seq: None,
            message: format!(
                "its tree head covers {} entries, fewer than the {} its own signed checkpoint covers: entries were removed",
                head.size, cp.tree_size
            ),
        }
        .into());
    }

    // The new checkpoint must extend the earlier one: a consistency proof between the two
    // signed roots, which the server cannot forge for a rewritten history.
    if let (Some(earlier), Some((latest, _))) = (&earlier, &latest) {
        check_extends(source, earlier, latest)?;
    }

    let mut audit = match earlier.as_ref().and_then(|e| e.audit.as_ref()) {
        Some(state) => Audit::resume(state).map_err(|e| invalid(anyhow!("--since: {e}")))?,
        None => Audit::new(),
    };
    let first_seq = audit.size() + 1;
    let full_earlier = earlier
        .as_ref()
        .filter(|e| e.audit.is_none())
        .map(|e| e.checkpoint.clone());
    let mut saved = None;
    check_at(&audit, full_earlier.as_ref(), latest.as_ref(), &mut saved)?;
    while audit.size() < head.size {
        let page = fetch_page(source, audit.size() + 1, head.size)?;
        for entry in &page {
            audit.push(entry).map_err(|t| Finding::Tampered {
                first_bad_seq: Some(t.seq),
                message: format!("{t} (recomputed here from the entry the server sent)"),
            })?;
            seen(entry);
            check_at(&audit, full_earlier.as_ref(), latest.as_ref(), &mut saved)?;
        }
    }
    if audit.root() != head.root {
        return Err(Finding::Tampered {
            first_bad_seq: None,
            message: format!(
                "the Merkle root of its {} entries, recomputed here, is {}, but its tree head says {}",
                head.size,
                audit.root(),
                head.root
            ),
        }
        .into());
    }
    // Last: a ledger both tampered with and stale is reported as tampered with.
    if let (Some(max_age), Some((cp, _))) = (max_age, &latest) {
        check_age(cp, max_age, grace_engine::event::system_now_millis())?;
    }
    let saved = match (&latest, saved) {
        (Some((_, text)), Some(audit)) => Some(SavedState {
            format: STATE_FORMAT.to_owned(),
            checkpoint: text.clone(),
            audit,
        }),
        _ => None,
    };
    Ok(Verified {
        first_seq,
        tree_size: head.size,
        signed: latest.map(|(cp, _)| {
            let name = key.map(|k| k.name().to_owned()).unwrap_or_default();
            (cp, name)
        }),
        extends: earlier.map(|e| e.checkpoint.tree_size),
        saved,
    })
}

/// How far ahead of this machine's clock a checkpoint may be dated (the two clocks differ a
/// little) before `--max-age` refuses it: a checkpoint dated further ahead would never grow old.
const FUTURE_ALLOWANCE_MS: u64 = 60_000;

/// Refuses a newest signed checkpoint older than `max_age` at `now` (wall clock, ms), or dated
/// more than [`FUTURE_ALLOWANCE_MS`] ahead of it.
fn check_age(cp: &Checkpoint, max_age: std::time::Duration, now: u64) -> Result<(), Stop> {
    if cp.timestamp_millis > now.saturating_add(FUTURE_ALLOWANCE_MS) {
        return Err(Finding::Stale(format!(
            "its newest signed checkpoint (of {} entries, signed by `{}`) is dated {}, more than a minute ahead of this machine's clock ({}): with --max-age, a checkpoint from the future is refused, since it would never grow old (check both clocks)",
            cp.tree_size,
            cp.origin,
            grace_engine::event::format_millis(cp.timestamp_millis),
            grace_engine::event::format_millis(now),
        ))
        .into());
    }
    let age = now.saturating_sub(cp.timestamp_millis);
    let max = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    if age > max {
        let round = |ms: u64| humantime::format_duration(std::time::Duration::from_secs(ms / 1000));
        return Err(Finding::Stale(format!(
            "its newest signed checkpoint (of {} entries, signed by `{}` at {}) is {} old, more than --max-age `{}`: a server replaying an old checkpoint hides the entries after it, or its signer has stopped (it signs one every `checkpoint_every`, even when idle)",
            cp.tree_size,
            cp.origin,
            grace_engine::event::format_millis(cp.timestamp_millis),
            round(age),
            humantime::format_duration(max_age),
        ))
        .into());
    }
    Ok(())
}

/// At the sizes of the trusted checkpoints, compares the recomputed root with theirs, and keeps
/// the audit at the latest checkpoint's size for `--since`.
fn check_at(
    audit: &Audit,
    earlier: Option<&Checkpoint>,
    latest: Option<&(Checkpoint, String)>,
    saved: &mut Option<AuditState>,
) -> Result<(), Stop> {
    let size = audit.size();
    if let Some(earlier) = earlier
        && earlier.tree_size == size
        && audit.root() != earlier.root_hash
    {
        return Err(Finding::Rewritten(format!(
            "the Merkle root of its first {size} entries, recomputed here, is {}, but your checkpoint of {size} entries says {}: entries it covers were changed",
            audit.root(),
            earlier.root_hash
        ))
        .into());
    }
    if let Some((latest, _)) = latest
        && latest.tree_size == size
    {
        if audit.root() != latest.root_hash {
            return Err(Finding::Tampered {
                first_bad_seq: None,
                message: format!(
                    "the Merkle root of its first {size} entries, recomputed here, is {}, but its checkpoint signed by `{}` says {}",
                    audit.root(),
                    latest.origin,
                    latest.root_hash
                ),
            }
            .into());
        }
        *saved = Some(audit.state());
    }
    Ok(())
}

/// Checks that `latest` extends `earlier` with the server's consistency proof.
fn check_extends(source: &Source<'_>, earlier: &Earlier, latest: &Checkpoint) -> Result<(), Stop> {
    let old = &earlier.checkpoint;
    if old.tree_size > latest.tree_size {
        return Err(Finding::Rewritten(format!(
            "its latest signed checkpoint covers {} entries, fewer than the {} of {}: its history was truncated or rolled back",
            latest.tree_size, old.tree_size, earlier.source
        ))
        .into());
    }
    let path = if old.tree_size == 0 || old.tree_size == latest.tree_size {
        // RFC 9162: the proof between equal sizes, or from the empty tree, is empty.
        Vec::new()
    } else {
        let proof: ConsistencyProof = decode(
            &source.get(
                "consistency",
                &[
                    ("old_size", old.tree_size.to_string()),
                    ("new_size", latest.tree_size.to_string()),
                ],
                SMALL_ANSWER_BYTES,
            )?,
            &source.route("consistency"),
        )?;
        proof.path
    };
    let roots_agree = old.tree_size != 0 || old.root_hash == grace_ledger::merkle::empty_root();
    let proven = roots_agree
        && verify_consistency(
            old.tree_size,
            latest.tree_size,
            &old.root_hash,
            &latest.root_hash,
            &path,
        )
        .is_ok();
    if !proven {
        return Err(Finding::Rewritten(format!(
            "its checkpoint of {} entries does not extend {} of {} entries (the consistency proof fails): entries that one covers were changed or removed",
            latest.tree_size, earlier.source, old.tree_size
        ))
        .into());
    }
    Ok(())
}

/// `GET /v1/ledger/checkpoint`, parsed and verified with `key`.
fn latest_checkpoint(source: &Source<'_>, key: &VerifierKey) -> Result<(Checkpoint, String), Stop> {
    let bytes = match source.get("checkpoint", &[], SMALL_ANSWER_BYTES) {
        Ok(b) => b,
        Err(ClientError::Api(e)) if e.status == 404 => {
            return Err(Finding::NotVerified(
                "it serves no signed checkpoint, so nothing it says can be checked against your key (its operator sets `checkpoint_key` in grace.toml; one is signed every `checkpoint_every`)"
                    .to_owned(),
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| Finding::NotVerified("its checkpoint is not UTF-8 text".to_owned()))?;
    let signed = SignedCheckpoint::parse(&text)
        .map_err(|e| Finding::NotVerified(format!("its checkpoint cannot be read: {e}")))?;
    let checkpoint = signed
        .verify(key)
        .map_err(|e| {
            Finding::NotSigned(format!(
                "its latest checkpoint is not signed by your key `{}`: {e}",
                key.name()
            ))
        })?
        .clone();
    Ok((checkpoint, text))
}

/// `--checkpoint FILE`: read and verified with `key`.
fn kept_checkpoint(path: &Path, key: &VerifierKey) -> Result<Earlier, Stop> {
    let text = read_bounded(path, "--checkpoint")?;
    let signed = SignedCheckpoint::parse(&text)
        .map_err(|e| invalid(anyhow!("--checkpoint `{}`: {e}", path.display())))?;
    let checkpoint = signed
        .verify(key)
        .map_err(|e| {
            Finding::NotSigned(format!(
                "your checkpoint `{}` is not signed by your key `{}`: {e}",
                path.display(),
                key.name()
            ))
        })?
        .clone();
    Ok(Earlier {
        checkpoint,
        audit: None,
        source: format!("your checkpoint `{}`", path.display()),
    })
}

/// `--since FILE`: the saved state, its checkpoint verified with `key` and its frontier checked
/// against that checkpoint's root; `None` when there is no file yet.
fn saved_state(path: &Path, key: &VerifierKey) -> Result<Option<Earlier>, Stop> {
    if !path.exists() {
        return Ok(None);
    }
    let text = read_bounded(path, "--since")?;
    let bad = |what: String| invalid(anyhow!("--since `{}`: {what}", path.display()));
    let saved: SavedState = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a state file this command wrote: {e}")))?;
    if saved.format != STATE_FORMAT {
        return Err(bad(format!(
            "`format` is `{}`, not `{STATE_FORMAT}`",
            saved.format
        )));
    }
    let signed = SignedCheckpoint::parse(&saved.checkpoint)
        .map_err(|e| bad(format!("`checkpoint`: {e}")))?;
    let checkpoint = signed
        .verify(key)
        .map_err(|e| {
            Finding::NotSigned(format!(
                "the checkpoint saved in `{}` is not signed by your key `{}`: {e}",
                path.display(),
                key.name()
            ))
        })?
        .clone();
    saved
        .audit
        .check_root(checkpoint.tree_size, &checkpoint.root_hash)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some(Earlier {
        checkpoint,
        audit: Some(saved.audit),
        source: format!("the checkpoint saved in `{}`", path.display()),
    }))
}

/// Entries from `from` on, at most up to `last`: a page the server may cut short, but not
/// one that starts elsewhere, is empty, or holds more than was asked for.
fn fetch_page(source: &Source<'_>, from: u64, last: u64) -> Result<Vec<Entry>, Stop> {
    let mut limit = PAGE_ENTRIES.min(usize::try_from(last - from + 1).unwrap_or(PAGE_ENTRIES));
    loop {
        let max_bytes = if limit == 1 {
            ONE_ENTRY_BYTES
        } else {
            PAGE_BYTES
        };
        let bytes = match source.get(
            "entries",
            &[("from", from.to_string()), ("limit", limit.to_string())],
            max_bytes,
        ) {
            Ok(bytes) => bytes,
            // Large entries: fewer per page.
            Err(ClientError::TooLarge { .. }) if limit > 1 => {
                limit /= 2;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut page: Vec<Entry> =
            serde_json::from_slice(&bytes).map_err(|e| Finding::Tampered {
                first_bad_seq: Some(from),
                message: format!(
                    "the page of entries from {from} is not a list of ledger entries: {e}"
                ),
            })?;
        if page.len() > limit {
            return Err(Finding::NotVerified(format!(
                "it sent {} entries when asked for at most {limit}",
                page.len()
            ))
            .into());
        }
        if page.is_empty() {
            return Err(Finding::Tampered {
                first_bad_seq: Some(from),
                message: format!(
                    "it serves no entry {from}, though its tree head covers {last} entries"
                ),
            }
            .into());
        }
        // Entries appended after the tree head was read are not covered by it.
        page.truncate(usize::try_from(last - from + 1).unwrap_or(usize::MAX));
        return Ok(page);
    }
}

/// A small JSON answer of the server; one that does not parse cannot be verified.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], request: &str) -> Result<T, Stop> {
    serde_json::from_slice(bytes).map_err(|e| {
        Finding::NotVerified(format!("its answer to `{request}` cannot be read: {e}")).into()
    })
}

fn read_bounded(path: &Path, flag: &str) -> Result<String, Stop> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)
        .map_err(|e| invalid(anyhow!("{flag} `{}`: {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| invalid(anyhow!("{flag} `{}`: {e}", path.display())))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(invalid(anyhow!(
            "{flag} `{}` is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(text)
}

/// Writes the state next to `path` and renames it into place, so a crash leaves the old state
/// or the new one, never half of one.
fn save_state(path: &Path, saved: &SavedState) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(saved)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| anyhow!("--since: cannot write next to `{}`: {e}", path.display()))?;
    std::io::Write::write_all(&mut tmp, format!("{text}\n").as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| anyhow!("--since: cannot write next to `{}`: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow!("--since: cannot write `{}`: {e}", path.display()))?;
    Ok(())
}

fn invalid(e: anyhow::Error) -> Stop {
    Stop::Exit(Exit::Invalid(e))
}

/// How the entries recomputed in this run split: those a checkpoint whose signature was
/// verified here covers, and the unsigned tail after the newest one (all of them without a key).
struct Counts {
    recomputed: u64,
    verified: u64,
    unsigned_tail: u64,
}

impl Verified {
    fn counts(&self) -> Counts {
        let recomputed = (self.tree_size + 1).saturating_sub(self.first_seq);
        let signed_through = self.signed.as_ref().map_or(0, |(cp, _)| cp.tree_size);
        // Entries first_seq..=signed_through are under the signature; a resumed audit starts
        // right after the checkpoint it saved, which the new one extends.
        let verified = (signed_through + 1).saturating_sub(self.first_seq);
        Counts {
            recomputed,
            verified,
            unsigned_tail: recomputed - verified,
        }
    }
}

pub(super) fn print_verified(server: &str, v: &Verified, as_json: bool) {
    let counts = v.counts();
    if as_json {
        let (signed_size, signed_by, signed_at) = match &v.signed {
            Some((cp, name)) => (
                Some(cp.tree_size),
                Some(name.as_str()),
                Some(cp.timestamp_millis),
            ),
            None => (None, None, None),
        };
        println!(
            "{}",
            json!({
                "ok": true, "server": server,
                "entries_verified": counts.verified,
                "unsigned_tail": counts.unsigned_tail,
                "entries_recomputed": counts.recomputed,
                "from_seq": v.first_seq, "tree_size": v.tree_size,
                "checkpoint_size": signed_size, "signed_by": signed_by,
                "checkpoint_signed_at_ms": signed_at,
                "extends_checkpoint_size": v.extends,
                "state_saved": v.saved.is_some(),
            })
        );
        return;
    }
    match &v.signed {
        Some((cp, name)) => {
            let range = if counts.verified == 0 {
                "no new entries under its newest signed checkpoint".to_owned()
            } else {
                format!(
                    "{} entries ({} to {}) recomputed here and verified",
                    counts.verified, v.first_seq, cp.tree_size
                )
            };
            println!(
                "ledger verified ({server}): {range}, {} in all",
                v.tree_size
            );
            println!(
                "  the checkpoint of {} entries signed by `{name}` matches their Merkle root (signed at {})",
                cp.tree_size,
                grace_engine::event::format_millis(cp.timestamp_millis)
            );
            if counts.unsigned_tail > 0 {
                println!(
                    "  unsigned tail: the {} entries after it ({} to {}) chain on from it but no checkpoint signs them yet, so they are NOT verified",
                    counts.unsigned_tail,
                    cp.tree_size + 1,
                    v.tree_size
                );
            }
        }
        None => {
            let range = if counts.recomputed == 0 {
                "no new entries".to_owned()
            } else {
                format!(
                    "{} entries ({} to {}) recomputed here",
                    counts.recomputed, v.first_seq, v.tree_size
                )
            };
            println!(
                "ledger consistent ({server}): {range}, {} in all, none verified",
                v.tree_size
            );
            println!(
                "  NOT checked against a signing key: the entries agree with each other and with the server's tree head, but nothing proves the server did not rewrite them all (pass --key, the public half of its `checkpoint_key`)"
            );
        }
    }
    if let Some(size) = v.extends {
        println!("  it extends the earlier checkpoint of {size} entries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_at(timestamp_millis: u64) -> Checkpoint {
        Checkpoint {
            origin: "test.grace/ledger".into(),
            tree_size: 3,
            root_hash: grace_ledger::Hash::ZERO,
            timestamp_millis,
        }
    }

    fn is_stale(r: Result<(), Stop>) -> bool {
        matches!(r, Err(Stop::Finding(Finding::Stale(_))))
    }

    #[test]
    fn a_checkpoint_within_max_age_passes_and_an_older_one_is_stale() {
        let ten_minutes = std::time::Duration::from_secs(600);
        let now = 1_800_000_000_000;
        assert!(check_age(&signed_at(now - 599_000), ten_minutes, now).is_ok());
        assert!(is_stale(check_age(
            &signed_at(now - 601_000),
            ten_minutes,
            now
        )));
    }

    #[test]
    fn a_checkpoint_dated_more_than_a_minute_ahead_is_refused_since_it_would_never_grow_old() {
        let ten_minutes = std::time::Duration::from_secs(600);
        let now = 1_800_000_000_000;
        assert!(check_age(&signed_at(now + 30_000), ten_minutes, now).is_ok());
        assert!(is_stale(check_age(
            &signed_at(now + 3_600_000),
            ten_minutes,
            now
        )));
    }
}
