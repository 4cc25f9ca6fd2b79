//! Request bodies: how large, how slow, and of what type, checked once for every route.
//!
//! The guard reads a route's whole body before its handler runs:
//! - a `Content-Length` over the route's limit is refused at once, unread (`413`, naming the
//!   limit and its setting); so is a body that grows past it while being read (chunked);
//! - the body must arrive within `body_read_timeout` (`408`): a client trickling its body
//!   cannot hold a connection and a buffer for ever;
//! - JSON routes check the `Content-Type` with [`require_json`] (`415`).
//!
//! The limit is `max_upload_bytes` for playbook uploads and `max_body_bytes` for everything
//! else. Connections and headers are the serve loop's business (`crate::listener`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::state::BodyLimits;
use crate::error::ApiError;

/// Uploads being read or handled at once: each may hold `max_upload_bytes` (and copies of it)
/// in memory, so their number is bounded apart from the connections'.
const MAX_CONCURRENT_UPLOADS: usize = 4;
static UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_UPLOADS);

fn is_upload(method: &Method, path: &str) -> bool {
    method == Method::POST && path.trim_end_matches('/') == "/v1/playbooks"
}

/// The largest body `method` `path` takes, and the setting that says so. Reads and deletes take
/// none: no reader can make the server buffer a body.
fn limit_for(limits: &BodyLimits, method: &Method, path: &str) -> (usize, &'static str) {
    if is_upload(method, path) {
        (limits.max_upload_bytes, "max_upload_bytes")
    } else if matches!(*method, Method::GET | Method::HEAD | Method::DELETE) {
        (0, "GET, HEAD and DELETE requests take no body")
    } else if crate::notify::webhooks::is_public(path) {
        // Signed by a vendor, not authenticated by a token: anyone may send one, so the body
        // read before the signature is checked stays small. Every vendor's delivery fits.
        (
            crate::notify::webhooks::MAX_PUBLIC_BODY_BYTES,
            "the vendors' webhook limit (256 KiB)",
        )
    } else {
        (limits.max_body_bytes, "max_body_bytes")
    }
}

fn too_large(limit: usize, setting: &str) -> ApiError {
    ApiError::too_large(format!(
        "the body is larger than the server's limit of {limit} bytes (`{setting}`)"
    ))
}

/// Middleware: reads the body within its limit and deadline, then calls the handler with it.
pub async fn guard(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let (limit, setting) = limit_for(&limits, request.method(), request.uri().path());
    let _upload = if is_upload(request.method(), request.uri().path()) {
        match UPLOADS.try_acquire() {
            Ok(permit) => Some(permit),
            Err(_) => {
                return ApiError::overloaded(format!(
                    "{MAX_CONCURRENT_UPLOADS} uploads are in progress; retry shortly"
                ))
                .into_response();
            }
        }
    } else {
        None
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit, setting).into_response();
    }
    let (parts, body) = request.into_parts();
    let deadline = limits.body_read_timeout;
    let bytes = match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(limit, setting).into_response();
        }
        Ok(Err(e)) => {
            return ApiError::body(format!("the body could not be read: {e}")).into_response();
        }
        Err(_) => {
            tracing::warn!(path = %parts.uri.path(), "request body not received within {deadline:?}");
            return ApiError::timeout(format!(
                "the request body was not received within {} (`body_read_timeout`)",
                humantime::format_duration(deadline)
            ))
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A JSON route's check of `Content-Type`: `application/json` or a `+json` type, or none at all;
/// anything else (such as the form type `curl --data` sends by default) is refused, naming what
/// was sent.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::media_type(format!(
            "the body must be JSON (`Content-Type: application/json`), not `{text}`"
        )))
    }
}
