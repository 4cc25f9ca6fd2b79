//! The parts of starting that read the settings for another module, so that the module need
//! not know the settings: authentication, and the sources of `grace.toml`.

use std::sync::Arc;

use grace_executor::Executors;

use super::StartError;
use crate::auth::{ANONYMOUS, Authenticator, TokenStore, oidc};
use crate::config::{ConfigError, ServeConfig};
use crate::sources::SettingError;
use crate::sources::containers::ContainersSource;
use crate::sources::supervisor::SourceSupervisor;

/// Opens the token table, saying loudly what is left open: no authentication, no token yet.
pub(super) fn auth(
    config: &ServeConfig,
    database: Arc<grace_ledger::Database>,
) -> Result<Authenticator, StartError> {
    let tokens = TokenStore::open_database(database).map_err(StartError::Tokens)?;
    if config.insecure_no_auth {
        tracing::warn!(
            listen = %config.listen,
            "INSECURE: --insecure-no-auth: the API has NO AUTHENTICATION; every caller may do anything as `{ANONYMOUS}`. Development on loopback only."
        );
    } else {
        let live = tokens
            .list()
            .iter()
            .filter(|t| t.is_live(grace_engine::event::system_now_millis()))
            .count();
        if live == 0 {
            tracing::warn!(
                "no API token exists yet: every request will be refused; stop the server and run `grace init --data-dir {}`",
                config.data_dir.display()
            );
        }
    }
    let mut auth = Authenticator::new(tokens, config.insecure_no_auth);
    if let Some(oidc) = &config.auth.oidc {
        let settings = oidc
            .settings()
            .map_err(|(field, message)| ConfigError::Invalid { field, message })?;
        tracing::info!(issuer = %settings.issuer, audience = %settings.audience, "OIDC sign-in: bearer JWTs of this issuer are accepted");
        auth = auth.with_oidc(oidc::OidcVerifier::new(settings)?);
    }
    Ok(auth)
}

/// Starts the sources of `grace.toml`: the push endpoints' health, and every polled source.
pub(super) fn sources(
    sources: &SourceSupervisor,
    config: &ServeConfig,
    executors: &Executors,
    cloudwatch: Option<&grace_aws::CloudWatch>,
) -> Result<(), ConfigError> {
    // The message starts with the key (`sources.promql[0].query: ...`).
    let invalid = |e: SettingError| ConfigError::Invalid {
        field: "sources",
        message: e.to_string(),
    };
    let health = sources.health();
    health.pushed(
        "alertmanager",
        "alertmanager",
        "POST /v1/sources/alertmanager".into(),
    );
    health.pushed(
        "metrics-push",
        "metrics-push",
        "POST /v1/sources/metrics".into(),
    );
    let promql =
        crate::sources::promql::build_all(&config.sources.promql, config.prometheus.as_deref())
            .map_err(invalid)?;
    for (source, schedule) in promql {
        let (name, target) = (source.name().to_owned(), source.query().to_owned());
        sources.poll(&name, "promql", target, source, schedule);
    }
    let cloudwatch = crate::sources::cloudwatch::build_all(&config.sources.cloudwatch, cloudwatch)
        .map_err(invalid)?;
    for (source, schedule) in cloudwatch {
        let (name, target) = (source.name().to_owned(), source.target());
        sources.poll(&name, "cloudwatch", target, source, schedule);
    }
    for (i, c) in config.sources.containers.iter().enumerate() {
        let (source, schedule) = ContainersSource::new(
            c,
            executors
                .containers
                .default_provider()
                .map(|p| p.executor().clone()),
            executors.clock.clone(),
            &format!("sources.containers[{i}]"),
        )
        .map_err(invalid)?;
        let (name, target) = (source.name().to_owned(), source.target());
        sources.poll(&name, "containers", target, Arc::new(source), schedule);
    }
    Ok(())
}
