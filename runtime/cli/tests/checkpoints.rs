//! A server with `checkpoint_key` signs checkpoints of its ledger as it grows and serves the
//! latest one; every entry has an inclusion proof that checks against it, with nothing but the
//! public key.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use grace_ledger::{InclusionProof, SignedCheckpoint, VerifierKey};
use grace_testkit::poll_until;
use serde_json::json;

fn get_text(server: &Server, path: &str) -> (u16, String) {
    rt().block_on(async {
        let r = client_with_token(&server.token)
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn the_server_signs_checkpoints_and_proves_entries_against_them() {
    let data = data_dir();
    let config = common::stress::checkpointing_config(data.path(), "grace.test/server");
    let server = Server::start(&path_of(&data), &["--config", config.to_str().unwrap()]);

    let (status, body) = get_text(&server, "/v1/ledger/checkpoint");
    assert_eq!(status, 404, "nothing to sign yet: {body}");

    // Something to record: a run of a playbook.
    let (status, body) = server.upload(
        &manifest("echo-test", "[[triggers]]\nevent_type = \"test.echo\"\n"),
        component("echo"),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.post("/v1/events", json!(event("test.echo", "api", 0, 1.0)));
    assert_eq!(status, 202, "{body}");
    let run = poll_until("a run", Duration::from_secs(30), || {
        server.runs_of("echo-test").into_iter().next()
    });
    server.wait_state(run["id"].as_str().unwrap(), &["succeeded", "failed"]);

    let verifier = VerifierKey::load(data.path().join("ledger.key.pub")).unwrap();
    let checkpoint = poll_until("a signed checkpoint", Duration::from_secs(30), || {
        let (status, text) = get_text(&server, "/v1/ledger/checkpoint");
        (status == 200).then_some(text)
    });
    let signed = SignedCheckpoint::parse(&checkpoint).unwrap();
    let cp = signed.verify(&verifier).unwrap().clone();
    assert_eq!(cp.origin, "grace.test/server");
    assert!(cp.tree_size >= 2, "{checkpoint}");

    // Each entry of the checkpointed tree proves its inclusion against it.
    for seq in 1..=cp.tree_size {
        let (status, proof) = server.get(&format!(
            "/v1/ledger/proof/{seq}?tree_size={}",
            cp.tree_size
        ));
        assert_eq!(status, 200, "{proof}");
        let proof: InclusionProof = serde_json::from_value(proof).unwrap();
        proof.verify_against(&cp).unwrap();
    }
    let (status, body) = server.get("/v1/ledger/proof/1000000");
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.get("/v1/ledger/proof/1?size=3");
    assert_eq!(status, 400, "{body}");
}
