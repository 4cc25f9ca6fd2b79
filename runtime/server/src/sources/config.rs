//! `[sources]` in `grace.toml`: the built-in sources GRACE polls itself, with no Wasm
//! collector to write, and the checks that hold across them (names unique, CloudWatch needs
//! `[aws]`). Each kind checks its own table ([`super::promql`], [`super::containers`],
//! [`super::cloudwatch`]).

use super::SettingError;
use serde::Deserialize;

/// `[sources]`: the built-in polled sources.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// `[[sources.promql]]`: PromQL queries (see [`super::promql`]).
    #[serde(default)]
    pub promql: Vec<super::promql::PromqlConfig>,
    /// `[[sources.containers]]`: container health (see [`super::containers`]).
    #[serde(default)]
    pub containers: Vec<super::containers::ContainersConfig>,
    /// `[[sources.cloudwatch]]`: CloudWatch metrics (see [`super::cloudwatch`]).
    #[serde(default)]
    pub cloudwatch: Vec<super::cloudwatch::CloudWatchConfig>,
}

impl SourcesConfig {
    /// Every configured source's name, with the key it is configured under.
    pub fn names(&self) -> impl Iterator<Item = (String, &str)> {
        let promql = self
            .promql
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("sources.promql[{i}].name"), c.name.as_str()));
        let containers = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("sources.containers[{i}].name"), c.name.as_str()));
        let cloudwatch = self
            .cloudwatch
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("sources.cloudwatch[{i}].name"), c.name.as_str()));
        promql.chain(containers).chain(cloudwatch)
    }

    /// Checks every source; the message starts with the key (`sources.promql[0].query: ...`).
    /// `prometheus` is the top-level Prometheus URL, `aws` whether `[aws]` is configured.
    pub fn validate(&self, prometheus: Option<&str>, aws: bool) -> Result<(), SettingError> {
        super::promql::build_all(&self.promql, prometheus)?;
        for (i, c) in self.cloudwatch.iter().enumerate() {
            c.check(&format!("sources.cloudwatch[{i}]"))?;
            if !aws {
                return Err(SettingError::new(
                    format!("sources.cloudwatch[{i}]"),
                    "CloudWatch needs [aws] in grace.toml",
                ));
            }
        }
        for (i, c) in self.containers.iter().enumerate() {
            c.check(&format!("sources.containers[{i}]"))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (key, name) in self.names() {
            if matches!(name, "alertmanager" | "metrics-push") || !seen.insert(name) {
                return Err(SettingError::new(
                    key,
                    format!("`{name}` is the name of another source"),
                ));
            }
        }
        Ok(())
    }
}
