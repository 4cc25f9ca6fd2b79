//! `grace init`: offline, before `grace serve` starts, create the data directory and its database
//! if needed, and an `admin` token named `local-admin` for this CLI, written to its credentials
//! file (mode 0600). The token is printed only with `--print`. It belongs to the local principal
//! `local-admin` (made here if missing): whoever runs `grace init` on the data directory is the
//! server's first admin, and approves as that one person whichever of its tokens they use.
//!
//! With `--tls` it also makes a self-signed certificate and key in `<data-dir>/tls/` (both mode
//! 0600) for `grace serve --tls-cert --tls-key`, valid for loopback (`127.0.0.1`, `::1`,
//! `localhost`) and each `--tls-san`; the certificate is its own CA, what client commands take as
//! `--ca-cert`. It is for trying HTTPS: a real deployment uses a certificate from its own CA.
//! An existing `local-admin` token is then kept rather than refused, so that `--tls` can be added
//! to a data directory already set up.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use grace_ledger::{Durability, Ledger};
use grace_server::auth::tokens::LOCAL_ADMIN;
use grace_server::auth::{Scopes, TokenSpec, TokenStore};

use super::{Exit, ledger_path};
use crate::cli::InitArgs;
use crate::credentials;

pub fn run(args: &InitArgs) -> Exit {
    match init(args) {
        Ok(()) => Exit::Ok,
        Err(exit) => exit,
    }
}

fn init(args: &InitArgs) -> Result<(), Exit> {
    let Some(credentials) = credentials::token_path() else {
        return Err(Exit::Invalid(anyhow!(
            "no place for the credentials file: set GRACE_CONFIG_DIR or HOME, or pass --token-file"
        )));
    };
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        Exit::Internal(anyhow!(
            "cannot create the data directory `{}`: {e}",
            args.data_dir.display()
        ))
    })?;
    if args.tls {
        make_tls_pair(args)?;
    }
    let path = ledger_path(&args.data_dir);
    // The server holds the database while it runs: say so rather than redb's words.
    let ledger = Ledger::open(&path, Durability::Immediate).map_err(|e| {
        Exit::Internal(anyhow!(
            "cannot open `{}` ({e}): is `grace serve` running on this data directory? stop it first; `grace init` works offline",
            path.display()
        ))
    })?;
    let tokens = TokenStore::open_database(ledger.database())
        .map_err(|e| Exit::Internal(anyhow!("cannot open the token table: {e}")))?;
    let principal = tokens
        .principals()
        .ensure(LOCAL_ADMIN, "grace init")
        .map_err(|e| Exit::Internal(anyhow!("cannot make the `{LOCAL_ADMIN}` principal: {e}")))?;
    let existing: Vec<_> = tokens
        .list()
        .into_iter()
        .filter(|t| t.name == LOCAL_ADMIN && !t.revoked)
        .collect();
    if !existing.is_empty() && !args.rotate && args.tls {
        println!(
            "`{}` keeps its `{LOCAL_ADMIN}` token {} (`--rotate` replaces it)",
            args.data_dir.display(),
            existing[0].id
        );
        return Ok(());
    }
    if !existing.is_empty() && !args.rotate {
        return Err(Exit::Invalid(anyhow!(
            "`{}` already has a `{LOCAL_ADMIN}` token ({}); `grace init --rotate` replaces it (revoking the old one)",
            args.data_dir.display(),
            existing[0].id
        )));
    }
    let token = tokens
        .create(TokenSpec {
            name: LOCAL_ADMIN.into(),
            principal: principal.id,
            scopes: Scopes::all(),
            created_by: "grace init".into(),
            expires_at: None,
        })
        .map_err(|e| Exit::Internal(e.into()))?;
    credentials::save_token(&credentials, &token.secret).map_err(Exit::Internal)?;
    for old in &existing {
        tokens
            .revoke(&old.id)
            .map_err(|e| Exit::Internal(e.into()))?;
        println!("revoked the previous `{LOCAL_ADMIN}` token {}", old.id);
    }
    println!(
        "data directory `{}` is ready; `{LOCAL_ADMIN}` token {} (scope admin) written to `{}`",
        args.data_dir.display(),
        token.record.id,
        credentials.display()
    );
    if args.print {
        println!("{}", token.secret);
    }
    Ok(())
}

/// Most `--tls-san` names one certificate takes.
const MAX_TLS_SANS: usize = 32;

/// The names every `--tls` certificate is valid for.
const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// How long a `--tls` certificate is valid: long enough to try things, short enough that it is
/// not mistaken for a production one.
const TLS_VALIDITY: time::Duration = time::Duration::days(365);

/// Writes `<data-dir>/tls/cert.pem` and `key.pem`, and says how to use them.
fn make_tls_pair(args: &InitArgs) -> Result<(), Exit> {
    let names = tls_names(&args.tls_san)?;
    let dir = args.data_dir.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !args.rotate && (cert_path.exists() || key_path.exists()) {
        return Err(Exit::Invalid(anyhow!(
            "`{}` already holds a TLS pair; `grace init --tls --rotate` replaces it (and the `{LOCAL_ADMIN}` token)",
            dir.display()
        )));
    }
    let (cert, key) = self_signed(&names)
        .map_err(|e| Exit::Internal(anyhow!("cannot make the self-signed certificate: {e}")))?;
    create_private_dir(&dir)?;
    // The key first: a certificate without its key is of no use, the reverse is harmless.
    write_private(&key_path, &key)?;
    write_private(&cert_path, &cert)?;
    println!(
        "self-signed TLS certificate for {} written to `{}`, its key to `{}` (mode 0600); for trying HTTPS, not for production:",
        names.join(", "),
        cert_path.display(),
        key_path.display()
    );
    println!(
        "  grace serve --tls-cert {} --tls-key {}",
        cert_path.display(),
        key_path.display()
    );
    println!(
        "  grace --server https://127.0.0.1:7070 --ca-cert {} sources   (or GRACE_CA_CERT)",
        cert_path.display()
    );
    Ok(())
}

/// The loopback names and each `--tls-san`, checked as a client will check them: a DNS name or
/// an IP address.
fn tls_names(sans: &[String]) -> Result<Vec<String>, Exit> {
    if sans.len() > MAX_TLS_SANS {
        return Err(Exit::Invalid(anyhow!(
            "`--tls-san`: at most {MAX_TLS_SANS} names, got {}",
            sans.len()
        )));
    }
    let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| (*n).to_owned()).collect();
    for san in sans {
        if rustls_pki_types::ServerName::try_from(san.as_str()).is_err() || san.contains('*') {
            return Err(Exit::Invalid(anyhow!(
                "`--tls-san`: `{}` is neither a DNS name nor an IP address",
                san.escape_debug()
            )));
        }
        let name = san.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// A self-signed certificate for `names` (a server certificate that is its own CA), and its
/// key, both PEM.
fn self_signed(names: &[String]) -> Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "grace self-signed (grace init --tls)",
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + TLS_VALIDITY;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Creates `dir` (mode 0700 when new).
fn create_private_dir(dir: &Path) -> Result<(), Exit> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Exit::Internal(anyhow!("cannot create `{}`: {e}", dir.display())))
}

/// Writes `text` to `path` with mode 0600, through a temporary file renamed over it.
fn write_private(path: &Path, text: &str) -> Result<(), Exit> {
    use std::io::Write as _;
    let fail = |p: &Path, e: std::io::Error| {
        Exit::Internal(anyhow!("cannot write `{}`: {e}", p.display()))
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| fail(&tmp, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| fail(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_names_are_loopback_plus_each_san_once() {
        let names = tls_names(&[
            "grace.internal".into(),
            "10.0.0.5".into(),
            "LOCALHOST".into(),
        ])
        .unwrap_or_else(|_| panic!("valid names"));
        assert_eq!(
            names,
            [
                "127.0.0.1",
                "::1",
                "localhost",
                "grace.internal",
                "10.0.0.5"
            ]
        );
    }

    #[test]
    fn a_san_that_is_no_name_is_refused_naming_the_flag() {
        for bad in ["", "a b", "*.example", "x\u{1b}[31m", "exa_mple..com"] {
            match tls_names(&[bad.into()]) {
                Err(Exit::Invalid(e)) => {
                    let e = e.to_string();
                    assert!(e.starts_with("`--tls-san`:"), "{e}");
                    assert!(!e.contains('\u{1b}'), "{e}");
                }
                _ => panic!("`{bad}` accepted"),
            }
        }
    }
}
