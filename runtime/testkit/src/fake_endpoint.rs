//! `FakeEndpoint`: a hand-made loopback HTTP server for failure modes a real server cannot be
//! made to produce (throttling, never answering, answering garbage).
//!
//! It answers every request with the same canned response, never answers, or streams a
//! Prometheus-shaped answer of any size. It imitates no server's behaviour: requests are read
//! and ignored; only the client's handling of the response (or its absence) is under test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the endpoint does with each request.
#[derive(Clone)]
pub enum Behaviour {
    /// Answers with this status line (`400 Bad Request`), content type and body.
    Answer {
        /// The status line after `HTTP/1.1 `.
        status: &'static str,
        /// The `content-type` header.
        content_type: &'static str,
        /// The body.
        body: String,
    },
    /// Reads the request and never answers, holding the connection open.
    Silent,
    /// Answers `200 OK` with a Prometheus instant-vector answer of `series` series, streamed in
    /// chunks without a `content-length` and never held whole: a metrics provider answering
    /// hundreds of MiB, for clients that must stop reading at their cap. Writing stops when the
    /// client goes away.
    PrometheusFlood {
        /// How many series the answer holds (about 60 bytes each).
        series: u64,
    },
}

/// One series of a [`Behaviour::PrometheusFlood`] answer (or of a finite one made with
/// [`prometheus_vector`]).
fn flood_series(i: u64) -> String {
    format!("{{\"metric\":{{\"__name__\":\"up\",\"i\":\"{i:012}\"}},\"value\":[1767225600,\"1\"]}}")
}

const VECTOR_HEAD: &str =
    "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[";
const VECTOR_TAIL: &str = "]}}";

/// A Prometheus instant-vector answer of `series` series, whole.
pub fn prometheus_vector(series: u64) -> String {
    let body: Vec<String> = (0..series).map(flood_series).collect();
    format!("{VECTOR_HEAD}{}{VECTOR_TAIL}", body.join(","))
}

/// Streams a [`Behaviour::PrometheusFlood`] answer as chunks of about 64 KiB.
fn flood(stream: &mut TcpStream, series: u64) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    )?;
    let mut chunk = String::from(VECTOR_HEAD);
    for i in 0..series {
        if i > 0 {
            chunk.push(',');
        }
        chunk.push_str(&flood_series(i));
        if chunk.len() >= 64 * 1024 {
            write!(stream, "{:x}\r\n{chunk}\r\n", chunk.len())?;
            chunk.clear();
        }
    }
    chunk.push_str(VECTOR_TAIL);
    write!(stream, "{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len())
}

/// A loopback HTTP endpoint with one behaviour; it lives as long as the test process.
pub struct FakeEndpoint {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl FakeEndpoint {
    /// Starts it on a free loopback port.
    pub fn start(behaviour: Behaviour) -> FakeEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"))
            .port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            // Silent connections are kept here so that they stay open.
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if read_request(&mut stream).is_none() {
                    continue;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                match &behaviour {
                    Behaviour::Silent => held.push(stream),
                    Behaviour::PrometheusFlood { series } => {
                        // One answer at a time is enough for the tests; a client that stops
                        // reading ends it with a write error.
                        let _ = flood(&mut stream, *series);
                    }
                    Behaviour::Answer {
                        status,
                        content_type,
                        body,
                    } => {
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes());
                    }
                }
            }
        });
        FakeEndpoint { port, requests }
    }

    /// Garbage: `200 OK` with an HTML page, as a misconfigured proxy answers.
    pub fn garbage(body: &str) -> Behaviour {
        Behaviour::Answer {
            status: "200 OK",
            content_type: "text/html",
            body: body.to_owned(),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request (headers and a `content-length` body); `None` if the client went away.
fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(())
}
