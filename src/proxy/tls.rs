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

fn load_pair(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cert_file {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {}: no certificate in the file",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    // Refuse a key that does not belong to the certificate.
    ck.keys_match().map_err(|e| {
        format!(
            "{} and {} do not match: {e}",
            cert_file.display(),
            key_file.display()
        )
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
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<CertStore>, String> {
        let ck = load_pair(cert_file, key_file)?;
        Ok(Arc::new(CertStore {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: ArcSwap::from_pointee(ck),
            stamp: std::sync::Mutex::new(stamps(cert_file, key_file)),
        }))
    }

    /// Reloads from the files. On failure the current pair stays in service.
    pub fn reload(&self) -> Result<(), String> {
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
                tracing::warn!(error = %e, "TLS certificate reload failed; keeping the last good certificate");
                Err(e)
            }
        }
    }

    /// Reloads if either file changed since the last (attempted) load.
    pub fn reload_if_changed(&self) -> Option<Result<(), String>> {
        let now = stamps(&self.cert_file, &self.key_file);
        let changed = match self.stamp.lock() {
            Ok(s) => now.is_some() && *s != now,
            Err(_) => false,
        };
        changed.then(|| self.reload())
    }

    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
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
