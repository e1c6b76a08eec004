//! The pooled keep-alive client towards the upstream (HTTP/1.1, http or https).

use super::body::Body;
use crate::config::ProxyConfig;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use std::sync::Arc;

pub type Upstream = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// The rustls client config: the system's roots plus `upstream_ca_file`.
pub fn tls_client_config(
    extra_ca: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("upstream_ca_file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("upstream_ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "upstream_ca_file {}: no certificate in the file",
                path.display()
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("upstream_ca_file {}: {e}", path.display()))?;
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

pub fn build(cfg: &ProxyConfig) -> Result<Upstream, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout.get()));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let tls = tls_client_config(cfg.upstream_ca_file.as_deref())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.idle_timeout.get())
        .pool_max_idle_per_host(1024)
        .build(https))
}
