//! The one error type of the HTTP API: a status, a stable code, a message for humans and, when
//! one field is to blame, its name. Internal errors are logged, never shown.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after: Option<u32>,
    /// Set on `401`s: the response carries `WWW-Authenticate: Bearer`.
    challenge: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            challenge: false,
        }
    }

    /// 401: no token, or one that is unknown, expired or revoked.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        e.challenge = true;
        e
    }

    /// The message, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `401`: a vendor's request whose signature (`field`, a header) does not hold. No
    /// bearer challenge: the vendor signs, it does not sign in.
    pub fn bad_signature(field: &'static str, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", message);
        e.field = Some(field.to_owned());
        e
    }

    /// 403: the token lacks the scope the route needs (the message names it).
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403: the route has no entry in the auth table ([`crate::auth::routes`]), so nobody may
    /// call it.
    pub fn route_without_scope(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "route_without_scope", message)
    }

    /// 400: one field is wrong.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message);
        e.field = Some(field.into());
        e
    }

    /// 400: the body as a whole is wrong.
    pub fn body(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405.
    pub fn method(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 413: one field is larger than the server accepts.
    pub fn too_large_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = ApiError::too_large(message);
        e.field = Some(field.into());
        e
    }

    /// 415.
    pub fn media_type(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 429: the event queue cannot take the batch; nothing was stored.
    pub fn queue_full(batch: usize, depth: usize, capacity: usize) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!(
                "the event queue holds {depth} of {capacity} events and cannot take {batch} more; nothing was stored, retry later"
            ),
        );
        e.retry_after = Some(1);
        e
    }

    /// 408: the client did not send its request body in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
    }

    /// 503: the server is at a limit for now (the message names it); retry after a second.
    pub fn overloaded(message: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
        e.retry_after = Some(1);
        e
    }

    /// `503`: a part of the cluster the request needs does not answer (a replica down or cut
    /// off).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: logged with its detail; the client sees only that something failed.
    pub fn internal(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::error!("internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// A manifest error, naming its field.
    pub fn from_manifest(e: grace_engine::ManifestError) -> Self {
        match e {
            grace_engine::ManifestError::Invalid { field, message } => {
                ApiError::field(format!("manifest.{field}"), format!("{field}: {message}"))
            }
            other => ApiError::field("manifest", other.to_string()),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = (self.status, Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"grace\""),
            );
        }
        response
    }
}
