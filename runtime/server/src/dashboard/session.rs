//! Who is looking at the dashboard, and the guards on everything they send.
//!
//! **Sign-in.** A person signs in with a token the API accepts (a GRACE token, or the JWT of
//! the configured OIDC issuer). The token goes into a cookie that is `HttpOnly` (no script reads
//! it), `SameSite=Strict` (no other site's page sends it), and, when the server speaks TLS,
//! `Secure` and named `__Host-grace_session` (so no sibling domain can plant one). The cookie
//! holds when it was issued and a MAC over that and the token ([`Sessions::open`]): the server
//! itself ends a session after [`SESSION_SECS`], whatever the browser keeps. Every request
//! authenticates the token again, by the same [`Authenticator`] as the API: a token revoked or
//! expired stops working on the next page, and the scopes are the token's own. A read token
//! sees; it cannot act. The MAC key is kept in the data directory (`dashboard.key`, 0600), so
//! sessions outlive a restart.
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
//! - its body is read here, within [`MAX_FORM_BYTES`] and the server's `body_read_timeout`,
//!   before any handler runs (signing in included);
//! - but for signing in and out, the form must carry the session's CSRF token
//!   ([`Sessions::csrf`]): an HMAC of the session cookie, so it cannot be guessed and is
//!   worthless for another session. A handler cannot forget the check.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{KeyInit, Mac};
use maud::{Markup, html};

use crate::auth::{Access, Audit, Authenticator, Caller, routes};

use super::view;

/// The session cookie's name over plain HTTP (loopback).
pub const COOKIE: &str = "grace_session";
/// Its name under TLS: `__Host-` makes the browser refuse one set by another host or path.
pub const TLS_COOKIE: &str = "__Host-grace_session";
/// How long a sign-in lasts (12 hours), unless the token expires first.
pub const SESSION_SECS: u64 = 12 * 3600;
/// The largest form body read.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The longest token a cookie may hold (browsers keep about 4 KB per cookie).
pub const MAX_TOKEN_BYTES: usize = 3800;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why the dashboard's key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a key.
    #[error("{0}: not a dashboard key (32 bytes); remove it to make a new one")]
    Malformed(String),
    /// No randomness.
    #[error("no randomness for a new dashboard key: {0}")]
    Random(getrandom::Error),
}

/// The dashboard's sessions: the MAC key of cookies and CSRF tokens, and whether the server
/// speaks TLS.
pub struct Sessions {
    key: [u8; 32],
    secure: bool,
}

impl Sessions {
    /// Sessions under `key`, of a server speaking TLS when `secure`.
    pub fn new(key: [u8; 32], secure: bool) -> Sessions {
        Sessions { key, secure }
    }

    /// The key kept at `path`, made (0600) when missing.
    pub fn key_at(path: &std::path::Path) -> Result<[u8; 32], KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => bytes
                .try_into()
                .map_err(|_| KeyError::Malformed(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(KeyError::Random)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(io)?;
                std::io::Write::write_all(&mut file, &key).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    fn mac(&self, purpose: &[u8], parts: &[&[u8]]) -> HmacSha256 {
        // HMAC takes keys of any length: `new_from_slice` cannot fail here.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose);
        for part in parts {
            mac.update(b"\0");
            mac.update(part);
        }
        mac
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure { TLS_COOKIE } else { COOKIE }
    }

    /// The CSRF token of `session` (the cookie's value; empty without one).
    pub fn csrf(&self, session: &str) -> String {
        hex::encode(
            self.mac(b"grace-dashboard-csrf", &[session.as_bytes()])
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `presented` is `session`'s CSRF token (compared in constant time).
    pub fn csrf_matches(&self, session: &str, presented: &str) -> bool {
        match hex::decode(presented) {
            Ok(bytes) => self
                .mac(b"grace-dashboard-csrf", &[session.as_bytes()])
                .verify_slice(&bytes)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// The cookie's value for `token` signed in at `now_secs`: `<issued>.<mac>.<token>`.
    pub fn seal(&self, token: &str, now_secs: u64) -> String {
        let issued = now_secs.to_string();
        let mac = self.mac(
            b"grace-dashboard-session",
            &[issued.as_bytes(), token.as_bytes()],
        );
        format!(
            "{issued}.{}.{token}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The token of a cookie value this server sealed less than [`SESSION_SECS`] ago.
    pub fn open<'a>(&self, value: &'a str, now_secs: u64) -> Option<&'a str> {
        let (issued, rest) = value.split_once('.')?;
        let (mac, token) = rest.split_once('.')?;
        let at: u64 = issued.parse().ok()?;
        let fresh = at <= now_secs.saturating_add(60) && now_secs.saturating_sub(at) < SESSION_SECS;
        let mac = hex::decode(mac).ok()?;
        self.mac(
            b"grace-dashboard-session",
            &[issued.as_bytes(), token.as_bytes()],
        )
        .verify_slice(&mac)
        .ok()?;
        fresh.then_some(token)
    }

    /// The `Set-Cookie` value signing `token` in.
    pub fn cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let value = self.seal(token, now_secs());
        HeaderValue::from_str(&format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}",
            self.cookie_name()
        ))
        .unwrap_or_else(|_| self.cleared())
    }

    /// The `Set-Cookie` value signing out.
    pub fn cleared(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
            self.cookie_name()
        ))
        .unwrap_or(HeaderValue::from_static("grace_session=; Max-Age=0"))
    }

    /// The session cookie's value, if any.
    pub fn cookie_value<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }
}

fn now_secs() -> u64 {
    grace_engine::event::system_now_millis() / 1000
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
    /// Where refusals are recorded, as the API's are.
    pub audit: Audit,
    /// How long a form's body may take to arrive (`body_read_timeout`).
    pub body_read_timeout: Duration,
}

/// The dashboard's middleware: same-origin checks on every `POST` and its form read within its
/// bound and deadline, then the route's entry in [`routes::ROUTES`], the session's token
/// authenticated, the scope checked, the CSRF token checked, and the [`Viewer`] handed on.
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
    let Some(access) = routes::required(&method, &pattern) else {
        tracing::error!(%method, route = %pattern, "a dashboard route without an entry in the auth table was called: refused");
        return refusal(
            None,
            StatusCode::FORBIDDEN,
            "Refused",
            "this page has no scope in the server's route table",
        );
    };
    // Read before anything else, signing in included: a slow or endless body holds no
    // connection longer than the deadline.
    let (request, presented_csrf) = if posted {
        match read_form(&guard, request).await {
            Ok(read) => read,
            Err(response) => return response,
        }
    } else {
        (request, String::new())
    };
    let needed = match access {
        Access::Public => return next.run(request).await,
        Access::Scope(scope) => scope,
    };
    let cookie = guard
        .sessions
        .cookie_value(request.headers())
        .map(str::to_owned);
    let token = cookie
        .as_deref()
        .and_then(|c| guard.sessions.open(c, now_secs()));
    // A bearer header (scripts, tests) is taken as the API takes it; otherwise the session's
    // token is presented as one.
    let bearer = request.headers().get(header::AUTHORIZATION).cloned();
    let mut headers = HeaderMap::new();
    if let Some(value) = &bearer {
        headers.insert(header::AUTHORIZATION, value.clone());
    } else if let Some(token) = token
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    let caller = match guard.auth.authenticate(&headers, needed).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%method, route = %pattern, "dashboard request not signed in: {e}");
            return sign_in_again(&guard.sessions, &request, cookie.is_some());
        }
    };
    let viewer = Viewer {
        csrf: guard.sessions.csrf(cookie.as_deref().unwrap_or("")),
        signed_in: bearer.is_none() && token.is_some(),
        caller,
    };
    if !viewer.caller.scopes.allows(needed) {
        tracing::warn!(caller = %viewer.caller.name, %method, route = %pattern, "dashboard request refused: needs `{needed}`");
        guard
            .audit
            .denied(&viewer.caller, &method, &pattern, needed);
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
    if posted
        && !guard
            .sessions
            .csrf_matches(cookie.as_deref().unwrap_or(""), &presented_csrf)
    {
        tracing::warn!(caller = %viewer.caller.name, route = %pattern, "dashboard form refused: no valid CSRF token");
        return refusal(
            Some(&viewer),
            StatusCode::FORBIDDEN,
            "Refused",
            "the form's security token is missing or stale: reload the page and try again",
        );
    }
    let mut request = request;
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

/// The request with its form read (within [`MAX_FORM_BYTES`] and the body deadline), and the
/// form's `csrf` field.
async fn read_form(guard: &Guard, request: Request) -> Result<(Request, String), Response> {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(
        guard.body_read_timeout,
        axum::body::to_bytes(body, MAX_FORM_BYTES),
    )
    .await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Err(refusal(
                None,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Refused",
                &format!("a form is at most {MAX_FORM_BYTES} bytes"),
            ));
        }
        Err(_) => {
            return Err(refusal(
                None,
                StatusCode::REQUEST_TIMEOUT,
                "Refused",
                "the form took too long to arrive",
            ));
        }
    };
    let csrf = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Ok((Request::from_parts(parts, Body::from(bytes)), csrf))
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
/// Only the characters the dashboard's own links use are kept: browsers drop tabs and line
/// breaks from URLs and read `\\` as `/`, so `/\t/evil.example` would be another site.
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 2048
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.~%?=&:#+".contains(&b)) =>
        {
            p
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sessions(secure: bool) -> Sessions {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).unwrap();
        Sessions::new(key, secure)
    }

    #[test]
    fn a_csrf_token_is_good_for_its_own_session_only() {
        let sessions = sessions(false);
        let alice = sessions.csrf("1.ab.grace_alice");
        assert!(sessions.csrf_matches("1.ab.grace_alice", &alice));
        assert!(!sessions.csrf_matches("1.ab.grace_bob", &alice));
        assert!(!sessions.csrf_matches("1.ab.grace_alice", ""));
        assert!(!sessions.csrf_matches("1.ab.grace_alice", "zz"));
        assert!(!self::sessions(false).csrf_matches("1.ab.grace_alice", &alice));
    }

    #[test]
    fn a_session_is_the_servers_own_and_ends_after_twelve_hours() {
        let sessions = sessions(false);
        let sealed = sessions.seal("grace_alice", 1_000_000);
        assert_eq!(sessions.open(&sealed, 1_000_000), Some("grace_alice"));
        assert_eq!(
            sessions.open(&sealed, 1_000_000 + SESSION_SECS - 1),
            Some("grace_alice")
        );
        assert_eq!(
            sessions.open(&sealed, 1_000_000 + SESSION_SECS),
            None,
            "expired"
        );
        assert_eq!(
            sessions.open(&sealed, 1_000_000 - 3600),
            None,
            "from the future"
        );
        // Made up, or with its time or token changed: refused.
        assert_eq!(sessions.open("1000000.00.grace_alice", 1_000_000), None);
        let later = sealed.replacen("1000000", "1003600", 1);
        assert_eq!(sessions.open(&later, 1_003_600), None);
        let other = sealed.replace("grace_alice", "grace_admin");
        assert_eq!(sessions.open(&other, 1_000_000), None);
        assert_eq!(self::sessions(false).open(&sealed, 1_000_000), None);
    }

    #[test]
    fn the_cookie_is_http_only_same_site_strict_and_secure_under_tls() {
        let plain = sessions(false).cookie("grace_x");
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("grace_session="), "{plain}");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = sessions(true).cookie("grace_x");
        let tls = tls.to_str().unwrap();
        assert!(
            tls.starts_with("__Host-grace_session=") && tls.ends_with("; Secure"),
            "{tls}"
        );
    }

    #[test]
    fn the_key_is_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dashboard.key");
        let made = Sessions::key_at(&path).unwrap();
        assert_eq!(Sessions::key_at(&path).unwrap(), made);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            Sessions::key_at(&path),
            Err(KeyError::Malformed(_))
        ));
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
        let sessions = sessions(false);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; grace_session=1.ab.grace_tok; x=y"),
        );
        assert_eq!(sessions.cookie_value(&headers), Some("1.ab.grace_tok"));
        headers.insert(header::COOKIE, HeaderValue::from_static("grace_session="));
        assert_eq!(sessions.cookie_value(&headers), None);
        // Under TLS only the `__Host-` cookie counts.
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("grace_session=planted"),
        );
        assert_eq!(self::sessions(true).cookie_value(&headers), None);
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
        assert_eq!(
            local_path(Some("/runs?state=failed&before=1%3Ax")),
            "/runs?state=failed&before=1%3Ax"
        );
        for hostile in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "/%09/evil.example\u{0}",
            "evil.example",
        ] {
            assert_eq!(local_path(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
