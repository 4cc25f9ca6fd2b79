//! Failures as the API server reports them: an HTTP status with a `v1` `Status` object whose
//! `reason`, `message` and `details` read like the real server's, so clients (kube, kubectl) map
//! them the way they would against a cluster.
//!
//! The constructors without a type parameter speak of deployments; the `*_of::<K>` ones of the
//! objects of kind `K` (services, endpoint slices), named as the real server names them
//! (`services "web" not found`, `endpointslices.discovery.k8s.io "web-x" not found`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// The resource of `K` as messages name it: `services`, `deployments.apps`.
fn qualified_resource<K: Resource>() -> String {
    if K::GROUP.is_empty() {
        K::URL_PATH_SEGMENT.to_owned()
    } else {
        format!("{}.{}", K::URL_PATH_SEGMENT, K::GROUP)
    }
}

/// The kind of `K` as `Invalid` messages name it: `Service`, `EndpointSlice.discovery.k8s.io`.
fn qualified_kind<K: Resource>() -> String {
    if K::GROUP.is_empty() {
        K::KIND.to_owned()
    } else {
        format!("{}.{}", K::KIND, K::GROUP)
    }
}

/// A failed request: what the client receives as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    // Boxed: errors travel through every `Result` of the server, and details are rare.
    details: Option<Box<StatusDetails>>,
}

/// The `details` of a failure about the object `name` of kind `K`; the core group is omitted,
/// as the real server omits empty fields.
fn details_of<K: Resource>(name: &str, causes: Option<Vec<StatusCause>>) -> Box<StatusDetails> {
    Box::new(StatusDetails {
        name: Some(name.to_owned()),
        group: Some(K::GROUP.to_owned()).filter(|g| !g.is_empty()),
        kind: Some(K::URL_PATH_SEGMENT.to_owned()),
        causes,
        ..StatusDetails::default()
    })
}

fn deployment_details(name: &str, causes: Option<Vec<StatusCause>>) -> Box<StatusDetails> {
    details_of::<Deployment>(name, causes)
}

fn cause(field: &str, problem: &str) -> Vec<StatusCause> {
    vec![StatusCause {
        field: Some(field.to_owned()),
        message: Some(problem.to_owned()),
        reason: Some("FieldValueInvalid".to_owned()),
    }]
}

impl ApiError {
    /// `404 NotFound` for the deployment `name`.
    pub fn not_found(name: &str) -> ApiError {
        ApiError::not_found_of::<Deployment>(name)
    }

    /// `404 NotFound` for the object `name` of kind `K`.
    pub(crate) fn not_found_of<K: Resource>(name: &str) -> ApiError {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", qualified_resource::<K>()),
            details: Some(details_of::<K>(name, None)),
        }
    }

    /// `404 NotFound` for a path this server does not serve.
    pub fn no_such_path() -> ApiError {
        ApiError {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: "the server could not find the requested resource".to_owned(),
            details: None,
        }
    }

    /// `405 MethodNotAllowed`.
    pub fn method_not_allowed() -> ApiError {
        ApiError {
            code: StatusCode::METHOD_NOT_ALLOWED,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".to_owned(),
            details: None,
        }
    }

    /// `409 Conflict`: the write named a `resourceVersion` that is no longer current.
    pub fn conflict(name: &str) -> ApiError {
        ApiError::conflict_of::<Deployment>(name)
    }

    /// `409 Conflict` for the object `name` of kind `K` (see [`ApiError::conflict`]).
    pub(crate) fn conflict_of<K: Resource>(name: &str) -> ApiError {
        ApiError {
            code: StatusCode::CONFLICT,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified_resource::<K>()
            ),
            details: Some(details_of::<K>(name, None)),
        }
    }

    /// `409 AlreadyExists`.
    pub fn already_exists(name: &str) -> ApiError {
        ApiError::already_exists_of::<Deployment>(name)
    }

    /// `409 AlreadyExists` for the object `name` of kind `K`.
    pub(crate) fn already_exists_of<K: Resource>(name: &str) -> ApiError {
        ApiError {
            code: StatusCode::CONFLICT,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", qualified_resource::<K>()),
            details: Some(details_of::<K>(name, None)),
        }
    }

    /// `422 Invalid`: `field` of the object `kind` (`Deployment.apps`, `Scale.autoscaling`)
    /// named `name` is wrong.
    pub fn invalid(kind: &str, name: &str, field: &str, problem: &str) -> ApiError {
        ApiError::invalid_with(
            kind,
            deployment_details(name, Some(cause(field, problem))),
            name,
            field,
            problem,
        )
    }

    /// `422 Invalid`: `field` of the object `name` of kind `K` is wrong.
    pub(crate) fn invalid_of<K: Resource>(name: &str, field: &str, problem: &str) -> ApiError {
        let details = details_of::<K>(name, Some(cause(field, problem)));
        ApiError::invalid_with(&qualified_kind::<K>(), details, name, field, problem)
    }

    fn invalid_with(
        kind: &str,
        details: Box<StatusDetails>,
        name: &str,
        field: &str,
        problem: &str,
    ) -> ApiError {
        ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: format!("{kind} \"{name}\" is invalid: {field}: {problem}"),
            details: Some(details),
        }
    }

    /// `400 BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// `415 UnsupportedMediaType` for a body of `content_type`.
    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError {
            code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got `{content_type}`)"
            ),
            details: None,
        }
    }

    /// `410 Expired`: a watch asked for history older than what is kept.
    pub fn expired(asked: u64, oldest: u64) -> ApiError {
        ApiError {
            code: StatusCode::GONE,
            reason: "Expired",
            message: format!("too old resource version: {asked} ({oldest})"),
            details: None,
        }
    }

    /// An injected failure with HTTP status `code` (500, 503, 429, ...).
    pub fn injected(code: StatusCode) -> ApiError {
        let reason = match code {
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            StatusCode::GATEWAY_TIMEOUT => "Timeout",
            _ => "InternalError",
        };
        ApiError {
            code,
            reason,
            message: format!("injected failure: {code}"),
            details: None,
        }
    }

    /// `503 ServiceUnavailable`: the server is stopping.
    pub fn shutting_down() -> ApiError {
        ApiError {
            code: StatusCode::SERVICE_UNAVAILABLE,
            reason: "ServiceUnavailable",
            message: "the test API server is shutting down".to_owned(),
            details: None,
        }
    }

    /// The HTTP status.
    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// The `Status` object the client receives.
    pub fn status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code.as_u16())),
            details: self.details.as_deref().cloned(),
            message: Some(self.message.clone()),
            reason: Some(self.reason.to_owned()),
            status: Some("Failure".to_owned()),
            ..Status::default()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::routes::json(self.code, &self.status())
    }
}
