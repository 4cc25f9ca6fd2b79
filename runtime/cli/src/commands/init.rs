//! `grace init`: offline, before `grace serve` starts, create the data directory and its database
//! if needed, and an `admin` token named `local-admin` for this CLI, written to its credentials
//! file (mode 0600). The token is printed only with `--print`. It belongs to the local principal
//! `local-admin` (made here if missing): whoever runs `grace init` on the data directory is the
//! server's first admin, and approves as that one person whichever of its tokens they use.

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
