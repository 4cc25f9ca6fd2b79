//! How failures of AWS calls become [`ExecError`]s, for Auto Scaling and CloudWatch alike.
//!
//! Two layers: [`from_sdk_error`] sorts the SDK's failure kinds (no connection, no answer in
//! time, an answer that is not AWS's, a service error), and [`from_service_error`], a pure
//! function over the service's error code and message, sorts service errors:
//!
//! | error code | [`ExecError`] |
//! |---|---|
//! | `Throttling`, `ThrottlingException`, `RequestLimitExceeded`, `TooManyRequestsException` | `Unavailable` ("throttled") |
//! | `ValidationError` saying "not found", `ResourceNotFound`, `ResourceNotFoundException` | `NotFound` |
//! | `ScalingActivityInProgress`, `ResourceContention`, `ResourceInUse` | `Conflict` |
//! | `ValidationError`, `InvalidParameterValue`, `InvalidParameterCombination`, `MissingParameter`, `InvalidNextToken`, `InvalidAction` | `InvalidArgument` |
//! | `ServiceUnavailable`, `InternalFailure`, `InternalError`, `InternalServiceError` | `Unavailable` |
//! | `AccessDenied`, `AccessDeniedException`, `UnauthorizedOperation`, `InvalidClientTokenId`, `UnrecognizedClientException`, `SignatureDoesNotMatch`, `ExpiredToken` | `Refused` |
//! | anything else (quotas, codes not listed) | `Other` |
//!
//! Auto Scaling reports a missing group on updates as `ValidationError` with the message
//! "AutoScalingGroup name not found", hence the message test.

use std::time::Duration;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use grace_executor::ExecError;

/// The SDK's error for an operation of either client (both share the smithy runtime).
pub(crate) use aws_sdk_autoscaling::error::SdkError;

/// Maps a service error (`code`, `message`) of the call described by `what`
/// (e.g. "UpdateAutoScalingGroup of group `web`").
pub(crate) fn from_service_error(
    code: Option<&str>,
    message: Option<&str>,
    what: &str,
) -> ExecError {
    let message = message.unwrap_or("no message");
    let code = code.unwrap_or("");
    match code {
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => {
            ExecError::Unavailable(format!("{what}: throttled by AWS ({code}: {message})"))
        }
        "ResourceNotFound" | "ResourceNotFoundException" => {
            ExecError::NotFound(format!("{what}: {message}"))
        }
        "ValidationError" if message.to_ascii_lowercase().contains("not found") => {
            ExecError::NotFound(format!("{what}: {message}"))
        }
        "ScalingActivityInProgress" | "ResourceContention" | "ResourceInUse" => {
            ExecError::Conflict(format!("{what}: {code}: {message}"))
        }
        "ValidationError"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "InvalidNextToken"
        | "InvalidAction" => ExecError::InvalidArgument(format!("{what}: {message}")),
        "ServiceUnavailable"
        | "InternalFailure"
        | "InternalError"
        | "InternalServiceError"
        | "InternalServiceFault" => {
            ExecError::Unavailable(format!("{what}: AWS failed ({code}: {message})"))
        }
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "SignatureDoesNotMatch"
        | "ExpiredToken" => ExecError::Refused(format!("{what}: {code}: {message}")),
        "" => ExecError::Other(format!(
            "{what}: AWS answered an error without a code: {message}"
        )),
        _ => ExecError::Other(format!("{what}: {code}: {message}")),
    }
}

/// Maps any failure of the call described by `what`, bounded by `call_timeout`.
pub(crate) fn from_sdk_error<E>(error: SdkError<E>, what: &str, call_timeout: Duration) -> ExecError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let within = humantime::format_duration(call_timeout);
    match &error {
        SdkError::ServiceError(service) if service.err().code().is_some() => {
            let e = service.err();
            from_service_error(e.code(), e.message(), what)
        }
        // An answer without an AWS error code: a proxy, a load balancer, something else.
        SdkError::ServiceError(service) => {
            not_aws(what, service.raw().status().as_u16(), &chain(&error))
        }
        SdkError::ResponseError(response) => {
            not_aws(what, response.raw().status().as_u16(), &chain(&error))
        }
        SdkError::TimeoutError(_) => {
            ExecError::TimedOut(format!("{what}: no answer within {within}"))
        }
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ExecError::TimedOut(format!(
            "{what}: no answer within {within} ({})",
            chain(&error)
        )),
        SdkError::DispatchFailure(_) => {
            ExecError::Unavailable(format!("{what}: cannot reach AWS ({})", chain(&error)))
        }
        // The request could not even be built: bad input, no credentials, no region.
        _ => ExecError::Other(format!(
            "{what}: the call could not be made ({})",
            chain(&error)
        )),
    }
}

/// An answer that is not AWS's: a server error is worth retrying, anything else is not.
fn not_aws(what: &str, status: u16, detail: &str) -> ExecError {
    let message =
        format!("{what}: the endpoint answered HTTP {status}, not an AWS response ({detail})");
    if (500..600).contains(&status) {
        ExecError::Unavailable(message)
    } else {
        ExecError::Other(message)
    }
}

/// An error and its sources, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        // Some layers repeat their source's message; say it once.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(code: &str, message: &str) -> ExecError {
        from_service_error(Some(code), Some(message), "SomeCall of group `web`")
    }

    #[test]
    fn throttling_is_unavailable_and_says_throttled() {
        for code in ["Throttling", "RequestLimitExceeded", "ThrottlingException"] {
            let e = map(code, "Rate exceeded");
            let ExecError::Unavailable(m) = &e else {
                panic!("{code}: {e:?}")
            };
            assert!(m.contains("throttled"), "{m}");
            assert!(m.contains("group `web`"), "{m}");
            assert!(e.is_transient());
        }
    }

    #[test]
    fn a_missing_group_is_not_found() {
        assert!(matches!(
            map("ValidationError", "AutoScalingGroup name not found - null"),
            ExecError::NotFound(m) if m.contains("group `web`")
        ));
        assert!(matches!(
            map("ResourceNotFound", "no such dashboard"),
            ExecError::NotFound(_)
        ));
    }

    #[test]
    fn scaling_in_progress_and_contention_are_conflicts() {
        for code in ["ScalingActivityInProgress", "ResourceContention"] {
            let e = map(code, "busy");
            assert!(
                matches!(&e, ExecError::Conflict(m) if m.contains(code)),
                "{e:?}"
            );
            assert!(e.is_transient());
        }
    }

    #[test]
    fn validation_errors_are_invalid_arguments_with_aws_message() {
        let e = map(
            "ValidationError",
            "Desired capacity:11 must be between the specified min size:1 and max size:10",
        );
        assert!(
            matches!(&e, ExecError::InvalidArgument(m) if m.contains("max size:10")),
            "{e:?}"
        );
        assert!(!e.is_transient());
        assert!(matches!(
            map("InvalidParameterValue", "The parameter Period must be..."),
            ExecError::InvalidArgument(_)
        ));
    }

    #[test]
    fn server_failures_are_unavailable_refusals_refused_and_the_rest_other() {
        assert!(matches!(
            map("ServiceUnavailable", "try later"),
            ExecError::Unavailable(_)
        ));
        assert!(matches!(
            map("InternalFailure", "oops"),
            ExecError::Unavailable(_)
        ));
        let e = map("AccessDenied", "User is not authorized");
        assert!(
            matches!(&e, ExecError::Refused(m) if m.contains("AccessDenied") && m.contains("not authorized")),
            "{e:?}"
        );
        assert!(matches!(map("LimitExceeded", "quota"), ExecError::Other(_)));
        assert!(matches!(
            from_service_error(None, None, "x"),
            ExecError::Other(m) if m.contains("without a code")
        ));
    }
}
