//! Test support for Ferry, used only by its tests and its benchmark (`xtask`), never shipped.
//!
//! - [`peers`]: the real FTP servers Ferry is tested and measured against (vsftpd, Pure-FTPd,
//!   ProFTPD), each written a configuration and started as a foreground process on loopback.
//! - [`ctrl`]: a raw control connection (plain or after `AUTH TLS`) that sends lines and reads
//!   replies with `ferry-proto`'s parser, for tests that pin the wire format.
//! - [`random_bytes`] and [`client_config`]: test data and a rustls client that trusts one
//!   certificate; [`proc_status`] and [`rss_kib`]: what `/proc/PID/status` says of a server.

pub mod ctrl;
pub mod peers;

pub use ctrl::Ctrl;

/// Deterministic pseudo-random bytes (xorshift), for byte-exact transfer checks.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The value of `field` (`"VmRSS"`, `"Seccomp"`, ...) in `/proc/PID/status`, trimmed.
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).map(|v| v.trim().to_owned())
}

/// A process's resident memory in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS").and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// A rustls client configuration that trusts the certificates in the PEM file `cert`.
pub fn client_config(cert: &std::path::Path) -> std::io::Result<std::sync::Arc<rustls::ClientConfig>> {
    client_config_with(cert, rustls::DEFAULT_VERSIONS)
}

/// [`client_config`] for the TLS versions given (`&[&rustls::version::TLS12]`: TLS 1.2 only).
pub fn client_config_with(
    cert: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    let bad = |e: &dyn std::fmt::Display| std::io::Error::other(format!("{}: {e}", cert.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).map_err(|e| bad(&e))? {
        roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| bad(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
