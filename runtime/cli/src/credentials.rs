//! The CLI's API token: where it comes from, and where `grace init` keeps it.
//!
//! A client command sends the first of: `GRACE_TOKEN`; the file of `--token-file` (or
//! `GRACE_TOKEN_FILE`); the credentials file `$GRACE_CONFIG_DIR/token` (default
//! `$XDG_CONFIG_HOME/grace/token`, else `~/.config/grace/token`). No token at all is not an error
//! here: the server answers `401` and the message says what to do.
//!
//! The credentials file is written with mode 0600 in a directory of mode 0700.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, anyhow};

/// The `--token-file` of this invocation, set once by `commands::run`.
static TOKEN_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Remembers `--token-file` for every client this process makes.
pub fn set_token_file(path: Option<PathBuf>) {
    let _ = TOKEN_FILE.set(path);
}

/// The `--token-file` given, if any.
pub fn token_file_flag() -> Option<PathBuf> {
    TOKEN_FILE.get().cloned().flatten()
}

/// The directory of the CLI's own settings.
pub fn config_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("GRACE_CONFIG_DIR")
        .or_else(|| var("XDG_CONFIG_HOME").map(|d| d.join("grace")))
        .or_else(|| var("HOME").map(|h| h.join(".config").join("grace")))
}

/// Where the token is read from and `grace init` writes it: `--token-file`, else the
/// credentials file.
pub fn token_path() -> Option<PathBuf> {
    token_file_flag().or_else(|| config_dir().map(|d| d.join("token")))
}

/// The token to send, if any.
pub fn token() -> anyhow::Result<Option<String>> {
    if let Ok(t) = std::env::var("GRACE_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(Some(t.trim().to_owned()));
    }
    let Some(path) = token_path() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        // Only an explicit --token-file must exist.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && token_file_flag().is_none() => {
            Ok(None)
        }
        Err(e) => Err(anyhow!(
            "cannot read the token file `{}`: {e}",
            path.display()
        )),
    }
}

/// Writes `token` to `path` (mode 0600; a new parent directory gets mode 0700), replacing the
/// file atomically.
pub fn save_token(path: &Path, token: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder
            .create(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    // Beside the file, named after all of it: `api.token` → `api.token.tmp`, never `api.tmp`.
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}
