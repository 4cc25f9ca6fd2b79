//! Playbook `restart-unhealthy-container`: restarts the containers of a service whose health
//! check fails, at most `max_restarts` of them per run, then reports which are healthy now.
//!
//! The service is chosen by the `selector` config (`app=web`), not by the event's resource:
//! one unhealthy container is often a sign that its siblings are unhealthy too.

use grace_sdk::config;
use grace_sdk::containers::{self, Container};
use grace_sdk::prelude::*;

struct RestartUnhealthyContainer;

impl Playbook for RestartUnhealthyContainer {
    fn run(event: TriggerEvent) -> Result<Outcome> {
        let selector_text = config::get_or("selector", "app=web".to_owned())?;
        let selector = containers::parse_selector(&selector_text)?;
        let max_restarts: usize = config::get_or("max_restarts", 2)?;
        let log_lines: u32 = config::get_or("log_lines", 10)?;

        let before = containers::list(&selector)?;
        let unhealthy: Vec<&Container> = before.iter().filter(|c| c.is_unhealthy()).collect();
        if unhealthy.is_empty() {
            return Ok(Outcome::unchanged(format!(
                "no unhealthy container matches `{selector_text}` ({} checked; the event was \
                 about `{}`)",
                before.len(),
                event.resource
            ))
            .detail("selector", &selector_text)
            .detail("checked", before.len()));
        }

        let (to_restart, skipped) = unhealthy.split_at(unhealthy.len().min(max_restarts));
        // What each container said before it was restarted goes into the report: a restart
        // loses the evidence of why it was unhealthy.
        let mut last_words = Vec::new();
        for container in to_restart {
            if log_lines > 0 {
                match containers::logs(&container.id, log_lines) {
                    Ok(lines) => last_words.push((container.name.clone(), lines.join("\n"))),
                    Err(e) => grace_sdk::warn!("no logs of {}: {e}", container.name),
                }
            }
            grace_sdk::info!("restarting unhealthy container {}", container.name);
            containers::restart(&container.id)?;
        }
        for container in skipped {
            grace_sdk::warn!(
                "not restarting {}: max_restarts ({max_restarts}) reached",
                container.name
            );
        }

        let after = containers::list(&selector)?;
        let restarted = names(to_restart.iter().copied());
        let healthy = names(after.iter().filter(|c| c.is_healthy()));
        let unhealthy_now = names(after.iter().filter(|c| !c.is_healthy()));
        let mut summary = format!("restarted {restarted}; healthy now: {healthy}");
        if !skipped.is_empty() {
            summary.push_str(&format!(
                "; skipped (max_restarts): {}",
                names(skipped.iter().copied())
            ));
        }
        let mut outcome = Outcome::changed(summary);
        for (name, lines) in last_words {
            outcome = outcome.detail(format!("logs.{name}"), lines);
        }
        Ok(outcome
            .detail("selector", &selector_text)
            .detail("restarted", &restarted)
            .detail("healthy", &healthy)
            .detail("unhealthy", &unhealthy_now)
            .detail("skipped", names(skipped.iter().copied())))
    }
}

/// Container names, comma separated, or `none`.
fn names<'a>(containers: impl Iterator<Item = &'a Container>) -> String {
    let names: Vec<&str> = containers.map(|c| c.name.as_str()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

grace_sdk::export_playbook!(RestartUnhealthyContainer);
