//! The serve loop: what protects the server from its clients' connections before any handler
//! runs.
//!
//! - HTTP/1.1 with keep-alive (what `axum::serve` speaks without its `http2` feature);
//! - a client must send a request's headers within `header_read_timeout`, also on an idle
//!   keep-alive connection: a slowloris client trickling header bytes, or a connection left
//!   open with nothing sent, is cut off and its connection closed;
//! - at most `max_connections` connections at once: beyond that, a new connection gets a
//!   `503 overloaded` JSON error with `Retry-After` and is closed, so a flood cannot exhaust
//!   memory or file descriptors while the connections already accepted (a health check among
//!   them) are served. The `503` is written once the request's head has arrived (at most
//!   [`REFUSAL_HEAD_BYTES`], within [`REFUSAL_HEAD_TIMEOUT`]), never before: an HTTP client
//!   that receives an answer before it has sent its request takes it for a broken connection
//!   (hyper reports a transport error, curl a reset), not for the `503` it is;
//! - graceful shutdown: stop accepting, let the requests in flight finish, at most
//!   [`SHUTDOWN_GRACE`];
//! - with TLS, each connection's handshake runs in its own task and must finish within
//!   `header_read_timeout` too (a client that opens a connection and never completes the
//!   handshake is a slowloris one step earlier), holding a connection slot meanwhile; a
//!   connection whose first byte is not a TLS handshake record gets a plain `400` saying to use
//!   `https://`, rather than bytes a plain-HTTP client cannot read; a connection over the limit
//!   gets its `503` after a handshake of at most one second.
//!
//! Request bodies (size, read deadline) are the API's business: see `api::body`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How long requests in flight may take to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Connections over the limit being answered `503` at once; beyond, they are closed unanswered.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// The limits the serve loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// Longest wait for a request's headers, on a new or an idle keep-alive connection.
    pub header_read_timeout: Duration,
}

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How long a connection over the limit may take over its handshake before it is closed
/// unanswered.
const REFUSAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a connection over the limit may take to send its request's head before it is
/// answered `503` anyway.
const REFUSAL_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// How much of a refused request's head is read, at most, while waiting for its end.
const REFUSAL_HEAD_BYTES: usize = 16 * 1024;

/// Serves `router` on `listener` within `limits` until `shutdown` resolves: over TLS with
/// `tls` (see [`crate::tls`]), in plain HTTP without.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals are bounded too: past this many being answered at once, a connection over the
    // limit is closed at once, so a flood cannot exhaust tasks or file descriptors.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was accepted:
                    // the listener itself is fine; pause so a persistent error does not spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                // One warning per burst of refusals, not one per connection.
                let first = refusals.available_permits() == MAX_REFUSALS_IN_FLIGHT - 1;
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => refuse(stream, limits.max_connections, first).await,
                        Some(tls) => {
                            let handshake = handshake(&tls, stream);
                            if let Ok(Some(stream)) =
                                tokio::time::timeout(REFUSAL_HANDSHAKE_TIMEOUT, handshake).await
                            {
                                refuse(stream, limits.max_connections, first).await;
                            }
                        }
                    }
                    drop(permit);
                });
            }
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let Some(tls) = &tls else {
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    // Header timeouts, resets, malformed requests: the client's problem, not ours.
                    tracing::debug!("connection closed: {e}");
                }
                drop(slot);
            });
            continue;
        };
        // The handshake runs in the connection's task, so a slow one holds up no one else.
        let (tls, http, watcher) = (tls.clone(), http.clone(), graceful.watcher());
        tokio::spawn(async move {
            let handshake = handshake(&tls, stream);
            match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                Ok(Some(stream)) => {
                    let connection =
                        watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                    if let Err(e) = connection.await {
                        tracing::debug!("connection closed: {e}");
                    }
                }
                Ok(None) => {}
                Err(_) => tracing::debug!(
                    "connection closed: no TLS handshake within {:?}",
                    limits.header_read_timeout
                ),
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}: closing anyway");
        }
    }
    Ok(())
}

/// The server's side of a TLS handshake; `None` when it failed (logged at debug: a client's
/// problem) or the client spoke plain HTTP (answered `400` and closed).
async fn handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(1) => {
            plain_http_refusal(stream).await;
            return None;
        }
        _ => return None,
    }
    match tls.accept(stream).await {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::debug!("TLS handshake failed: {e}");
            None
        }
    }
}

/// The answer to plain HTTP on the TLS port: a `400` a plain-HTTP client can read, saying what
/// to do.
async fn plain_http_refusal(stream: TcpStream) {
    let body = serde_json::json!({ "error": {
        "code": "tls_required",
        "message": "this server speaks HTTPS only: use an `https://` URL",
    }})
    .to_string();
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    answer_and_close(stream, answer).await;
}

/// The answer to a connection over the limit: a `503` written once the request's head has
/// arrived (or after [`REFUSAL_HEAD_TIMEOUT`]), then a short drain of what the client sent, so
/// that closing does not reset the connection before the client has read the answer.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    max_connections: usize,
    log: bool,
) {
    if log {
        tracing::warn!(
            max_connections,
            "connection refused: the server is at max_connections"
        );
    }
    let body = serde_json::json!({ "error": {
        "code": "overloaded",
        "message": format!(
            "the server is serving its limit of {max_connections} connections (max_connections); retry later"
        ),
    }})
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_HEAD_TIMEOUT, read_head(&mut stream)).await;
    answer_and_close(stream, answer).await;
}

/// Reads until the end of a request's head (`\r\n\r\n`), the end of the stream, an error, or
/// [`REFUSAL_HEAD_BYTES`]: what is read is discarded.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut buffer = vec![0u8; REFUSAL_HEAD_BYTES];
    let mut filled = 0;
    while filled < buffer.len() {
        match stream.read(&mut buffer[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // The end marker may straddle two reads: search from 3 bytes before the new ones.
                let from = filled.saturating_sub(3);
                filled += n;
                if buffer[from..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                    return;
                }
            }
        }
    }
}

/// Writes `answer`, then drains what the client sent (at most 64 KiB, within one second), so
/// that closing does not reset the connection before the client has read the answer.
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: String) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}
