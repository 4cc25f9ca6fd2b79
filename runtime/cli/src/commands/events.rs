//! `grace events publish`: events from a file to a server, in batches.
//!
//! The file holds one event object, a JSON array of events, or one event per line (JSON lines);
//! any sequence of objects and arrays is read the same way. Every event is checked here first,
//! so a mistake is reported with its place in the file and nothing is sent. Events go out
//! unchanged: one without a `timestamp` gets the server's clock, not this machine's.
//!
//! Batches hold at most [`BATCH`] events; each is all-or-nothing on the server. A busy server
//! (`429`) is asked again after its `Retry-After`, at most [`RETRIES`] times per batch.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use grace_engine::TriggerEvent;
use serde_json::Value;

use super::{Exit, client};
use crate::cli::EventsCommand;
use crate::client::{Accepted, ClientError};

/// Most events in one request.
pub const BATCH: usize = 1000;
/// How often one batch is retried while the server's queue is full.
pub const RETRIES: u32 = 10;
/// The wait when a `429` carries no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

pub fn run(cmd: EventsCommand) -> Exit {
    match cmd {
        EventsCommand::Publish { file, server } => publish(&file, &server.url),
        EventsCommand::List {
            from,
            limit,
            json,
            server,
        } => list(&server.url, from, limit, json).unwrap_or_else(|exit| exit),
    }
}

/// One stored event as `GET /v1/events` lists it.
#[derive(serde::Deserialize)]
struct Stored {
    seq: u64,
    #[serde(default)]
    published_by: Option<Publisher>,
    event: TriggerEvent,
}

#[derive(serde::Deserialize)]
struct Publisher {
    token_id: String,
    name: String,
}

fn list(server: &str, from: u64, limit: usize, json: bool) -> Result<Exit, Exit> {
    let client = client(server)?;
    let query = [("from", from.to_string()), ("limit", limit.to_string())];
    if json {
        let value = client
            .get_value(&["v1", "events"], &query)
            .map_err(ClientError::into_exit)?;
        println!("{value}");
        return Ok(Exit::Ok);
    }
    let events: Vec<Stored> = client
        .get(&["v1", "events"], &query)
        .map_err(ClientError::into_exit)?;
    if events.is_empty() {
        println!("no events");
        return Ok(Exit::Ok);
    }
    let shorten = crate::render::shorten;
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|s| {
            vec![
                s.seq.to_string(),
                grace_engine::event::format_millis(s.event.timestamp),
                shorten(&s.event.event_type, 40),
                shorten(&s.event.source, 30),
                shorten(&s.event.resource, 40),
                s.published_by.as_ref().map_or_else(
                    || "-".to_owned(),
                    |p| format!("{} ({})", shorten(&p.name, 30), shorten(&p.token_id, 40)),
                ),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::render::table(
            &["SEQ", "TIME", "TYPE", "SOURCE", "RESOURCE", "PUBLISHED BY"],
            &rows
        )
    );
    Ok(Exit::Ok)
}

fn publish(file: &Path, server: &str) -> Exit {
    let events = match read(file) {
        Ok(e) => e,
        Err(e) => return Exit::Invalid(e),
    };
    let client = match client(server) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let mut notice = |wait: Duration, retry: u32| {
        eprintln!(
            "the server's event queue is full: retrying in {} s ({retry}/{RETRIES})",
            wait.as_secs_f64()
        );
        std::thread::sleep(wait);
    };
    let report = send_batches(
        &events,
        |batch| {
            client
                .post(&["v1", "events"], Some(&Value::Array(batch.to_vec())))?
                .decode::<Accepted>("POST /v1/events")
        },
        &mut notice,
    );
    let many = report.accepted.len() > 1;
    for (range, a) in &report.accepted {
        if many || report.failure.is_some() {
            println!(
                "accepted events {}..{} of the file: seq {}..{}",
                range.0 + 1,
                range.1,
                a.first_seq,
                a.last_seq
            );
        }
    }
    let total: u64 = report.accepted.iter().map(|(_, a)| a.accepted).sum();
    match report.failure {
        None => {
            match (report.accepted.first(), report.accepted.last()) {
                (Some((_, first)), Some((_, last))) if many => println!(
                    "published {total} events in {} batches (seq {}..{})",
                    report.accepted.len(),
                    first.first_seq,
                    last.last_seq
                ),
                (Some((_, a)), _) => {
                    let noun = if total == 1 { "event" } else { "events" };
                    println!(
                        "published {total} {noun} (seq {}..{})",
                        a.first_seq, a.last_seq
                    );
                }
                _ => {}
            }
            Exit::Ok
        }
        Some(failure) => {
            let sent = if total == 0 {
                "nothing was published".to_owned()
            } else {
                format!(
                    "the {total} events before event {} were published; the rest were not",
                    failure.start + 1
                )
            };
            let exit = match failure.error {
                ClientError::Api(e) if e.status == 429 => Exit::Internal(anyhow!(
                    "the server's event queue stayed full after {RETRIES} retries: {}; {sent}. Retry later, or publish from event {}",
                    e.describe(),
                    failure.start + 1
                )),
                other => other.into_exit(),
            };
            match exit {
                Exit::Invalid(e) => Exit::Invalid(e.context(format!(
                    "in events {}..{} of the file ({sent})",
                    failure.start + 1,
                    failure.end
                ))),
                Exit::Internal(e) if total > 0 => Exit::Internal(e.context(sent)),
                other => other,
            }
        }
    }
}

/// Reads the events of `file` (`-`: stdin).
fn read(file: &Path) -> anyhow::Result<Vec<Value>> {
    let (text, name) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow!("cannot read events from stdin: {e}"))?;
        (text, "stdin".to_owned())
    } else {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow!("cannot read `{}`: {e}", file.display()))?;
        (text, format!("`{}`", file.display()))
    };
    parse(&text).map_err(|e| anyhow!("{name}: {e}"))
}

/// The events in `text`: a sequence of JSON values, each an event object or an array of them,
/// every event checked the way the server checks it.
pub fn parse(text: &str) -> Result<Vec<Value>, String> {
    let mut events = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    while let Some(next) = stream.next() {
        let value = next.map_err(|e| format!("not JSON at line {}: {e}", e.line()))?;
        let line = 1 + text[..stream.byte_offset()].matches('\n').count();
        match value {
            Value::Array(items) => {
                for item in items {
                    check(&item, events.len() + 1, None)?;
                    events.push(item);
                }
            }
            item @ Value::Object(_) => {
                check(&item, events.len() + 1, Some(line))?;
                events.push(item);
            }
            other => {
                return Err(format!(
                    "line {line}: expected an event object or an array of events, found `{}`",
                    crate::render::shorten(&other.to_string(), 40)
                ));
            }
        }
    }
    if events.is_empty() {
        return Err("holds no events".into());
    }
    Ok(events)
}

/// Checks one event (number `n` from 1, on `line` when known).
fn check(event: &Value, n: usize, line: Option<usize>) -> Result<(), String> {
    // Any clock will do: the timestamp is only defaulted to check the rest, never sent.
    TriggerEvent::from_value(event.clone(), 0).map_err(|e| match line {
        Some(line) => format!("event {n} (line {line}): {e}"),
        None => format!("event {n}: {e}"),
    })?;
    Ok(())
}

/// What publishing did: the batches accepted (their place in the file, `start..end` from 0), and
/// the batch that failed, if one did (nothing after it was sent).
pub struct Report {
    /// Accepted batches, in order.
    pub accepted: Vec<((usize, usize), Accepted)>,
    /// The batch that failed.
    pub failure: Option<Failed>,
}

/// A batch the server did not take.
pub struct Failed {
    /// Its first event's index in the file, from 0.
    pub start: usize,
    /// One past its last.
    pub end: usize,
    /// Why.
    pub error: ClientError,
}

/// Sends `events` in batches of at most [`BATCH`], in order, through `send`; a batch refused with
/// `429` is sent again after `wait(delay, retry)`, at most [`RETRIES`] times. Stops at the first
/// batch that fails otherwise.
pub fn send_batches(
    events: &[Value],
    mut send: impl FnMut(&[Value]) -> Result<Accepted, ClientError>,
    wait: &mut dyn FnMut(Duration, u32),
) -> Report {
    let mut report = Report {
        accepted: Vec::new(),
        failure: None,
    };
    for (i, batch) in events.chunks(BATCH).enumerate() {
        let start = i * BATCH;
        let end = start + batch.len();
        let mut retries = 0;
        let result = loop {
            match send(batch) {
                Err(ClientError::Api(e)) if e.status == 429 && retries < RETRIES => {
                    retries += 1;
                    let delay = e
                        .retry_after
                        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
                    wait(delay, retries);
                }
                other => break other,
            }
        };
        match result {
            Ok(a) => report.accepted.push(((start, end), a)),
            Err(error) => {
                report.failure = Some(Failed { start, end, error });
                break;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiError;

    fn event(n: usize) -> String {
        format!(
            r#"{{"event_type":"metrics.latency","source":"prometheus","actor":"c","resource":"svc-{n}","payload":{{"value":{n}}}}}"#
        )
    }

    #[test]
    fn one_object_an_array_and_json_lines_all_read_as_events() {
        assert_eq!(parse(&event(1)).unwrap().len(), 1);
        let array = format!("[{}, {}]", event(1), event(2));
        assert_eq!(parse(&array).unwrap().len(), 2);
        let lines = (0..5).map(event).collect::<Vec<_>>().join("\n") + "\n";
        let events = parse(&lines).unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[4]["resource"], "svc-4");
    }

    #[test]
    fn events_are_sent_as_written_without_a_local_timestamp() {
        let events = parse(&event(1)).unwrap();
        assert!(events[0].get("timestamp").is_none());
    }

    #[test]
    fn a_bad_event_names_its_number_line_and_field() {
        let bad = event(3).replace("metrics.latency", "");
        let lines = format!("{}\n{}\n{bad}\n", event(1), event(2));
        let e = parse(&lines).unwrap_err();
        assert!(e.contains("event 3 (line 3)"), "{e}");
        assert!(e.contains("event_type"), "{e}");
        let e = parse("{\"event_type\": \n").unwrap_err();
        assert!(e.contains("not JSON at line 2"), "{e}");
        assert!(parse("42").unwrap_err().contains("line 1"));
        assert_eq!(parse("  \n").unwrap_err(), "holds no events");
    }

    fn accepted(first: u64, n: usize) -> Accepted {
        Accepted {
            accepted: n as u64,
            first_seq: first,
            last_seq: first + n as u64 - 1,
        }
    }

    fn busy() -> ClientError {
        ClientError::Api(ApiError {
            status: 429,
            code: "queue_full".into(),
            message: "the event queue is full".into(),
            field: None,
            retry_after: Some(2),
        })
    }

    #[test]
    fn events_are_sent_in_batches_of_at_most_1000_in_order() {
        let events: Vec<Value> = (0..2500).map(|n| serde_json::json!({ "n": n })).collect();
        let mut sizes = Vec::new();
        let mut next_seq = 1;
        let report = send_batches(
            &events,
            |batch| {
                assert_eq!(batch[0]["n"], sizes.iter().sum::<usize>());
                sizes.push(batch.len());
                let a = accepted(next_seq, batch.len());
                next_seq += batch.len() as u64;
                Ok(a)
            },
            &mut |_, _| panic!("no retries expected"),
        );
        assert_eq!(sizes, [1000, 1000, 500]);
        assert!(report.failure.is_none());
        assert_eq!(report.accepted[2].0, (2000, 2500));
        assert_eq!(report.accepted[2].1.last_seq, 2500);
    }

    #[test]
    fn a_busy_server_is_asked_again_after_retry_after() {
        let events = vec![serde_json::json!({})];
        let mut calls = 0;
        let mut waits = Vec::new();
        let report = send_batches(
            &events,
            |b| {
                calls += 1;
                if calls <= 3 {
                    Err(busy())
                } else {
                    Ok(accepted(1, b.len()))
                }
            },
            &mut |d, retry| waits.push((d, retry)),
        );
        assert!(report.failure.is_none());
        assert_eq!(calls, 4);
        assert_eq!(
            waits,
            [1, 2, 3].map(|r| (Duration::from_secs(2), r)).to_vec()
        );
    }

    #[test]
    fn a_server_busy_after_ten_retries_fails_the_batch_and_stops() {
        let events: Vec<Value> = (0..1500).map(|n| serde_json::json!({ "n": n })).collect();
        let mut calls = 0;
        let report = send_batches(
            &events,
            |b| {
                calls += 1;
                if calls == 1 {
                    Ok(accepted(1, b.len()))
                } else {
                    Err(busy())
                }
            },
            &mut |_, _| {},
        );
        assert_eq!(calls, 1 + 1 + RETRIES);
        assert_eq!(report.accepted.len(), 1);
        let failure = report.failure.unwrap();
        assert_eq!((failure.start, failure.end), (1000, 1500));
        assert!(matches!(
            failure.error,
            ClientError::Api(ApiError { status: 429, .. })
        ));
    }

    #[test]
    fn a_refused_batch_is_not_retried() {
        let events = vec![serde_json::json!({})];
        let mut calls = 0;
        let report = send_batches(
            &events,
            |_| {
                calls += 1;
                Err(ClientError::Api(ApiError {
                    status: 400,
                    code: "invalid_field".into(),
                    message: "bad".into(),
                    field: Some("events[0].source".into()),
                    retry_after: None,
                }))
            },
            &mut |_, _| panic!("a 400 is not retried"),
        );
        assert_eq!(calls, 1);
        assert!(report.failure.is_some());
    }
}
