//! The account model every back-end fills (users file, PostgreSQL, LDAP, HTTP hook), the
//! `[accounts]` configuration that chooses one, and the checks made after the password.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::{AccountLimits, AuthError, Permission, Permissions, User};
use crate::proxy::IpNet;

/// Which back-end holds the accounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountsKind {
    /// The TOML users file (`users_file`, managed with `ferry user`): the default.
    #[default]
    File,
    /// A PostgreSQL database (`url`), shared by the nodes of a cluster: accounts, groups,
    /// quotas, bans, session counts and the login history.
    Postgres,
    /// An LDAP directory (`url`, `[accounts.ldap]`): a bind checks the password.
    Ldap,
    /// An HTTP service (`url`, `[accounts.http]`) that answers each login with an account.
    Http,
}

/// `[accounts]`: where the accounts live.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// The back-end.
    pub kind: AccountsKind,
    /// Where it is: `postgres://user:password@host:port/db`, `ldap://host:port`,
    /// `ldaps://host:port`, or the HTTP hook's `http(s)://...` URL.
    pub url: Option<String>,
    /// Connections to the database at most (PostgreSQL).
    pub pool_size: usize,
    /// PostgreSQL over TLS: the CA (PEM) that signed the database's certificate. Given, the
    /// connection is TLS-only (`sslmode=require`, certificate and host name verified); with
    /// `sslmode=require` in the URL and no file, the system's CAs are trusted.
    pub ca_file: Option<std::path::PathBuf>,
    /// How long a login waits for the store before it gets 421, milliseconds.
    pub timeout_ms: u64,
    /// The LDAP settings.
    pub ldap: super::ldap::LdapConfig,
    /// The HTTP hook's settings.
    pub http: super::http::HttpConfig,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            kind: AccountsKind::File,
            url: None,
            pool_size: 16,
            ca_file: None,
            timeout_ms: 3000,
            ldap: super::ldap::LdapConfig::default(),
            http: super::http::HttpConfig::default(),
        }
    }
}

impl AccountsConfig {
    /// What is wrong with the settings, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let scheme = self.url.as_deref().and_then(|u| u.split_once("://")).map(|(s, _)| s);
        let want: &[&str] = match self.kind {
            AccountsKind::File => return Ok(()),
            AccountsKind::Postgres => &["postgres", "postgresql"],
            AccountsKind::Ldap => &["ldap", "ldaps"],
            AccountsKind::Http => &["http", "https"],
        };
        match scheme {
            Some(s) if want.contains(&s) => {}
            _ => return Err(format!("accounts.url: a {}:// URL is needed for kind {:?}", want[0], self.kind)),
        }
        if self.pool_size == 0 {
            return Err("accounts.pool_size: must be at least 1".into());
        }
        if self.timeout_ms == 0 {
            return Err("accounts.timeout_ms: must be at least 1".into());
        }
        Ok(())
    }

    /// The store's TCP port, for the sandbox (which ports the server may connect to).
    pub fn port(&self) -> Option<u16> {
        crate::config::url_host_port(self.url.as_deref()?).1
    }

    /// How long a login waits for the store.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms)
    }
}

/// One account as a back-end keeps it: everything a login needs after the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// The login name.
    pub name: String,
    /// The root, as stored: relative to the server's root, or absolute inside it; `None`: the
    /// server's root.
    pub root: Option<String>,
    /// What the account may do.
    pub permissions: Permissions,
    /// Its limits.
    pub limits: AccountLimits,
    /// Logs in only over TLS.
    pub tls_required: bool,
    /// May log in at all.
    pub enabled: bool,
    /// Its time has passed.
    pub expired: bool,
    /// The addresses it may log in from; empty: anywhere.
    pub allow_from: Vec<IpNet>,
}

impl AccountRecord {
    /// An enabled account with every permission, rooted at the server's root.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            root: None,
            permissions: Permissions::all(),
            limits: AccountLimits::default(),
            tls_required: false,
            enabled: true,
            expired: false,
            allow_from: Vec::new(),
        }
    }

    /// The logged-in user, when the account may log in from `from` now; its root resolved
    /// beneath `base`.
    pub fn admit(self, base: &Path, from: IpAddr) -> Result<User, AuthError> {
        if !self.enabled {
            return Err(AuthError::Refused("account disabled"));
        }
        if self.expired {
            return Err(AuthError::Refused("account expired"));
        }
        let from = from.to_canonical();
        if !self.allow_from.is_empty() && !self.allow_from.iter().any(|n| n.contains(from)) {
            return Err(AuthError::Refused("not allowed from this address"));
        }
        let root =
            resolve_root(base, self.root.as_deref()).ok_or(AuthError::Refused("root outside the server's root"))?;
        Ok(User {
            name: self.name,
            root,
            permissions: self.permissions,
            anonymous: false,
            tls_required: self.tls_required,
            limits: self.limits,
        })
    }
}

/// Whether a URL's host is a loopback address (or `localhost`): where a password may go without
/// TLS, as over a unix socket.
pub fn is_loopback_url(url: &str) -> bool {
    let host = crate::config::url_host_port(url).0;
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An account's root beneath the server's root `base`: `None`/empty is `base`, a relative path is
/// joined to it, an absolute one must be inside it; `..` is refused everywhere (a record in a
/// database or a directory must not reach outside the tree the server was given).
pub fn resolve_root(base: &Path, root: Option<&str>) -> Option<PathBuf> {
    let Some(root) = root.filter(|r| !r.is_empty()) else { return Some(base.to_path_buf()) };
    let path = Path::new(root);
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    if path.is_absolute() {
        path.starts_with(base).then(|| path.to_path_buf())
    } else {
        Some(base.join(path))
    }
}

/// Parses a comma-separated permission list (`list,read,write`); `None` when a name is unknown.
pub fn parse_permissions(list: &str) -> Option<Permissions> {
    let names: Option<Vec<Permission>> =
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Permission::from_name).collect();
    names.map(|n| Permissions::from_list(&n))
}

/// A permission set as a comma-separated list.
pub fn format_permissions(p: Permissions) -> String {
    p.to_list().iter().map(|p| p.name()).collect::<Vec<_>>().join(",")
}

/// Parses a comma-separated list of addresses and CIDR ranges; the first bad one is the error.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|_| s.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn roots_stay_beneath_the_servers_root() {
        let base = Path::new("/srv/ftp");
        assert_eq!(resolve_root(base, None).unwrap(), base);
        assert_eq!(resolve_root(base, Some("")).unwrap(), base);
        assert_eq!(resolve_root(base, Some("alice")).unwrap(), Path::new("/srv/ftp/alice"));
        assert_eq!(resolve_root(base, Some("/srv/ftp/bob")).unwrap(), Path::new("/srv/ftp/bob"));
        assert_eq!(resolve_root(base, Some("/srv/other")), None);
        assert_eq!(resolve_root(base, Some("/srv/ftpx")), None);
        assert_eq!(resolve_root(base, Some("../etc")), None);
        assert_eq!(resolve_root(base, Some("/srv/ftp/../../etc")), None);
    }

    #[test]
    fn admission_checks_enabled_expiry_and_addresses() {
        let base = Path::new("/srv");
        let ok = AccountRecord::new("a");
        assert_eq!(ok.clone().admit(base, HOME).unwrap().root, base);
        let off = AccountRecord { enabled: false, ..ok.clone() };
        assert_eq!(off.admit(base, HOME), Err(AuthError::Refused("account disabled")));
        let old = AccountRecord { expired: true, ..ok.clone() };
        assert_eq!(old.admit(base, HOME), Err(AuthError::Refused("account expired")));
        let office = AccountRecord { allow_from: parse_networks("10.0.0.0/8, 192.0.2.7").unwrap(), ..ok.clone() };
        assert!(office.clone().admit(base, HOME).is_ok());
        assert!(office.clone().admit(base, "::ffff:192.0.2.7".parse().unwrap()).is_ok(), "v4-mapped");
        assert_eq!(
            office.admit(base, "192.0.2.8".parse().unwrap()),
            Err(AuthError::Refused("not allowed from this address"))
        );
        let outside = AccountRecord { root: Some("/etc".into()), ..ok };
        assert_eq!(outside.admit(base, HOME), Err(AuthError::Refused("root outside the server's root")));
    }

    #[test]
    fn permission_lists() {
        let p = parse_permissions("list, read,write").unwrap();
        assert_eq!(format_permissions(p), "list,read,write");
        assert!(parse_permissions("list,fly").is_none());
        assert_eq!(parse_networks("10.0.0.0/8,x"), Err("x".into()));
    }

    #[test]
    fn ports_of_store_urls() {
        let c = |kind, url: &str| AccountsConfig { kind, url: Some(url.into()), ..AccountsConfig::default() };
        assert_eq!(c(AccountsKind::Postgres, "postgres://u:p@127.0.0.1:5433/db").port(), Some(5433));
        assert_eq!(c(AccountsKind::Postgres, "postgres://u:p@db/ferry").port(), Some(5432));
        assert_eq!(c(AccountsKind::Ldap, "ldaps://dir.example").port(), Some(636));
        assert_eq!(c(AccountsKind::Http, "http://127.0.0.1:8080/auth").port(), Some(8080));
        assert!(c(AccountsKind::Ldap, "postgres://x").validate().is_err());
        assert!(is_loopback_url("http://127.0.0.9:8080/x") && is_loopback_url("ldap://[::1]:389"));
        assert!(is_loopback_url("http://localhost/x") && !is_loopback_url("http://127.example/x"));
        assert!(c(AccountsKind::Http, "https://auth.example/login").validate().is_ok());
    }
}
