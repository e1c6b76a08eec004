//! TLS on the public listener: rustls with ALPN h2/http1.1, and a certificate
//! that reloads on SIGHUP and when its files change. A broken new pair is
//! refused and the last good one kept (and the log says so).

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// Holds the current certificate; swapped atomically on reload.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
    stamp: std::sync::Mutex<Option<(SystemTime, SystemTime)>>,
}

/// Why the certificate pair cannot be used (at start, the error; on a
/// reload, a warning while the last good pair stays). The text names the
/// config key and the file; the cause is the source, not repeated.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read.
    #[error("proxy.tls.cert_file {}: cannot read the file", path.display())]
    CertUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The certificate file is not PEM.
    #[error("proxy.tls.cert_file {}: not PEM certificates", path.display())]
    CertNotPem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("proxy.tls.cert_file {}: no certificate in the file", path.display())]
    NoCert { path: PathBuf },
    /// The key file cannot be read.
    #[error("proxy.tls.key_file {}: cannot read the file", path.display())]
    KeyUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a PEM private key.
    #[error("proxy.tls.key_file {}: not a PEM private key", path.display())]
    KeyNotPem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The key file holds no private key.
    #[error("proxy.tls.key_file {}: no private key in the file", path.display())]
    NoKey { path: PathBuf },
    /// rustls cannot sign with the key (an unsupported key type).
    #[error("proxy.tls.key_file {}: the key cannot be used", path.display())]
    KeyUnusable {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the pair: the key does not belong to the certificate.
    #[error(
        "proxy.tls: {} and {} are not a pair",
        cert_file.display(),
        key_file.display()
    )]
    Pair {
        cert_file: PathBuf,
        key_file: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the server settings (a bug rather than a setting).
    #[error("proxy.tls: the TLS server settings cannot be made")]
    ServerConfig(#[source] rustls::Error),
}

impl TlsError {
    /// The config key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::CertUnreadable { .. }
            | TlsError::CertNotPem { .. }
            | TlsError::NoCert { .. } => "proxy.tls.cert_file",
            TlsError::KeyUnreadable { .. }
            | TlsError::KeyNotPem { .. }
            | TlsError::NoKey { .. }
            | TlsError::KeyUnusable { .. } => "proxy.tls.key_file",
            TlsError::Pair { .. } | TlsError::ServerConfig(_) => "proxy.tls",
        }
    }
}

fn load_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let path = || cert_file.to_owned();
    let pem = std::fs::read(cert_file).map_err(|source| TlsError::CertUnreadable {
        path: path(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::CertNotPem {
            path: path(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert { path: path() });
    }
    let path = || key_file.to_owned();
    let pem = std::fs::read(key_file).map_err(|source| TlsError::KeyUnreadable {
        path: path(),
        source,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: path() },
        source => TlsError::KeyNotPem {
            path: path(),
            source,
        },
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| {
        TlsError::KeyUnusable {
            path: path(),
            source,
        }
    })?;
    let ck = CertifiedKey::new(certs, signing);
    // Refuse a key that does not belong to the certificate.
    ck.keys_match().map_err(|source| TlsError::Pair {
        cert_file: cert_file.to_owned(),
        key_file: key_file.to_owned(),
        source,
    })?;
    Ok(ck)
}

fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let c = std::fs::metadata(cert).and_then(|m| m.modified()).ok()?;
    let k = std::fs::metadata(key).and_then(|m| m.modified()).ok()?;
    Some((c, k))
}

impl CertStore {
    /// Loads the pair; at start a broken pair is an error (nothing to keep).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<CertStore>, TlsError> {
        let ck = load_pair(cert_file, key_file)?;
        Ok(Arc::new(CertStore {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: ArcSwap::from_pointee(ck),
            stamp: std::sync::Mutex::new(stamps(cert_file, key_file)),
        }))
    }

    /// Reloads from the files. On failure the current pair stays in service.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = stamps(&self.cert_file, &self.key_file);
        match load_pair(&self.cert_file, &self.key_file) {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                if let Ok(mut s) = self.stamp.lock() {
                    *s = stamp;
                }
                tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(e) => {
                // Remember the stamp so a broken file is not retried every tick.
                if let Ok(mut s) = self.stamp.lock() {
                    *s = stamp;
                }
                tracing::warn!(
                    error = %super::error_chain(&e),
                    "TLS certificate reload failed; keeping the last good certificate"
                );
                Err(e)
            }
        }
    }

    /// Reloads if either file changed since the last (attempted) load.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = stamps(&self.cert_file, &self.key_file);
        let changed = match self.stamp.lock() {
            Ok(s) => now.is_some() && *s != now,
            Err(_) => false,
        };
        changed.then(|| self.reload())
    }

    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::ServerConfig)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(self.clone())));
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn self_signed() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (ck.cert.pem(), ck.key_pair.serialize_pem())
    }

    #[test]
    fn a_missing_cert_file_names_the_key_and_file_and_keeps_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("missing-cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, self_signed().1).unwrap();
        let e = CertStore::load(&cert, &key).unwrap_err();
        assert_eq!(e.key(), "proxy.tls.cert_file");
        let text = e.to_string();
        assert!(text.starts_with("proxy.tls.cert_file "), "{text}");
        assert!(text.contains("missing-cert.pem"), "{text}");
        let io = e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        // The cause is in the chain once, not in the error's own text.
        assert!(!text.contains(&io.to_string()), "{text}");
    }

    #[test]
    fn a_file_without_a_certificate_or_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_pem, key_pem) = self_signed();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "nothing here\n").unwrap();
        std::fs::write(&key, &key_pem).unwrap();
        let e = CertStore::load(&cert, &key).unwrap_err();
        assert!(matches!(e, TlsError::NoCert { .. }), "{e:?}");
        assert!(e.to_string().contains("cert.pem"), "{e}");

        std::fs::write(&cert, &cert_pem).unwrap();
        std::fs::write(&key, &cert_pem).unwrap();
        let e = CertStore::load(&cert, &key).unwrap_err();
        assert!(matches!(e, TlsError::NoKey { .. }), "{e:?}");
        assert_eq!(e.key(), "proxy.tls.key_file");
        assert!(e.to_string().contains("key.pem"), "{e}");

        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let e = CertStore::load(&cert, &key).unwrap_err();
        assert!(
            e.source()
                .is_some_and(|s| s.is::<rustls_pki_types::pem::Error>()),
            "{e:?}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_with_rustls_error_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (self_signed(), self_signed());
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, &a.0).unwrap();
        std::fs::write(&key, &b.1).unwrap();
        let e = CertStore::load(&cert, &key).unwrap_err();
        assert_eq!(e.key(), "proxy.tls");
        let text = e.to_string();
        assert!(
            text.contains("cert.pem") && text.contains("key.pem"),
            "{text}"
        );
        assert!(e.source().is_some_and(|s| s.is::<rustls::Error>()), "{e:?}");

        // The matching pair loads, and a broken reload keeps it and says why.
        std::fs::write(&key, &a.1).unwrap();
        let store = CertStore::load(&cert, &key).unwrap();
        std::fs::remove_file(&key).unwrap();
        let e = store.reload().unwrap_err();
        assert!(matches!(e, TlsError::KeyUnreadable { .. }), "{e:?}");
        assert!(store.server_config().is_ok());
    }
}
