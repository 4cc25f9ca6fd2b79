//! From the engine's failures to [`ExecError`], naming the operation and what it acted on.
//!
//! | engine answer                              | [`ExecError`]       |
//! |--------------------------------------------|---------------------|
//! | 404                                        | `NotFound`          |
//! | 409 (and Podman's 500 equivalents, below)  | `Conflict`          |
//! | 400                                        | `InvalidArgument`   |
//! | 401, 403 (an authorization plugin)         | `Refused`           |
//! | 503                                        | `Unavailable`       |
//! | socket missing, connection refused or lost | `Unavailable`       |
//! | no answer within the call's time limit     | `TimedOut`          |
//! | anything else                              | `Other`             |
//!
//! Podman's compatibility API answers 500 where Docker answers 409 for a name already in use and
//! for a container in the wrong state ("container state improper"): those are conflicts too, so
//! a playbook sees the same error on either engine.

use std::time::Duration;

use bollard::errors::Error as EngineError;
use grace_executor::ExecError;

use crate::settings::Host;

/// Maps `error`, which happened while trying to `what` (e.g. "restart container `web-1`") on
/// the engine at `host`.
pub(crate) fn map(host: &Host, what: &str, error: EngineError) -> ExecError {
    match error {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => from_status(what, status_code, &message),
        EngineError::SocketNotFoundError(path) => ExecError::Unavailable(format!(
            "cannot {what}: the engine socket `{path}` does not exist (is the engine running?)"
        )),
        EngineError::RequestTimeoutError => ExecError::TimedOut(format!(
            "cannot {what}: the engine at `{host}` did not answer in time"
        )),
        EngineError::HyperLegacyError { .. }
        | EngineError::HyperResponseError { .. }
        | EngineError::IOError { .. } => ExecError::Unavailable(format!(
            "cannot {what}: the engine at `{host}` is unreachable ({error})"
        )),
        EngineError::JsonDataError { .. }
        | EngineError::JsonSerdeError { .. }
        | EngineError::APIVersionParseError {} => ExecError::Other(format!(
            "cannot {what}: the engine at `{host}` sent an answer that is not the Docker API's ({error})"
        )),
        other => ExecError::Other(format!("cannot {what}: {other}")),
    }
}

/// The error for a call that got no complete answer within `limit`.
pub(crate) fn timed_out(host: &Host, what: &str, limit: Duration) -> ExecError {
    ExecError::TimedOut(format!(
        "cannot {what}: the engine at `{host}` did not answer within {}",
        humantime::format_duration(limit)
    ))
}

fn from_status(what: &str, status: u16, message: &str) -> ExecError {
    let message = message.trim();
    match status {
        404 => ExecError::NotFound(format!("cannot {what}: not found ({message})")),
        409 => ExecError::Conflict(format!("cannot {what}: {message}")),
        500 if podman_conflict(message) => ExecError::Conflict(format!("cannot {what}: {message}")),
        400 => ExecError::InvalidArgument(format!("cannot {what}: {message}")),
        401 | 403 => ExecError::Refused(format!(
            "cannot {what}: the engine refused it ({status}: {message})"
        )),
        503 => ExecError::Unavailable(format!(
            "cannot {what}: the engine is unavailable ({message})"
        )),
        _ => ExecError::Other(format!(
            "cannot {what}: the engine answered {status} ({message})"
        )),
    }
}

/// Podman's wording for what Docker reports as 409.
fn podman_conflict(message: &str) -> bool {
    message.contains("is already in use") || message.contains("container state improper")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> EngineError {
        EngineError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    fn host() -> Host {
        Host::Unix("/run/podman.sock".to_owned())
    }

    #[test]
    fn statuses_map_to_their_variants_naming_the_operation() {
        let what = "restart container `web-1`";
        let e = map(&host(), what, server(404, "No such container: web-1"));
        assert_eq!(
            e,
            ExecError::NotFound(
                "cannot restart container `web-1`: not found (No such container: web-1)".to_owned()
            )
        );
        assert!(matches!(
            map(&host(), what, server(409, "in use")),
            ExecError::Conflict(_)
        ));
        assert!(matches!(
            map(&host(), what, server(400, "bad parameter")),
            ExecError::InvalidArgument(_)
        ));
        assert!(matches!(
            map(&host(), what, server(403, "authorization denied by plugin")),
            ExecError::Refused(_)
        ));
        assert!(matches!(
            map(&host(), what, server(503, "busy")),
            ExecError::Unavailable(_)
        ));
        let e = map(&host(), what, server(500, "boom"));
        assert_eq!(
            e,
            ExecError::Other(
                "cannot restart container `web-1`: the engine answered 500 (boom)".to_owned()
            )
        );
    }

    #[test]
    fn podmans_500_conflicts_are_conflicts() {
        let in_use = "container create: creating container storage: the container name \"web-2\" is already in use by 03d0d0aa. You have to remove that container to be able to reuse that name: that name is already in use";
        assert!(matches!(
            map(&host(), "create container `web-2`", server(500, in_use)),
            ExecError::Conflict(_)
        ));
        let improper = "cannot remove container 03d0 as it is running - running or paused containers cannot be removed without force: container state improper";
        assert!(matches!(
            map(&host(), "remove container `web-2`", server(500, improper)),
            ExecError::Conflict(_)
        ));
    }

    #[test]
    fn transport_failures_are_transient() {
        let e = map(
            &host(),
            "list containers",
            EngineError::SocketNotFoundError("/run/podman.sock".to_owned()),
        );
        assert!(matches!(&e, ExecError::Unavailable(m) if m.contains("`/run/podman.sock`")));
        let e = map(&host(), "list containers", EngineError::RequestTimeoutError);
        assert!(matches!(e, ExecError::TimedOut(_)));
        let e = map(
            &host(),
            "list containers",
            EngineError::IOError {
                err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            },
        );
        assert!(e.is_transient(), "{e:?}");
        let e = timed_out(&host(), "stop container `a`", Duration::from_secs(12));
        assert_eq!(
            e,
            ExecError::TimedOut(
                "cannot stop container `a`: the engine at `unix:///run/podman.sock` did not answer within 12s"
                    .to_owned()
            )
        );
    }
}
