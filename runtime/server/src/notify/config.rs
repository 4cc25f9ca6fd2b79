//! `[integrations]` (the vendors: where they are, the secrets to reach them) and `[[notify]]`
//! (which runs are told where):
//!
//! ```toml
//! [integrations]
//! public_url = "https://grace.example.com"   # links in Slack, PagerDuty and Jira
//!
//! [integrations.slack]
//! token = { file = "/etc/grace/slack-bot-token" }      # xoxb-…
//! signing_secret = { env = "SLACK_SIGNING_SECRET" }    # interactive buttons over HTTP
//! approvers = { U0123ABCD = "alice", U0456EFGH = "bob" } # Slack user → GRACE local principal
//!
//! [integrations.pagerduty]
//! routing_key = { env = "PAGERDUTY_ROUTING_KEY" }
//!
//! [integrations.jira]
//! url = "https://example.atlassian.net"
//! email = "grace@example.com"
//! token = { file = "/etc/grace/jira-token" }
//! project = "OPS"
//!
//! [[notify]]
//! name = "oncall"
//! on = ["run.waiting-approval", "run.failed", "run.succeeded"]
//! playbooks = ["restart-*"]        # all when absent
//! resources = ["web-*"]            # all when absent
//! to = ["slack:#ops", "pagerduty", "jira"]
//! ```
//!
//! Secrets are `{ file = … }` or `{ env = … }`, read at start; never written in the file.

use std::collections::BTreeMap;
use std::time::Duration;

use grace_notify::{NoticeKind, SecretSource};
use serde::Deserialize;

use crate::config_error::ConfigError;

/// `[integrations]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntegrationsConfig {
    /// GRACE's address as people reach it (`https://grace.example.com`): links to runs in
    /// messages, issues and incidents. Without it, messages name runs without a link.
    pub public_url: Option<String>,
    /// `[integrations.slack]`.
    pub slack: Option<SlackConfig>,
    /// `[integrations.pagerduty]`.
    pub pagerduty: Option<PagerDutyConfig>,
    /// `[integrations.jira]`.
    pub jira: Option<JiraConfig>,
    /// `[integrations.github]`: deployment webhooks in.
    pub github: Option<GithubConfig>,
}

/// `[integrations.slack]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The bot token (`xoxb-…`), with `chat:write`.
    pub token: SecretSource,
    /// The app's signing secret: Slack's requests (button presses) are checked with it. Without
    /// it, buttons are still shown only if `app_token` is set (Socket Mode).
    pub signing_secret: Option<SecretSource>,
    /// An app-level token (`xapp-…`, `connections:write`): presses come over Socket Mode, a
    /// WebSocket GRACE opens to Slack, for hosts Slack cannot reach.
    pub app_token: Option<SecretSource>,
    /// The Slack workspace (`T0123ABCD`) presses must come from; any the app is in when absent.
    pub team: Option<String>,
    /// Slack users who may vote through the buttons, each as a GRACE local principal.
    #[serde(default)]
    pub approvers: BTreeMap<String, String>,
    /// The Web API's base (a test server's, in tests).
    #[serde(default = "slack_api")]
    pub api_url: String,
    /// Messages per minute at most, over all channels (Slack allows about one per second per
    /// channel).
    #[serde(default = "sixty")]
    pub max_per_minute: u32,
}

/// `[integrations.pagerduty]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// An Events API v2 integration's routing key (32 characters).
    pub routing_key: Option<SecretSource>,
    /// The Events API's enqueue URL.
    #[serde(default = "pagerduty_events")]
    pub events_url: String,
    /// The severity of the incidents GRACE triggers.
    #[serde(default = "error_severity")]
    pub severity: grace_notify::pagerduty::Severity,
    /// A webhook subscription's secret: PagerDuty's webhooks (v3) become events at
    /// `POST /v1/sources/pagerduty`.
    pub webhook_secret: Option<SecretSource>,
    /// The GRACE resource of each PagerDuty service (`PF9KMXH = "api"`).
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    /// Whether a service not in `services` is taken, as the resource of its name. Off by
    /// default, as for GitHub's repositories.
    #[serde(default)]
    pub accept_unlisted: bool,
    /// Events per minute at most (PagerDuty allows 120 per routing key).
    #[serde(default = "sixty")]
    pub max_per_minute: u32,
}

/// `[integrations.jira]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// `https://<site>.atlassian.net`, or `https://api.atlassian.com/ex/jira/<cloud id>` with an
    /// OAuth token.
    pub url: String,
    /// The account's email, with an API token; absent, `token` is an OAuth 2.0 access token.
    pub email: Option<String>,
    /// The API token (or OAuth access token).
    pub token: SecretSource,
    /// The project issues go to (`OPS`).
    pub project: String,
    /// Their type.
    #[serde(default = "task")]
    pub issue_type: String,
    /// The transition (or status) that resolves an issue when its run succeeds.
    #[serde(default = "done")]
    pub resolve_transition: String,
    /// Requests per minute at most.
    #[serde(default = "sixty")]
    pub max_per_minute: u32,
}

/// `[integrations.github]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// The webhook's secret: deliveries to `POST /v1/sources/github` are checked with it.
    pub webhook_secret: SecretSource,
    /// The GRACE resource each repository deploys (`"acme/web" = "web"`), or each repository
    /// in an environment (`"acme/web@staging" = "web-staging"`).
    #[serde(default)]
    pub resources: BTreeMap<String, String>,
    /// Whether a repository not in `resources` is taken, as the resource of its own name (`web`
    /// for `acme/web`). Off by default: with an organisation-wide hook, anyone who may create a
    /// repository could otherwise name it after a production resource.
    #[serde(default)]
    pub accept_unlisted: bool,
}

/// `[[notify]]`: one route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRoute {
    /// Its name, in `/v1/notifications`.
    pub name: String,
    /// What it tells: `run.started`, `run.waiting-approval`, `run.succeeded`, `run.failed`,
    /// `run.cancelled`, `run.timed-out`.
    pub on: Vec<String>,
    /// Playbooks it is about (globs); all when empty.
    #[serde(default)]
    pub playbooks: Vec<String>,
    /// Resources it is about (globs); all when empty.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Where: `slack:<channel>`, `pagerduty`, `jira`.
    pub to: Vec<String>,
}

fn slack_api() -> String {
    "https://slack.com/api".to_owned()
}
fn pagerduty_events() -> String {
    "https://events.pagerduty.com/v2/enqueue".to_owned()
}
fn error_severity() -> grace_notify::pagerduty::Severity {
    grace_notify::pagerduty::Severity::Error
}
fn task() -> String {
    "Task".to_owned()
}
fn done() -> String {
    "Done".to_owned()
}
fn sixty() -> u32 {
    60
}

/// The most routes.
pub const MAX_ROUTES: usize = 100;

/// Where a notification goes: the one parser of channels, shared with playbooks' grants.
pub use grace_model::channel::Channel;

/// An `https://` URL with a host, or `http://` to a loopback address (a test server, a local
/// proxy): a token or a password must not cross a network in clear.
fn check_url(field: &'static str, url: &str) -> Result<(), ConfigError> {
    let shown = grace_notify::text::cut(&grace_notify::text::printable(url), 80);
    let refuse = |why: &str| ConfigError::invalid(field, format!("`{shown}` {why}"));
    if url.len() > 2048
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '|' | '<' | '>' | '"'))
    {
        return Err(refuse("is not a URL"));
    }
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err(refuse("is not an http(s) URL")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(refuse("holds credentials: give them as secrets"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err(refuse("names no host"));
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !tls && !loopback {
        return Err(refuse(
            "is plain HTTP to another host: use https:// (plain HTTP only reaches loopback)",
        ));
    }
    Ok(())
}

/// A GRACE resource a webhook's repository or service maps to.
fn check_resource(field: &'static str, resource: &str) -> Result<(), ConfigError> {
    if resource.trim().is_empty() || resource.len() > 256 || resource.chars().any(char::is_control)
    {
        return Err(ConfigError::invalid(
            field,
            "a resource is 1 to 256 printable characters",
        ));
    }
    Ok(())
}

fn check_secret(field: &'static str, source: &SecretSource) -> Result<(), ConfigError> {
    source
        .validate()
        .map_err(|e| ConfigError::invalid(field, e.to_string()))
}

fn check_rate(field: &'static str, n: u32) -> Result<(), ConfigError> {
    if (1..=6000).contains(&n) {
        Ok(())
    } else {
        Err(ConfigError::invalid(field, "must be between 1 and 6000"))
    }
}

impl IntegrationsConfig {
    /// Checks the section (secrets are read at start, not here).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url {
            // A link for people, not a place GRACE sends a secret to: plain HTTP is allowed.
            check_url(
                "integrations.public_url",
                &url.replacen("http://", "https://", 1),
            )?;
        }
        if let Some(s) = &self.slack {
            check_secret("integrations.slack.token", &s.token)?;
            if let Some(secret) = &s.signing_secret {
                check_secret("integrations.slack.signing_secret", secret)?;
            }
            if let Some(token) = &s.app_token {
                check_secret("integrations.slack.app_token", token)?;
            }
            check_url("integrations.slack.api_url", &s.api_url)?;
            check_rate("integrations.slack.max_per_minute", s.max_per_minute)?;
            if let Some(team) = &s.team
                && !((3..=32).contains(&team.len())
                    && team.starts_with(['T', 'E'])
                    && team
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
            {
                return Err(ConfigError::invalid(
                    "integrations.slack.team",
                    "a Slack workspace id (T0123ABCD)",
                ));
            }
            for (user, principal) in &s.approvers {
                let is_user = (3..=32).contains(&user.len())
                    && user.starts_with(['U', 'W'])
                    && user
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
                if !is_user {
                    return Err(ConfigError::invalid(
                        "integrations.slack.approvers",
                        format!(
                            "`{}` is not a Slack user id (U0123ABCD)",
                            grace_notify::text::cut(&grace_notify::text::printable(user), 40)
                        ),
                    ));
                }
                let name = principal.strip_prefix("local:").unwrap_or(principal);
                if !crate::auth::principals::valid_name(name) {
                    return Err(ConfigError::invalid(
                        "integrations.slack.approvers",
                        format!("`{user}` maps to `{name}`, which is not a local principal's name"),
                    ));
                }
            }
        }
        if let Some(p) = &self.pagerduty {
            if let Some(key) = &p.routing_key {
                check_secret("integrations.pagerduty.routing_key", key)?;
            }
            if let Some(secret) = &p.webhook_secret {
                check_secret("integrations.pagerduty.webhook_secret", secret)?;
            }
            check_url("integrations.pagerduty.events_url", &p.events_url)?;
            for resource in p.services.values() {
                check_resource("integrations.pagerduty.services", resource)?;
            }
            check_rate("integrations.pagerduty.max_per_minute", p.max_per_minute)?;
        }
        if let Some(j) = &self.jira {
            check_url("integrations.jira.url", &j.url)?;
            check_secret("integrations.jira.token", &j.token)?;
            grace_notify::jira::validate_project_key(&j.project)
                .map_err(|m| ConfigError::invalid("integrations.jira.project", m))?;
            if j.issue_type.trim().is_empty() || j.issue_type.len() > 100 {
                return Err(ConfigError::invalid(
                    "integrations.jira.issue_type",
                    "a name of 1 to 100 characters",
                ));
            }
            if j.resolve_transition.trim().is_empty() || j.resolve_transition.len() > 100 {
                return Err(ConfigError::invalid(
                    "integrations.jira.resolve_transition",
                    "a name of 1 to 100 characters",
                ));
            }
            if let Some(email) = &j.email
                && (!email.contains('@') || email.len() > 254 || email.contains(':'))
            {
                return Err(ConfigError::invalid(
                    "integrations.jira.email",
                    "an account's email address",
                ));
            }
            check_rate("integrations.jira.max_per_minute", j.max_per_minute)?;
        }
        if let Some(g) = &self.github {
            check_secret("integrations.github.webhook_secret", &g.webhook_secret)?;
            for resource in g.resources.values() {
                check_resource("integrations.github.resources", resource)?;
            }
        }
        Ok(())
    }
}

/// Checks the routes against the integrations they send to.
pub fn validate_routes(
    routes: &[NotifyRoute],
    integrations: &IntegrationsConfig,
) -> Result<(), ConfigError> {
    if routes.len() > MAX_ROUTES {
        return Err(ConfigError::invalid("notify", "at most 100 routes"));
    }
    let mut names = std::collections::BTreeSet::new();
    for route in routes {
        if route.name.is_empty()
            || route.name.len() > 64
            || !route
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(ConfigError::invalid(
                "notify.name",
                "1 to 64 letters, digits, `-` or `_`",
            ));
        }
        if !names.insert(route.name.as_str()) {
            return Err(ConfigError::invalid(
                "notify.name",
                format!("`{}` names two routes", route.name),
            ));
        }
        if route.on.is_empty() {
            return Err(ConfigError::invalid(
                "notify.on",
                format!("route `{}` tells nothing: list what it is on", route.name),
            ));
        }
        for kind in &route.on {
            if NoticeKind::parse(kind).is_none() {
                let known: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.name()).collect();
                return Err(ConfigError::invalid(
                    "notify.on",
                    format!(
                        "route `{}`: `{}` is not one of {}",
                        route.name,
                        grace_notify::text::cut(&grace_notify::text::printable(kind), 60),
                        known.join(", ")
                    ),
                ));
            }
        }
        if route.to.is_empty() || route.to.len() > 10 {
            return Err(ConfigError::invalid(
                "notify.to",
                format!("route `{}` sends to 1 to 10 channels", route.name),
            ));
        }
        for to in &route.to {
            let channel = Channel::parse(to).map_err(|m| ConfigError::invalid("notify.to", m))?;
            let configured = match channel {
                Channel::Slack(_) => integrations.slack.is_some(),
                Channel::PagerDuty => integrations
                    .pagerduty
                    .as_ref()
                    .is_some_and(|p| p.routing_key.is_some()),
                Channel::Jira => integrations.jira.is_some(),
            };
            if !configured {
                return Err(ConfigError::invalid(
                    "notify.to",
                    format!(
                        "route `{}` sends to `{to}`, which [integrations] does not configure",
                        route.name
                    ),
                ));
            }
        }
        for (field, globs) in [
            ("notify.playbooks", &route.playbooks),
            ("notify.resources", &route.resources),
        ] {
            if globs.iter().any(|g| g.is_empty() || g.len() > 256) {
                return Err(ConfigError::invalid(
                    field,
                    "patterns are 1 to 256 characters",
                ));
            }
        }
    }
    Ok(())
}

/// The time limit of one vendor request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_urls_are_https_or_loopback_and_name_a_host() {
        for ok in [
            "https://slack.com/api",
            "https://example.atlassian.net",
            "http://127.0.0.1:8080/api",
            "http://localhost:9/x",
            "http://[::1]:8080",
        ] {
            assert!(check_url("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://slack.com/api",
            "https://",
            "https:///path",
            "ftp://x",
            "https://user:pass@example.com",
            "https://a b",
            "http://10.0.0.1/x",
        ] {
            assert!(check_url("f", bad).is_err(), "{bad}");
        }
    }
}
