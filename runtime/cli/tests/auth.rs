//! Authentication and signed playbooks as a user meets them: `grace init`, the CLI's token,
//! `grace tokens`, `grace playbook sign`, and what a server refuses.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Asserts the command was refused as bad input (exit 2), saying `why` on stderr.
fn refused(out: &Output, why: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `grace` with no server, token or data settings from the environment.
fn grace_bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_grace"));
    for var in [
        "GRACE_SERVER",
        "GRACE_TOKEN",
        "GRACE_TOKEN_FILE",
        "GRACE_DATA_DIR",
        "GRACE_CONFIG_DIR",
    ] {
        c.env_remove(var);
    }
    c
}

fn init(data: &Path, config_dir: &Path, extra: &[&str]) -> Output {
    grace_bare()
        .args(["init", "--data-dir"])
        .arg(data)
        .args(extra)
        .env("GRACE_CONFIG_DIR", config_dir)
        .output()
        .unwrap()
}

/// The tokens stored in a data directory whose server is stopped.
fn stored_tokens(data: &Path) -> Vec<grace_server::auth::TokenRecord> {
    let ledger =
        grace_ledger::Ledger::open(data.join("grace.redb"), grace_ledger::Durability::Immediate)
            .unwrap();
    grace_server::auth::TokenStore::open_database(ledger.database())
        .unwrap()
        .list()
}

#[test]
fn grace_init_writes_an_admin_token_readable_by_its_owner_only_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().join("data"), dir.path().join("cli"));
    let out = init(&data, &config, &[]);
    let stdout = ok(&out);
    let token_file = config.join("token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert!(token.starts_with("grace_") && token.len() == 70, "{token}");
    assert!(!stdout.contains(token) && !text(&out.stderr).contains(token));
    assert!(stdout.contains(token_file.to_str().unwrap()), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&token_file), 0o600);
        assert_eq!(mode(&config), 0o700);
    }
    let tokens = stored_tokens(&data);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].name, "local-admin");
    assert_eq!(tokens[0].scopes.to_string(), "read,operate,approve,admin");

    // `--print` is the only way to see it on the terminal.
    let printed = init(
        &dir.path().join("other"),
        &dir.path().join("cli2"),
        &["--print"],
    );
    let printed_token = std::fs::read_to_string(dir.path().join("cli2/token")).unwrap();
    assert!(ok(&printed).contains(printed_token.trim()));
}

#[test]
fn a_second_grace_init_is_refused_unless_it_rotates_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().join("data"), dir.path().join("cli"));
    ok(&init(&data, &config, &[]));
    let first = std::fs::read_to_string(config.join("token")).unwrap();

    let again = init(&data, &config, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("--rotate"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(config.join("token")).unwrap(),
        first
    );

    ok(&init(&data, &config, &["--rotate"]));
    let second = std::fs::read_to_string(config.join("token")).unwrap();
    assert_ne!(first, second);
    let tokens = stored_tokens(&data);
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens.iter().filter(|t| t.revoked).count(), 1);
}

#[test]
fn client_commands_use_the_init_token_and_say_what_to_do_without_one() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    // The credentials file of `grace init`, found through GRACE_CONFIG_DIR.
    let out = grace_bare()
        .args(["runs", "list", "--server", &server.url])
        .env("GRACE_CONFIG_DIR", &server.credentials.config_dir)
        .output()
        .unwrap();
    ok(&out);
    // --token-file names it directly.
    let out = grace_bare()
        .args(["runs", "list", "--server", &server.url, "--token-file"])
        .arg(server.credentials.config_dir.join("token"))
        .env("GRACE_CONFIG_DIR", "/nonexistent")
        .output()
        .unwrap();
    ok(&out);
    // No token anywhere: exit 2, saying how to get one.
    let empty = tempfile::tempdir().unwrap();
    let out = grace_bare()
        .args(["runs", "list", "--server", &server.url])
        .env("GRACE_CONFIG_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("run `grace init`") && stderr.contains("GRACE_TOKEN"),
        "{stderr}"
    );
    // A wrong token in GRACE_TOKEN: the same.
    let out = grace_bare()
        .args(["runs", "list", "--server", &server.url])
        .env("GRACE_CONFIG_DIR", &server.credentials.config_dir)
        .env("GRACE_TOKEN", "grace_wrong")
        .output()
        .unwrap();
    refused(&out, "not known");
}

#[test]
fn tokens_are_created_listed_and_revoked_and_scopes_hold() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let out = server.grace_with(&["tokens", "create", "--name", "viewer", "--scope", "read"]);
    let secret = ok(&out).trim().to_owned();
    assert!(secret.starts_with("grace_"), "{secret}");

    let list = ok(&server.grace_with(&["tokens", "list"]));
    assert!(
        list.contains("viewer") && list.contains("local-admin"),
        "{list}"
    );
    assert!(!list.contains(&secret[6..]), "{list}");
    let json_list = ok(&server.grace_with(&["tokens", "list", "--json"]));
    assert!(!json_list.contains(&secret[6..]));
    let tokens: Value = serde_json::from_str(&json_list).unwrap();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A read token reads, but cannot publish or manage tokens: 403 naming the scope.
    let as_viewer = |args: &[&str]| {
        server
            .grace()
            .env("GRACE_TOKEN", &secret)
            .args(args)
            .output()
            .unwrap()
    };
    ok(&as_viewer(&["runs", "list"]));
    let events = data.path().join("event.json");
    std::fs::write(&events, event("test.echo", "api", 0, 1.0).to_string()).unwrap();
    let out = as_viewer(&["events", "publish", events.to_str().unwrap()]);
    refused(&out, "`operate` scope");
    let out = as_viewer(&["tokens", "list"]);
    assert!(
        text(&out.stderr).contains("`admin` scope"),
        "{}",
        text(&out.stderr)
    );

    ok(&server.grace_with(&["tokens", "revoke", &id]));
    let out = as_viewer(&["runs", "list"]);
    refused(&out, "revoked");
}

/// A playbook directory of its own: the echo fixture and a manifest naming it.
/// `grace playbook upload <dir>` against `server`.
fn upload(server: &Server, dir: &std::path::Path) -> Output {
    server
        .grace()
        .args(["playbook", "upload"])
        .arg(dir)
        .output()
        .unwrap()
}

fn playbook_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("echo.wasm"), component("echo")).unwrap();
    std::fs::write(
        dir.path().join("playbook.toml"),
        manifest(name, "[[triggers]]\nevent_type = \"test.echo\"\n")
            .replace("unused.wasm", "echo.wasm"),
    )
    .unwrap();
    dir
}

#[test]
fn a_playbook_signed_with_grace_playbook_sign_uploads_and_shows_its_signer() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let dir = playbook_dir("signed-echo");
    let out = server
        .grace()
        .args(["playbook", "sign"])
        .arg(dir.path())
        .arg("--key")
        .arg(&server.credentials.key_file)
        .output()
        .unwrap();
    assert!(
        ok(&out).contains("grace.test/release+"),
        "{}",
        text(&out.stdout)
    );
    let sig = std::fs::read_to_string(dir.path().join("playbook.toml.sig")).unwrap();
    assert!(sig.starts_with("grace-playbook-signature v1\n"), "{sig}");

    let out = upload(&server, dir.path());
    assert!(
        ok(&out).contains("signed by grace.test/release"),
        "{}",
        text(&out.stdout)
    );
    let list = ok(&server.grace_with(&["playbook", "list"]));
    assert!(
        list.contains("SIGNED BY") && list.contains("grace.test/release"),
        "{list}"
    );
    let show = ok(&server.grace_with(&["playbook", "show", "signed-echo"]));
    assert!(show.contains("signed   by grace.test/release"), "{show}");

    // The manifest edited after signing (one more trigger): refused, naming why.
    let manifest = dir.path().join("playbook.toml");
    let edited = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("1.0.0", "1.0.1")
        + "[[triggers]]\nevent_type = \"test.other\"\n";
    std::fs::write(&manifest, edited).unwrap();
    let out = upload(&server, dir.path());
    refused(&out, "the manifest was changed after signing");
}

#[test]
fn an_unsigned_upload_is_refused_by_default() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let dir = playbook_dir("unsigned-echo");
    let out = upload(&server, dir.path());
    refused(&out, "the upload is not signed");
    let (status, body) = server.upload_with(&manifest("unsigned", ""), component("echo"), None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "signature");
}

#[test]
fn insecure_no_auth_is_refused_on_a_non_loopback_address_without_listening() {
    let data = tempfile::tempdir().unwrap();
    // Refused by validation, before anything binds 0.0.0.0.
    let out = grace_bare()
        .args([
            "serve",
            "--simulate",
            "--insecure-no-auth",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--insecure-no-auth") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(!stderr.contains("grace serving on"), "{stderr}");
}

/// `grace serve` with its stderr kept in a file.
struct Logged {
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_logged(data: &Path, extra: &[&str]) -> Logged {
    grace_testkit::build_guests();
    let log = data.join("serve.log");
    let mut child = grace_bare()
        .args([
            "serve",
            "--simulate",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log_path = log.clone();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut file = std::fs::File::create(log_path).unwrap();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            let _ = file.flush();
            if !sent && let Some(rest) = line.strip_prefix("grace serving on ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                sent = true;
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    Logged { child, url, log }
}

#[test]
fn insecure_no_auth_on_loopback_warns_loudly_and_lets_requests_in() {
    let data = tempfile::tempdir().unwrap();
    let server = serve_logged(data.path(), &["--insecure-no-auth"]);
    let out = grace_bare()
        .args(["runs", "list", "--server", &server.url])
        .env("GRACE_CONFIG_DIR", data.path().join("no-cli"))
        .output()
        .unwrap();
    ok(&out);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("NO AUTHENTICATION"), "{log}");
}

#[test]
fn a_token_secret_never_appears_in_the_server_log() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("cli");
    ok(&init(data.path(), &config, &[]));
    let admin = std::fs::read_to_string(config.join("token"))
        .unwrap()
        .trim()
        .to_owned();
    let server = serve_logged(data.path(), &["-vv", "--allow-unsigned-playbooks"]);
    let client = client_with_token(&admin);
    let secret = rt().block_on(async {
        let created: Value = client
            .post(format!("{}/v1/tokens", server.url))
            .json(&json!({ "name": "leaky", "scopes": ["read"] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = created["token"].as_str().unwrap().to_owned();
        // Used, refused for a scope, revoked, refused again.
        for path in ["/v1/runs", "/v1/tokens"] {
            reqwest::Client::new()
                .get(format!("{}{path}", server.url))
                .bearer_auth(&secret)
                .send()
                .await
                .unwrap();
        }
        let id = created["id"].as_str().unwrap();
        client
            .delete(format!("{}/v1/tokens/{id}", server.url))
            .send()
            .await
            .unwrap();
        reqwest::Client::new()
            .get(format!("{}/v1/runs", server.url))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        secret
    });
    // The last request's refusal is logged last.
    let log = grace_testkit::poll_until(
        "the log of the last refusal",
        Duration::from_secs(10),
        || {
            let log = std::fs::read_to_string(&server.log).ok()?;
            log.contains("was revoked").then_some(log)
        },
    );
    assert!(log.contains("token created"), "{log}");
    for s in [&secret, &admin] {
        assert!(
            !log.contains(&s["grace_".len()..]),
            "a secret is in the log:\n{log}"
        );
    }
}

#[test]
fn principals_are_created_and_listed_and_tokens_belong_to_them() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let out = server.grace_with(&["principals", "create", "alice", "--display-name", "Alice L"]);
    assert!(ok(&out).contains("local:alice"));
    let out = server.grace_with(&["principals", "create", "alice"]);
    assert_ne!(out.status.code(), Some(0), "one name, one principal");
    let list = ok(&server.grace_with(&["principals", "list"]));
    assert!(
        list.contains("local:alice") && list.contains("Alice L"),
        "{list}"
    );
    assert!(
        list.contains("local:local-admin"),
        "grace init's token has its principal: {list}"
    );

    let out = server
        .grace()
        .args(["tokens", "create", "--name", "alice-laptop"])
        .args(["--principal", "alice", "--scope", "approve"])
        .output()
        .unwrap();
    assert!(ok(&out).trim().starts_with("grace_"));
    assert!(
        text(&out.stderr).contains("of `local:alice`"),
        "{}",
        text(&out.stderr)
    );
    let tokens = ok(&server.grace_with(&["tokens", "list"]));
    let row = tokens.lines().find(|l| l.contains("alice-laptop")).unwrap();
    assert!(row.contains("local:alice"), "{tokens}");
    let out = server
        .grace()
        .args([
            "tokens",
            "create",
            "--name",
            "ghost",
            "--principal",
            "nobody",
        ])
        .args(["--scope", "approve"])
        .output()
        .unwrap();
    refused(&out, "grace principals create nobody");
}

#[test]
fn an_oidc_token_in_grace_token_or_a_token_file_signs_the_cli_in() {
    use grace_testkit::oidc_issuer::{IssuerKey, TestIssuer};
    let key = IssuerKey::es256("k1");
    let issuer = TestIssuer::start(&[&key]);
    let data = data_dir();
    let config = data.path().join("grace.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.oidc]\nissuer = \"{}\"\naudience = \"grace\"\nscopes_claim = \"scope\"\nallow_requested_scopes = true\nscope_prefix = \"grace:\"\n",
            issuer.url()
        ),
    )
    .unwrap();
    let server = Server::start(&path_of(&data), &["--config", config.to_str().unwrap()]);
    let jwt = TestIssuer::sign(&key, &issuer.claims("jane", "grace", "openid grace:read"));
    let out = server
        .grace()
        .env("GRACE_TOKEN", &jwt)
        .args(["runs", "list"])
        .output()
        .unwrap();
    ok(&out);
    let file = data.path().join("oidc-token");
    std::fs::write(&file, format!("{jwt}\n")).unwrap();
    let out = server
        .grace()
        .env_remove("GRACE_TOKEN")
        .arg("--token-file")
        .arg(&file)
        .args(["runs", "list"])
        .output()
        .unwrap();
    ok(&out);
    // Her provider grants `read` only: the 403 names the scope.
    let out = server
        .grace()
        .env("GRACE_TOKEN", &jwt)
        .args(["tokens", "list"])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("`admin` scope"),
        "{}",
        text(&out.stderr)
    );
    let mut claims = issuer.claims("jane", "grace", "grace:read");
    claims["exp"] = json!(grace_testkit::oidc_issuer::now_secs() - 600);
    let out = server
        .grace()
        .env("GRACE_TOKEN", TestIssuer::sign(&key, &claims))
        .args(["runs", "list"])
        .output()
        .unwrap();
    refused(&out, "expired");
}
