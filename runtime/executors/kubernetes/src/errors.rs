//! From kube's errors to [`ExecError`], naming the operation that failed.
//!
//! | what happened | `ExecError` |
//! | --- | --- |
//! | `404` | `NotFound` |
//! | `409` (a stale `resourceVersion`, or the object exists) | `Conflict` |
//! | `400`, `422` | `InvalidArgument` |
//! | `504`, the server's own `Timeout` reason, our time limit | `TimedOut` |
//! | `429`, other `5xx`, cannot connect, credentials that cannot be obtained | `Unavailable` |
//! | `401`, `403` (RBAC) | `Refused` |
//! | an answer that is not what the API promises, anything else | `Other` |

use std::error::Error as _;
use std::time::Duration;

use grace_executor::ExecError;

/// Connecting to a cluster failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The settings are inconsistent.
    #[error("{0}")]
    Settings(String),
    /// The kubeconfig could not be read or used.
    #[error("cannot use the kubeconfig{}: {message}", path.as_ref().map(|p| format!(" `{}`", p.display())).unwrap_or_default())]
    Kubeconfig {
        /// The file, when one was named.
        path: Option<std::path::PathBuf>,
        /// Why.
        message: String,
    },
    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error(
        "no Kubernetes configuration found (set `kubernetes.kubeconfig`, KUBECONFIG, ~/.kube/config, or run in a pod with a service account): {0}"
    )]
    NotConfigured(String),
    /// The API server URL is not usable.
    #[error("`{url}` is not an API server URL: {message}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why.
        message: String,
    },
    /// The HTTP client could not be built (TLS material, proxy, credentials).
    #[error("cannot build the Kubernetes client: {0}")]
    Client(String),
}

/// An [`ExecError`] for `error`, met while doing `operation` (e.g. "scale deployment
/// `shop/checkout`") against the API server at `server`.
pub(crate) fn from_kube(operation: &str, server: &str, error: &kube::Error) -> ExecError {
    match error {
        kube::Error::Api(status) => from_status(operation, status),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            if is_timeout(error) {
                ExecError::TimedOut(format!(
                    "{operation}: the Kubernetes API at {server} timed out: {}",
                    chain(error)
                ))
            } else {
                ExecError::Unavailable(format!(
                    "{operation}: cannot reach the Kubernetes API at {server}: {}",
                    chain(error)
                ))
            }
        }
        kube::Error::Auth(e) => ExecError::Unavailable(format!(
            "{operation}: cannot obtain credentials for the Kubernetes API at {server}: {e}"
        )),
        kube::Error::SerdeError(e) => ExecError::Other(format!(
            "{operation}: the Kubernetes API at {server} answered something that is not the expected object: {e}"
        )),
        other => ExecError::Other(format!("{operation}: {}", chain(other))),
    }
}

fn from_status(operation: &str, status: &kube::core::Status) -> ExecError {
    let detail = if status.reason.is_empty() {
        format!("{} ({})", status.message, status.code)
    } else {
        format!("{} ({} {})", status.message, status.code, status.reason)
    };
    let message = format!("{operation}: {detail}");
    match status.code {
        404 => ExecError::NotFound(message),
        409 => ExecError::Conflict(message),
        400 | 422 => ExecError::InvalidArgument(message),
        504 => ExecError::TimedOut(message),
        _ if status.reason == "Timeout" => ExecError::TimedOut(message),
        429 | 500..=599 => ExecError::Unavailable(message),
        401 | 403 => ExecError::Refused(format!(
            "{message}; GRACE needs get/list/watch/patch on deployments and get/update/patch on deployments/scale"
        )),
        _ => ExecError::Other(message),
    }
}

/// The error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn is_timeout(error: &kube::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error for a request that did not finish within `limit`.
pub(crate) fn timed_out(operation: &str, server: &str, limit: Duration) -> ExecError {
    ExecError::TimedOut(format!(
        "{operation}: the Kubernetes API at {server} did not answer within {}",
        humantime::format_duration(limit)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.to_owned(),
            message: "told by the server".to_owned(),
            ..kube::core::Status::default()
        }))
    }

    fn mapped(code: u16, reason: &str) -> ExecError {
        from_kube(
            "scale deployment `shop/checkout`",
            "http://k",
            &api_error(code, reason),
        )
    }

    #[test]
    fn api_statuses_map_to_the_matching_variant() {
        assert!(matches!(mapped(404, "NotFound"), ExecError::NotFound(_)));
        assert!(matches!(mapped(409, "Conflict"), ExecError::Conflict(_)));
        assert!(matches!(
            mapped(422, "Invalid"),
            ExecError::InvalidArgument(_)
        ));
        assert!(matches!(
            mapped(400, "BadRequest"),
            ExecError::InvalidArgument(_)
        ));
        assert!(matches!(
            mapped(429, "TooManyRequests"),
            ExecError::Unavailable(_)
        ));
        assert!(matches!(
            mapped(500, "InternalError"),
            ExecError::Unavailable(_)
        ));
        assert!(matches!(
            mapped(503, "ServiceUnavailable"),
            ExecError::Unavailable(_)
        ));
        assert!(matches!(mapped(504, "Timeout"), ExecError::TimedOut(_)));
        assert!(matches!(mapped(403, "Forbidden"), ExecError::Refused(_)));
        assert!(matches!(mapped(401, "Unauthorized"), ExecError::Refused(_)));
    }

    #[test]
    fn messages_name_the_operation_and_the_server_message() {
        let message = mapped(404, "NotFound").to_string();
        assert!(
            message.contains("scale deployment `shop/checkout`"),
            "{message}"
        );
        assert!(message.contains("told by the server"), "{message}");
    }

    #[test]
    fn forbidden_says_which_permissions_are_needed() {
        let message = mapped(403, "Forbidden").to_string();
        assert!(message.contains("deployments/scale"), "{message}");
    }
}
