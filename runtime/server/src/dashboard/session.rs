//! Who is looking at the dashboard, and the guards on everything they send.
//!
//! **Sign-in.** A person signs in with a token the API accepts (a GRACE token, or the JWT of
//! the configured OIDC issuer). The token goes into a cookie that is `HttpOnly` (no script reads
//! it), `SameSite=Strict` (no other site's page sends it), `Secure` when the server speaks TLS,
//! and lives at most [`SESSION_SECS`]. Every request authenticates the cookie's token again, by
//! the same [`Authenticator`] as the API: a token revoked or expired stops working on the next
//! page, and the scopes are the token's own. A read token sees; it cannot act.
//!
//! **Which routes need what.** The one table, [`crate::auth::routes::ROUTES`], lists the
//! dashboard's routes beside the API's; [`require`] looks each request up there exactly as the
//! API's middleware does. The cookie is accepted only on the dashboard's routes: the API's
//! routes take bearer tokens only, so a cookie can never make another site's request act
//! through the API.
//!
//! **Forms.** Every `POST` must come from this server's own pages:
//! - `Sec-Fetch-Site` (when the browser sends it) must be `same-origin`, and `Origin` (when
//!   sent) must be this server's;
//! - the form must carry the session's CSRF token ([`Sessions::csrf`]): an HMAC of the session
//!   under a key made at start, so it cannot be guessed and is worthless for another session.
//!   The body is read here, within [`MAX_FORM_BYTES`], before any handler runs: a handler cannot
//!   forget the check.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{KeyInit, Mac};
use maud::{Markup, html};

use crate::auth::{Access, Authenticator, Caller, routes};

use super::view;

/// The session cookie's name.
pub const COOKIE: &str = "grace_session";
/// How long a sign-in lasts (12 hours), unless the token expires first.
pub const SESSION_SECS: u64 = 12 * 3600;
/// The largest form body read.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The longest token a cookie may hold (browsers keep about 4 KB per cookie).
pub const MAX_TOKEN_BYTES: usize = 3800;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The dashboard's sessions: the CSRF key and whether cookies are `Secure`.
pub struct Sessions {
    key: [u8; 32],
    secure: bool,
}

impl Sessions {
    /// Sessions of a server speaking TLS when `secure`. The CSRF key is new at each start: a
    /// form loaded before a restart is refused once, and the page reloaded gets a fresh one.
    pub fn new(secure: bool) -> Result<Sessions, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Sessions { key, secure })
    }

    fn mac(&self, session: &str) -> HmacSha256 {
        // A 32-byte key always fits HMAC: `new_from_slice` cannot fail here.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"grace-dashboard-csrf\0");
        mac.update(session.as_bytes());
        mac
    }

    /// The CSRF token of `session` (the cookie's token; empty without one).
    pub fn csrf(&self, session: &str) -> String {
        hex::encode(self.mac(session).finalize().into_bytes())
    }

    /// Whether `presented` is `session`'s CSRF token (compared in constant time).
    pub fn csrf_matches(&self, session: &str, presented: &str) -> bool {
        match hex::decode(presented) {
            Ok(bytes) => self.mac(session).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The `Set-Cookie` value signing `token` in.
    pub fn cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}"
        ))
        .unwrap_or_else(|_| self.cleared())
    }

    /// The `Set-Cookie` value signing out.
    pub fn cleared(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        ))
        .unwrap_or(HeaderValue::from_static("grace_session=; Max-Age=0"))
    }
}

/// Why a token cannot go into a cookie, or `None` when it can.
pub fn unfit_for_cookie(token: &str) -> Option<String> {
    if token.is_empty() {
        return Some("paste a token (`grace tokens create` makes one)".to_owned());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Some(format!(
            "the token is {} bytes; a sign-in cookie holds at most {MAX_TOKEN_BYTES}",
            token.len()
        ));
    }
    // Tokens are base64url text (GRACE tokens and JWTs alike); nothing else may reach a
    // `Set-Cookie` header.
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b))
    {
        return Some("that is not a token: it holds characters no token has".to_owned());
    }
    None
}

/// The token of the session cookie, if any.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Who looks at a page: their [`Caller`], and what their forms must carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who, with their scopes.
    pub caller: Caller,
    /// The CSRF token of their session.
    pub csrf: String,
    /// Whether they signed in with a cookie (rather than a bearer header or no authentication).
    pub signed_in: bool,
}

impl Viewer {
    /// The hidden field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// Whether the viewer's token carries `scope` (or `admin`).
    pub fn may(&self, scope: crate::auth::Scope) -> bool {
        self.caller.scopes.allows(scope)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Viewer>().cloned().ok_or_else(|| {
            refusal(
                None,
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                "this page is not behind sign-in",
            )
        })
    }
}

/// An HTML refusal page with `status`.
pub fn refusal(viewer: Option<&Viewer>, status: StatusCode, title: &str, text: &str) -> Response {
    (status, view::message(viewer, title, text)).into_response()
}

/// What the middleware needs.
#[derive(Clone)]
pub struct Guard {
    /// The API's authentication.
    pub auth: Arc<Authenticator>,
    /// The sessions.
    pub sessions: Arc<Sessions>,
}

/// The dashboard's middleware: same-origin checks and the CSRF token on every `POST`, then
/// the route's entry in [`routes::ROUTES`], the session's token authenticated, the scope
/// checked, and the [`Viewer`] handed on.
pub async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let pattern = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = request.method().clone();
    let posted = method != Method::GET && method != Method::HEAD;
    if posted && let Some(why) = cross_site(request.headers()) {
        tracing::warn!(%method, route = %pattern, "dashboard form refused: {why}");
        return refusal(None, StatusCode::FORBIDDEN, "Refused", &why);
    }
    let needed = match routes::required(&method, &pattern) {
        Some(Access::Public) => return next.run(request).await,
        Some(Access::Scope(scope)) => scope,
        None => {
            tracing::error!(%method, route = %pattern, "a dashboard route without an entry in the auth table was called: refused");
            return refusal(
                None,
                StatusCode::FORBIDDEN,
                "Refused",
                "this page has no scope in the server's route table",
            );
        }
    };
    // A bearer header (scripts, tests) is taken as the API takes it; otherwise the cookie's
    // token is presented as one.
    let session = session_token(request.headers()).map(str::to_owned);
    let mut headers = HeaderMap::new();
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        headers.insert(header::AUTHORIZATION, value.clone());
    } else if let Some(token) = &session
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    let signed_in = !headers.contains_key(header::AUTHORIZATION) || session.is_some();
    let caller = match guard.auth.authenticate(&headers, needed).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%method, route = %pattern, "dashboard request not signed in: {e}");
            return sign_in_again(&guard.sessions, &request, session.is_some());
        }
    };
    let viewer = Viewer {
        csrf: guard.sessions.csrf(session.as_deref().unwrap_or("")),
        signed_in: signed_in && session.is_some(),
        caller,
    };
    if !viewer.caller.scopes.allows(needed) {
        tracing::warn!(caller = %viewer.caller.name, %method, route = %pattern, "dashboard request refused: needs `{needed}`");
        return refusal(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "this needs the `{needed}` scope; your token has: {}",
                viewer.caller.scopes
            ),
        );
    }
    let mut request = request;
    if posted {
        request = match checked_form(&guard.sessions, &viewer, request).await {
            Ok(r) => r,
            Err(response) => return response,
        };
    }
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

/// Why a form post does not come from this server's own pages, or `None`.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Some(format!(
            "a form sent from another site ({}) is not taken",
            String::from_utf8_lossy(site.as_bytes()).escape_debug()
        ));
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok().unwrap_or("?");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let own = origin
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host);
    (!own).then(|| {
        format!(
            "a form sent from `{}` is not taken: only this server's own pages may send forms",
            origin.escape_debug()
        )
    })
}

/// The request with its form read (within [`MAX_FORM_BYTES`]) and its CSRF token checked.
async fn checked_form(
    sessions: &Sessions,
    viewer: &Viewer,
    request: Request,
) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            refusal(
                Some(viewer),
                StatusCode::PAYLOAD_TOO_LARGE,
                "Refused",
                &format!("a form is at most {MAX_FORM_BYTES} bytes"),
            )
        })?;
    let session = session_token(&parts.headers).unwrap_or("");
    let presented = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !sessions.csrf_matches(session, &presented) {
        tracing::warn!(caller = %viewer.caller.name, "dashboard form refused: no valid CSRF token");
        return Err(refusal(
            Some(viewer),
            StatusCode::FORBIDDEN,
            "Refused",
            "the form's security token is missing or stale: reload the page and try again",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Not signed in (or the token stopped working): pages go to the sign-in form, forms are
/// refused.
fn sign_in_again(sessions: &Sessions, request: &Request, had_session: bool) -> Response {
    let mut response = if request.method() == Method::GET || request.method() == Method::HEAD {
        let next = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let target = format!("/login?next={}", urlencode(&next));
        Redirect::to(&target).into_response()
    } else {
        refusal(
            None,
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "sign in again, then send the form again",
        )
    };
    if had_session {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, sessions.cleared());
    }
    response
}

/// `text` percent-encoded for a query string.
pub fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Where to go after signing in: a path on this server, nothing else (no open redirect).
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_csrf_token_is_good_for_its_own_session_only() {
        let sessions = Sessions::new(false).unwrap();
        let alice = sessions.csrf("grace_alice");
        assert!(sessions.csrf_matches("grace_alice", &alice));
        assert!(!sessions.csrf_matches("grace_bob", &alice));
        assert!(!sessions.csrf_matches("grace_alice", ""));
        assert!(!sessions.csrf_matches("grace_alice", "zz"));
        let other_server = Sessions::new(false).unwrap();
        assert!(!other_server.csrf_matches("grace_alice", &alice));
    }

    #[test]
    fn the_cookie_is_http_only_same_site_strict_and_secure_under_tls() {
        let plain = Sessions::new(false).unwrap().cookie("grace_x");
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = Sessions::new(true).unwrap().cookie("grace_x");
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn only_token_text_goes_into_a_cookie() {
        assert!(unfit_for_cookie("grace_abc-DEF_123").is_none());
        assert!(unfit_for_cookie("eyJh.eyJz.c2ln").is_none());
        assert!(unfit_for_cookie("a; Domain=evil").is_some());
        assert!(unfit_for_cookie("a\r\nSet-Cookie: x").is_some());
        assert!(unfit_for_cookie("").is_some());
        assert!(unfit_for_cookie(&"a".repeat(MAX_TOKEN_BYTES + 1)).is_some());
    }

    #[test]
    fn the_session_is_read_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; grace_session=grace_tok; x=y"),
        );
        assert_eq!(session_token(&headers), Some("grace_tok"));
        headers.insert(header::COOKIE, HeaderValue::from_static("grace_session="));
        assert_eq!(session_token(&headers), None);
    }

    #[test]
    fn forms_from_other_sites_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(cross_site(&headers).is_none());
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(cross_site(&headers).is_none());
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&headers).is_some());
        headers.remove("sec-fetch-site");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&headers).is_some());
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(cross_site(&headers).is_some());
    }

    #[test]
    fn after_sign_in_only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/runs/r-1")), "/runs/r-1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }
}
