//! An HTTP service that decides logins (`[accounts] kind = "http"`), like SFTPGo's external
//! authentication: Ferry POSTs the user, the password, the client's address and the protocol as
//! JSON to `url`, and the service answers 200 with the account as JSON, or 401/403 to refuse.
//! Any other answer, or none within `timeout_ms`, is the service being unavailable (421).
//!
//! Request: `{"user": "alice", "password": "...", "ip": "192.0.2.7", "protocol": "FTP"}`.
//! Answer (every field optional): `{"root": "alice", "permissions": ["list", "read"],
//! "quota_bytes": 1000000, "quota_files": 100, "max_sessions": 2, "download_bps": 0,
//! "upload_bps": 0, "tls_required": false, "allow_fxp": false, "enabled": true}`.
//!
//! The password crosses to the service only over HTTPS or to a loopback address. Positive answers
//! are kept for `cache_secs` (at most `cache_size` of them), keyed by a keyed digest of the name
//! and password, so a client that reconnects per file does not ask each time; refusals are never
//! kept.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;

use super::model::{AccountRecord, AccountsConfig};
use super::{AccountLimits, AuthError, Authenticator, Permission, Permissions, User};

/// `[accounts.http]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// How long a positive answer is reused, seconds (0: never).
    pub cache_secs: u64,
    /// Positive answers kept at most.
    pub cache_size: usize,
    /// Sent as `Authorization: Bearer TOKEN`, so the service knows the caller.
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { cache_secs: 60, cache_size: 10_000, token: None }
    }
}

/// The service's answer for an accepted login.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Answer {
    root: Option<String>,
    permissions: Option<Vec<Permission>>,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    max_sessions: Option<u32>,
    download_bps: Option<u64>,
    upload_bps: Option<u64>,
    tls_required: bool,
    allow_fxp: bool,
    enabled: Option<bool>,
}

/// The auth service.
#[derive(Debug)]
pub struct HttpAccounts {
    url: String,
    client: reqwest::Client,
    config: HttpConfig,
    base: PathBuf,
    cache: Mutex<HashMap<[u8; 64], (Instant, AccountRecord)>>,
    key: [u8; 32],
}

impl HttpAccounts {
    /// The service of `config`; account roots are resolved beneath `base`.
    pub fn new(config: &AccountsConfig, base: PathBuf) -> Result<Self, String> {
        let url = config.url.clone().ok_or("accounts.url: missing")?;
        if url.starts_with("http://") && !super::model::is_loopback_url(&url) {
            return Err(
                "accounts.url: passwords go to the auth service only over https:// (or to a loopback address)".into()
            );
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("accounts: {e}"))?;
        Ok(Self {
            url,
            client,
            config: config.http.clone(),
            base,
            cache: Mutex::new(HashMap::new()),
            key: rand::random(),
        })
    }

    fn cached(&self, key: &[u8; 64]) -> Option<AccountRecord> {
        let ttl = Duration::from_secs(self.config.cache_secs);
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|(at, _)| at.elapsed() < ttl).map(|(_, r)| r.clone())
    }

    fn remember(&self, key: [u8; 64], record: &AccountRecord) {
        if self.config.cache_secs == 0 || self.config.cache_size == 0 {
            return;
        }
        let ttl = Duration::from_secs(self.config.cache_secs);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.config.cache_size {
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= self.config.cache_size {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), record.clone()));
    }

    async fn ask(&self, name: &str, password: &str, from: IpAddr) -> Result<AccountRecord, AuthError> {
        let body = serde_json::json!({ "user": name, "password": password, "ip": from.to_canonical().to_string(), "protocol": "FTP" });
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token);
        }
        let unavailable = |e: &dyn std::fmt::Display| AuthError::Unavailable(format!("auth service: {e}"));
        let response = request.send().await.map_err(|e| unavailable(&e))?;
        match response.status().as_u16() {
            200 => {}
            401 | 403 => return Err(AuthError::InvalidCredentials),
            code => return Err(unavailable(&format!("answered HTTP {code}"))),
        }
        let bytes = response.bytes().await.map_err(|e| unavailable(&e))?;
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| unavailable(&format!("bad answer: {e}")))?;
        Ok(AccountRecord {
            name: name.to_string(),
            root: answer.root,
            permissions: answer.permissions.map_or_else(Permissions::all, |p| Permissions::from_list(&p)),
            limits: AccountLimits {
                max_sessions: answer.max_sessions,
                download_bps: answer.download_bps.filter(|v| *v > 0),
                upload_bps: answer.upload_bps.filter(|v| *v > 0),
                quota_bytes: answer.quota_bytes,
                quota_files: answer.quota_files,
                allow_fxp: answer.allow_fxp,
            },
            tls_required: answer.tls_required,
            enabled: answer.enabled.unwrap_or(true),
            expired: false,
            allow_from: Vec::new(),
        })
    }
}

#[async_trait]
impl Authenticator for HttpAccounts {
    fn is_anonymous(&self, _name: &str) -> bool {
        false
    }

    async fn authenticate(&self, name: &str, password: &str, from: IpAddr) -> Result<User, AuthError> {
        if password.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        let key = super::keyed_digest(&self.key, &[name], password);
        let record = match self.cached(&key) {
            Some(r) => r,
            None => {
                let r = self.ask(name, password, from).await?;
                self.remember(key, &r);
                r
            }
        };
        record.admit(&self.base, from)
    }

    async fn health(&self) -> Result<(), String> {
        // Any HTTP answer means the service is there (a probe is not a login).
        self.client.head(&self.url).send().await.map(|_| ()).map_err(|e| format!("auth service: {e}"))
    }
}
