//! FTPS for the benchmark: one certificate for every server (made by `ferry cert self-signed`),
//! and the load generator's TLS client, pinned to one protocol version and one cipher suite so
//! that every server negotiates the same thing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::crypto::ring::cipher_suite;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// The certificate and key every FTPS server presents (an ECDSA P-256 pair for 127.0.0.1).
#[derive(Debug, Clone)]
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certificate {
    /// Writes a pair into `dir` with `ferry cert self-signed`.
    pub fn make(ferry: &Path, dir: &Path) -> Result<Self> {
        let cert = dir.join("ftps-cert.pem");
        let key = dir.join("ftps-key.pem");
        let out = Command::new(ferry)
            .args(["cert", "self-signed", "--name", "127.0.0.1", "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .output()
            .context("running ferry cert self-signed")?;
        if !out.status.success() {
            bail!("ferry cert self-signed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(Certificate { cert, key })
    }
}

/// A TLS protocol version with the one cipher suite the benchmark uses with it: AES-128-GCM
/// (with ECDHE-ECDSA key exchange in TLS 1.2), which every server here offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Tls13,
    Tls12,
}

impl Version {
    pub const ALL: [Version; 2] = [Version::Tls13, Version::Tls12];

    /// "1.3" / "1.2".
    pub fn number(self) -> &'static str {
        match self {
            Version::Tls13 => "1.3",
            Version::Tls12 => "1.2",
        }
    }

    /// rustls's name for it.
    pub fn protocol(self) -> rustls::ProtocolVersion {
        match self {
            Version::Tls13 => rustls::ProtocolVersion::TLSv1_3,
            Version::Tls12 => rustls::ProtocolVersion::TLSv1_2,
        }
    }

    /// The suite's OpenSSL name.
    pub fn openssl_suite(self) -> &'static str {
        match self {
            Version::Tls13 => "TLS_AES_128_GCM_SHA256",
            Version::Tls12 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        }
    }

    /// curl's arguments for explicit FTPS with this version and suite, trusting `ca`.
    pub fn curl_args(self, ca: &Path) -> Vec<String> {
        let mut args = vec!["--ssl-reqd".to_string(), "--cacert".into(), ca.display().to_string()];
        match self {
            Version::Tls13 => args.extend(["--tlsv1.3".into(), "--tls13-ciphers".into(), self.openssl_suite().into()]),
            Version::Tls12 => args.extend([
                "--tlsv1.2".into(),
                "--tls-max".into(),
                "1.2".into(),
                "--ciphers".into(),
                self.openssl_suite().into(),
            ]),
        }
        args
    }
}

/// The load generator's TLS client: one configuration (so one session cache: data connections
/// resume the control connection's session, as the servers require) and the name to verify.
#[derive(Clone)]
pub struct Client {
    pub connector: tokio_rustls::TlsConnector,
    pub name: ServerName<'static>,
}

impl Client {
    /// A client for `version` trusting `cert`, verifying the name 127.0.0.1; with `resume`,
    /// keeping sessions (as one client process does for its data connections), else making a
    /// full handshake every time (as a new client process does).
    pub fn new(version: Version, cert: &Path, resume: bool) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(cert).with_context(|| format!("reading {}", cert.display()))? {
            roots.add(c?)?;
        }
        let mut provider = rustls::crypto::ring::default_provider();
        let (suite, proto) = match version {
            Version::Tls13 => (cipher_suite::TLS13_AES_128_GCM_SHA256, &rustls::version::TLS13),
            Version::Tls12 => (cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, &rustls::version::TLS12),
        };
        provider.cipher_suites = vec![suite];
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[proto])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        if !resume {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Client {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            name: ServerName::try_from("127.0.0.1")?.to_owned(),
        })
    }
}

/// Which version a finished connection negotiated, and with which suite (for the record).
pub fn describe(conn: &rustls::ClientConnection) -> String {
    format!(
        "{} {:?}",
        conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
        conn.negotiated_cipher_suite().map(|s| s.suite()).unwrap_or(rustls::CipherSuite::Unknown(0))
    )
}
