//! Changes that wait for people's approval: the policy asking for it, the configuration
//! saying which groups are production, and the votes, shared by the trust and cluster tests.

use std::path::Path;
use std::time::Duration;

use grace_testkit::{example, example_manifest, poll_until};
use serde_json::{Value, json};

use super::{Server, component};

/// Production is `api-*`; two people approve capacity changes in production.
pub const APPROVALS: &str = r#"
@id("two-person-prod-capacity")
@decision("require_approval")
@approvers("2")
@reason("capacity changes in production need two people")
permit(principal, action in Grace::Action::"capacity", resource)
when { resource.environment == "prod" };
"#;

/// `dir/grace.toml` with `[trust]` (`extra` in it) saying which groups are production.
pub fn config(dir: &Path, extra: &str) -> String {
    let path = dir.join("grace.toml");
    std::fs::write(&path, trust_section(extra)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `[trust]` with `extra` in it: `api-*` groups are production.
pub fn trust_section(extra: &str) -> String {
    format!(
        "[trust]\n{extra}\n[[trust.resource]]\nkind = \"group\"\nmatch = \"api-*\"\nenvironment = \"prod\"\ntier = \"frontend\"\n"
    )
}

/// Runs `grace args` against `server`; its output, once it succeeded.
pub fn grace_ok(server: &Server, args: &[&str]) -> String {
    let out = server.grace().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "grace {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Adds the baseline policies and [`APPROVALS`] to `server`.
pub fn add_policies(server: &Server, dir: &Path) {
    let base = dir.join("base.cedar");
    std::fs::write(&base, grace_trust::BASELINE).unwrap();
    let approvals = dir.join("approvals.cedar");
    std::fs::write(&approvals, APPROVALS).unwrap();
    grace_ok(server, &["policy", "add", "base", base.to_str().unwrap()]);
    grace_ok(
        server,
        &["policy", "add", "approvals", approvals.to_str().unwrap()],
    );
}

/// A server on `dir` with [`config`] and [`add_policies`]: changes to production wait for two
/// people.
pub fn with_policies(dir: &Path) -> Server {
    let cfg = config(dir, "");
    let server = Server::start(dir, &["--config", &cfg]);
    add_policies(&server, dir);
    server
}

/// Uploads `scale-on-latency` and publishes the recorded latency incident: its run scales
/// `api-asg`, a production group.
pub fn start_incident(server: &Server) -> String {
    let manifest = example_manifest("scale-on-latency", &[]);
    let (status, body) = server.upload(&manifest, component("scale_on_latency"));
    assert_eq!(status, 201, "{body}");
    let incident = example("../incidents/latency-incident.json");
    let events: Value = serde_json::from_str(&std::fs::read_to_string(incident).unwrap()).unwrap();
    let (status, body) = server.post("/v1/events", events);
    assert_eq!(status, 202, "{body}");
    let run = poll_until("a run of scale-on-latency", Duration::from_secs(60), || {
        server.runs_of("scale-on-latency").into_iter().next()
    });
    run["id"].as_str().unwrap().to_owned()
}

/// The approval requests `server` lists in `state`.
pub fn approvals(server: &Server, state: &str) -> Vec<Value> {
    let (status, list) = server.get(&format!("/v1/approvals?state={state}"));
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// Votes `verb` (`approve` or `deny`) on approval `id` with `token`.
pub fn vote(
    server: &Server,
    token: &str,
    id: &str,
    verb: &str,
    comment: Option<&str>,
) -> (u16, Value) {
    super::rt()
        .block_on(super::send(
            &super::client_with_token(token),
            reqwest::Method::POST,
            &format!("{}/v1/approvals/{id}/{verb}", server.url),
            Some((
                Some("application/json"),
                json!({ "comment": comment }).to_string().into_bytes(),
            )),
        ))
        .unwrap()
}

/// The desired capacity of `group` in `server`'s fleet.
pub fn desired(server: &Server, group: &str) -> u64 {
    let (_, fleet) = server.get("/v1/fleet");
    fleet["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == group)
        .unwrap()["desired_capacity"]
        .as_u64()
        .unwrap()
}
