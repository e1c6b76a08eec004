//! TLS on the public listener: HTTP/2 via ALPN towards an HTTP/1.1 upstream,
//! and certificate reloads (explicit and by file watch) that keep the last
//! good certificate when the new files are broken.

use crate::proxy_support::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A self-signed certificate for `localhost`: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (ck.cert.pem(), ck.key_pair.serialize_pem())
}

struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

fn write_pair(cert: &Path, key: &Path, pair: &(String, String)) {
    std::fs::write(cert, &pair.0).unwrap();
    std::fs::write(key, &pair.1).unwrap();
}

fn files(pair: &(String, String)) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    write_pair(&cert, &key, pair);
    Files {
        _dir: dir,
        cert,
        key,
    }
}

fn tls_section(f: &Files, reload_check: &str) -> String {
    format!(
        "[proxy.tls]\ncert_file = {:?}\nkey_file = {:?}\nreload_check = \"{reload_check}\"\n",
        f.cert.display().to_string(),
        f.key.display().to_string()
    )
}

/// A client that trusts only `cert_pem` and reaches `localhost` at `addr`,
/// opening a fresh connection (and handshake) for every request.
fn trusting(cert_pem: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Whether the proxy at `addr` now serves `cert_pem` (a client trusting only
/// that certificate completes a request).
async fn serves(cert_pem: &str, addr: SocketAddr) -> bool {
    let url = format!("https://localhost:{}/", addr.port());
    within("a TLS request", trusting(cert_pem, addr).get(url).send())
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn http2_over_tls_reaches_an_http11_upstream() {
    let up = echo_upstream().await;
    let pair = self_signed();
    let f = files(&pair);
    let gw = start_proxy(&up.url(), &tls_section(&f, "5s")).await;
    let url = format!("https://localhost:{}/browse/ABC-1", gw.proxy_addr.port());

    let resp = trusting(&pair.0, gw.proxy_addr)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2, "ALPN should pick h2");
    assert_eq!(resp.status(), 200);
    let seen = Seen::parse(&resp.bytes().await.unwrap());
    assert_eq!(seen.str("version"), "HTTP/1.1");
    assert_eq!(seen.str("uri"), "/browse/ABC-1");
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    // HTTP/2 has no Host header: the :authority becomes the upstream's Host.
    let authority = format!("localhost:{}", gw.proxy_addr.port());
    assert_eq!(seen.header("host"), Some(authority.clone()));
    assert_eq!(seen.header("x-forwarded-host"), Some(authority));

    // HTTP/1.1 clients are still served on the same port.
    let h1 = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pair.0.as_bytes()).unwrap())
        .resolve("localhost", gw.proxy_addr)
        .build()
        .unwrap();
    let resp = h1.get(&url).send().await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_the_old_one_when_the_new_is_broken() {
    let up = echo_upstream().await;
    let (a, b) = (self_signed(), self_signed());
    let f = files(&a);
    // A long check interval: only the explicit reload (SIGHUP's path) acts here.
    let gw = start_proxy(&up.url(), &tls_section(&f, "1h")).await;
    assert!(serves(&a.0, gw.proxy_addr).await);
    assert!(
        !serves(&b.0, gw.proxy_addr).await,
        "B is not yet trusted by anyone"
    );

    write_pair(&f.cert, &f.key, &b);
    gw.reload();
    assert!(
        serves(&b.0, gw.proxy_addr).await,
        "the new certificate after reload"
    );
    assert!(!serves(&a.0, gw.proxy_addr).await, "the old one is gone");

    // Garbage in the certificate file: B stays.
    std::fs::write(&f.cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    gw.reload();
    assert!(
        serves(&b.0, gw.proxy_addr).await,
        "last good certificate kept"
    );

    // A certificate with someone else's key: B stays.
    std::fs::write(&f.cert, &a.0).unwrap();
    gw.reload();
    assert!(serves(&b.0, gw.proxy_addr).await, "mismatched pair refused");
}

#[tokio::test]
async fn changed_certificate_files_are_picked_up_without_a_restart() {
    let up = echo_upstream().await;
    let (a, b, c) = (self_signed(), self_signed(), self_signed());
    let f = files(&a);
    let gw = start_proxy(&up.url(), &tls_section(&f, "1s")).await;
    assert!(serves(&a.0, gw.proxy_addr).await);

    write_pair(&f.cert, &f.key, &b);
    wait_until_served(&b.0, gw.proxy_addr).await;

    // A broken file: the watcher refuses it and keeps B, and is not stuck:
    // the next good pair is picked up.
    std::fs::write(&f.cert, "garbage").unwrap();
    assert!(serves(&b.0, gw.proxy_addr).await);
    write_pair(&f.cert, &f.key, &c);
    wait_until_served(&c.0, gw.proxy_addr).await;
}

/// Polls (bounded) until the proxy serves `cert_pem`.
async fn wait_until_served(cert_pem: &str, addr: SocketAddr) {
    within("the new certificate to be served", async {
        while !serves(cert_pem, addr).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}
