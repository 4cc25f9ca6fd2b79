//! GitHub's webhook deliveries as GitHub sends them (docs.github.com, "Webhook events and
//! payloads", "Validating webhook deliveries"): `X-GitHub-Event`, `X-GitHub-Delivery`,
//! `X-Hub-Signature-256`, `User-Agent: GitHub-Hookshot/…`, a JSON body.

use grace_notify::Secret;
use serde_json::{Value, json};

/// A delivery of `event` with `body`, signed with `secret`: its headers and body.
pub fn delivery(
    secret: &str,
    event: &str,
    delivery_id: &str,
    body: &Value,
) -> (Vec<(String, String)>, Vec<u8>) {
    let body = body.to_string().into_bytes();
    let signature = grace_notify::github::webhook::sign(&Secret::new(secret), &body);
    (
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                "user-agent".to_owned(),
                "GitHub-Hookshot/044aadd".to_owned(),
            ),
            ("x-github-event".to_owned(), event.to_owned()),
            ("x-github-delivery".to_owned(), delivery_id.to_owned()),
            ("x-github-hook-id".to_owned(), "292430182".to_owned()),
            ("x-hub-signature-256".to_owned(), signature),
        ],
        body,
    )
}

/// A `deployment_status` payload (octokit/webhooks' example, trimmed) of `repository` in
/// `environment`, at `created_at`.
pub fn deployment_status(
    repository: &str,
    environment: &str,
    state: &str,
    created_at: &str,
) -> Value {
    json!({
        "action": "created",
        "deployment_status": {
            "url": format!("https://api.github.com/repos/{repository}/deployments/145988746/statuses/209916254"),
            "id": 209_916_254u64, "node_id": "MDE2OkRlcGxveW1lbnRTdGF0dXMyMDk5MTYyNTQ=",
            "state": state, "creator": { "login": "Codertocat", "id": 21_031_067u64 },
            "description": "", "environment": environment, "target_url": "", "log_url": "",
            "created_at": created_at, "updated_at": created_at,
            "deployment_url": format!("https://api.github.com/repos/{repository}/deployments/145988746"),
            "repository_url": format!("https://api.github.com/repos/{repository}")
        },
        "deployment": {
            "url": format!("https://api.github.com/repos/{repository}/deployments/145988746"),
            "id": 145_988_746u64, "node_id": "MDEwOkRlcGxveW1lbnQxNDU5ODg3NDY=",
            "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "ref": "main", "task": "deploy",
            "payload": {}, "original_environment": environment, "environment": environment,
            "description": null, "creator": { "login": "Codertocat", "id": 21_031_067u64 },
            "created_at": created_at, "updated_at": created_at,
            "statuses_url": format!("https://api.github.com/repos/{repository}/deployments/145988746/statuses"),
            "repository_url": format!("https://api.github.com/repos/{repository}")
        },
        "repository": { "id": 186_853_002u64, "name": repository.rsplit('/').next().unwrap_or(repository), "full_name": repository, "private": false },
        "sender": { "login": "Codertocat", "id": 21_031_067u64, "type": "User" }
    })
}
