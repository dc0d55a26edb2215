//! `ferry cert self-signed`: a key pair for a quick FTPS start.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

/// Certificate commands.
#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Write a self-signed certificate and its private key (PEM). Clients must be told to trust it
    /// (curl --cacert, ferry --cacert, lftp ssl:ca-file) or to skip verification.
    SelfSigned {
        /// Certificate file to write.
        #[arg(long, default_value = "ferry-cert.pem")]
        cert: PathBuf,
        /// Private key file to write (mode 0600).
        #[arg(long, default_value = "ferry-key.pem")]
        key: PathBuf,
        /// Host names and IP addresses the certificate is for (repeatable).
        #[arg(long = "name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
        names: Vec<String>,
    },
}

/// Runs a cert subcommand.
pub fn run(cmd: CertCmd) -> Result<()> {
    match cmd {
        CertCmd::SelfSigned { cert, key, names } => {
            let made = rcgen::generate_simple_self_signed(names.clone()).context("generating the certificate")?;
            std::fs::write(&cert, made.cert.pem()).with_context(|| format!("writing {}", cert.display()))?;
            {
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&key)
                    .with_context(|| format!("writing {}", key.display()))?;
                f.write_all(made.signing_key.serialize_pem().as_bytes())?;
            }
            println!("wrote {} and {} for {}", cert.display(), key.display(), names.join(", "));
            println!("run: ferry serve --tls-cert {} --tls-key {}", cert.display(), key.display());
        }
    }
    Ok(())
}
