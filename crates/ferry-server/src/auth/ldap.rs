//! Accounts in an LDAP directory (`[accounts] kind = "ldap"`): the password is checked by binding
//! as the user (found by a DN template, or by a search as a service account), over LDAPS or
//! StartTLS; attributes of the entry give the root, permissions and limits, with defaults from
//! the configuration; a group filter says who may log in at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use ldap3::{dn_escape, ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::Deserialize;

use super::model::{parse_permissions, AccountRecord, AccountsConfig};
use super::{AuthError, Authenticator, User};

/// `[accounts.ldap]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// The user's DN, `{user}` replaced by the login name: `uid={user},ou=people,dc=example,dc=org`
    /// (bind directly). Without it, `search` finds the entry.
    pub user_dn: Option<String>,
    /// Find the user's entry with a search, as a service account.
    pub search: Option<LdapSearch>,
    /// Upgrade `ldap://` with StartTLS (required unless the URL is `ldaps://` or loopback).
    pub starttls: bool,
    /// The CA certificate(s) (PEM) that signed the directory's certificate; none: the system's.
    pub ca_file: Option<PathBuf>,
    /// Who may log in: entries matching this search must exist.
    pub group: Option<LdapGroup>,
    /// Which attributes of the user's entry give the account's settings.
    pub attributes: LdapAttributes,
    /// Settings for users whose entry has none.
    pub defaults: LdapDefaults,
}

/// `[accounts.ldap.search]`: the service account and how it finds a user.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapSearch {
    /// Where to search: `ou=people,dc=example,dc=org`.
    pub base: String,
    /// The filter, `{user}` replaced by the (escaped) login name: `(uid={user})`.
    pub filter: String,
    /// The service account's DN.
    pub bind_dn: String,
    /// The service account's password.
    pub bind_password: String,
}

/// `[accounts.ldap.group]`: a search that must find something for the user to log in.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapGroup {
    /// Where to search: `ou=groups,dc=example,dc=org`.
    pub base: String,
    /// The filter, `{dn}` replaced by the user's DN and `{user}` by the login name:
    /// `(&(cn=ftpusers)(member={dn}))`.
    pub filter: String,
}

/// `[accounts.ldap.attributes]`: attribute names (none mapped by default).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapAttributes {
    /// The root (relative to the server's root, or absolute inside it), e.g. `ferryRoot`.
    pub root: Option<String>,
    /// Comma-separated permissions, e.g. `ferryPermissions`.
    pub permissions: Option<String>,
    /// Quota in bytes, e.g. `ferryQuotaBytes`.
    pub quota_bytes: Option<String>,
    /// Quota in files, e.g. `ferryQuotaFiles`.
    pub quota_files: Option<String>,
    /// Sessions at once, e.g. `ferryMaxSessions`.
    pub max_sessions: Option<String>,
}

/// `[accounts.ldap.defaults]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapDefaults {
    /// The root; `{user}` is replaced by the login name (`home/{user}`); none: the server's root.
    pub root: Option<String>,
    /// Comma-separated permissions; none: all.
    pub permissions: Option<String>,
    /// Quota in bytes.
    pub quota_bytes: Option<u64>,
    /// Quota in files.
    pub quota_files: Option<u64>,
    /// Sessions at once.
    pub max_sessions: Option<u32>,
}

/// The directory.
#[derive(Clone)]
pub struct LdapAccounts {
    url: String,
    config: Arc<LdapConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    base: PathBuf,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for LdapAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapAccounts").field("url", &self.url).finish()
    }
}

/// An LDAP result code: invalid credentials.
const INVALID_CREDENTIALS: u32 = 49;

fn unavailable(e: impl std::fmt::Display) -> AuthError {
    AuthError::Unavailable(format!("LDAP: {e}"))
}

impl LdapAccounts {
    /// The directory of `config` (its CA file is read now, before the sandbox closes the
    /// filesystem); account roots are resolved beneath `base`.
    pub fn new(config: &AccountsConfig, base: PathBuf) -> Result<Self, String> {
        let url = config.url.clone().ok_or("accounts.url: missing")?;
        let ldap = &config.ldap;
        if ldap.user_dn.is_none() && ldap.search.is_none() {
            return Err("accounts.ldap: set user_dn (bind directly) or [accounts.ldap.search]".into());
        }
        if url.starts_with("ldap://") && !ldap.starttls && !super::model::is_loopback_url(&url) {
            return Err(
                "accounts.ldap.starttls: passwords would cross the network in clear; use ldaps:// or starttls = true"
                    .into(),
            );
        }
        let tls = match &ldap.ca_file {
            None => None,
            Some(file) => Some(Arc::new(super::client_tls(Some(file), "accounts.ldap.ca_file")?)),
        };
        Ok(Self { url, config: Arc::new(ldap.clone()), tls, base, timeout: config.timeout() })
    }

    async fn connect(&self) -> Result<ldap3::Ldap, AuthError> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout).set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url).await.map_err(unavailable)?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout);
        Ok(ldap)
    }

    /// The attributes asked for with the user's entry.
    fn attribute_names(&self) -> Vec<String> {
        let a = &self.config.attributes;
        [&a.root, &a.permissions, &a.quota_bytes, &a.quota_files, &a.max_sessions]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The user's DN and attributes: by a search as the service account, or from the template
    /// (attributes are then read after the user's bind).
    async fn find(
        &self,
        ldap: &mut ldap3::Ldap,
        name: &str,
    ) -> Result<Option<(String, HashMap<String, Vec<String>>)>, AuthError> {
        let Some(search) = &self.config.search else {
            let template = self.config.user_dn.as_deref().unwrap_or_default();
            return Ok(Some((template.replace("{user}", &dn_escape(name)), HashMap::new())));
        };
        ldap.simple_bind(&search.bind_dn, &search.bind_password)
            .await
            .and_then(|r| r.success())
            .map_err(unavailable)?;
        let filter = search.filter.replace("{user}", &ldap_escape(name));
        let (entries, _) = ldap
            .search(&search.base, Scope::Subtree, &filter, self.attribute_names())
            .await
            .and_then(|r| r.success())
            .map_err(unavailable)?;
        let mut entries = entries.into_iter();
        let (Some(entry), None) = (entries.next(), entries.next()) else {
            // None, or ambiguous: nobody logs in as "whichever came first".
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry);
        Ok(Some((entry.dn, entry.attrs)))
    }

    fn record(&self, name: &str, attrs: &HashMap<String, Vec<String>>) -> AccountRecord {
        let (a, d) = (&self.config.attributes, &self.config.defaults);
        let get = |attr: &Option<String>| attr.as_ref().and_then(|n| attrs.get(n)).and_then(|v| v.first()).cloned();
        let number = |attr: &Option<String>| get(attr).and_then(|v| v.trim().parse::<u64>().ok());
        let mut rec = AccountRecord::new(name);
        rec.root = get(&a.root).or_else(|| d.root.as_ref().map(|r| r.replace("{user}", name)));
        if let Some(p) = get(&a.permissions).or_else(|| d.permissions.clone()) {
            rec.permissions = parse_permissions(&p).unwrap_or_else(|| {
                tracing::error!(user = %name, permissions = %p, "unknown permission from LDAP: none granted");
                super::Permissions::default()
            });
        }
        rec.limits.quota_bytes = number(&a.quota_bytes).or(d.quota_bytes);
        rec.limits.quota_files = number(&a.quota_files).or(d.quota_files);
        rec.limits.max_sessions = number(&a.max_sessions).map(|v| v.min(u32::MAX as u64) as u32).or(d.max_sessions);
        rec
    }

    async fn check(&self, name: &str, password: &str) -> Result<AccountRecord, AuthError> {
        // An empty password is an "unauthenticated bind", which LDAP servers answer with success.
        if password.is_empty() || name.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        let mut ldap = self.connect().await?;
        let Some((dn, mut attrs)) = self.find(&mut ldap, name).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        match ldap.simple_bind(&dn, password).await.map_err(unavailable)?.rc {
            0 => {}
            INVALID_CREDENTIALS => return Err(AuthError::InvalidCredentials),
            // No such DN (32) and the like: the name is wrong; anything else is the directory's.
            32 | 34 => return Err(AuthError::InvalidCredentials),
            rc => return Err(unavailable(format!("bind answered {rc}"))),
        }
        if self.config.search.is_none() && !self.attribute_names().is_empty() {
            let (entries, _) = ldap
                .search(&dn, Scope::Base, "(objectClass=*)", self.attribute_names())
                .await
                .and_then(|r| r.success())
                .map_err(unavailable)?;
            if let Some(e) = entries.into_iter().next() {
                attrs = SearchEntry::construct(e).attrs;
            }
        }
        if let Some(group) = &self.config.group {
            if let Some(search) = &self.config.search {
                // Groups are read as the service account (users often may not read them).
                ldap.simple_bind(&search.bind_dn, &search.bind_password)
                    .await
                    .and_then(|r| r.success())
                    .map_err(unavailable)?;
            }
            let filter = group.filter.replace("{dn}", &ldap_escape(&dn)).replace("{user}", &ldap_escape(name));
            let (entries, _) = ldap
                .search(&group.base, Scope::Subtree, &filter, vec!["1.1"])
                .await
                .and_then(|r| r.non_error())
                .map_err(unavailable)?;
            if entries.is_empty() {
                let _ = ldap.unbind().await;
                return Err(AuthError::Refused("not in the LDAP group that may log in"));
            }
        }
        let _ = ldap.unbind().await;
        Ok(self.record(name, &attrs))
    }
}

#[async_trait]
impl Authenticator for LdapAccounts {
    fn is_anonymous(&self, _name: &str) -> bool {
        false
    }

    async fn authenticate(&self, name: &str, password: &str, from: IpAddr) -> Result<User, AuthError> {
        self.check(name, password).await?.admit(&self.base, from)
    }

    async fn health(&self) -> Result<(), String> {
        let mut ldap = self.connect().await.map_err(|e| e.to_string())?;
        let _ = ldap.unbind().await;
        Ok(())
    }
}
