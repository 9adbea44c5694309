//! TLS for the HTTP and OTLP/gRPC listeners, with rustls on ring: the certificate chain and key
//! from PEM files, checked to match at start, and read again when either file changes, so that
//! a renewed certificate is served without a restart (a renewal that does not load is logged and
//! counted, and the previous certificate stays in use).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate and key files are looked at for a change.
pub(crate) const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Where the server's certificate chain and private key are, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (`tls_cert`).
    pub cert_path: PathBuf,
    /// The private key of the leaf certificate: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`tls_key`).
    pub key_path: PathBuf,
}

/// Why a certificate and key could not be used; each names the file and what would be valid.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "reading the TLS certificate {path}: {reason}; give a PEM file of the certificate chain, leaf first"
    )]
    Cert { path: PathBuf, reason: String },
    #[error(
        "reading the TLS key {path}: {reason}; give a PEM file of the leaf certificate's private key (PKCS#8, PKCS#1 or SEC1)"
    )]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key {key} does not belong to the certificate {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads and checks the certificate chain and key.
fn load(config: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let cert_error = |reason: String| TlsError::Cert {
        path: config.cert_path.clone(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&config.cert_path)
        .map_err(|error| cert_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| cert_error(error.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE block in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_path).map_err(|error| TlsError::Key {
        path: config.key_path.clone(),
        reason: error.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|error| TlsError::Mismatch {
        cert: config.cert_path.clone(),
        key: config.key_path.clone(),
        reason: error.to_string(),
    })
}

/// The certificate in use, swapped when its files change.
#[derive(Debug)]
pub(crate) struct Certificate {
    config: TlsConfig,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times and lengths when last read.
    seen: RwLock<[Option<(SystemTime, u64)>; 2]>,
    reloads_ok: Counter,
    reloads_failed: Counter,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

impl Certificate {
    /// Loads the certificate and key; an error stops the start. Reloads count into `reloads`
    /// (succeeded, failed).
    pub(crate) fn open(
        config: &TlsConfig,
        reloads: (Counter, Counter),
    ) -> Result<Arc<Certificate>, TlsError> {
        let seen = [stamp(&config.cert_path), stamp(&config.key_path)];
        let key = load(config)?;
        Ok(Arc::new(Certificate {
            config: config.clone(),
            current: RwLock::new(Arc::new(key)),
            seen: RwLock::new(seen),
            reloads_ok: reloads.0,
            reloads_failed: reloads.1,
        }))
    }

    /// Reads the files again if either changed since it last did; `true` when a new
    /// certificate is now in use.
    pub(crate) fn reload_if_changed(&self) -> bool {
        let now = [stamp(&self.config.cert_path), stamp(&self.config.key_path)];
        {
            let seen = self
                .seen
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            if *seen == now {
                return false;
            }
        }
        *self
            .seen
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = now;
        match load(&self.config) {
            Ok(key) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(key);
                self.reloads_ok.inc();
                tracing::info!(cert = %self.config.cert_path.display(), "TLS certificate reloaded");
                true
            }
            Err(error) => {
                // A renewal written in two steps (the certificate, then the key) fails here
                // once, and loads at the next change.
                self.reloads_failed.inc();
                tracing::error!(%error, "TLS certificate not reloaded; still serving the previous one");
                false
            }
        }
    }

    /// Looks at the files every `interval` until the server stops (the task is aborted).
    pub(crate) async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let certificate = self.clone();
            let _ = tokio::task::spawn_blocking(move || certificate.reload_if_changed()).await;
        }
    }

    /// A rustls server configuration that offers `alpn` and presents the current certificate.
    pub(crate) fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring's default provider supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|poison| poison.into_inner())
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsConfig {
        let key = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let config = TlsConfig {
            cert_path: dir.join("cert.pem"),
            key_path: dir.join("key.pem"),
        };
        std::fs::write(&config.cert_path, key.cert.pem()).unwrap();
        std::fs::write(&config.key_path, key.signing_key.serialize_pem()).unwrap();
        config
    }

    #[test]
    fn bad_files_are_named_and_a_bad_renewal_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let config = write_pair(dir.path(), "localhost");
        let certificate = Certificate::open(&config, Default::default()).unwrap();
        let before = certificate.current.read().unwrap().cert[0].clone();

        // A key that belongs to another certificate.
        let other = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
        std::fs::write(&config.key_path, other.signing_key.serialize_pem()).unwrap();
        let error = load(&config).unwrap_err().to_string();
        assert!(error.contains("does not belong"), "{error}");
        assert!(!certificate.reload_if_changed());
        assert_eq!(certificate.reloads_failed.get(), 1);
        assert_eq!(certificate.current.read().unwrap().cert[0], before);

        // Then its certificate: the pair loads and replaces the first.
        std::fs::write(&config.cert_path, other.cert.pem()).unwrap();
        assert!(certificate.reload_if_changed());
        assert_ne!(certificate.current.read().unwrap().cert[0], before);
        assert!(!certificate.reload_if_changed(), "nothing changed since");

        std::fs::write(&config.cert_path, "not pem").unwrap();
        let error = load(&config).unwrap_err().to_string();
        assert!(
            error.contains("cert.pem") && error.contains("certificate chain"),
            "{error}"
        );
        let missing = TlsConfig {
            cert_path: dir.path().join("nothing.pem"),
            ..config.clone()
        };
        let error = load(&missing).unwrap_err().to_string();
        assert!(error.contains("nothing.pem"), "{error}");
        write_pair(dir.path(), "localhost");
        std::fs::write(&config.key_path, "").unwrap();
        let error = load(&config).unwrap_err().to_string();
        assert!(
            error.contains("key.pem") && error.contains("PKCS#8"),
            "{error}"
        );
    }
}
