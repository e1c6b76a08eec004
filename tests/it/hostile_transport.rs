//! Hostile transports (security review findings 8 and 9): a client that never
//! reads its answer, a request body that stalls, and idle or half-sent
//! connections to the admin listener. Each is let go after its configured
//! time-out, on both lanes, and none can starve the public listener. Over
//! real sockets on 127.0.0.1, with short time-outs and bounded waits.

use crate::proxy_support::*;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The answer's body: far more than the socket buffers between the upstream
/// and a client that does not read (a few MB on loopback) can hold.
const BIG: usize = 48 * 1024 * 1024;

/// How long iumgate may take to let a stuck connection go, with
/// `send_timeout`/`body_timeout`/`header_timeout` at 1 s: a few times the
/// time-out, and generous for two shared cores. Without the bounds nothing
/// ever closes (the upstream here has no time-out of its own).
const LET_GO: Duration = Duration::from_secs(10);

/// An upstream that reads one request (head, and a `Content-Length` body)
/// and answers with a [`BIG`] body, written until done or refused. Reports
/// whether the whole body went out (`Ok`) or the proxy closed its
/// connection first (`Err`, with how much was written).
async fn big_upstream() -> (SocketAddr, oneshot::Receiver<Result<usize, usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        read_request(&mut s).await;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {BIG}\r\n\r\n");
        if s.write_all(head.as_bytes()).await.is_err() {
            let _ = tx.send(Err(0));
            return;
        }
        let chunk = vec![b'x'; 1024 * 1024];
        let mut sent = 0;
        while sent < BIG {
            if s.write_all(&chunk).await.is_err() {
                let _ = tx.send(Err(sent));
                return;
            }
            sent += chunk.len();
        }
        let _ = tx.send(Ok(sent));
        // Keep the connection until the proxy closes it.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    (addr, rx)
}

/// Reads a request head and as much body as its `Content-Length` says.
async fn read_request(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut b).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&b[..n]),
            _ => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < end + len {
        match s.read(&mut b).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&b[..n]),
            _ => return,
        }
    }
}

/// A client connection with a tiny receive buffer, `request` sent, never read.
async fn stalled_reader(proxy: SocketAddr, request: &[u8]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = within("connect", socket.connect(proxy)).await.unwrap();
    s.write_all(request).await.unwrap();
    s
}

/// The slow read: the upstream's answer is far larger than what the sockets
/// hold, the client never reads. iumgate must close the client connection
/// and its upstream connection once a write has waited `send_timeout`.
async fn slow_reader_is_let_go(request: &[u8]) {
    let (up, outcome) = big_upstream().await;
    let gw = start_proxy(
        &format!("http://{up}"),
        "send_timeout = \"1s\"\nrequest_timeout = \"60s\"\nidle_timeout = \"60s\"",
    )
    .await;
    let mut client = stalled_reader(gw.proxy_addr, request).await;
    // The upstream notices its connection closed (its write fails) only
    // when iumgate gives up: without a send time-out, never.
    let written = match tokio::time::timeout(LET_GO, outcome).await {
        Ok(Ok(Err(sent))) => sent,
        Ok(Ok(Ok(sent))) => panic!("the whole {sent}-byte body was taken for a client that never reads"),
        Ok(Err(_)) => panic!("the upstream never got the request"),
        Err(_) => panic!(
            "iumgate still held the upstream connection of a client that never reads after {LET_GO:?}"
        ),
    };
    assert!(written < BIG);
    // And the client's connection ends, cut short: what it gets is what was
    // in the socket buffers, then the close.
    let got = read_until_closed(&mut client).await;
    assert!(
        got.len() < BIG,
        "the client got the whole body ({} bytes)",
        got.len()
    );
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &got[..got.len().min(64)]
    );
}

#[tokio::test]
async fn a_client_that_never_reads_is_let_go_after_send_timeout_on_the_fast_lane() {
    // A plain GET: the fast lane's.
    slow_reader_is_let_go(b"GET /big HTTP/1.1\r\nHost: j\r\n\r\n").await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_let_go_after_send_timeout_on_the_hyper_lane() {
    // A request with a body: hyper's.
    slow_reader_is_let_go(b"POST /big HTTP/1.1\r\nHost: j\r\nContent-Length: 3\r\n\r\nabc").await;
}

/// The slow POST: a login body that starts, then sends a byte only every 3 s
/// (as the review's `slowbody.py`). With `body_timeout = 1s` the exchange
/// fails after a second without a byte: the client gets a 408 and the
/// connection closes, well before `request_timeout` (60 s here).
#[tokio::test]
async fn a_request_body_that_stalls_is_answered_408_after_body_timeout() {
    // Reads what comes and never answers (it waits for the whole body).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            held.push(tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink).await;
            }));
        }
    });
    let gw = start_proxy(
        &format!("http://{up}"),
        "body_timeout = \"1s\"\nrequest_timeout = \"60s\"",
    )
    .await;
    let stream = within("connect", TcpStream::connect(gw.proxy_addr))
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(
            b"POST /login.jsp HTTP/1.1\r\nHost: j\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nos_username=casual0",
        )
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            if write.write_all(b"1").await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut read = tokio::io::BufReader::new(read);
    let answer = tokio::time::timeout(LET_GO, read_response(&mut read, false))
        .await
        .unwrap_or_else(|_| {
            panic!("a stalled body got no answer in {LET_GO:?} (body_timeout is 1 s)")
        });
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the body stalled for body_timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(answer.header("connection"), Some("close"));
    let _ = read_until_closed(&mut read).await;
    trickle.abort();
}

/// A body that keeps coming is not cut: frames closer together than
/// `body_timeout` pass, and the upstream gets the whole body.
#[tokio::test]
async fn a_slow_but_steady_body_is_not_cut_by_body_timeout() {
    let up = echo_upstream().await;
    let gw = start_proxy(&up.url(), "body_timeout = \"1s\"").await;
    let stream = within("connect", TcpStream::connect(gw.proxy_addr))
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"POST /upload HTTP/1.1\r\nHost: j\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    for b in b"hello" {
        tokio::time::sleep(Duration::from_millis(300)).await;
        write.write_all(&[*b]).await.unwrap();
    }
    let mut read = tokio::io::BufReader::new(read);
    let answer = read_response(&mut read, false).await;
    assert_eq!(answer.status, 200);
    assert_eq!(Seen::parse(&answer.body).str("body"), "hello");
}

/// Finding 9: 200 connections to the admin listener that send half a head,
/// and one that sends nothing, are all closed after `header_timeout`.
#[tokio::test]
async fn half_sent_admin_requests_are_closed_after_header_timeout() {
    let up = echo_upstream().await;
    let mut cfg = config(&up.url(), "header_timeout = \"1s\"");
    // Above the 201 held here: only the time-out may close them.
    cfg.admin.max_connections = 1000;
    let run = iumgate::app::start(cfg).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = within("connect", TcpStream::connect(run.admin_addr))
            .await
            .unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    held.push(
        within("connect", TcpStream::connect(run.admin_addr))
            .await
            .unwrap(),
    );
    let all_closed = async {
        for s in &mut held {
            let mut rest = Vec::new();
            // A reset counts as closed too.
            let _ = s.read_to_end(&mut rest).await;
        }
    };
    if tokio::time::timeout(LET_GO, all_closed).await.is_err() {
        panic!("half-sent admin requests were still open after {LET_GO:?} (header_timeout is 1 s)");
    }
    // The admin listener still serves.
    let r = within(
        "admin /healthz",
        client()
            .get(format!("http://{}/healthz", run.admin_addr))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
}

/// The real binary with a low open-files limit, as in the review's
/// `fdhold.py`: hundreds of idle admin connections must not use up its file
/// descriptors (the public listener would then stop accepting). Those over
/// `[admin] max_connections` are closed at once; the public listener keeps
/// serving, and the admin listener serves again once they go.
#[tokio::test]
async fn idle_admin_connections_over_the_limit_do_not_starve_the_public_listener() {
    let up = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iumgate.toml");
    std::fs::write(
        &path,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"{}\"\n\
             # Long: here only the connection limit protects.\n\
             header_timeout = \"60s\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\nmax_connections = 16\n\
             [log]\nlevel = \"info\"\n",
            up.url()
        ),
    )
    .unwrap();
    let bin = Binary::spawn(&path, 96);
    let (proxy, admin) = (bin.proxy, bin.admin);
    // Far more idle admin connections than the process may open files.
    let mut held = Vec::new();
    for _ in 0..300 {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(admin)).await {
            Ok(Ok(s)) => held.push(s),
            // The backlog is full: the process stopped accepting.
            _ => break,
        }
    }
    // A new request on the public listener is still served.
    let r = tokio::time::timeout(
        LET_GO,
        client().get(format!("http://{proxy}/healthz")).send(),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the public listener did not answer while {} idle admin connections were open",
            held.len()
        )
    })
    .unwrap();
    assert_eq!(r.status(), 200);
    // The connections go; the admin listener serves again.
    drop(held);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = tokio::time::timeout(
            Duration::from_secs(2),
            client().get(format!("http://{admin}/healthz")).send(),
        )
        .await;
        if let Ok(Ok(r)) = got {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admin listener did not serve again after the idle connections left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `iumgate serve` under `ulimit -n`, killed on drop.
struct Binary {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
}

impl Binary {
    fn spawn(config: &std::path::Path, open_files: u32) -> Binary {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {open_files} && exec \"$0\" serve --config \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_iumgate"))
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start iumgate");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && line.contains("iumgate listening on") {
                    let _ = tx.send(line.clone());
                    sent = true;
                }
            }
        });
        let mut bin = Binary {
            child,
            proxy: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
        };
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("the binary did not log its addresses");
        let addr_after = |marker: &str| -> SocketAddr {
            let rest = &line[line.find(marker).expect(marker) + marker.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ',' || c == ')')
                .unwrap_or(rest.len());
            rest[..end].parse().expect("an address")
        };
        bin.proxy = addr_after("listening on http://");
        bin.admin = addr_after("admin on http://");
        bin
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
