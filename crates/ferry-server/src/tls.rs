//! TLS (RFC 4217 FTPS) with rustls: certificate loading and hot reload, and the per-session
//! configuration that ties data-channel TLS sessions to their control connection.
//!
//! Every control connection gets its own `ServerConfig` clone with its own session cache. A data
//! connection's handshake uses the same clone, so it can only resume a session that was created by
//! this control connection's handshake: a data connection that does not resume (or that resumes
//! someone else's session) is refused when reuse is required. A stolen data port is useless.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};

/// When TLS is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// No TLS: AUTH is refused.
    Off,
    /// TLS when the client asks for it (default when a certificate is configured).
    #[default]
    Optional,
    /// TLS on the control connection before login, and on every data connection.
    Required,
}

/// TLS configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM content is not usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("certificate and key do not form a usable pair: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server's TLS state: the current certificate, reloadable.
#[derive(Debug)]
pub struct Tls {
    base: RwLock<Arc<ServerConfig>>,
    /// When the served certificate expires (Unix seconds), for the metrics.
    not_after: std::sync::atomic::AtomicI64,
}

/// A certificate and key read for a reload ([`Tls::prepare`]), not yet served.
#[derive(Debug)]
pub struct Prepared {
    config: ServerConfig,
    expires: i64,
}

/// The end of a certificate's validity (Unix seconds), if it parses.
fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

fn load_config(cert_path: &Path, key_path: &Path) -> Result<(ServerConfig, i64), TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| TlsError::Pem { path: cert_path.into(), message: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem { path: cert_path.into(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { path: cert_path.into(), message: "no certificate in the file".into() });
    }
    let expires = not_after(&certs[0]).unwrap_or(0);
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::Pem { path: key_path.into(), message: format!("no usable private key: {e}") })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // Resumption is stateful (session IDs and TLS 1.3 tickets that name a cache entry), so a
    // per-session cache can scope it; see [`Tls::session_config`].
    config.send_tls13_tickets = 4;
    Ok((config, expires))
}

impl Tls {
    /// Loads a certificate chain and private key from PEM files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let (config, expires) = load_config(cert_path, key_path)?;
        Ok(Self { base: RwLock::new(Arc::new(config)), not_after: std::sync::atomic::AtomicI64::new(expires) })
    }

    /// When the served certificate expires (Unix seconds; 0 when it could not be read).
    pub fn not_after(&self) -> i64 {
        self.not_after.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads a certificate chain and key for a reload, without using them yet.
    pub fn prepare(cert_path: &Path, key_path: &Path) -> Result<Prepared, TlsError> {
        load_config(cert_path, key_path).map(|(config, expires)| Prepared { config, expires })
    }

    /// Serves `prepared` to new sessions from now on (a reload).
    pub fn install(&self, prepared: Prepared) {
        *self.base.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(prepared.config);
        self.not_after.store(prepared.expires, std::sync::atomic::Ordering::Relaxed);
    }

    /// The configurations for one control connection and for its data connections. They share a
    /// session cache and a ticket key of their own, so a data connection can resume only a
    /// session born on this control connection: by session ID or TLS 1.3 ticket (the cache), or by
    /// a TLS 1.2 ticket (RFC 5077), which Go's TLS client (rclone) requires and which only this
    /// session's key opens. Tickets may be used more than once: OpenSSL- and GnuTLS-based clients
    /// (curl, lftp, Python) resume every data connection from the control connection's session.
    /// Early data (0-RTT), the case single-use tickets protect against, is off.
    pub fn session_configs(&self) -> SessionTls {
        let base = self.base.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut control = (*base).clone();
        control.session_storage = Arc::new(ReusableSessions(ServerSessionMemoryCache::new(32)));
        match rustls::crypto::ring::Ticketer::new() {
            Ok(ticketer) => control.ticketer = ticketer,
            // Without a ticket key clients resume by session ID, as before.
            Err(e) => tracing::warn!(error = %e, "no TLS session-ticket key for this session"),
        }
        let mut data = control.clone();
        // No tickets on data connections: a client that only writes (an upload) never reads them,
        // and closing with them unread makes the kernel reset the connection, losing the end of
        // the upload. Clients resume from the control connection's session instead.
        data.send_tls13_tickets = 0;
        SessionTls { control: Arc::new(control), data: Arc::new(data) }
    }
}

/// A session cache whose TLS 1.3 tickets survive being used (see [`Tls::session_configs`]).
#[derive(Debug)]
struct ReusableSessions(Arc<ServerSessionMemoryCache>);

impl rustls::server::StoresServerSessions for ReusableSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

/// One session's TLS configurations (see [`Tls::session_configs`]).
#[derive(Debug, Clone)]
pub struct SessionTls {
    /// For the control connection.
    pub control: Arc<ServerConfig>,
    /// For its data connections.
    pub data: Arc<ServerConfig>,
}

/// A byte stream the session can run over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not pem").unwrap();
        std::fs::write(&key, "not pem").unwrap();
        let e = Tls::load(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("c.pem"), "{e}");
        assert!(Tls::load(&dir.path().join("missing"), &key).is_err());
    }
}
