//! The client of `grace serve`'s HTTP API (`docs/api.md`): one blocking call per request, and
//! the server's answers as the commands use them.
//!
//! Every failure becomes a [`ClientError`], and [`ClientError::into_exit`] is the one place that
//! decides what the user reads and the exit code: the server's own message for what it refused
//! (naming the field), advice to retry when it is busy, and "is `grace serve` running?" when
//! nothing answers.
//!
//! An `https://` server is verified against the system's roots plus `--ca-cert`
//! (`GRACE_CA_CERT`): there is no way to skip verification, and a certificate that does not
//! verify says which of the two to fix.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::anyhow;
use grace_engine::run::{Failure, Outcome, TimelineEntry};
use grace_engine::{Kind, TriggerEvent};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::commands::Exit;

/// Where `grace serve` listens unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take: uploads compile the component, cancels wait for the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest `--ca-cert` file read.
const MAX_CA_CERT_BYTES: u64 = 1024 * 1024;

/// The `--ca-cert` of this invocation, set once by `commands::run`.
static CA_CERT: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Remembers `--ca-cert` for every client this process makes.
pub fn set_ca_cert(path: Option<PathBuf>) {
    let _ = CA_CERT.set(path);
}

/// Why a request did not give the answer the command wanted.
#[derive(Debug)]
pub enum ClientError {
    /// The server's address is not a usable `http://` URL.
    BadUrl(String),
    /// Nothing accepted the connection (refused, unknown host, unreachable).
    Unreachable {
        /// The base URL.
        server: String,
    },
    /// The connection was made but the exchange failed (timeout, reset, garbage).
    Transport {
        /// The base URL.
        server: String,
        /// What happened.
        detail: String,
    },
    /// The server answered with an error status.
    Api(ApiError),
    /// The CLI's token could not be read (an explicit `--token-file` that is missing).
    Credentials(String),
    /// `--ca-cert` could not be read or holds no certificate.
    CaCert(String),
    /// The TLS handshake failed: the server's certificate did not verify, or it does not speak
    /// TLS.
    Tls {
        /// The base URL.
        server: String,
        /// What happened, and what to do.
        detail: String,
    },
    /// The answer's body is larger than the caller allows.
    TooLarge {
        /// `GET /v1/ledger/entries`, …
        request: String,
        /// The most bytes the caller reads.
        limit: usize,
    },
    /// The server answered successfully, but not with what this `grace` expects.
    Unexpected {
        /// `GET /v1/runs`, …
        request: String,
        /// Why it could not be read.
        detail: String,
    },
}

/// An error answer of the server: its status and, when the body is the API's error shape, its
/// code, message and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `invalid_field`, `queue_full`, … (empty when the body was not the API's error shape).
    pub code: String,
    /// For people.
    pub message: String,
    /// The one field to blame, if any.
    pub field: Option<String>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Reads an error answer: the API's `{"error": {code, message, field?}}`, or whatever else
    /// came back (a proxy's page, an empty body), shortened.
    pub fn from_response(status: u16, retry_after: Option<u64>, body: &[u8]) -> ApiError {
        #[derive(Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            code: String,
            message: String,
            #[serde(default)]
            field: Option<String>,
        }
        match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { error }) => ApiError {
                status,
                code: error.code,
                message: error.message,
                field: error.field,
                retry_after,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let reason = StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error");
                let message = if text.is_empty() {
                    format!("HTTP {status} {reason}")
                } else {
                    let short: String = text.chars().take(200).collect();
                    format!("HTTP {status} {reason}: {short}")
                };
                ApiError {
                    status,
                    code: String::new(),
                    message,
                    field: None,
                    retry_after,
                }
            }
        }
    }

    /// The message, naming the field when the message itself does not.
    pub fn describe(&self) -> String {
        match &self.field {
            Some(field) if !self.message.contains(field.as_str()) => {
                format!("`{field}`: {}", self.message)
            }
            _ => self.message.clone(),
        }
    }
}

impl ClientError {
    /// What the user reads, and the exit code: 2 for what the server refused as bad input, 3
    /// when GRACE could not do its job (unreachable, busy, failing, or an answer not understood).
    pub fn into_exit(self) -> Exit {
        match self {
            ClientError::BadUrl(message) => Exit::Invalid(anyhow!(message)),
            ClientError::Unreachable { server } => Exit::Internal(anyhow!(
                "cannot reach the GRACE server at {server}: is `grace serve` running? (pass `--server URL` or set `GRACE_SERVER`)"
            )),
            ClientError::Transport { server, detail } => Exit::Internal(anyhow!(
                "the exchange with the GRACE server at {server} failed: {detail}"
            )),
            ClientError::Api(e) if e.status == 429 => {
                let wait = e
                    .retry_after
                    .map_or_else(|| "a moment".to_owned(), |s| format!("{s} s"));
                Exit::Internal(anyhow!(
                    "the server is busy: {}; retry in {wait}",
                    e.describe()
                ))
            }
            ClientError::Credentials(message) | ClientError::CaCert(message) => {
                Exit::Invalid(anyhow!(message))
            }
            // Like an unreachable server: nothing was exchanged, so nothing was refused.
            ClientError::Tls { server, detail } => Exit::Internal(anyhow!(
                "no secure connection to the GRACE server at {server}: {detail}"
            )),
            ClientError::Api(e) if e.status == 401 => Exit::Invalid(anyhow!(
                "the server refused the request: {}; run `grace init` (before `grace serve`, on the server's data directory) or set GRACE_TOKEN",
                e.describe()
            )),
            ClientError::Api(e) if e.status == 403 => Exit::Invalid(anyhow!(
                "the server refused the request: {}; use a token with that scope (an admin makes one with `grace tokens create`) in GRACE_TOKEN or --token-file",
                e.describe()
            )),
            ClientError::Api(e) if (400..500).contains(&e.status) => {
                Exit::Invalid(anyhow!(e.describe()))
            }
            ClientError::Api(e) => Exit::Internal(anyhow!(
                "the server failed (HTTP {}): {}",
                e.status,
                e.describe()
            )),
            ClientError::TooLarge { request, limit } => Exit::Internal(anyhow!(
                "the server's answer to `{request}` is larger than {limit} bytes, the most this grace reads"
            )),
            ClientError::Unexpected { request, detail } => Exit::Internal(anyhow!(
                "the server's answer to `{request}` is not what this grace understands ({detail}): are the server and the CLI the same version?"
            )),
        }
    }
}

/// A connection to one server. Calls block; each builds its URL from path segments, so names and
/// ids are percent-encoded.
pub struct Client {
    base: Url,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    /// The bearer token sent with every request (see [`crate::credentials`]).
    token: Option<String>,
}

/// A successful answer: its status and its JSON body (`Null` when empty).
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// The body as `T`.
    pub fn decode<T: DeserializeOwned>(self, request: &str) -> Result<T, ClientError> {
        serde_json::from_value(self.body).map_err(|e| ClientError::Unexpected {
            request: request.to_owned(),
            detail: e.to_string(),
        })
    }
}

/// The multipart body of a playbook upload.
pub struct Upload {
    /// The `playbook.toml` text.
    pub manifest: String,
    /// The component's bytes.
    pub component: Vec<u8>,
    /// The component's file name, for the part's `filename`.
    pub file_name: String,
    /// The signature file's text (`grace playbook sign`), if any.
    pub signature: Option<String>,
}

impl Client {
    /// A client of the server at `server` (`http://host:port`, optionally with a path prefix).
    pub fn new(server: &str) -> Result<Client, ClientError> {
        let base = parse_server(server)?;
        let token =
            crate::credentials::token().map_err(|e| ClientError::Credentials(format!("{e:#}")))?;
        let ca_cert = CA_CERT.get().cloned().flatten();
        let tls = tls_config(base.scheme() == "https", ca_cert.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("grace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                server: server.to_owned(),
                detail: format!("cannot set up the HTTP client: {e}"),
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Transport {
                server: server.to_owned(),
                detail: format!("cannot start the async runtime: {e}"),
            })?;
        Ok(Client {
            base,
            http,
            runtime,
            token,
        })
    }

    /// The server's base URL, as the user gave it.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` under the base, with `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// `GET`, decoded.
    pub fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = self.url(segments, query);
        let request = format!("GET {}", url.path());
        self.send(self.http.get(url))?.decode(&request)
    }

    /// `GET` with the body kept as JSON (for `--json` output).
    pub fn get_value(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        Ok(self.send(self.http.get(self.url(segments, query)))?.body)
    }

    /// `GET`, its body as bytes, reading at most `max_bytes` of it ([`ClientError::TooLarge`]
    /// beyond): for answers from a server the caller does not trust, or that are not JSON.
    pub fn get_bounded(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        max_bytes: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let url = self.url(segments, query);
        let request = format!("GET {}", url.path());
        let builder = self.http.get(url);
        let builder = match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        };
        let (status, retry_after, bytes) = self.runtime.block_on(async {
            let mut response = builder.send().await.map_err(|e| self.classify(&e))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(&e))? {
                if bytes.len() + chunk.len() > max_bytes {
                    return Err(ClientError::TooLarge {
                        request: request.clone(),
                        limit: max_bytes,
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, ClientError>((status, retry_after, bytes))
        })?;
        if !status.is_success() {
            return Err(ClientError::Api(ApiError::from_response(
                status.as_u16(),
                retry_after,
                &bytes,
            )));
        }
        Ok(bytes)
    }

    /// `POST` with a JSON body (or none).
    pub fn post(&self, segments: &[&str], body: Option<&Value>) -> Result<Answer, ClientError> {
        let mut request = self.http.request(Method::POST, self.url(segments, &[]));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request)
    }

    /// `PUT` with a JSON body.
    pub fn put(&self, segments: &[&str], body: &Value) -> Result<Answer, ClientError> {
        self.send(
            self.http
                .request(Method::PUT, self.url(segments, &[]))
                .json(body),
        )
    }

    /// `DELETE`.
    pub fn delete(&self, segments: &[&str]) -> Result<Answer, ClientError> {
        self.send(self.http.delete(self.url(segments, &[])))
    }

    /// `POST /v1/playbooks` with the parts `manifest` and `component`.
    pub fn upload(&self, upload: Upload) -> Result<Answer, ClientError> {
        let manifest = reqwest::multipart::Part::text(upload.manifest)
            .file_name("playbook.toml")
            .mime_str("text/plain; charset=utf-8")
            .map_err(|e| self.transport(&e))?;
        let component = reqwest::multipart::Part::bytes(upload.component)
            .file_name(upload.file_name)
            .mime_str("application/wasm")
            .map_err(|e| self.transport(&e))?;
        let mut form = reqwest::multipart::Form::new()
            .part("manifest", manifest)
            .part("component", component);
        if let Some(signature) = upload.signature {
            form = form.text("signature", signature);
        }
        self.send(
            self.http
                .post(self.url(&["v1", "playbooks"], &[]))
                .multipart(form),
        )
    }

    fn transport(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Transport {
            server: self.server().to_owned(),
            detail: error_chain(e),
        }
    }

    /// Sends a request; a success status gives its JSON body, anything else a [`ClientError`].
    fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let (status, retry_after, bytes) = self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| self.classify(&e))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let bytes = response.bytes().await.map_err(|e| self.classify(&e))?;
            Ok::<_, ClientError>((status, retry_after, bytes))
        })?;
        if !status.is_success() {
            return Err(ClientError::Api(ApiError::from_response(
                status.as_u16(),
                retry_after,
                &bytes,
            )));
        }
        // Values first: a duplicated key (the last one wins) must not fail the whole answer.
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
                request: format!("HTTP {status}"),
                detail: format!("not JSON: {e}"),
            })?
        };
        Ok(Answer { status, body })
    }

    fn classify(&self, e: &reqwest::Error) -> ClientError {
        // Before `is_connect`: a failed handshake is a connect error to reqwest.
        if let Some(tls) = tls_error(e) {
            return ClientError::Tls {
                server: self.server().to_owned(),
                detail: explain_tls(tls, self.base.host_str().unwrap_or_default()),
            };
        }
        if e.is_connect() {
            ClientError::Unreachable {
                server: self.server().to_owned(),
            }
        } else if e.is_timeout() {
            ClientError::Transport {
                server: self.server().to_owned(),
                detail: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
            }
        } else {
            self.transport(e)
        }
    }
}

/// The rustls configuration of every client: for an `https://` server, the system's roots (those
/// that parse; an unreadable system store is not an error, `--ca-cert` may be all there is)
/// plus `--ca-cert`'s certificates; for `http://`, no roots at all, so a redirect to some
/// `https://` URL fails rather than trusting anything.
fn tls_config(https: bool, ca_cert: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("a system root certificate could not be read: {e}");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_cert {
            for cert in read_ca_cert(path)? {
                roots.add(cert).map_err(|e| {
                    ClientError::CaCert(format!(
                        "`--ca-cert`: `{}` holds a certificate that cannot be a root: {e}",
                        path.display()
                    ))
                })?;
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(grace_server::tls::provider())
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| ClientError::CaCert(format!("cannot set up TLS: {e}")))
}

/// The certificates of a `--ca-cert` file: PEM, at least one, the file at most
/// [`MAX_CA_CERT_BYTES`].
fn read_ca_cert(
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, ClientError> {
    use rustls_pki_types::pem::PemObject as _;
    use std::io::Read as _;
    let bad = |why: String| ClientError::CaCert(format!("`--ca-cert`: `{}` {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_CA_CERT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_CA_CERT_BYTES {
        return Err(bad(format!("is larger than {MAX_CA_CERT_BYTES} bytes")));
    }
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no `CERTIFICATE` block".into()));
    }
    Ok(certs)
}

/// The rustls error under a failed request, if the TLS handshake is what failed. rustls' error
/// reaches reqwest inside an `io::Error`, whose `source()` skips it: look inside those too.
fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An `io::Error` wrapping another error (possibly another `io::Error`): go inside.
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            next = Some(inner);
            continue;
        }
        next = error.source();
    }
    None
}

/// A failed handshake in words, with what to do.
fn explain_tls(e: &rustls::Error, host: &str) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate is not signed by an authority this grace trusts ({e}): pass its CA certificate with `--ca-cert FILE` or GRACE_CA_CERT (for a pair made by `grace init --tls`, its `tls/cert.pem`)"
        ),
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server's certificate is not valid for `{host}` ({e}): use a name it was made for in `--server`, or make it for this one (`grace init --tls --tls-san {host}`)"
        ),
        Error::InvalidCertificate(_) => {
            format!("the server's certificate was refused: {e}")
        }
        _ => format!(
            "the TLS handshake failed ({e}): is the server serving HTTPS (`grace serve --tls-cert`)?"
        ),
    }
}

/// The base URL, checked: `http` or `https`, with a host.
fn parse_server(server: &str) -> Result<Url, ClientError> {
    let url = Url::parse(server).map_err(|e| {
        ClientError::BadUrl(format!(
            "`--server`: `{server}` is not a URL like `{DEFAULT_SERVER}` ({e})"
        ))
    })?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => {}
        "http" | "https" => {
            return Err(ClientError::BadUrl(format!(
                "`--server`: `{server}` names no host"
            )));
        }
        other => {
            return Err(ClientError::BadUrl(format!(
                "`--server`: `{server}` uses `{other}`; expected a URL like `{DEFAULT_SERVER}`"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::BadUrl(format!(
            "`--server`: `{server}` must not carry a query or a fragment"
        )));
    }
    Ok(url)
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

// --- what the server answers (see `docs/api.md`); unknown fields are ignored -------------------

/// `PlaybookSummary`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlaybookSummary {
    /// Name.
    pub name: String,
    /// Playbook or collector.
    pub kind: Kind,
    /// Whether its triggers are live.
    pub enabled: bool,
    /// The version that runs.
    pub active_version: String,
    /// The active version's digest.
    pub digest: String,
    /// How many versions are stored.
    pub version_count: usize,
    /// `<event_type> on <resource>`.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Who signed the active version (`None`: unsigned).
    #[serde(default)]
    pub signed_by: Option<SignedBy>,
}

/// Who signed a version: a trust root and its key.
#[derive(Debug, Clone, Deserialize)]
pub struct SignedBy {
    /// The trust root's name on the server.
    pub trust_root: String,
    /// The key, `<name>+<key id>`.
    pub key: String,
}

impl std::fmt::Display for SignedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.trust_root, self.key)
    }
}

/// `PlaybookDetail`: the summary with every version.
#[derive(Debug, Clone, Deserialize)]
pub struct PlaybookDetail {
    /// Name.
    pub name: String,
    /// Playbook or collector.
    pub kind: Kind,
    /// Whether its triggers are live.
    pub enabled: bool,
    /// The version that runs.
    pub active_version: String,
    /// The active version's digest.
    pub digest: String,
    /// `<event_type> on <resource>`.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Who signed the active version.
    #[serde(default)]
    pub signed_by: Option<SignedBy>,
    /// Every version, oldest first.
    pub versions: Vec<PlaybookVersion>,
}

/// `PlaybookVersion`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlaybookVersion {
    /// Version.
    pub version: String,
    /// Digest.
    pub digest: String,
    /// Upload time, ms since the epoch.
    pub uploaded_at: u64,
    /// Who signed it (`None`: unsigned).
    #[serde(default)]
    pub signed_by: Option<SignedBy>,
}

/// `202` to `POST /v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Accepted {
    /// Events stored.
    pub accepted: u64,
    /// The first one's sequence number.
    pub first_seq: u64,
    /// The last one's.
    pub last_seq: u64,
}

/// `RunSummary`.
#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    /// Id.
    pub id: String,
    /// Playbook name.
    pub playbook: String,
    /// Its version.
    pub version: String,
    /// Resource.
    pub resource: String,
    /// Run state, kebab-case.
    pub state: String,
    /// Attempts started.
    pub attempts: u32,
    /// When the trigger fired, ms.
    pub created_at: u64,
    /// The outcome's summary or the failure's message.
    pub summary: Option<String>,
}

/// `Run`.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// Id.
    pub id: String,
    /// Playbook name.
    pub playbook: String,
    /// Its version.
    pub version: String,
    /// Its digest.
    pub digest: String,
    /// Run state, kebab-case.
    pub state: String,
    /// Attempts started.
    pub attempts: u32,
    /// Which trigger fired.
    pub trigger: usize,
    /// The event that fired it.
    pub event: TriggerEvent,
    /// When the trigger fired, ms.
    pub created_at: u64,
    /// When the first attempt started.
    pub started_at: Option<u64>,
    /// When it reached a final state.
    pub finished_at: Option<u64>,
    /// The playbook's outcome.
    pub outcome: Option<Outcome>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// The approval it waits (or waited) for.
    #[serde(default)]
    pub approval: Option<String>,
    /// The last attempt's host calls: the first page of them.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// How many host calls the last attempt made in all (the server pages the timeline).
    #[serde(default)]
    pub timeline_total: Option<usize>,
    /// Every attempt.
    #[serde(default)]
    pub attempts_log: Vec<Attempt>,
    /// What says its signal cleared.
    #[serde(default)]
    pub watch: Option<Watch>,
    /// Whether its signal cleared, and what it cost, once judged.
    #[serde(default)]
    pub recovery: Option<Recovery>,
}

/// What says a run's signal cleared.
#[derive(Debug, Clone, Deserialize)]
pub struct Watch {
    /// The clearing events' type.
    pub event_type: String,
    /// The trigger's condition, false once cleared.
    #[serde(default)]
    pub unless: Option<String>,
    /// By when, event time (ms).
    pub until: u64,
}

/// A run's outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct Recovery {
    /// `cleared`, `not-cleared`, `unjudged`.
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// What the run's changes added.
    pub cost: Cost,
}

/// What a run's changes added.
#[derive(Debug, Clone, Deserialize)]
pub struct Cost {
    /// Instances.
    pub capacity_added: i64,
    /// Instance-minutes, up to the judgement.
    pub capacity_minutes: f64,
}

/// One attempt of a run.
#[derive(Debug, Clone, Deserialize)]
pub struct Attempt {
    /// From 1.
    pub attempt: u32,
    /// How it ended.
    pub state: String,
    /// Wall clock, ms.
    pub started_at: u64,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// Host calls it made.
    pub host_calls: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(exit: Exit) -> (u8, String) {
        match exit {
            Exit::Ok => (0, String::new()),
            Exit::Failed => (1, String::new()),
            Exit::Stale => (4, String::new()),
            Exit::Invalid(e) => (2, format!("{e:#}")),
            Exit::Internal(e) => (3, format!("{e:#}")),
        }
    }

    fn api(status: u16, body: &str, retry_after: Option<u64>) -> ClientError {
        ClientError::Api(ApiError::from_response(
            status,
            retry_after,
            body.as_bytes(),
        ))
    }

    #[test]
    fn a_refused_field_exits_2_with_the_servers_message_naming_the_field() {
        let e = api(
            400,
            r#"{"error":{"code":"invalid_field","message":"must not be empty","field":"events[3].event_type"}}"#,
            None,
        );
        let (code, text) = message(e.into_exit());
        assert_eq!(code, 2);
        assert_eq!(text, "`events[3].event_type`: must not be empty");
    }

    #[test]
    fn a_message_that_already_names_its_field_is_not_repeated() {
        let e = api(
            400,
            r#"{"error":{"code":"invalid_field","message":"event field `event_type`: must not be empty","field":"event_type"}}"#,
            None,
        );
        assert_eq!(
            message(e.into_exit()).1,
            "event field `event_type`: must not be empty"
        );
    }

    #[test]
    fn not_found_and_conflict_exit_2() {
        for status in [404, 409, 413, 415] {
            let e = api(
                status,
                r#"{"error":{"code":"x","message":"no run `r1`"}}"#,
                None,
            );
            assert_eq!(message(e.into_exit()), (2, "no run `r1`".to_owned()));
        }
    }

    #[test]
    fn refused_credentials_exit_2_saying_how_to_get_a_token() {
        let e = api(
            401,
            r#"{"error":{"code":"unauthorized","message":"this request needs a token"}}"#,
            None,
        );
        let (code, text) = message(e.into_exit());
        assert_eq!(code, 2);
        assert!(
            text.contains("run `grace init`") && text.contains("GRACE_TOKEN"),
            "{text}"
        );
        let e = api(
            403,
            r#"{"error":{"code":"forbidden","message":"`POST /v1/events` needs the `operate` scope"}}"#,
            None,
        );
        let (code, text) = message(e.into_exit());
        assert_eq!(code, 2);
        assert!(
            text.contains("`operate` scope") && text.contains("GRACE_TOKEN"),
            "{text}"
        );
    }

    #[test]
    fn a_full_queue_exits_3_with_advice_to_retry() {
        let e = api(
            429,
            r#"{"error":{"code":"queue_full","message":"the event queue is full"}}"#,
            Some(2),
        );
        let (code, text) = message(e.into_exit());
        assert_eq!(code, 3);
        assert!(text.contains("retry in 2 s"), "{text}");
    }

    #[test]
    fn server_failures_exit_3_even_without_the_error_shape() {
        let (code, text) = message(api(500, "", None).into_exit());
        assert_eq!(code, 3);
        assert!(text.contains("HTTP 500 Internal Server Error"), "{text}");
        let (code, text) = message(api(502, "<html>bad gateway</html>", None).into_exit());
        assert_eq!(code, 3);
        assert!(text.contains("bad gateway"), "{text}");
    }

    #[test]
    fn an_unreachable_server_exits_3_asking_whether_grace_serve_runs() {
        let e = ClientError::Unreachable {
            server: "http://127.0.0.1:9".into(),
        };
        let (code, text) = message(e.into_exit());
        assert_eq!(code, 3);
        assert!(
            text.starts_with(
                "cannot reach the GRACE server at http://127.0.0.1:9: is `grace serve` running?"
            ),
            "{text}"
        );
    }

    #[test]
    fn server_urls_must_be_http_or_https_with_a_host() {
        assert!(parse_server("http://127.0.0.1:7070").is_ok());
        assert!(parse_server("http://localhost:7070/grace/").is_ok());
        assert!(parse_server("https://grace.example").is_ok());
        for bad in ["127.0.0.1:7070", "https://", "ftp://x", "http://h/?a=1"] {
            match parse_server(bad) {
                Err(ClientError::BadUrl(m)) => assert!(m.contains("--server"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_ca_cert_file_without_certificates_exits_2_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let (code, text) = message(tls_config(true, Some(&empty)).unwrap_err().into_exit());
        assert_eq!(code, 2);
        assert!(
            text.contains("`--ca-cert`") && text.contains("ca.pem"),
            "{text}"
        );
        let missing = dir.path().join("missing.pem");
        let (code, text) = message(tls_config(true, Some(&missing)).unwrap_err().into_exit());
        assert_eq!(code, 2);
        assert!(text.contains("cannot be read"), "{text}");
    }

    #[test]
    fn an_unknown_certificate_authority_says_to_pass_ca_cert() {
        let e = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let text = explain_tls(&e, "127.0.0.1");
        assert!(
            text.contains("--ca-cert") && text.contains("GRACE_CA_CERT"),
            "{text}"
        );
    }

    #[test]
    fn urls_encode_names_and_keep_a_path_prefix() {
        let client = Client::new("http://127.0.0.1:7070/grace/").unwrap();
        let url = client.url(
            &["v1", "playbooks", "a b/c"],
            &[("state", "timed-out".into())],
        );
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:7070/grace/v1/playbooks/a%20b%2Fc?state=timed-out"
        );
        let client = Client::new("http://127.0.0.1:7070").unwrap();
        assert_eq!(
            client.url(&["v1", "runs"], &[]).as_str(),
            "http://127.0.0.1:7070/v1/runs"
        );
        assert_eq!(client.server(), "http://127.0.0.1:7070");
    }

    #[test]
    fn a_playbook_detail_with_the_versions_key_twice_reads_the_list() {
        // The server flattens the summary (whose `versions` is a count) into the detail.
        let body = br#"{"name":"p","kind":"playbook","enabled":true,"active_version":"0.2.0",
            "digest":"sha256:ab","versions":2,"triggers":["a on b"],
            "versions":[{"name":"p","version":"0.1.0","kind":"playbook","digest":"sha256:aa","uploaded_at":1,"manifest":""},
                        {"name":"p","version":"0.2.0","kind":"playbook","digest":"sha256:ab","uploaded_at":2,"manifest":""}]}"#;
        let value: Value = serde_json::from_slice(body).unwrap();
        let answer = Answer {
            status: StatusCode::OK,
            body: value,
        };
        let detail: PlaybookDetail = answer.decode("GET /v1/playbooks/p").unwrap();
        assert_eq!(detail.versions.len(), 2);
        assert_eq!(detail.versions[1].version, "0.2.0");
    }
}
