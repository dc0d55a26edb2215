//! TLS (RFC 4217 FTPS) with rustls: certificate loading and hot reload, and the per-session
//! configuration that ties data-channel TLS sessions to their control connection.
//!
//! Every control connection gets its own `ServerConfig` clone with its own session cache. A data
//! connection's handshake uses the same clone, so it can only resume a session that was created by
//! this control connection's handshake: a data connection that does not resume (or that resumes
//! someone else's session) is refused when reuse is required. A stolen data port is useless.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
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
    /// The configuration new sessions start from, and the certificates it serves.
    base: RwLock<(Arc<ServerConfig>, Arc<Certs>)>,
    /// When the served certificate expires (Unix seconds), for the metrics.
    not_after: std::sync::atomic::AtomicI64,
}

/// Certificates and keys read for a reload ([`Tls::prepare`]), not yet served.
#[derive(Debug)]
pub struct Prepared {
    config: ServerConfig,
    certs: Arc<Certs>,
    expires: i64,
}

/// The end of a certificate's validity (Unix seconds), if it parses.
fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// The server's certificates: the default one, and those of virtual hosts (`[[host]]` with
/// `tls_cert`/`tls_key`), chosen by the client's SNI or by a `HOST` sent before `AUTH`.
#[derive(Debug)]
struct Certs {
    default: Arc<CertifiedKey>,
    hosts: Vec<(crate::hosts::HostConfig, Arc<CertifiedKey>)>,
}

impl Certs {
    fn for_name(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.hosts.iter().find(|(h, _)| h.answers_to(name)).map(|(_, k)| k.clone())
    }
}

/// Picks the certificate of a handshake: the host the client's SNI names, else the host `HOST`
/// selected before `AUTH` (`preferred`), else the default.
#[derive(Debug)]
struct ByName {
    certs: Arc<Certs>,
    preferred: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_sni = hello.server_name().and_then(|sni| self.certs.for_name(sni));
        Some(by_sni.or_else(|| self.preferred.clone()).unwrap_or_else(|| self.certs.default.clone()))
    }
}

/// Reads a certificate chain and its private key; the chain's expiry.
fn load_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, i64), TlsError> {
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
    Ok((Arc::new(CertifiedKey::from_der(certs, key, provider)?), expires))
}

fn load_config(cert_path: &Path, key_path: &Path, hosts: &[crate::hosts::HostConfig]) -> Result<Prepared, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (default, expires) = load_key(cert_path, key_path, &provider)?;
    let mut host_keys = Vec::new();
    for h in hosts {
        if let (Some(c), Some(k)) = (&h.tls_cert, &h.tls_key) {
            host_keys.push((h.clone(), load_key(c, k, &provider)?.0));
        }
    }
    let certs = Arc::new(Certs { default, hosts: host_keys });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ByName { certs: certs.clone(), preferred: None }));
    // Resumption is stateful (session IDs and TLS 1.3 tickets that name a cache entry), so a
    // per-session cache can scope it; see [`Tls::session_config`].
    config.send_tls13_tickets = 4;
    Ok(Prepared { config, certs, expires })
}

impl Tls {
    /// Loads the certificate chain and private key from PEM files, and those of the virtual
    /// hosts that have their own.
    pub fn load(cert_path: &Path, key_path: &Path, hosts: &[crate::hosts::HostConfig]) -> Result<Self, TlsError> {
        let p = load_config(cert_path, key_path, hosts)?;
        Ok(Self {
            base: RwLock::new((Arc::new(p.config), p.certs)),
            not_after: std::sync::atomic::AtomicI64::new(p.expires),
        })
    }

    /// When the served certificate expires (Unix seconds; 0 when it could not be read).
    pub fn not_after(&self) -> i64 {
        self.not_after.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the certificates and keys for a reload, without using them yet.
    pub fn prepare(
        cert_path: &Path,
        key_path: &Path,
        hosts: &[crate::hosts::HostConfig],
    ) -> Result<Prepared, TlsError> {
        load_config(cert_path, key_path, hosts)
    }

    /// Serves `prepared` to new sessions from now on (a reload).
    pub fn install(&self, prepared: Prepared) {
        *self.base.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(prepared.config), prepared.certs);
        self.not_after.store(prepared.expires, std::sync::atomic::Ordering::Relaxed);
    }

    /// The configurations for one control connection and for its data connections. They share a
    /// session cache and a ticket key of their own, so a data connection can resume only a
    /// session born on this control connection: by session ID or TLS 1.3 ticket (the cache), or by
    /// a TLS 1.2 ticket (RFC 5077), which Go's TLS client (rclone) requires and which only this
    /// session's key opens. Tickets may be used more than once: OpenSSL- and GnuTLS-based clients
    /// (curl, lftp, Python) resume every data connection from the control connection's session.
    /// Early data (0-RTT), the case single-use tickets protect against, is off. `host`: the
    /// virtual host `HOST` selected, whose certificate is served when the client sends no SNI.
    pub fn session_configs(&self, host: Option<&str>) -> SessionTls {
        let (base, certs) = self.base.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut control = (*base).clone();
        if let Some(preferred) = host.and_then(|h| certs.for_name(h)) {
            control.cert_resolver = Arc::new(ByName { certs, preferred: Some(preferred) });
        }
        control.session_storage = Arc::new(ReusableSessions(ServerSessionMemoryCache::new(32)));
        match rustls::crypto::ring::Ticketer::new() {
            Ok(ticketer) => control.ticketer = ticketer,
            // Without a ticket key clients resume by session ID, as before.
            Err(e) => tracing::warn!(error = %e, "no TLS session-ticket key for this session"),
        }
        // One TLS 1.3 ticket on a data connection, as OpenSSL servers send: a client may spend a
        // ticket per resumption (rustls does) or resume a session only once (curl with OpenSSL),
        // and would otherwise have nothing left to resume the next data connection with.
        let mut download = control.clone();
        download.send_tls13_tickets = 1;
        // None on an upload's when the command came before the handshake (ftplib, lftp and
        // rustls-based clients start TLS after the 150): a client that only writes may never read
        // a ticket, and closing with it unread makes its kernel reset the connection, losing the
        // end of the upload. (A client that handshakes before its command, as curl and aioftp do,
        // gets one: the server cannot tell yet which way the data will go.)
        let mut data = control.clone();
        data.send_tls13_tickets = 0;
        SessionTls { control: Arc::new(control), data: Arc::new(data), download: Arc::new(download) }
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
    /// For its upload data connections whose command came before the handshake: no ticket.
    pub data: Arc<ServerConfig>,
    /// For its other data connections: the same, and one TLS 1.3 ticket.
    pub download: Arc<ServerConfig>,
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
        let e = Tls::load(&cert, &key, &[]).unwrap_err().to_string();
        assert!(e.contains("c.pem"), "{e}");
        assert!(Tls::load(&dir.path().join("missing"), &key, &[]).is_err());
    }
}
