//! Compiled components on disk, by digest: a component compiled once is not compiled again by
//! the next process (a server restart, the next `grace run --dry-run` or `grace replay`).
//!
//! wasmtime loads a precompiled artifact with `unsafe` [`Component::deserialize`]: the bytes
//! become machine code that runs, so a file that GRACE did not write must never reach it. What
//! holds here:
//! - the cache lives in a directory per engine configuration, named by a SHA-256 of wasmtime's
//!   [`precompile_compatibility_hash`](wasmtime::Engine::precompile_compatibility_hash): a
//!   changed configuration or wasmtime version never looks at an older configuration's files
//!   (and wasmtime checks the configuration again when it deserializes);
//! - that directory is created `0700`, and is used only if the process owns it and nobody else
//!   may write to it (otherwise the cache is off, with a warning);
//! - each file starts with a header naming what it is: a magic line, the configuration's hash,
//!   the SHA-256 of the component it was compiled from and the SHA-256 of the artifact after the
//!   header. A file is deserialized only if all four match (the artifact's digest is computed
//!   again over the bytes read); anything else (a truncated write, a flipped bit, a file for
//!   another component or configuration) is removed and the component compiled again;
//! - files are written to a temporary file in the same directory and renamed into place, so a
//!   crash or a concurrent writer leaves either no file or a whole one;
//! - the directory holds at most [`MAX_ARTIFACTS`] files and at most
//!   `EngineConfig::compiled_cache_max_bytes` bytes ([`DEFAULT_MAX_TOTAL_BYTES`] unless set):
//!   past either the least recently used go. A file's modification time is its last use: set
//!   when it is written and again each time it is loaded (access times are often not kept:
//!   `noatime`, `relatime`).
//!
//! The cache only saves time: failing to read or write it is logged and the component is
//! compiled as if there were no cache.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;

/// What a cache file starts with.
const MAGIC: &[u8; 24] = b"grace compiled component";
/// Header: magic, configuration hash, component digest, artifact digest.
const HEADER_BYTES: usize = MAGIC.len() + 3 * 32;
/// Largest cache file read (compiled code is a few times its component's size).
pub const MAX_ARTIFACT_BYTES: u64 = 512 * 1024 * 1024;
/// Most files kept in one configuration's directory.
pub const MAX_ARTIFACTS: usize = 256;
/// Most bytes kept in one configuration's directory unless configured otherwise: 256 files of
/// up to 512 MiB would be 128 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// A directory of compiled components for one engine configuration.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    compat: [u8; 32],
    /// This process's user: the only owner a file may have to be loaded.
    uid: u32,
    /// The most bytes the directory's files may take together.
    max_total_bytes: u64,
}

/// Feeds `Hash` output into SHA-256, so that the configuration's hash is stable across
/// processes (std's hashers are not promised to be).
struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Never used: the digest is read with `finalize`.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Why a cache directory is not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    /// It could not be created or inspected.
    #[error("cannot prepare the compiled-component cache `{dir}`: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Someone else could write into it.
    #[error(
        "the compiled-component cache `{dir}` is not private to this user ({why}): it is not used"
    )]
    NotPrivate {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl ArtifactCache {
    /// The cache for `engine`'s configuration under `root` (created if missing).
    pub(crate) fn open(
        root: &Path,
        engine: &wasmtime::Engine,
        max_total_bytes: u64,
    ) -> Result<Self, CacheError> {
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        let compat: [u8; 32] = hasher.0.finalize().into();
        let dir = root.join(&hex::encode(compat)[..16]);
        let io = |source| CacheError::Io {
            dir: dir.clone(),
            source,
        };
        create_private_dir(&dir).map_err(io)?;
        let uid = check_private(&dir)?;
        Ok(ArtifactCache {
            dir,
            compat,
            uid,
            max_total_bytes,
        })
    }

    /// The directory this configuration's files are in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, component: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hex::encode(component)))
    }

    /// The compiled form of the component whose SHA-256 is `component`, if this cache holds a
    /// whole, matching file for it. A file that does not check out is removed.
    pub(crate) fn load(
        &self,
        engine: &wasmtime::Engine,
        component: &[u8; 32],
    ) -> Option<Component> {
        let path = self.path(component);
        // Checked again at every load, not only at `open`: the directory may have been swapped
        // since (by whoever can write its parent).
        if let Err(e) = check_private(&self.dir) {
            tracing::warn!("compiled-component cache not used: {e}");
            return None;
        }
        let bytes = match read_own_file(&path, self.uid) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "compiled component unreadable, compiling again: {e}");
                return None;
            }
        };
        let artifact = match self.check(&bytes, component) {
            Ok(artifact) => artifact,
            Err(why) => {
                tracing::warn!(path = %path.display(), "compiled component rejected ({why}), compiling again");
                let _ = fs::remove_file(&path);
                return None;
            }
        };
        // SAFETY: the header is no secret, so what makes these bytes ours is where they were
        // read from: a regular file (not a symlink: its identity before and after opening is
        // the same) owned by this process's user, writable by nobody else, in a directory that
        // is this user's and private, checked just now. Nobody but this user (or root) can
        // make such a file, and this user's files here are written only by `store`. The header
        // and the SHA-256 of the artifact, computed again over exactly the bytes deserialized,
        // then rule out a truncated file or one for another component or configuration, and
        // wasmtime itself rejects an artifact built for another configuration.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, artifact) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "compiled component refused by wasmtime ({e:#}), compiling again");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// The artifact inside a cache file, if the header says it is this component's under this
    /// configuration and the artifact's digest matches.
    fn check<'b>(&self, bytes: &'b [u8], component: &[u8; 32]) -> Result<&'b [u8], &'static str> {
        if bytes.len() < HEADER_BYTES || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not a GRACE cache file");
        }
        let (header, artifact) = bytes.split_at(HEADER_BYTES);
        let fields = &header[MAGIC.len()..];
        if fields[..32] != self.compat {
            return Err("compiled under another engine configuration");
        }
        if &fields[32..64] != component {
            return Err("compiled from another component");
        }
        if fields[64..96] != Sha256::digest(artifact)[..] {
            return Err("its digest does not match its contents");
        }
        Ok(artifact)
    }

    /// Writes `compiled`, the component whose SHA-256 is `component`, atomically.
    pub(crate) fn store(&self, component: &[u8; 32], compiled: &Component) {
        // Checked again, as at every load: the directory may have been swapped (for a symlink
        // to another directory, whose files pruning would then delete) since it was opened.
        if let Err(e) = check_private(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "cannot cache a compiled component: {e}");
            return;
        }
        if let Err(e) = self.try_store(component, compiled) {
            tracing::warn!(dir = %self.dir.display(), "cannot cache a compiled component: {e:#}");
        }
        self.prune(&self.path(component));
    }

    fn try_store(&self, component: &[u8; 32], compiled: &Component) -> anyhow::Result<()> {
        let artifact = compiled.serialize()?;
        let mut file = tempfile::Builder::new()
            .prefix(".writing-")
            .tempfile_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(&self.compat)?;
        file.write_all(component)?;
        file.write_all(&Sha256::digest(&artifact))?;
        file.write_all(&artifact)?;
        // Whole on disk before it has its name: a crash leaves a temporary file, not a torn
        // artifact under the real name.
        file.as_file().sync_data()?;
        file.persist(self.path(component))?;
        Ok(())
    }

    /// Removes the least recently used files past [`MAX_ARTIFACTS`] or past the byte budget,
    /// never `keep` (the file just written: evicting it would compile it again at every load),
    /// and temporary files left by crashed writers.
    fn prune(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let meta = entry.metadata().ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            if name.starts_with(".writing-") {
                // Another process may be writing it right now: only old ones are leftovers.
                let stale = modified
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if stale {
                    let _ = fs::remove_file(entry.path());
                }
            } else if name.ends_with(".cwasm") {
                files.push((modified, entry.path(), meta.map_or(0, |m| m.len())));
            }
        }
        // Least recently used first.
        files.sort();
        let mut count = files.len();
        let mut total: u64 = files.iter().map(|(_, _, len)| len).sum();
        for (_, path, len) in files {
            if count <= MAX_ARTIFACTS && total <= self.max_total_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            if fs::remove_file(&path).is_ok() {
                tracing::debug!(path = %path.display(), "compiled component evicted from the cache");
            }
            count -= 1;
            total = total.saturating_sub(len);
        }
    }
}

/// The bytes of the regular file at `path`, `None` if there is none. Refused: a symlink, a file
/// that changed identity between the look and the open (a swap), one owned by another user or
/// writable by group or others, one with other hard links, or one past [`MAX_ARTIFACT_BYTES`].
#[cfg(unix)]
fn read_own_file(path: &Path, uid: u32) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::MetadataExt as _;
    let looked = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !looked.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let file = fs::File::open(path)?;
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino()) != (looked.dev(), looked.ino()) {
        return Err(std::io::Error::other("the file was replaced while opened"));
    }
    if meta.uid() != uid {
        return Err(std::io::Error::other(format!(
            "owned by uid {}, not {uid}",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 || meta.nlink() != 1 {
        return Err(std::io::Error::other(format!(
            "mode {:o} with {} links: writable by others or linked elsewhere",
            meta.mode() & 0o777,
            meta.nlink()
        )));
    }
    let len = meta.len();
    if len > MAX_ARTIFACT_BYTES {
        return Err(std::io::Error::other(format!(
            "{len} bytes, above the limit of {MAX_ARTIFACT_BYTES}"
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&file, MAX_ARTIFACT_BYTES),
        &mut bytes,
    )?;
    // Used now: the cache evicts by modification time, least recent first. On the file
    // checked above (this user's), not on the path, which may have been swapped since.
    if let Err(e) = file.set_modified(std::time::SystemTime::now()) {
        tracing::debug!(path = %path.display(), "cannot mark a compiled component as used: {e}");
    }
    Ok(Some(bytes))
}

/// Outside unix, file ownership cannot be checked: [`check_private`] refuses every directory,
/// so nothing is ever read.
#[cfg(not(unix))]
fn read_own_file(_path: &Path, _uid: u32) -> std::io::Result<Option<Vec<u8>>> {
    Ok(None)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// The directory must belong to this process's user and be writable by nobody else: a file
/// written there by someone else would be loaded as machine code.
#[cfg(unix)]
fn check_private(dir: &Path) -> Result<u32, CacheError> {
    use std::os::unix::fs::MetadataExt as _;
    let io = |source| CacheError::Io {
        dir: dir.to_owned(),
        source,
    };
    let meta = fs::symlink_metadata(dir).map_err(io)?;
    let refuse = |why: String| CacheError::NotPrivate {
        dir: dir.to_owned(),
        why,
    };
    if !meta.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    // The owner of a file this process creates is this process's user: no `unsafe` getuid.
    let probe = tempfile::Builder::new()
        .prefix(".writing-")
        .tempfile_in(dir)
        .map_err(io)?;
    let me = probe.as_file().metadata().map_err(io)?.uid();
    if meta.uid() != me {
        return Err(refuse(format!("owned by uid {}, not {me}", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(format!("mode {:o}", meta.mode() & 0o777)));
    }
    Ok(me)
}

/// Outside unix, who may write the directory cannot be checked: the cache is off.
#[cfg(not(unix))]
fn check_private(dir: &Path) -> Result<u32, CacheError> {
    Err(CacheError::NotPrivate {
        dir: dir.to_owned(),
        why: "the compiled-component cache is used on unix only, where its owner can be checked"
            .into(),
    })
}
