//! A loopback TCP proxy a test can cut: a partition between one client and a server, without
//! iptables or network namespaces. Every byte is forwarded both ways until [`CutProxy::cut`]
//! closes every connection through it and refuses new ones (each is accepted and closed at
//! once, as a peer that is gone); [`CutProxy::heal`] lets connections through again.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// A proxy in front of `upstream`.
pub struct CutProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl CutProxy {
    /// Starts forwarding from a free loopback port to `upstream`.
    pub fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("no loopback port for the proxy: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy's address: {e}"));
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (cutting, opened) = (cut.clone(), open.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cutting.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    let mut open = opened.lock().unwrap_or_else(|e| e.into_inner());
                    open.push(c);
                    open.push(s);
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        CutProxy { addr, cut, open }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's address as a NATS URL.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Closes every connection through the proxy and refuses new ones until [`CutProxy::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Lets new connections through again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_until_cut_and_again_once_healed() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        thread::spawn(move || {
            for conn in upstream.incoming() {
                let mut conn = conn.unwrap();
                thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = CutProxy::start(upstream_addr);
        let echo = |stream: &mut TcpStream| -> bool {
            stream.write_all(b"ping").is_ok() && {
                let mut buf = [0u8; 4];
                stream.read_exact(&mut buf).is_ok() && &buf == b"ping"
            }
        };
        let mut before = TcpStream::connect(proxy.addr()).unwrap();
        assert!(echo(&mut before));
        proxy.cut();
        assert!(!echo(&mut before), "a connection open at the cut is closed");
        let mut during = TcpStream::connect(proxy.addr()).unwrap();
        assert!(!echo(&mut during), "new connections are refused while cut");
        proxy.heal();
        let mut after = TcpStream::connect(proxy.addr()).unwrap();
        assert!(echo(&mut after));
    }
}
