//! `grace ledger verify --server URL --key PUB` checks a real `grace serve`'s ledger on the
//! client, trusting nothing the server says: an honest server passes; a server that lies about
//! its entries (a proxy in front of a real one rewrites them in its answers) is caught, whether
//! it keeps the entry's old hash or re-hashes the whole chain after it; a checkpoint signed by
//! another key is refused; a history rewritten since a checkpoint the client kept is found; and
//! `--since` verifies only the entries added since its saved state, then saves the new one.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use grace_ledger::{Entry, Hash, SignedCheckpoint, codec};
use grace_testkit::poll_until;
use serde_json::{Value, json};

/// A server signing a checkpoint every second with the key `<data>/ledger.key`.
fn checkpointing_server(data: &Path, origin: &str) -> Server {
    let config = common::stress::checkpointing_config(data, origin);
    Server::start(data, &["--config", config.to_str().unwrap()])
}

/// Uploads the echo playbook once per server and makes `runs` runs of it, each leaving entries
/// in the ledger; returns when they have finished.
fn make_runs(server: &Server, runs: usize) {
    let (status, body) = server.get("/v1/playbooks/echo-test");
    if status == 404 {
        let (status, body) = server.upload(
            &manifest("echo-test", "[[triggers]]\nevent_type = \"test.echo\"\n"),
            component("echo"),
        );
        assert_eq!(status, 201, "{body}");
    } else {
        assert_eq!(status, 200, "{body}");
    }
    let before = server.runs_of("echo-test").len();
    for i in 0..runs {
        let (status, body) = server.post(
            "/v1/events",
            json!(event("test.echo", &format!("api-{before}-{i}"), 0, 1.0)),
        );
        assert_eq!(status, 202, "{body}");
    }
    poll_until("the runs", Duration::from_secs(60), || {
        let all = server.runs_of("echo-test");
        let done = all
            .iter()
            .filter(|r| matches!(r["state"].as_str(), Some("succeeded" | "failed")))
            .count();
        (done == before + runs).then_some(())
    });
}

/// A checkpointing server (origin `grace.test/ledger`) on `data` that made `runs` runs, once its
/// latest checkpoint covers them; with that checkpoint's text.
fn signed_server(data: &Path, runs: usize) -> (Server, String) {
    let server = checkpointing_server(data, "grace.test/ledger");
    make_runs(&server, runs);
    let text = signed_to_the_head(&server);
    (server, text)
}

/// The number of entries a signed checkpoint's text covers.
fn tree_size(text: &str) -> u64 {
    SignedCheckpoint::parse(text)
        .unwrap()
        .unverified()
        .tree_size
}

/// Asserts that `grace` exited with `code`, showing what it printed if not.
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", stdout(out));
}

/// Waits until the server's latest checkpoint covers its whole ledger; returns its text.
fn signed_to_the_head(server: &Server) -> String {
    poll_until(
        "a checkpoint of the whole ledger",
        Duration::from_secs(60),
        || {
            let (_, head) = server.get("/v1/ledger/tree-head");
            let size = head["size"].as_u64()?;
            let text = checkpoint_text(server)?;
            let cp = SignedCheckpoint::parse(&text).unwrap();
            (cp.unverified().tree_size == size && size > 0).then_some(text)
        },
    )
}

fn checkpoint_text(server: &Server) -> Option<String> {
    rt().block_on(async {
        let r = client_with_token(&server.token)
            .get(format!("{}/v1/ledger/checkpoint", server.url))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            return None;
        }
        Some(r.text().await.unwrap())
    })
}

/// `grace ledger verify` against `url` (through `GRACE_SERVER`, as every client command takes
/// it) with the server's token.
fn verify(server: &Server, url: &str, args: &[&str]) -> Output {
    server
        .grace()
        .env("GRACE_SERVER", url)
        .args(["ledger", "verify"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn report(out: &Output) -> Value {
    serde_json::from_str(stdout(out).trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            stdout(out),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn public_key(data: &Path) -> String {
    data.join("ledger.key.pub").to_str().unwrap().to_owned()
}

/// A proxy in front of a real server that passes every request on, and hands the entries of
/// `GET /v1/ledger/entries` through `rewrite` before answering: a lying server.
struct LyingProxy {
    url: String,
    _runtime: tokio::runtime::Runtime,
}

type Rewrite = Arc<dyn Fn(Vec<Entry>) -> Vec<Entry> + Send + Sync>;

impl LyingProxy {
    fn start(upstream: &str, rewrite: Rewrite) -> LyingProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let upstream = upstream.to_owned();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (upstream, http, rewrite) = (upstream.clone(), http.clone(), rewrite.clone());
            async move {
                let path_and_query = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                let mut forwarded = http.get(format!("{upstream}{path_and_query}"));
                if let Some(auth) = request.headers().get("authorization") {
                    forwarded = forwarded.header("authorization", auth.clone());
                }
                let answer = forwarded.send().await.unwrap();
                let status = answer.status().as_u16();
                let content_type = answer
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let mut body = answer.bytes().await.unwrap().to_vec();
                if request.uri().path() == "/v1/ledger/entries" && status == 200 {
                    let entries: Vec<Entry> = serde_json::from_slice(&body).unwrap();
                    body = serde_json::to_vec(&rewrite(entries)).unwrap();
                }
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(axum::body::Body::from(body))
                    .unwrap()
            }
        });
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        LyingProxy {
            url,
            _runtime: runtime,
        }
    }
}

/// Recomputes the hash of every entry from the first `from` on and chains them again, as a
/// server rewriting its history would to hide it.
fn rechain(entries: &mut [Entry], from: usize) {
    for i in from..entries.len() {
        if i > 0 {
            entries[i].prev_hash = entries[i - 1].hash;
        }
        entries[i].hash = codec::hash_body(&codec::encode_body(&entries[i]).unwrap());
    }
}

#[test]
fn an_honest_server_verifies_with_every_entry_recomputed_on_the_client() {
    let data = data_dir();
    let (server, text) = signed_server(data.path(), 2);
    let size = tree_size(&text);

    // No --server: GRACE_SERVER (set by `Server::grace`) names it, as for every client command.
    let out = server
        .grace()
        .args(["ledger", "verify", "--json", "--key"])
        .arg(public_key(data.path()))
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let r = report(&out);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["from_seq"], 1, "{r}");
    assert_eq!(r["checkpoint_size"], size, "{r}");
    assert!(r["entries_verified"].as_u64().unwrap() >= size, "{r}");
    assert_eq!(r["signed_by"], "grace.test/ledger", "{r}");

    let out = verify(&server, &server.url, &["--key", &public_key(data.path())]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!(
            "the checkpoint of {size} entries signed by `grace.test/ledger` matches their Merkle root"
        )),
        "{}",
        stdout(&out)
    );

    // Without a key the entries are still recomputed, and the output says what is not proven.
    let out = verify(&server, &server.url, &[]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("NOT checked against a signing key"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_server_serves_its_tree_head_and_consistency_proofs_within_the_tree() {
    let data = data_dir();
    let (server, text) = signed_server(data.path(), 1);
    let cp = SignedCheckpoint::parse(&text).unwrap().unverified().clone();

    let (status, head) = server.get("/v1/ledger/tree-head");
    assert_eq!(status, 200, "{head}");
    let head: grace_ledger::TreeHead = serde_json::from_value(head).unwrap();
    assert!(head.size >= cp.tree_size);

    let (status, proof) = server.get(&format!(
        "/v1/ledger/consistency?old_size=1&new_size={}",
        cp.tree_size
    ));
    assert_eq!(status, 200, "{proof}");
    let proof: grace_ledger::ConsistencyProof = serde_json::from_value(proof).unwrap();
    assert_eq!(proof.new_root, cp.root_hash);
    proof.verify().unwrap();

    let (status, body) = server.get(&format!(
        "/v1/ledger/consistency?old_size={}&new_size=1",
        cp.tree_size
    ));
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.get(&format!(
        "/v1/ledger/consistency?old_size=1&new_size={}",
        head.size + 1
    ));
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.get("/v1/ledger/consistency?old=1");
    assert_eq!(status, 400, "{body}");
    // Read scope, as the other ledger routes.
    let (status, body) = server.get_as("/v1/ledger/tree-head", None);
    assert_eq!(status, 401, "{body}");
}

#[test]
fn an_entry_a_lying_server_changed_is_caught_by_its_recomputed_hash() {
    let data = data_dir();
    let (server, _) = signed_server(data.path(), 1);
    // The lie: entry 2 says another function was called; its hash is left as it was.
    let proxy = LyingProxy::start(
        &server.url,
        Arc::new(|mut entries: Vec<Entry>| {
            if let Some(e) = entries.iter_mut().find(|e| e.seq == 2) {
                e.function = "delete-everything".into();
            }
            entries
        }),
    );
    let out = verify(&server, &proxy.url, &["--key", &public_key(data.path())]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with(&format!(
            "ledger TAMPERED ({}): entry 2 was modified: its hash does not match its contents",
            proxy.url
        )),
        "{}",
        stdout(&out)
    );
    let out = verify(
        &server,
        &proxy.url,
        &["--json", "--key", &public_key(data.path())],
    );
    let r = report(&out);
    assert_eq!(
        (&r["problem"], &r["first_bad_seq"]),
        (&json!("tampered"), &json!(2)),
        "{r}"
    );
}

#[test]
fn a_history_the_lying_server_rehashed_does_not_match_the_signed_root() {
    let data = data_dir();
    let (server, _) = signed_server(data.path(), 1);
    // A better lie: entry 2 changed and every hash from it on recomputed, so the chain holds.
    let proxy = LyingProxy::start(
        &server.url,
        Arc::new(|mut entries: Vec<Entry>| {
            if entries.first().map(|e| e.seq) == Some(1) && entries.len() >= 2 {
                entries[1].function = "delete-everything".into();
                rechain(&mut entries, 1);
            }
            entries
        }),
    );
    let out = verify(&server, &proxy.url, &["--key", &public_key(data.path())]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with(&format!(
            "ledger TAMPERED ({}): the Merkle root of its first",
            proxy.url
        )) && stdout(&out).contains("but its checkpoint signed by `grace.test/ledger` says"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let data = data_dir();
    let (server, _) = signed_server(data.path(), 1);
    let other = data_dir();
    let other_key = other.path().join("other.key");
    let (code, out) = common::stress::grace(&[
        "keys",
        "generate",
        "--name",
        "grace.test/ledger",
        "--out",
        other_key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let out = verify(
        &server,
        &server.url,
        &["--key", &format!("{}.pub", other_key.display())],
    );
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with(&format!(
            "checkpoint NOT SIGNED ({}): its latest checkpoint is not signed by your key `grace.test/ledger`",
            server.url
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_server_without_a_signed_checkpoint_is_not_verified_with_a_key() {
    let data = data_dir();
    let server = Server::start(data.path(), &[]);
    make_runs(&server, 1);
    let key = data.path().join("ledger.key");
    let (code, out) = common::stress::grace(&[
        "keys",
        "generate",
        "--name",
        "grace.test/ledger",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let out = verify(&server, &server.url, &["--key", &public_key(data.path())]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).contains("ledger NOT VERIFIED") && stdout(&out).contains("checkpoint_key"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_history_rewritten_since_a_kept_checkpoint_is_found() {
    // The first history, and a checkpoint of it the auditor keeps.
    let first = data_dir();
    let key_dir = data_dir();
    let config = common::stress::checkpointing_config(key_dir.path(), "grace.test/ledger");
    let server = Server::start(first.path(), &["--config", config.to_str().unwrap()]);
    make_runs(&server, 1);
    let kept = key_dir.path().join("kept.checkpoint");
    std::fs::write(&kept, signed_to_the_head(&server)).unwrap();
    let key = public_key(key_dir.path());
    let out = verify(
        &server,
        &server.url,
        &["--key", &key, "--checkpoint", kept.to_str().unwrap()],
    );
    assert_exit(&out, 0);
    drop(server);

    // Another history under the same key, longer than the first: every checkpoint it serves
    // is validly signed, but none extends the one kept.
    let second = data_dir();
    let server = Server::start(second.path(), &["--config", config.to_str().unwrap()]);
    make_runs(&server, 3);
    signed_to_the_head(&server);
    let out = verify(
        &server,
        &server.url,
        &["--key", &key, "--checkpoint", kept.to_str().unwrap()],
    );
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with(&format!("ledger REWRITTEN ({}): ", server.url)),
        "{}",
        stdout(&out)
    );
    // The saved state of `--since` is held to the same rule.
    let state = key_dir.path().join("state.json");
    drop(server);
    let server = Server::start(first.path(), &["--config", config.to_str().unwrap()]);
    let out = verify(
        &server,
        &server.url,
        &["--key", &key, "--since", state.to_str().unwrap()],
    );
    assert_exit(&out, 0);
    drop(server);
    let server = Server::start(second.path(), &["--config", config.to_str().unwrap()]);
    let out = verify(
        &server,
        &server.url,
        &["--key", &key, "--since", state.to_str().unwrap()],
    );
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with(&format!("ledger REWRITTEN ({}): ", server.url)),
        "{}",
        stdout(&out)
    );
}

#[test]
fn since_verifies_only_the_entries_added_after_its_saved_checkpoint_and_saves_the_new_one() {
    let data = data_dir();
    let (server, first) = signed_server(data.path(), 1);
    let first_size = tree_size(&first);
    let state: PathBuf = data.path().join("verify-state.json");
    let key = public_key(data.path());
    let since = ["--json", "--key", &key, "--since", state.to_str().unwrap()];

    // No state yet: everything is verified, and the state saved.
    let out = verify(&server, &server.url, &since);
    assert_exit(&out, 0);
    let r = report(&out);
    assert_eq!(
        (&r["from_seq"], &r["entries_verified"]),
        (&json!(1), &json!(first_size)),
        "{r}"
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["checkpoint"], first.as_str());
    assert_eq!(saved["size"], first_size);

    make_runs(&server, 2);
    let second = signed_to_the_head(&server);
    let second_size = tree_size(&second);
    assert!(second_size > first_size);
    let out = verify(&server, &server.url, &since);
    assert_exit(&out, 0);
    let r = report(&out);
    assert_eq!(r["from_seq"], first_size + 1, "{r}");
    assert_eq!(r["entries_verified"], second_size - first_size, "{r}");
    assert_eq!(r["extends_checkpoint_size"], first_size, "{r}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["checkpoint"], second.as_str());
    assert_eq!(saved["size"], second_size);

    // Nothing new: nothing fetched.
    let out = verify(&server, &server.url, &since);
    let r = report(&out);
    assert_eq!(r["entries_verified"], 0, "{r}");

    // The saved state is not taken on faith either: a frontier that does not lead to the
    // saved checkpoint's root is refused as bad input.
    let mut saved = saved;
    saved["frontier"][0] = json!(Hash([7; 32]).to_string());
    std::fs::write(&state, saved.to_string()).unwrap();
    let out = verify(&server, &server.url, &since);
    assert_exit(&out, 2);
}

/// A server on `data` whose checkpoint was signed to the head, restarted without its
/// `checkpoint_key` and given more runs: its newest signed checkpoint stays where it was, as a
/// server replaying an old checkpoint would show it, and its tree head goes on past it.
fn server_past_its_checkpoint(data: &Path) -> (Server, u64) {
    let (server, text) = signed_server(data, 1);
    let signed = tree_size(&text);
    drop(server);
    let server = Server::start(data, &[]);
    make_runs(&server, 1);
    (server, signed)
}

#[test]
fn entries_after_the_newest_signed_checkpoint_are_reported_as_an_unsigned_tail_not_verified() {
    let data = data_dir();
    let (server, signed) = server_past_its_checkpoint(data.path());
    let key = public_key(data.path());

    let out = verify(&server, &server.url, &["--json", "--key", &key]);
    assert_exit(&out, 0);
    let r = report(&out);
    let size = r["tree_size"].as_u64().unwrap();
    assert!(size > signed, "{r}");
    assert_eq!(r["checkpoint_size"], signed, "{r}");
    assert_eq!(r["entries_verified"], signed, "{r}");
    assert_eq!(r["unsigned_tail"], size - signed, "{r}");
    assert_eq!(r["entries_recomputed"], size, "{r}");

    let out = verify(&server, &server.url, &["--key", &key]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{signed} entries (1 to {signed}) recomputed here and verified"
        )) && text.contains(&format!(
            "unsigned tail: the {} entries after it ({} to {size})",
            size - signed,
            signed + 1
        )),
        "{text}"
    );
}

#[test]
fn without_a_key_no_entry_is_reported_as_verified() {
    let data = data_dir();
    let server = Server::start(data.path(), &[]);
    make_runs(&server, 1);
    let out = verify(&server, &server.url, &["--json"]);
    assert_exit(&out, 0);
    let r = report(&out);
    assert_eq!(r["entries_verified"], 0, "{r}");
    assert_eq!(r["unsigned_tail"], r["tree_size"], "{r}");
}

#[test]
fn a_newest_checkpoint_older_than_max_age_fails_with_its_own_exit_code() {
    let data = data_dir();
    let (server, _) = server_past_its_checkpoint(data.path());
    let key = public_key(data.path());

    let out = verify(&server, &server.url, &["--key", &key, "--max-age", "1h"]);
    assert_exit(&out, 0);

    // Its signer is gone, as a replayed checkpoint's would be: it ages past a one-second bound.
    let out = poll_until("the checkpoint to age", Duration::from_secs(60), || {
        let out = verify(
            &server,
            &server.url,
            &["--json", "--key", &key, "--max-age", "1s"],
        );
        (out.status.code() != Some(0)).then_some(out)
    });
    assert_exit(&out, 4);
    let r = report(&out);
    assert_eq!(
        (&r["ok"], &r["problem"]),
        (&json!(false), &json!("stale")),
        "{r}"
    );
    let out = verify(&server, &server.url, &["--key", &key, "--max-age", "1s"]);
    assert!(
        stdout(&out).contains("checkpoint TOO OLD") && stdout(&out).contains("--max-age `1s`"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn max_age_that_is_not_a_duration_is_bad_input() {
    let data = data_dir();
    let server = Server::start(data.path(), &[]);
    let out = verify(
        &server,
        &server.url,
        &["--key", &public_key(data.path()), "--max-age", "soon"],
    );
    assert_exit(&out, 2);
}

#[test]
fn an_idle_server_signs_its_unchanged_ledger_again_so_its_checkpoint_stays_fresh() {
    let data = data_dir();
    let (server, first) = signed_server(data.path(), 1);
    let first = SignedCheckpoint::parse(&first).unwrap();
    let first = first.unverified();
    let again = poll_until("a newer checkpoint", Duration::from_secs(60), || {
        let text = checkpoint_text(&server)?;
        let cp = SignedCheckpoint::parse(&text).unwrap().unverified().clone();
        (cp.timestamp_millis > first.timestamp_millis).then_some(cp)
    });
    assert_eq!(
        (again.tree_size, again.root_hash),
        (first.tree_size, first.root_hash)
    );
    let out = verify(
        &server,
        &server.url,
        &["--key", &public_key(data.path()), "--max-age", "30s"],
    );
    assert_exit(&out, 0);
}
