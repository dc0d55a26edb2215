//! Virtual hosts (RFC 7151): `[[host]]` sections give one server several names, each with its own
//! root, users and greeting. `HOST name` before `USER` selects one; without it a client gets the
//! default host (the top-level settings), as on a server without virtual hosts.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::auth::Authenticator;

/// One `[[host]]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The host's name (`ftp.a.example`).
    pub name: String,
    /// Other names for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The root of every user of this host without a root of their own.
    pub root: PathBuf,
    /// The host's users file; the server's users (rooted at this host's root) when absent.
    #[serde(default)]
    pub users: Option<PathBuf>,
    /// The text of the 220 answering `HOST`; the server's banner when absent.
    #[serde(default)]
    pub banner: Option<String>,
    /// The host's certificate chain (PEM), served when the client's SNI or `HOST` names it.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

impl HostConfig {
    /// Whether `name` is this host's (any case, a trailing dot ignored).
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.trim().trim_end_matches('.');
        std::iter::once(&self.name).chain(&self.aliases).any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(name))
    }
}

/// What is wrong with a set of `[[host]]` sections, if anything.
pub fn check(hosts: &[HostConfig]) -> Result<(), String> {
    let mut seen: Vec<String> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        for name in std::iter::once(&h.name).chain(&h.aliases) {
            let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
            if n.is_empty() || n.contains(char::is_whitespace) {
                return Err(format!("host[{i}]: {name:?} is not a host name"));
            }
            if h.tls_cert.is_some() != h.tls_key.is_some() {
                return Err(format!("host[{i}]: tls_cert and tls_key go together"));
            }
            if seen.contains(&n) {
                return Err(format!("host[{i}]: the name {name:?} is given twice"));
            }
            seen.push(n);
        }
    }
    Ok(())
}

/// A virtual host of a running server.
#[derive(Debug)]
pub struct VirtualHost {
    /// Its settings.
    pub config: HostConfig,
    /// Its users.
    pub auth: Arc<dyn Authenticator>,
}

/// The virtual hosts of a server.
#[derive(Debug, Default)]
pub struct Hosts(Vec<Arc<VirtualHost>>);

impl Hosts {
    /// The hosts, with their users.
    pub fn new(hosts: Vec<VirtualHost>) -> Self {
        Self(hosts.into_iter().map(Arc::new).collect())
    }

    /// Whether any `[[host]]` is configured.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// The host answering to `name`.
    pub fn find(&self, name: &str) -> Option<Arc<VirtualHost>> {
        self.0.iter().find(|h| h.config.answers_to(name)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, aliases: &[&str]) -> HostConfig {
        HostConfig {
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            root: "/srv".into(),
            users: None,
            banner: None,
            tls_cert: None,
            tls_key: None,
        }
    }

    #[test]
    fn names_match_any_case_and_a_trailing_dot() {
        let h = host("a.example", &["www.a.example"]);
        assert!(h.answers_to("A.Example"));
        assert!(h.answers_to("a.example."));
        assert!(h.answers_to(" www.a.example"));
        assert!(!h.answers_to("b.example"));
        assert!(!h.answers_to("example"));
    }

    #[test]
    fn names_are_unique() {
        assert!(check(&[host("a.example", &[]), host("b.example", &["c.example"])]).is_ok());
        assert!(check(&[host("a.example", &[]), host("b.example", &["A.EXAMPLE."])]).unwrap_err().contains("twice"));
        assert!(check(&[host("", &[])]).is_err());
        assert!(check(&[host("a b", &[])]).is_err());
    }
}
