//! Who may call the API, and who did: bearer tokens with scopes, checked on every request by
//! one middleware against one table of routes, and an audit record in the ledger of every change.
//!
//! # For handlers: [`Caller`]
//!
//! Every request that reaches a handler has been authenticated and authorised for its route
//! (see [`routes::ROUTES`]) by [`require`], which puts the [`Caller`] in the request's
//! extensions. A handler that needs to know who asks takes it as an extractor:
//!
//! ```ignore
//! async fn cancel(
//!     State(scheduler): State<Arc<Scheduler>>,
//!     State(audit): State<Audit>,
//!     caller: Caller,
//!     Path(id): Path<String>,
//! ) -> Result<Json<RunSummary>, ApiError> {
//!     let result = scheduler.cancel(&id).await.map_err(ApiError::from);
//!     audit.record(&caller, AuditAction::RunsCancel, json!({ "run": id }), &result).await;
//!     result.map(Json)
//! }
//! ```
//!
//! `caller.name` is the token's name (or `anonymous (insecure-no-auth)`), `caller.token_id` the
//! token's public id (`tok_...`, empty when anonymous), `caller.principal` the id of the
//! principal the token belongs to (`local:alice`, `oidc:<issuer>#<sub>`: whatever counts people
//! counts these, see [`principals`]) and `caller.principal_name` how people see it,
//! `caller.scopes` what the token may do and `caller.granted` the scope this route needed. The handler need not check scopes itself: the
//! route's entry in [`routes::ROUTES`] decided before it was called. Add the entry with the route.
//! Record what the caller changed with [`Audit::record`] (see [`audit`]).
//!
//! A bearer token is either a GRACE token (`grace_...`, see [`tokens`]) or, when `[auth.oidc]`
//! is configured, a JWT from the identity provider (see [`oidc`]): its principal is
//! `oidc:<issuer>#<sub>`, its scopes come from the configured claim, and `caller.name` is the
//! principal's display name.
//!
//! # What the middleware answers
//!
//! - no `Authorization: Bearer <token>`, or an unknown, expired or revoked token: `401`
//!   `unauthorized`, with `WWW-Authenticate: Bearer`;
//! - a token without the route's scope: `403` `forbidden`, naming the scope needed;
//! - a route missing from the table: `403` `route_without_scope` (a bug: it is logged).
//!
//! With `--insecure-no-auth` (loopback only, refused otherwise by [`crate::ServeConfig`]'s
//! validation) every request is let in as [`Caller::anonymous`], holding every scope; a valid
//! token still names its caller.

pub mod audit;
pub mod oidc;
pub mod principals;
pub mod routes;
mod scopes;
mod settings;
pub mod tokens;

pub use settings::AuthConfig;

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use audit::{Audit, AuditAction};
pub use principals::{Principal, PrincipalKind, PrincipalStore};
pub use routes::Access;
pub use scopes::{Scope, Scopes};
pub use tokens::{TokenError, TokenRecord, TokenSpec, TokenStore};

use crate::error::ApiError;

/// Who made a request: put in the request's extensions by [`require`], taken by handlers as an
/// extractor (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, or `anonymous (insecure-no-auth)`.
    pub name: String,
    /// The token's id (`tok_...`); empty for the anonymous caller.
    pub token_id: String,
    /// The id of the principal behind the request (`local:alice`, `oidc:<issuer>#<sub>`, or
    /// `anonymous` without authentication): what counts as one person.
    pub principal: String,
    /// The principal's display name, for people.
    pub principal_name: String,
    /// What the token may do.
    pub scopes: Scopes,
    /// The scope the route needed, which let this request in.
    pub granted: Scope,
}

impl Caller {
    /// The caller of a server started with `--insecure-no-auth`: every scope, no token.
    pub fn anonymous(granted: Scope) -> Caller {
        Caller {
            name: ANONYMOUS.to_owned(),
            token_id: String::new(),
            principal: "anonymous".to_owned(),
            principal_name: ANONYMOUS.to_owned(),
            scopes: Scopes::all(),
            granted,
        }
    }

    fn signed_in(identity: oidc::OidcIdentity, granted: Scope) -> Caller {
        Caller {
            name: identity.principal.display_name.clone(),
            token_id: identity.token_id,
            principal: identity.principal.id,
            principal_name: identity.principal.display_name,
            scopes: identity.scopes,
            granted,
        }
    }

    fn of(token: &TokenRecord, principals: &PrincipalStore, granted: Scope) -> Caller {
        let principal_name = principals
            .get(&token.principal)
            .map_or_else(|| token.principal.clone(), |p| p.display_name);
        Caller {
            name: token.name.clone(),
            token_id: token.id.clone(),
            principal: token.principal.clone(),
            principal_name,
            scopes: token.scopes.clone(),
            granted,
        }
    }
}

/// The name of every caller of a server without authentication.
pub const ANONYMOUS: &str = "anonymous (insecure-no-auth)";

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only a route without the middleware gets here without one: refuse rather than guess.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this route is not behind authentication"))
    }
}

/// The server's authentication: its tokens, its OIDC issuer if any, and whether it runs
/// without.
pub struct Authenticator {
    /// The token table.
    pub tokens: TokenStore,
    oidc: Option<oidc::OidcVerifier>,
    insecure: bool,
}

impl Authenticator {
    /// Authentication with `tokens`; `insecure` lets everyone in (`--insecure-no-auth`).
    pub fn new(tokens: TokenStore, insecure: bool) -> Authenticator {
        Authenticator {
            tokens,
            oidc: None,
            insecure,
        }
    }

    /// Also accepts the JWTs `verifier` verifies.
    pub fn with_oidc(mut self, verifier: oidc::OidcVerifier) -> Authenticator {
        self.oidc = Some(verifier);
        self
    }

    /// Whether the server runs with `--insecure-no-auth`.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The caller presenting these headers, for a route needing `needed`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        needed: Scope,
    ) -> Result<Caller, ApiError> {
        let presented = bearer(headers);
        if let (Some(verifier), Some(Ok(secret))) = (&self.oidc, presented)
            && oidc::looks_like_jwt(secret)
        {
            return match verifier.verify(secret).await {
                Ok(identity) => Ok(Caller::signed_in(identity, needed)),
                Err(_) if self.insecure => Ok(Caller::anonymous(needed)),
                Err(e) => Err(ApiError::unauthorized(e.to_string())),
            };
        }
        let now = grace_engine::event::system_now_millis();
        let token = match presented {
            Some(Ok(secret)) => self.tokens.lookup(secret),
            _ => None,
        };
        if self.insecure {
            return Ok(match token {
                Some(t) if t.is_live(now) => Caller::of(&t, self.tokens.principals(), needed),
                _ => Caller::anonymous(needed),
            });
        }
        let token = match (presented, token) {
            (None, _) => {
                return Err(ApiError::unauthorized(
                    "this request needs a token: send `Authorization: Bearer <token>` (`grace init` makes one for the local CLI)",
                ));
            }
            (Some(Err(why)), _) => return Err(ApiError::unauthorized(why)),
            (Some(Ok(_)), None) => {
                return Err(ApiError::unauthorized(
                    "the token is not known to this server",
                ));
            }
            (Some(Ok(_)), Some(t)) => t,
        };
        if token.revoked {
            return Err(ApiError::unauthorized(format!(
                "the token `{}` ({}) was revoked",
                token.name, token.id
            )));
        }
        if !token.is_live(now) {
            return Err(ApiError::unauthorized(format!(
                "the token `{}` ({}) has expired",
                token.name, token.id
            )));
        }
        Ok(Caller::of(&token, self.tokens.principals(), needed))
    }
}

/// The bearer token of `Authorization`, if any; `Err` for a header that is not one.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, &'static str>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err("the `Authorization` header is not text"));
    };
    match text.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(Ok(token.trim())),
        _ => Some(Err("the `Authorization` header must be `Bearer <token>`")),
    }
}

/// The middleware: looks the matched route up in [`routes::ROUTES`], authenticates, checks the
/// scope, and hands the [`Caller`] on. Installed as a route layer, so it sees only requests
/// that matched a route (unknown paths get the router's `404`, wrong methods its `405`).
pub async fn require(
    State(auth): State<Arc<Authenticator>>,
    State(audit): State<Audit>,
    mut request: Request,
    next: Next,
) -> Response {
    let pattern = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = request.method().clone();
    let needed = match routes::required(&method, &pattern) {
        Some(Access::Public) => return next.run(request).await,
        Some(Access::Scope(scope)) => scope,
        None => {
            tracing::error!(%method, route = %pattern, "a route without an entry in the auth table was called: refused");
            return ApiError::route_without_scope(format!(
                "`{method} {pattern}` has no scope in the server's route table: refused"
            ))
            .into_response();
        }
    };
    let caller = match auth.authenticate(request.headers(), needed).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%method, route = %pattern, "unauthenticated request refused: {e}");
            return e.into_response();
        }
    };
    if !caller.scopes.allows(needed) {
        let message = format!(
            "`{method} {pattern}` needs the `{needed}` scope; the token `{}` ({}) has: {}",
            caller.name, caller.token_id, caller.scopes
        );
        tracing::warn!(caller = %caller.name, token = %caller.token_id, %method, route = %pattern, "request refused: needs `{needed}`");
        audit.denied(&caller, &method, &pattern, needed);
        return ApiError::forbidden(message).into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}
