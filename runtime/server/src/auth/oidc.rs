//! Sign-in by OpenID Connect: a bearer token that is a JWT (an ID token or an access token) from
//! the configured issuer, verified against the issuer's published keys (JWKS), authenticates its
//! subject as the principal `oidc:<issuer>#<sub>` with the scopes its configured claim grants.
//!
//! What is checked, in this order, before any claim is believed:
//! - the token is at most [`MAX_TOKEN_BYTES`] and is a JWS (three parts), whose header names an
//!   algorithm among those configured: asymmetric ones only (RS256/384/512, PS256/384/512,
//!   ES256/384, EdDSA; default RS256 and ES256). `none` and the HMAC family are refused at
//!   configuration and at verification, so a public key is never used as an HMAC secret;
//! - its `kid` names a key of the issuer's JWKS whose type fits the algorithm (and whose `alg`,
//!   if the key states one, is that algorithm). An unknown `kid` makes the JWKS be fetched again,
//!   at most once per [`OidcSettings::jwks_refresh`] (so a flood of made-up `kid`s cannot make us
//!   hammer the issuer), which is how keys the issuer rotated in are found;
//! - the signature; then `iss` is the configured issuer, `aud` holds the configured audience,
//!   `exp` is in the future and `nbf` (if present) in the past, each with
//!   [`OidcSettings::clock_skew`] of tolerance; `sub` is present.
//!
//! The JWKS (and the discovery document, when no `jwks_url` is configured) is fetched over HTTPS
//! (plain HTTP only from a loopback address, for a local issuer), within a timeout, and read
//! with a size bound ([`OidcSettings::max_jwks_bytes`]): a larger answer is refused whole, and
//! the keys already known stay in use.
//!
//! Scopes: the configured claim (`scopes_claim`, required) is either a space-separated
//! string (OAuth's `scope`) or an array of strings (a `groups`/`roles` claim). It should be a
//! claim the issuer decides from its own records (roles, groups): OAuth's `scope` (and `scp`)
//! holds what the client *asked* for, which many issuers grant to any user who asks, so reading
//! GRACE scopes from it needs `allow_requested_scopes = true`, said on purpose. Each entry, after
//! removing `scope_prefix` (e.g. `grace:`), that names a GRACE scope (`read`, `operate`,
//! `approve`, `admin`) is granted; every other entry (`openid`, `email`, another
//! application's roles) is ignored, since an identity provider's tokens carry many. A token
//! granting none of GRACE's scopes authenticates but may call nothing (`403`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::principals::{Principal, valid_name};
use super::{Scope, Scopes};

/// The longest bearer token considered as a JWT; longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// `[auth.oidc]` in `grace.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer, exactly as tokens state it in `iss` (`https://idp.example.com/realms/ops`).
    pub issuer: String,
    /// The audience GRACE's tokens are issued for (`aud`): the client id registered for GRACE.
    pub audience: String,
    /// Where the issuer publishes its keys; when absent, read from the issuer's discovery
    /// document (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim holding GRACE scopes (required): a roles or groups claim the issuer fills
    /// from its own records.
    #[serde(default)]
    pub scopes_claim: Option<String>,
    /// Whether `scopes_claim` may be `scope` or `scp`: the scopes the client requested, which
    /// an issuer may grant to anyone who asks (default false).
    #[serde(default)]
    pub allow_requested_scopes: bool,
    /// What a scope entry starts with (default none; e.g. `grace:` for `grace:approve`).
    #[serde(default)]
    pub scope_prefix: Option<String>,
    /// The claim naming the principal: `sub` (the only one accepted: it is the identifier the
    /// issuer promises never to reassign).
    #[serde(default)]
    pub principal: Option<String>,
    /// Accepted algorithms (default `["RS256", "ES256"]`); symmetric ones are refused.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Tolerance for `exp` and `nbf` (default `60s`, at most `5m`).
    #[serde(default, with = "humantime_serde")]
    pub clock_skew: Option<Duration>,
    /// The least time between two fetches of the JWKS (default `30s`).
    #[serde(default, with = "humantime_serde")]
    pub jwks_refresh: Option<Duration>,
    /// The largest JWKS or discovery document read (default 65536 bytes).
    #[serde(default)]
    pub max_jwks_bytes: Option<usize>,
}

/// [`OidcConfig`], checked.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// The JWKS location, or `None` for discovery.
    pub jwks_url: Option<reqwest::Url>,
    /// The scopes claim.
    pub scopes_claim: String,
    /// The scope prefix.
    pub scope_prefix: String,
    /// Accepted algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Tolerance for `exp` and `nbf`.
    pub clock_skew: Duration,
    /// The least time between JWKS fetches.
    pub jwks_refresh: Duration,
    /// The largest JWKS read.
    pub max_jwks_bytes: usize,
}

/// Why an issuer's URL is refused.
#[derive(Debug, thiserror::Error)]
enum UrlError {
    #[error("`{text}` is not a URL ({reason})")]
    NotAUrl {
        text: String,
        /// The URL parser's words.
        reason: String,
    },
    #[error(
        "`{0}` must be https (plain http only on loopback): keys fetched in clear could be anyone's"
    )]
    NotHttps(String),
}

/// An issuer URL must be HTTPS, or HTTP from a loopback address (a local issuer).
fn checked_url(text: &str) -> Result<reqwest::Url, UrlError> {
    let url = reqwest::Url::parse(text).map_err(|e| UrlError::NotAUrl {
        text: text.to_owned(),
        reason: e.to_string(),
    })?;
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(UrlError::NotHttps(text.to_owned())),
    }
}

impl OidcConfig {
    /// Checks every field; an error names it (`auth.oidc.<field>`) and says why.
    pub fn settings(&self) -> Result<OidcSettings, (&'static str, String)> {
        checked_url(&self.issuer).map_err(|e| ("auth.oidc.issuer", e.to_string()))?;
        if self.audience.trim().is_empty() {
            return Err(("auth.oidc.audience", "must not be empty".into()));
        }
        let jwks_url = match &self.jwks_url {
            Some(u) => Some(checked_url(u).map_err(|e| ("auth.oidc.jwks_url", e.to_string()))?),
            None => None,
        };
        if let Some(p) = &self.principal
            && p != "sub"
        {
            return Err((
                "auth.oidc.principal",
                format!(
                    "`{p}` is not supported: the principal is the issuer's `sub`, the one claim it never reassigns"
                ),
            ));
        }
        let mut algorithms = Vec::new();
        for name in self
            .algorithms
            .clone()
            .unwrap_or_else(|| vec!["RS256".into(), "ES256".into()])
        {
            let alg = match name.as_str() {
                "RS256" => Algorithm::RS256,
                "RS384" => Algorithm::RS384,
                "RS512" => Algorithm::RS512,
                "PS256" => Algorithm::PS256,
                "PS384" => Algorithm::PS384,
                "PS512" => Algorithm::PS512,
                "ES256" => Algorithm::ES256,
                "ES384" => Algorithm::ES384,
                "EdDSA" => Algorithm::EdDSA,
                _ => {
                    return Err((
                        "auth.oidc.algorithms",
                        format!(
                            "`{name}` is not accepted (one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA; never `none` or HMAC)"
                        ),
                    ));
                }
            };
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(("auth.oidc.algorithms", "name at least one".into()));
        }
        let clock_skew = self.clock_skew.unwrap_or(Duration::from_secs(60));
        if clock_skew > Duration::from_secs(300) {
            return Err(("auth.oidc.clock_skew", "at most 5m".into()));
        }
        let jwks_refresh = self.jwks_refresh.unwrap_or(Duration::from_secs(30));
        let max_jwks_bytes = self.max_jwks_bytes.unwrap_or(64 * 1024);
        if !(1024..=4 * 1024 * 1024).contains(&max_jwks_bytes) {
            return Err((
                "auth.oidc.max_jwks_bytes",
                "between 1024 and 4194304".into(),
            ));
        }
        let Some(scopes_claim) = self.scopes_claim.clone().filter(|c| !c.is_empty()) else {
            return Err((
                "auth.oidc.scopes_claim",
                "is required: the claim (roles or groups) the issuer fills with GRACE scopes"
                    .into(),
            ));
        };
        if matches!(scopes_claim.as_str(), "scope" | "scp") && !self.allow_requested_scopes {
            return Err((
                "auth.oidc.scopes_claim",
                format!(
                    "`{scopes_claim}` holds the scopes a client asked for, which many issuers grant to anyone who asks: use a roles or groups claim, or set `allow_requested_scopes = true` if your issuer restricts them"
                ),
            ));
        }
        Ok(OidcSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks_url,
            scopes_claim,
            scope_prefix: self.scope_prefix.clone().unwrap_or_default(),
            algorithms,
            clock_skew,
            jwks_refresh,
            max_jwks_bytes,
        })
    }
}

/// Why a token was refused (the `401`'s reason: nothing secret, nothing internal).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OidcError {
    /// Not a JWT we would read.
    #[error("the token is not a JWT signed with an accepted algorithm: {0}")]
    Malformed(String),
    /// The header's algorithm is not accepted.
    #[error("the token is signed with `{0}`, which this server does not accept")]
    Algorithm(String),
    /// No key of the issuer has this `kid`, even after fetching its keys again.
    #[error("no key of the issuer has the token's key id `{0}`")]
    UnknownKey(String),
    /// The issuer's keys could not be fetched.
    #[error("the issuer's keys cannot be fetched: {0}")]
    Jwks(String),
    /// The signature or a claim is wrong.
    #[error("the token is refused: {0}")]
    Invalid(String),
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// `oidc:<issuer>#<sub>`.
    pub principal: Principal,
    /// The scopes granted by the configured claim.
    pub scopes: Scopes,
    /// `oidc-` and 12 hex digits of the token's SHA-256: names this token in logs and the
    /// ledger without revealing it.
    pub token_id: String,
}

/// A published key: its JWK type (`RSA`, `EC`, `OKP`), its `alg` if stated, the key.
#[derive(Clone)]
struct Published {
    kty: String,
    alg: Option<String>,
    key: DecodingKey,
}

/// The issuer's keys as last fetched.
#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Published>,
    /// Keys without a `kid`, usable only when there is exactly one for an algorithm.
    anonymous: Vec<Published>,
    fetched_at: Option<Instant>,
}

/// Verifies OIDC bearer tokens for one issuer.
pub struct OidcVerifier {
    settings: OidcSettings,
    client: reqwest::Client,
    keys: std::sync::RwLock<std::sync::Arc<Keys>>,
    /// One fetch at a time; held while fetching.
    fetching: tokio::sync::Mutex<Option<reqwest::Url>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// Whether `token` looks like a JWS (three base64url parts), not a GRACE token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with(super::tokens::TOKEN_PREFIX)
}

/// Why an OIDC verifier cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcSetupError {
    /// No HTTP client to fetch the issuer's keys with.
    #[error("auth.oidc: no HTTP client: {0}")]
    Client(reqwest::Error),
}

impl OidcVerifier {
    /// A verifier for `settings`; keys are fetched on first use.
    pub fn new(settings: OidcSettings) -> Result<OidcVerifier, OidcSetupError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(OidcSetupError::Client)?;
        let jwks = settings.jwks_url.clone();
        Ok(OidcVerifier {
            settings,
            client,
            keys: std::sync::RwLock::new(std::sync::Arc::new(Keys::default())),
            fetching: tokio::sync::Mutex::new(jwks),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    fn keys(&self) -> std::sync::Arc<Keys> {
        crate::sync::read(&self.keys).clone()
    }

    /// Verifies `token` (see the module documentation) and returns whom it speaks for.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(OidcError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::Malformed(e.to_string()))?;
        if !self.settings.algorithms.contains(&header.alg) {
            return Err(OidcError::Algorithm(format!("{:?}", header.alg)));
        }
        let key = match self.key_for(header.kid.as_deref(), header.alg) {
            Some(k) => k,
            None => {
                // Unknown: the issuer may have rotated its keys; look again (rate-limited).
                self.refresh().await?;
                self.key_for(header.kid.as_deref(), header.alg)
                    .ok_or_else(|| {
                        OidcError::UnknownKey(header.kid.clone().unwrap_or_else(|| "(none)".into()))
                    })?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.settings.clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| OidcError::Invalid(reason(&e)))?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control))
            .ok_or_else(|| OidcError::Invalid("`sub` is missing or not a plain string".into()))?;
        let display = ["name", "preferred_username", "email"]
            .iter()
            .filter_map(|c| claims.get(*c).and_then(Value::as_str))
            .find(|n| valid_name(n))
            .unwrap_or(if valid_name(sub) { sub } else { "oidc user" });
        let principal = Principal::oidc(&self.settings.issuer, sub, display);
        let scopes = self.scopes(claims.get(&self.settings.scopes_claim));
        let token_id = format!(
            "oidc-{}",
            &hex::encode(Sha256::digest(token.as_bytes()))[..12]
        );
        Ok(OidcIdentity {
            principal,
            scopes,
            token_id,
        })
    }

    /// The GRACE scopes in the scopes claim; other entries are ignored.
    fn scopes(&self, claim: Option<&Value>) -> Scopes {
        let entries: Vec<&str> = match claim {
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        entries
            .into_iter()
            .filter_map(|e| e.strip_prefix(self.settings.scope_prefix.as_str()))
            .filter_map(Scope::parse)
            .collect()
    }

    /// The key for `kid` usable with `alg`.
    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys();
        // The key's type must be the algorithm's (never an RSA key read as anything else), and
        // a key stating its algorithm is used for that one only.
        let fits = |p: &Published| {
            p.kty == kty_of(alg) && p.alg.as_deref().is_none_or(|a| a == alg_name(alg))
        };
        match kid {
            Some(kid) => keys
                .by_kid
                .get(kid)
                .filter(|p| fits(p))
                .map(|p| p.key.clone()),
            None => {
                let mut usable = keys.anonymous.iter().filter(|p| fits(p));
                match (usable.next(), usable.next()) {
                    (Some(p), None) => Some(p.key.clone()),
                    _ => None,
                }
            }
        }
    }

    /// Fetches the JWKS again unless it was fetched less than `jwks_refresh` ago.
    async fn refresh(&self) -> Result<(), OidcError> {
        let mut jwks_url = self.fetching.lock().await;
        // Someone else may have fetched while we waited: the rate limit covers them too.
        if let Some(at) = self.keys().fetched_at
            && at.elapsed() < self.settings.jwks_refresh
        {
            return Ok(());
        }
        let url = match jwks_url.as_ref() {
            Some(u) => u.clone(),
            None => {
                let u = self.discover().await?;
                *jwks_url = Some(u.clone());
                u
            }
        };
        let parsed = match self.fetch(&url).await {
            Ok(body) => serde_json::from_slice::<JwkSetLoose>(&body)
                .map_err(|e| OidcError::Jwks(format!("not a JWKS: {e}"))),
            Err(e) => Err(e),
        };
        let set = match parsed {
            Ok(set) => set,
            Err(e) => {
                // Keep the keys we had, and count the attempt: failures are rate-limited too.
                let mut current = crate::sync::write(&self.keys);
                *current = std::sync::Arc::new(Keys {
                    by_kid: current.by_kid.clone(),
                    anonymous: current.anonymous.clone(),
                    fetched_at: Some(Instant::now()),
                });
                tracing::warn!(url = %url, "cannot fetch the OIDC issuer's keys: {e}");
                return Err(e);
            }
        };
        let mut keys = Keys {
            fetched_at: Some(Instant::now()),
            ..Keys::default()
        };
        for raw in set.keys {
            // A key GRACE cannot use (a symmetric one, an encryption key, an unknown type) is
            // skipped, not fatal.
            let kty = raw.get("kty").and_then(Value::as_str).unwrap_or_default();
            if !matches!(kty, "RSA" | "EC" | "OKP")
                || raw
                    .get("use")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u != "sig")
            {
                continue;
            }
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let published = Published {
                kty: kty.to_owned(),
                alg: raw.get("alg").and_then(Value::as_str).map(str::to_owned),
                key,
            };
            match raw.get("kid").and_then(Value::as_str) {
                Some(kid) => {
                    keys.by_kid.insert(kid.to_owned(), published);
                }
                None => keys.anonymous.push(published),
            }
        }
        tracing::info!(url = %url, keys = keys.by_kid.len() + keys.anonymous.len(), "fetched the OIDC issuer's keys");
        *crate::sync::write(&self.keys) = std::sync::Arc::new(keys);
        Ok(())
    }

    /// The `jwks_uri` of the issuer's discovery document.
    async fn discover(&self) -> Result<reqwest::Url, OidcError> {
        let base = self.settings.issuer.trim_end_matches('/');
        let url = checked_url(&format!("{base}/.well-known/openid-configuration"))
            .map_err(|e| OidcError::Jwks(e.to_string()))?;
        let body = self.fetch(&url).await?;
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| OidcError::Jwks(format!("the discovery document is not JSON: {e}")))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(OidcError::Jwks(
                "the discovery document names another issuer".into(),
            ));
        }
        let jwks = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Jwks("the discovery document has no `jwks_uri`".into()))?;
        checked_url(jwks).map_err(|e| OidcError::Jwks(format!("`jwks_uri`: {e}")))
    }

    /// GETs `url`, reading at most `max_jwks_bytes`.
    async fn fetch(&self, url: &reqwest::Url) -> Result<Vec<u8>, OidcError> {
        let limit = self.settings.max_jwks_bytes;
        let too_big = || OidcError::Jwks(format!("the answer is larger than {limit} bytes"));
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| OidcError::Jwks(format!("`{url}`: {e}")))?;
        if !response.status().is_success() {
            return Err(OidcError::Jwks(format!(
                "`{url}` answered {}",
                response.status()
            )));
        }
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| OidcError::Jwks(format!("`{url}`: {e}")))?
        {
            if body.len() + chunk.len() > limit {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A JWKS whose keys are read one by one, so that one key of an unknown kind spoils nothing.
#[derive(Deserialize)]
struct JwkSetLoose {
    keys: Vec<Value>,
}

/// The JWK key type an algorithm verifies with.
fn kty_of(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => "EC",
        Algorithm::EdDSA => "OKP",
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => "RSA",
        _ => "none",
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "HMAC",
    }
}

/// The reason for people, from jsonwebtoken's error.
fn reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "it has expired (`exp`)".into(),
        K::ImmatureSignature => "it is not valid yet (`nbf`)".into(),
        K::InvalidIssuer => "it was issued by another issuer (`iss`)".into(),
        K::InvalidAudience => "it is for another audience (`aud`)".into(),
        K::InvalidSignature => "its signature does not verify".into(),
        K::InvalidAlgorithm => "its algorithm does not fit the key".into(),
        K::MissingRequiredClaim(c) => format!("it has no `{c}` claim"),
        _ => "it is not a valid token".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example.com".into(),
            audience: "grace".into(),
            jwks_url: None,
            scopes_claim: Some("roles".into()),
            allow_requested_scopes: false,
            scope_prefix: None,
            principal: None,
            algorithms: None,
            clock_skew: None,
            jwks_refresh: None,
            max_jwks_bytes: None,
        }
    }

    #[test]
    fn symmetric_algorithms_and_none_are_refused_in_configuration() {
        for alg in ["HS256", "HS512", "none", "None"] {
            let mut c = config();
            c.algorithms = Some(vec![alg.into()]);
            let (field, e) = c.settings().unwrap_err();
            assert_eq!(field, "auth.oidc.algorithms", "{e}");
        }
    }

    #[test]
    fn keys_are_fetched_over_https_or_from_loopback_only() {
        let mut c = config();
        c.jwks_url = Some("http://idp.example.com/jwks".into());
        assert_eq!(c.settings().unwrap_err().0, "auth.oidc.jwks_url");
        c.jwks_url = Some("http://127.0.0.1:8080/jwks".into());
        assert!(c.settings().is_ok());
        let mut c = config();
        c.issuer = "http://idp.example.com".into();
        assert_eq!(c.settings().unwrap_err().0, "auth.oidc.issuer");
    }

    #[test]
    fn scopes_come_from_a_claim_named_on_purpose_never_by_default_from_requested_scopes() {
        let mut c = config();
        c.scopes_claim = None;
        assert_eq!(c.settings().unwrap_err().0, "auth.oidc.scopes_claim");
        for requested in ["scope", "scp"] {
            c.scopes_claim = Some(requested.into());
            let (field, e) = c.settings().unwrap_err();
            assert_eq!(field, "auth.oidc.scopes_claim", "{e}");
            assert!(e.contains("allow_requested_scopes"), "{e}");
            c.allow_requested_scopes = true;
            assert!(c.settings().is_ok());
            c.allow_requested_scopes = false;
        }
    }

    #[test]
    fn the_principal_is_sub_only() {
        let mut c = config();
        c.principal = Some("email".into());
        assert_eq!(c.settings().unwrap_err().0, "auth.oidc.principal");
        c.principal = Some("sub".into());
        assert!(c.settings().is_ok());
    }

    #[test]
    fn scopes_come_from_the_claim_and_unknown_entries_are_ignored() {
        let mut c = config();
        c.scope_prefix = Some("grace:".into());
        let v = OidcVerifier::new(c.settings().unwrap()).unwrap();
        let s = v.scopes(Some(&Value::String(
            "openid email grace:approve grace:read admin grace:root".into(),
        )));
        assert!(s.allows(Scope::Approve) && s.allows(Scope::Read));
        assert!(!s.allows(Scope::Admin), "`admin` lacks the prefix: {s}");
        let s = v.scopes(Some(&serde_json::json!(["grace:operate", 7, "x"])));
        assert!(s.allows(Scope::Operate) && !s.allows(Scope::Approve));
        assert!(v.scopes(None).is_empty());
    }
}
