//! Podman answers the Docker API does not have, made readable.
//!
//! Podman's Docker-compatible API lets one of its own container states through: `stopped`, the
//! state of a container that exited and that Podman has not cleaned up yet (usually for under a
//! second). Docker has no such state, and bollard, whose models list Docker's states only,
//! cannot read an answer holding it: a container list (podman#28359, fixed in Podman 6.0) or
//! an inspect answer (podman#17728, fixed in Podman 5.6) fails as a whole, as soon as any
//! container of the engine is being cleaned up. Podman's fix reports `exited`; so does GRACE,
//! for the Podman versions that do not (4.x in Debian 12, say).
//!
//! bollard keeps the answer in its error (its `json_data_content` feature); [`readable`] reads
//! it again with Podman's states as Podman's fix reports them. Any other unreadable answer
//! stays an error, mapped as usual ([`crate::error`]).

use bollard::errors::Error as EngineError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Podman's states that are not the Docker API's, with what Podman reports for them since it
/// maps them.
const PODMAN_STATES: [(&str, &str); 1] = [("stopped", "exited")];

/// Where an answer holds container states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum States {
    /// `GET /containers/json`: an array of summaries, each with `State`.
    List,
    /// `GET /containers/{id}/json`: one object with `State.Status`.
    Inspect,
}

/// `answer`, or when bollard could not read it only because it holds one of Podman's own
/// states, the answer read again with those states as Docker's (see the module documentation).
pub(crate) fn readable<T: DeserializeOwned>(
    answer: Result<T, EngineError>,
    states: States,
) -> Result<T, EngineError> {
    let error = match answer {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let EngineError::JsonDataError {
        message, contents, ..
    } = &error
    else {
        return Err(error);
    };
    if !names_podman_state(message) {
        return Err(error);
    }
    let Ok(mut value) = serde_json::from_str::<Value>(contents) else {
        return Err(error);
    };
    match states {
        States::List => {
            if let Value::Array(summaries) = &mut value {
                for summary in summaries {
                    as_docker(summary.get_mut("State"));
                }
            }
        }
        States::Inspect => as_docker(value.get_mut("State").and_then(|s| s.get_mut("Status"))),
    }
    serde_json::from_value(value).map_err(|_| error)
}

/// Whether serde's message is about one of Podman's states (`unknown variant `stopped`, ...`).
fn names_podman_state(message: &str) -> bool {
    let Some(rest) = message.strip_prefix("unknown variant `") else {
        return false;
    };
    PODMAN_STATES.iter().any(|(podman, _)| {
        rest.strip_prefix(podman)
            .is_some_and(|after| after.starts_with('`'))
    })
}

/// Replaces a Podman state with Docker's.
fn as_docker(state: Option<&mut Value>) {
    let Some(Value::String(state)) = state else {
        return;
    };
    if let Some((_, docker)) = PODMAN_STATES.iter().find(|(podman, _)| state == podman) {
        *state = (*docker).to_owned();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bollard::models::{
        ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
        ContainerSummaryStateEnum,
    };

    use super::*;

    /// The error bollard gives for `contents`, read as `T`.
    fn unreadable<T: DeserializeOwned + std::fmt::Debug>(contents: &str) -> EngineError {
        let e = serde_json::from_str::<T>(contents).unwrap_err();
        EngineError::JsonDataError {
            message: e.to_string(),
            contents: contents.to_owned(),
            column: e.column(),
        }
    }

    #[test]
    fn a_list_naming_a_container_podman_is_cleaning_up_reads_it_as_exited() {
        let answer = r#"[{"Id":"a","Names":["/web-1"],"State":"running"},
                         {"Id":"b","Names":["/web-2"],"State":"stopped"}]"#;
        let read = readable::<Vec<ContainerSummary>>(
            Err(unreadable::<Vec<ContainerSummary>>(answer)),
            States::List,
        )
        .unwrap();
        let states: Vec<_> = read.iter().map(|s| s.state).collect();
        assert_eq!(
            states,
            [
                Some(ContainerSummaryStateEnum::RUNNING),
                Some(ContainerSummaryStateEnum::EXITED)
            ]
        );
    }

    #[test]
    fn an_inspect_answer_naming_it_reads_it_as_exited() {
        let answer = r#"{"Id":"b","Name":"/web-2","State":{"Status":"stopped","Running":false}}"#;
        let read = readable::<ContainerInspectResponse>(
            Err(unreadable::<ContainerInspectResponse>(answer)),
            States::Inspect,
        )
        .unwrap();
        assert_eq!(
            read.state.unwrap().status,
            Some(ContainerStateStatusEnum::EXITED)
        );
    }

    #[test]
    fn other_unreadable_answers_stay_errors() {
        // A state nobody maps.
        let odd = r#"[{"Id":"a","State":"hibernating"}]"#;
        let e = readable::<Vec<ContainerSummary>>(
            Err(unreadable::<Vec<ContainerSummary>>(odd)),
            States::List,
        )
        .unwrap_err();
        assert!(e.to_string().contains("hibernating"), "{e}");
        // `stopped` where no container state is: only container states are read again.
        let elsewhere = r#"[{"Id":"a","State":"running","Health":{"Status":"stopped"}}]"#;
        assert!(
            unreadable::<Vec<ContainerSummary>>(elsewhere)
                .to_string()
                .contains("unknown variant `stopped`")
        );
        assert!(
            readable::<Vec<ContainerSummary>>(
                Err(unreadable::<Vec<ContainerSummary>>(elsewhere)),
                States::List,
            )
            .is_err()
        );
        // An inspect answer read as a list: nothing is rewritten.
        let inspect = r#"{"Id":"b","State":{"Status":"stopped"}}"#;
        assert!(
            readable::<ContainerInspectResponse>(
                Err(unreadable::<ContainerInspectResponse>(inspect)),
                States::List,
            )
            .is_err()
        );
        // Not JSON at all.
        assert!(
            readable::<Vec<ContainerSummary>>(
                Err(unreadable::<Vec<ContainerSummary>>("<html>")),
                States::List,
            )
            .is_err()
        );
    }

    #[test]
    fn only_serdes_unknown_variant_message_names_a_podman_state() {
        assert!(names_podman_state(
            "unknown variant `stopped`, expected one of ``, `created` at line 1 column 441"
        ));
        assert!(!names_podman_state("unknown variant `stoppedx`, expected"));
        assert!(!names_podman_state("invalid type: `stopped`"));
    }
}
