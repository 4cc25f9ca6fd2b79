//! `[auth]` in `grace.toml`: who may sign in besides holders of the server's own tokens.

use serde::Deserialize;

use crate::config_error::ConfigError;

/// `[auth]`: sign-in by OIDC besides the server's own tokens.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `[auth.oidc]`: bearer JWTs of one OpenID Connect issuer (see [`super::oidc`]).
    #[serde(default)]
    pub oidc: Option<super::oidc::OidcConfig>,
}

impl AuthConfig {
    /// Checks `[auth.oidc]`; the error names the field (`auth.oidc.issuer`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(oidc) = &self.oidc {
            oidc.settings()
                .map_err(|(field, message)| ConfigError::invalid(field, message))?;
        }
        Ok(())
    }
}
