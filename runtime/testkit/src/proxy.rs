//! A loopback TCP proxy in front of a real server that can lose an answer: the request reaches
//! the server, which acts on it, and its answer never comes back, as when a call times out
//! after the backend applied the change. Tests of changes whose outcome is unknown put it
//! between a provider and moto, Podman's Docker API or the Kubernetes test API server.
//!
//! [`Proxy::lose_answer_after`] arms it with a piece of request text (`Action=UpdateAutoScalingGroup`,
//! `/restart`): the first connection whose client sends it has everything the server answers
//! from then on dropped, and the proxy disarms. Every other byte is forwarded as it comes.
//! The proxy also counts the requests carrying each armed text it saw, so a test can tell how
//! many times a change reached the server. [`Proxy::replace_answer_after`] instead gives that
//! client other bytes once the server has answered (a `503`, say) and closes the connection: a
//! retryable failure of a request the server did act on, to tell whether a client retries it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Where the proxy forwards to.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// A TCP address (moto, the Kubernetes test API server).
    Tcp(SocketAddr),
    /// A Unix socket (Podman's Docker API).
    Unix(PathBuf),
}

/// How much of a connection's latest request bytes is kept to find a text split across reads.
const WINDOW: usize = 4096;

#[derive(Default)]
struct Shared {
    /// The text whose request loses its answer, while armed.
    armed: Option<String>,
    /// What the armed request's client gets instead of the server's answer: nothing (the
    /// answer is lost) or these bytes, after which the connection is closed.
    reply: Option<Vec<u8>>,
    /// Whether the arming holds for every request carrying the text, not the next only.
    sticky: bool,
    /// Texts to count, with how many client sends carried them.
    counted: Vec<(String, usize)>,
}

/// A running proxy; it stops accepting when dropped (open connections run to their end).
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One upstream connection, TCP or Unix, as two halves.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(upstream: &Upstream) -> std::io::Result<Conn> {
        Ok(match upstream {
            Upstream::Tcp(addr) => Conn::Tcp(TcpStream::connect(addr)?),
            Upstream::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
        })
    }

    fn split(self) -> std::io::Result<(Box<dyn Read + Send>, Box<dyn Write + Send>)> {
        Ok(match self {
            Conn::Tcp(s) => (Box::new(s.try_clone()?), Box::new(s)),
            Conn::Unix(s) => (Box::new(s.try_clone()?), Box::new(s)),
        })
    }
}

impl Proxy {
    /// Starts a proxy on a free loopback port, forwarding every connection to `upstream`.
    /// Panics if it cannot listen.
    pub fn start(upstream: Upstream) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (shared, stop) = (shared.clone(), stop.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (upstream, shared) = (upstream.clone(), shared.clone());
                    thread::spawn(move || relay(client, &upstream, &shared));
                }
            });
        }
        Proxy { addr, shared, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Arms the proxy: the answer to the next request carrying `text` (and anything after it
    /// on that connection) is lost. Requests carrying `text` are counted from now on
    /// ([`Proxy::count`]).
    pub fn lose_answer_after(&self, text: &str) {
        self.arm(text, None);
    }

    /// Arms the proxy like [`Proxy::lose_answer_after`], except that once the server has
    /// answered the next request carrying `text`, its client gets `reply` instead (a whole
    /// HTTP response) and the connection is closed.
    pub fn replace_answer_after(&self, text: &str, reply: &[u8]) {
        self.arm(text, Some(reply.to_vec()));
    }

    /// Like [`Proxy::replace_answer_after`], for every request carrying `text` until
    /// [`Proxy::disarm`]: a server that keeps answering garbage.
    pub fn replace_every_answer_after(&self, text: &str, reply: &[u8]) {
        self.arm(text, Some(reply.to_vec()));
        lock(&self.shared).sticky = true;
    }

    /// Forwards every answer again.
    pub fn disarm(&self) {
        let mut shared = lock(&self.shared);
        shared.armed = None;
        shared.reply = None;
        shared.sticky = false;
    }

    fn arm(&self, text: &str, reply: Option<Vec<u8>>) {
        let mut shared = lock(&self.shared);
        shared.armed = Some(text.to_owned());
        shared.reply = reply;
        shared.sticky = false;
        if !shared.counted.iter().any(|(t, _)| t == text) {
            shared.counted.push((text.to_owned(), 0));
        }
    }

    /// Counts the requests carrying `text` from now on, without losing any answer.
    pub fn count_requests_with(&self, text: &str) {
        let mut shared = lock(&self.shared);
        if !shared.counted.iter().any(|(t, _)| t == text) {
            shared.counted.push((text.to_owned(), 0));
        }
    }

    /// Whether an armed answer is still to be lost.
    pub fn is_armed(&self) -> bool {
        lock(&self.shared).armed.is_some()
    }

    /// How many client sends carrying `text` reached the server since it was armed or counted.
    pub fn count(&self, text: &str) -> usize {
        lock(&self.shared)
            .counted
            .iter()
            .find(|(t, _)| t == text)
            .map_or(0, |(_, n)| *n)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Whether `text` occurs in `window` ending past `fresh_from` (in the bytes just read).
fn found_in(window: &[u8], fresh_from: usize, text: &[u8]) -> bool {
    if text.is_empty() {
        return false;
    }
    let start = fresh_from.saturating_sub(text.len() - 1);
    window[start..].windows(text.len()).any(|w| w == text)
}

/// Forwards one client connection: client → server as it comes (noting the armed and counted
/// texts), server → client unless this connection's answer is to be lost.
fn relay(client: TcpStream, upstream: &Upstream, shared: &Arc<Mutex<Shared>>) {
    let Ok(server) = Conn::open(upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let Ok((mut from_server, mut to_server)) = server.split() else {
        return;
    };
    let Ok(mut from_client) = client.try_clone() else {
        return;
    };
    let mut to_client = client;
    let losing = Arc::new(AtomicBool::new(false));
    let replacement: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let answers = {
        let (losing, replacement) = (losing.clone(), replacement.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match from_server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if losing.load(Ordering::SeqCst) {
                            // The server answered, so it acted on the request: the client gets
                            // the replacement, if any, and the connection ends there.
                            let reply = replacement
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .take();
                            if let Some(reply) = reply {
                                let _ = to_client.write_all(&reply);
                                let _ = to_client.shutdown(Shutdown::Both);
                                break;
                            }
                            continue;
                        }
                        if to_client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            // A lost answer stays lost: the client sees a connection that never answers until
            // it gives up, not one that closes.
            if !losing.load(Ordering::SeqCst) {
                let _ = to_client.shutdown(Shutdown::Write);
            }
        })
    };
    let mut window: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from_client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Only what this read adds counts, with enough of the bytes before it to find a text
        // split across reads: an earlier request on the same connection is not seen again.
        let fresh_from = window.len();
        window.extend_from_slice(&buf[..n]);
        {
            let mut shared = lock(shared);
            for (wanted, count) in &mut shared.counted {
                if found_in(&window, fresh_from, wanted.as_bytes()) {
                    *count += 1;
                }
            }
            if let Some(armed) = shared.armed.clone()
                && found_in(&window, fresh_from, armed.as_bytes())
            {
                // From here on, what the server answers on this connection is dropped (or
                // replaced).
                let reply = if shared.sticky {
                    shared.reply.clone()
                } else {
                    shared.reply.take()
                };
                *replacement
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = reply;
                losing.store(true, Ordering::SeqCst);
                if !shared.sticky {
                    shared.armed = None;
                }
            }
        }
        if window.len() > WINDOW {
            window.drain(..window.len() - WINDOW);
        }
        if to_server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = answers.join();
}
