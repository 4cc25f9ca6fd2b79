//! Abusive clients get clear errors, and the server keeps serving everyone else: oversized,
//! malformed and mistyped bodies; clients that send their headers or body too slowly; more
//! connections than the server takes; more runs than it runs at once.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use grace_testkit::poll_until;
use serde_json::{Value, json};

/// A TCP connection to the server, for what an HTTP client library would not send.
fn connect(server: &Server) -> TcpStream {
    let addr = server.url.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection (or `timeout`); what it sent.
fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON body of a raw HTTP response.
fn json_of(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

fn healthy(server: &Server) -> bool {
    server.get("/healthz").0 == 200
}

#[test]
fn an_oversized_body_is_refused_with_413_naming_the_limit_and_setting() {
    let data = data_dir();
    let server = Server::start(
        &path_of(&data),
        &["--max-body-bytes", "2048", "--max-upload-bytes", "100000"],
    );
    let big = json!({ "event_type": "t", "source": "s", "actor": "a", "resource": "r",
                      "payload": { "pad": "x".repeat(4096) } });
    let (status, body) = server.post("/v1/events", big);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2048") && message.contains("max_body_bytes"),
        "{message}"
    );

    // Without a Content-Length (chunked), the limit holds while reading.
    let mut stream = connect(&server);
    let chunk = "y".repeat(1000);
    let mut request = format!(
        "POST /v1/events HTTP/1.1\r\nhost: grace\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        server.token
    );
    for _ in 0..4 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let response = read_all(&mut stream);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_eq!(json_of(&response)["error"]["code"], "payload_too_large");

    let (status, body) = server.upload(
        &manifest("too-big", "[[triggers]]\nevent_type = \"t\"\n"),
        vec![0u8; 200_000],
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_upload_bytes"),
        "{body}"
    );
    let (_, stored) = server.get("/v1/events");
    assert_eq!(stored, json!([]), "nothing refused was stored");
    assert!(healthy(&server));
}

#[test]
fn malformed_json_is_refused_with_400_naming_the_position_or_the_field() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let (status, body) = server.post_raw(
        "/v1/events",
        b"{\"event_type\": \"t\",\n  \"source\": }".to_vec(),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2 column"),
        "{body}"
    );

    let mut no_resource = event("t", "r", 0, 1.0);
    no_resource.as_object_mut().unwrap().remove("resource");
    let (status, body) = server.post("/v1/events", json!([event("t", "r", 0, 1.0), no_resource]));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events[1]"),
        "{body}"
    );
    let (_, stored) = server.get("/v1/events");
    assert_eq!(stored, json!([]));
}

#[test]
fn a_body_of_another_type_is_refused_with_415_naming_it() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &[]);
    let event = event("t", "r", 0, 1.0).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let (status, body) = server.post_as("/v1/events", Some(content_type), event.clone());
        assert_eq!(status, 415, "{content_type}: {body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(content_type),
            "{body}"
        );
    }
    for content_type in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("application/vnd.grace+json"),
        None,
    ] {
        let (status, body) = server.post_as("/v1/events", content_type, event.clone());
        assert_eq!(status, 202, "{content_type:?}: {body}");
    }
}

#[test]
fn a_slowloris_client_is_cut_off_after_the_header_timeout_while_others_are_served() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--header-read-timeout", "1s"]);
    // Ten clients send a request's headers one byte at a time, 200 ms apart: the 45 bytes
    // would take 9 s, nine times the timeout.
    let mut slow: Vec<TcpStream> = (0..10).map(|_| connect(&server)).collect();
    let header = b"GET /healthz HTTP/1.1\r\nhost: grace\r\nx-slow: yes\r\n\r\n";
    let mut cut_at = vec![None; slow.len()];
    for (i, byte) in header.iter().enumerate() {
        for (c, stream) in slow.iter_mut().enumerate() {
            // A write after the server closed fails once the kernel has seen its reset.
            if cut_at[c].is_none() && stream.write_all(&[*byte]).is_err() {
                cut_at[c] = Some(i);
            }
        }
        if cut_at.iter().all(Option::is_some) {
            break;
        }
        assert!(healthy(&server), "everyone else is served meanwhile");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        cut_at
            .iter()
            .all(|c| c.is_some_and(|i| i + 1 < header.len())),
        "every slow client is cut off before it could finish its headers: {cut_at:?}"
    );
    assert!(healthy(&server));
}

#[test]
fn a_body_sent_too_slowly_gets_408() {
    let data = data_dir();
    let server = Server::start(&path_of(&data), &["--body-read-timeout", "1s"]);
    let mut stream = connect(&server);
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: grace\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"event_type\"",
        server.token
    );
    stream.write_all(head.as_bytes()).unwrap();
    let response = read_all(&mut stream);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let body = json_of(&response);
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("body_read_timeout"),
        "{body}"
    );
    assert!(healthy(&server));
}

#[test]
fn connections_beyond_the_limit_get_503_and_the_server_recovers_when_they_go() {
    let data = data_dir();
    let server = Server::start(
        &path_of(&data),
        &["--max-connections", "4", "--header-read-timeout", "30s"],
    );
    // Four connections that send nothing hold every slot.
    let idle: Vec<TcpStream> = (0..4).map(|_| connect(&server)).collect();
    // A transport error here is a failure, not a retry: a client must read the `503`, which the
    // server writes only once the request has arrived (an answer sent earlier reads as a reset).
    let refused = poll_until("a refusal", Duration::from_secs(10), || {
        let (status, body) = server.get("/healthz");
        (status == 503).then_some(body)
    });
    assert_eq!(refused["error"]["code"], "overloaded", "{refused}");
    assert_eq!(refused["retry_after_header"], "1");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_connections"),
        "{refused}"
    );
    // curl, too, reads the answer rather than a reset.
    let curl = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--write-out", "\n%{http_code}"])
        .arg(format!("{}/healthz", server.url))
        .output()
        .expect("curl runs (Debian package `curl`)");
    let out = String::from_utf8_lossy(&curl.stdout);
    let stderr = String::from_utf8_lossy(&curl.stderr);
    assert!(curl.status.success(), "curl failed: {stderr}");
    assert!(out.ends_with("\n503"), "curl saw {out}{stderr}");
    assert!(out.contains("max_connections"), "{out}");
    drop(idle);
    poll_until("the server to serve again", Duration::from_secs(10), || {
        healthy(&server).then_some(())
    });
}

#[test]
fn runs_beyond_max_concurrent_runs_wait_queued_while_the_api_answers() {
    let data = data_dir();
    let server = Server::start(
        &path_of(&data),
        &["--max-concurrent-runs", "1", "--queue-capacity", "4"],
    );
    // Each run spins for its whole 2 s deadline.
    let spinner = manifest(
        "spinner",
        "[[triggers]]\nevent_type = \"test.spin\"\n[limits]\ntimeout = \"2s\"\nfuel = 1_000_000_000_000\n",
    );
    assert_eq!(server.upload(&spinner, component("infinite_loop")).0, 201);
    let mut accepted = 0;
    let full = poll_until(
        "the event queue to fill up",
        Duration::from_secs(30),
        || {
            let (status, body) = server.post(
                "/v1/events",
                event("test.spin", &format!("r{accepted}"), accepted, 1.0),
            );
            match status {
                202 => {
                    accepted += 1;
                    None
                }
                429 => Some(body),
                _ => panic!("{status} {body}"),
            }
        },
    );
    assert_eq!(full["error"]["code"], "queue_full", "{full}");
    assert_eq!(full["retry_after_header"], "1");
    // One runs at a time, the others wait their turn, and the API answers meanwhile.
    poll_until("a run waiting its turn", Duration::from_secs(30), || {
        let (_, queued) = server.get("/v1/runs?state=queued");
        (!queued.as_array().unwrap().is_empty()).then_some(())
    });
    let (_, running) = server.get("/v1/runs?state=running");
    assert!(running.as_array().unwrap().len() <= 1, "{running}");
    assert!(healthy(&server));
    let (status, _) = server.get("/v1/runs");
    assert_eq!(status, 200);
}
