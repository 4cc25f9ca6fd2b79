//! A metrics exporter serving recorded Istio and Linkerd metric families
//! (`fixtures/mesh.prom`, the real metric and label names), for a real Prometheus to scrape.
//!
//! Each sample of the fixture is a per-second rate; the exporter serves it as a counter at
//! `rate × seconds since start`, so `rate()` over the scraped series gives back the recorded
//! rates. [`MeshExporter::stop_traffic`] freezes every counter (traffic stops, `rate()` falls
//! to 0); [`MeshExporter::answer_garbage`] makes it answer an HTML page instead.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The recorded families.
pub const FIXTURE: &str = include_str!("../fixtures/mesh.prom");

#[derive(Debug)]
struct State {
    started: Instant,
    /// Seconds of traffic at which the counters stopped, once stopped.
    frozen_at: Option<f64>,
}

/// A running exporter; it lives as long as the test process.
pub struct MeshExporter {
    port: u16,
    state: Arc<Mutex<State>>,
    garbage: Arc<AtomicBool>,
}

/// The exposition at `seconds` of traffic.
fn exposition(seconds: f64) -> String {
    let mut out = String::new();
    for line in FIXTURE.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            out.push_str(line);
        } else if let Some((series, rate)) = line.rsplit_once(' ') {
            let rate: f64 = rate.parse().unwrap_or(0.0);
            out.push_str(&format!("{series} {}", rate * seconds));
        }
        out.push('\n');
    }
    out
}

impl MeshExporter {
    /// Starts it on a free loopback port.
    pub fn start() -> MeshExporter {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"))
            .port();
        let state = Arc::new(Mutex::new(State {
            started: Instant::now(),
            frozen_at: None,
        }));
        let garbage = Arc::new(AtomicBool::new(false));
        let (s, g) = (Arc::clone(&state), Arc::clone(&garbage));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // Headers only: scrapes are GETs.
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => continue,
                });
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let (content_type, body) = if g.load(Ordering::SeqCst) {
                    (
                        "text/html",
                        "<html><body>502 Bad Gateway</body></html>".to_owned(),
                    )
                } else {
                    let seconds = {
                        let st = s.lock().unwrap_or_else(|e| e.into_inner());
                        st.frozen_at
                            .unwrap_or_else(|| st.started.elapsed().as_secs_f64())
                    };
                    ("text/plain; version=0.0.4", exposition(seconds))
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        MeshExporter {
            port,
            state,
            garbage,
        }
    }

    /// `127.0.0.1:<port>`, as a scrape target.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Freezes every counter: the recorded traffic stops.
    pub fn stop_traffic(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.frozen_at.is_none() {
            st.frozen_at = Some(st.started.elapsed().as_secs_f64());
        }
    }

    /// From now on answers an HTML page instead of metrics.
    pub fn answer_garbage(&self) {
        self.garbage.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_grow_with_time_at_the_recorded_rates() {
        let at_ten = exposition(10.0);
        let line = at_ten
            .lines()
            .find(|l| l.starts_with("request_total{") && l.contains("dst_statefulset=\"books\""))
            .unwrap();
        assert!(line.ends_with(" 80"), "{line}");
        assert!(at_ten.contains("# TYPE istio_requests_total counter"));
    }
}
