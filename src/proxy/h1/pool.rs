//! The fast lane's idle upstream connections: plain TCP streams a client
//! connection's lane left behind when it ended, taken by the next lane that
//! needs one. Bounded; a stream the upstream closed, that sent anything
//! unasked, or that idled past `idle_timeout` is never handed out.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// At most this many idle connections are kept.
const MAX_PARKED: usize = 1024;

#[derive(Debug)]
pub struct RawPool {
    parked: Mutex<Vec<(TcpStream, Instant)>>,
    idle_timeout: Duration,
}

impl RawPool {
    pub fn new(idle_timeout: Duration) -> RawPool {
        RawPool {
            parked: Mutex::new(Vec::new()),
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(TcpStream, Instant)>> {
        // A panic while holding the lock leaves a plain list behind: still usable.
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection that is still open, if any.
    pub fn take(&self) -> Option<TcpStream> {
        let mut parked = self.lock();
        while let Some((s, since)) = parked.pop() {
            if since.elapsed() < self.idle_timeout && still_open(&s) {
                return Some(s);
            }
        }
        None
    }

    /// Keeps an idle connection for a later client connection (dropped, so
    /// closed, when the pool is full).
    pub fn park(&self, s: TcpStream) {
        let mut parked = self.lock();
        if parked.len() < MAX_PARKED {
            parked.push((s, Instant::now()));
        }
    }

    /// Closes the connections that the upstream closed or that idled too long.
    pub fn sweep(&self) {
        let idle_timeout = self.idle_timeout;
        self.lock()
            .retain(|(s, since)| since.elapsed() < idle_timeout && still_open(s));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an idle connection is still open: it has neither been closed by
/// the upstream nor sent anything unasked (which would poison the next
/// answer). Costs no system call while the reactor saw nothing arrive.
pub fn still_open(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A parked connection comes back while open; one the upstream closed,
    /// or one that sent bytes nobody asked for, never does.
    #[tokio::test]
    async fn only_open_quiet_connections_come_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = RawPool::new(Duration::from_secs(60));
        for case in ["quiet", "closed", "chatty"] {
            let client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            match case {
                "closed" => drop(server),
                "chatty" => server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap(),
                _ => {}
            }
            // Let the reactor see what the server did (bounded).
            for _ in 0..100 {
                if case == "quiet" || !still_open(&client) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            pool.park(client);
            let back = pool.take();
            assert_eq!(back.is_some(), case == "quiet", "{case}");
            assert!(pool.is_empty(), "{case}: taken or dropped");
            // Keep the server side open until the check is done.
            let _ = server;
        }
    }
}
