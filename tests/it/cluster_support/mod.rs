//! A real `redis-server` (Debian's package) for the cluster tests: started on
//! a free loopback port with its own temporary directory, no persistence,
//! stopped (killed) when dropped. Under CI a missing redis-server is a
//! failure (the install step broke), elsewhere a printed skip.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn find_redis() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// A redis-server, or `None` (with a printed reason) when the machine has
/// none and this is not CI.
pub fn redis_or_skip() -> Option<Redis> {
    let Some(bin) = find_redis() else {
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed: .ci/install-test-deps should have installed it");
        }
        eprintln!("SKIP: redis-server not installed (apt-get install redis-server)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut r = Redis {
        child: None,
        port,
        dir: tempfile::tempdir().expect("a temp dir"),
        bin,
    };
    r.start();
    Some(r)
}

impl Redis {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port, empty.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings() {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (what a crash or a network cut looks like to a client).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn pings(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Runs one command (inline protocol) and returns the raw answer.
    pub fn command(&self, cmd: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("redis answers");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
