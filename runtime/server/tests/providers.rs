//! `[[providers]]` in `grace.toml`: read with the rest of the file, checked when the server
//! starts, every error naming the field.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use grace_server::{App, ServeConfig};

/// `grace.toml` text applied over the defaults, in simulation, on a fresh data directory.
fn config(text: &str, data: &tempfile::TempDir) -> ServeConfig {
    ServeConfig {
        simulate: true,
        data_dir: data.path().to_owned(),
        ..ServeConfig::parse(text).unwrap()
    }
}

async fn start_error(text: &str) -> String {
    let data = tempfile::tempdir().unwrap();
    match App::start(config(text, &data)).await {
        Ok(_) => panic!("the server started with:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn providers_entries_are_read_with_their_settings() {
    let data = tempfile::tempdir().unwrap();
    let c = config(
        r#"
[[providers]]
name = "docker-edge"
kind = "docker"
resources = ["edge-*"]
[providers.settings]
host = "unix:///run/edge.sock"

[[providers]]
name = "sim"
capability = "scaling"
default = true
"#,
        &data,
    );
    assert_eq!(c.providers.len(), 2);
    assert_eq!(c.providers[0].name, "docker-edge");
    assert_eq!(
        c.providers[0].settings.as_ref().unwrap()["host"].as_str(),
        Some("unix:///run/edge.sock")
    );
    assert!(c.providers[1].default);
}

#[test]
fn an_unknown_key_in_a_providers_entry_is_refused() {
    let e =
        ServeConfig::parse("[[providers]]\nname = \"sim\"\nresource = [\"web-*\"]\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `resource`"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_config_errors_name_the_field() {
    let e = start_error("[[providers]]\nname = \"sim\"\nresources = [\"web-*\"]\n").await;
    assert!(e.contains("`providers[0].capability` is required"), "{e}");
    let e = start_error(
        "[[providers]]\nname = \"sim\"\ncapability = \"scaling\"\ndefault = true\n\n[[providers]]\nname = \"sim\"\ncapability = \"scaling\"\ndefault = true\n",
    )
    .await;
    assert!(e.contains("`providers[1].default`"), "{e}");
    let e = start_error("[[providers]]\nname = \"aws\"\nresources = [\"web-*\"]\n").await;
    assert!(
        e.contains("`providers[0].name` `aws` names no provider on this host"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_defined_providers_settings_are_checked_by_its_kind_naming_the_field() {
    let e = start_error(
        "[[providers]]\nname = \"docker-edge\"\nkind = \"docker\"\nresources = [\"edge-*\"]\n[providers.settings]\nhots = \"unix:///x\"\n",
    )
    .await;
    assert!(e.contains("`providers[0].settings`"), "{e}");
    assert!(e.contains("hots"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_defined_provider_serves_its_routes_beside_the_simulation() {
    let data = tempfile::tempdir().unwrap();
    let app = App::start(config(
        "[[providers]]\nname = \"docker-edge\"\nkind = \"docker\"\nresources = [\"edge-*\"]\n[providers.settings]\nhost = \"unix:///nonexistent/grace-test.sock\"\n",
        &data,
    ))
    .await
    .unwrap();
    let containers = &app.providers["containers"];
    assert_eq!(containers["sim"], "simulated");
    assert_eq!(
        containers["docker-edge"],
        "docker unix:///nonexistent/grace-test.sock"
    );
}
