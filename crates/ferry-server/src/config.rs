//! Server configuration: every setting, its default, and validation that names the bad field.
//!
//! The same structure is read from `ferry.toml` (see `ferry.example.toml`) and filled from
//! command-line flags. Defaults are the secure ones; a setting that weakens security says
//! `unsafe` in its name.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Control-connection listen addresses.
    pub listen: Vec<SocketAddr>,
    /// The default root directory (users without their own root, anonymous users).
    pub root: PathBuf,
    /// The users file; `None` means users come only from `--user`.
    pub users_file: Option<PathBuf>,
    /// Allow read-only anonymous logins (`anonymous` / `ftp`).
    pub anonymous: bool,
    /// The anonymous users' root; `root` when absent.
    pub anonymous_root: Option<PathBuf>,
    /// The text of the 220 greeting.
    pub banner: String,
    /// `fsync` uploads before answering 226.
    pub fsync: bool,
    /// Passive mode.
    pub passive: PassiveConfig,
    /// Active mode.
    pub active: ActiveConfig,
    /// Limits and timeouts.
    pub limits: Limits,
    /// FTPS (RFC 4217).
    pub tls: TlsConfig,
    /// PROXY protocol from load balancers.
    pub proxy_protocol: ProxyProtocolConfig,
    /// Where files live: the local filesystem (default) or an S3 bucket.
    pub storage: StorageConfig,
    /// The server process itself: whom it runs as, and its sandbox.
    pub process: ProcessConfig,
    /// Log files beside the stderr log: the transfer log, the vsftpd-format log.
    pub log: crate::events::LogConfig,
    /// The admin interface: metrics, health, sessions API (off unless set).
    pub admin: crate::admin::AdminConfig,
    /// Bans: the allow-list, repeat offenders, persistence.
    pub bans: crate::bans::BanConfig,
    /// Commands and webhooks run on uploads, deletions, renames and logins (`[[hooks]]`).
    pub hooks: Vec<crate::hooks::HookConfig>,
    /// Virtual hosts (`[[host]]`, RFC 7151 `HOST`).
    #[serde(rename = "host")]
    pub hosts: Vec<crate::hosts::HostConfig>,
    /// Where the accounts live: the users file (default), PostgreSQL, LDAP or an HTTP service.
    pub accounts: crate::auth::model::AccountsConfig,
}

/// The server process: the user it switches to after binding its ports, and its sandbox
/// (docs/reliability.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Started as root (to bind port 21), switch to this user before serving: its group, no
    /// supplementary groups. The users' roots must be writable by it.
    pub run_as: Option<String>,
    /// Confine the server with Landlock and a seccomp allow-list once it has started (Linux).
    pub sandbox: bool,
    /// Threads that verify passwords (argon2id: about 19 MiB and a core each while busy, freed
    /// after 5 s idle); 0: the cores, at most 4. Checks wait in a queue served fairly among client
    /// addresses.
    pub hash_threads: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self { run_as: None, sandbox: true, hash_threads: 0 }
    }
}

/// Which storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Directories on the local filesystem (`root`, users' roots).
    #[default]
    Local,
    /// An S3-compatible bucket (AWS S3, Garage, MinIO, ...): docs/s3.md.
    S3,
}

/// Storage settings. With `kind = "s3"`, a user's root is a key prefix below `prefix` (a root
/// below the server's `root` maps to the part below it; any other root to its path without the
/// leading `/`).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `local` or `s3`.
    pub kind: StorageKind,
    /// The S3 endpoint URL (`http://127.0.0.1:3900`); AWS when absent.
    pub endpoint: Option<String>,
    /// The S3 region (`garage` for Garage); `us-east-1` when absent.
    pub region: Option<String>,
    /// The bucket.
    pub bucket: Option<String>,
    /// A key prefix for everything this server stores (`ftp/`).
    pub prefix: String,
    /// Access key; else `AWS_ACCESS_KEY_ID` from the environment.
    pub access_key_id: Option<String>,
    /// Secret key; else `AWS_SECRET_ACCESS_KEY` from the environment.
    pub secret_access_key: Option<String>,
    /// The first multipart part size in MiB (5 to 5120); parts double every 1000 parts, up to
    /// 128 MiB, so an upload holds part size × (upload_concurrency + 1) bytes of memory.
    pub part_size_mib: u64,
    /// Parts of one upload sent to S3 at once.
    pub upload_concurrency: usize,
    /// The most objects a directory may hold for RNFR/RNTO to rename it (copy + delete each).
    pub max_rename_keys: usize,
    /// S3: multipart uploads begun longer ago than this are aborted by a sweep every node runs
    /// at start and then every half of it (at most hourly); 0 turns the sweep off. It must be
    /// longer than the longest upload (docs/s3.md).
    pub abandoned_upload_secs: u64,
    /// Local storage: compute the SHA-256 of whole-file uploads beside them (a thread reading
    /// the file back from the page cache as it grows; the 226 does not wait for it) and keep it
    /// with the file (an extended attribute), so that `HASH` answers at once. Off: `HASH` reads
    /// the file the first time (the result is kept).
    pub upload_digests: bool,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("part_size_mib", &self.part_size_mib)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("max_rename_keys", &self.max_rename_keys)
            .field("abandoned_upload_secs", &self.abandoned_upload_secs)
            .field("upload_digests", &self.upload_digests)
            .finish()
    }
}

impl StorageConfig {
    /// The S3 region: the configured one, else `us-east-1`.
    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("us-east-1")
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Local,
            endpoint: None,
            region: None,
            bucket: None,
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            part_size_mib: 8,
            upload_concurrency: 2,
            max_rename_keys: 1000,
            abandoned_upload_secs: 86_400,
            upload_digests: true,
        }
    }
}

/// TLS settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// Policy on the explicit listeners: `off`, `optional` (the default with a certificate) or
    /// `required`.
    pub policy: Option<crate::tls::TlsPolicy>,
    /// Implicit-FTPS listeners (TLS from the first byte; conventionally port 990).
    pub implicit_listen: Vec<SocketAddr>,
    /// Accept protected data connections that do not resume the control connection's TLS session
    /// (lets a stolen data port be used; some old clients need it).
    pub allow_data_without_reuse_unsafe: bool,
    /// Seconds a TLS handshake may take.
    pub handshake_timeout_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            policy: None,
            implicit_listen: Vec::new(),
            allow_data_without_reuse_unsafe: false,
            handshake_timeout_secs: 15,
        }
    }
}

impl TlsConfig {
    /// The effective policy: `optional` with a certificate, `off` without.
    pub fn effective_policy(&self) -> crate::tls::TlsPolicy {
        match (self.policy, &self.cert) {
            (Some(p), Some(_)) => p,
            (_, None) => crate::tls::TlsPolicy::Off,
            (None, Some(_)) => crate::tls::TlsPolicy::Optional,
        }
    }
}

/// PROXY protocol (v1 and v2) from load balancers such as HAProxy.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyProtocolConfig {
    /// Addresses or CIDR ranges of the load balancers. Their connections (control and passive
    /// data) must start with a PROXY header, whose source address then stands for the client's;
    /// anyone else's PROXY header is refused. Empty: PROXY protocol off.
    pub trusted: Vec<crate::proxy::IpNet>,
    /// Seconds a trusted peer has to send its header.
    pub header_timeout_secs: u64,
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        Self { trusted: Vec::new(), header_timeout_secs: 5 }
    }
}

/// Passive-mode settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveConfig {
    /// Port range for passive listeners, `"LOW-HIGH"`; any free port when absent.
    pub ports: Option<PortRange>,
    /// The IPv4 address announced in `227` replies (behind NAT); the control connection's local
    /// address when absent.
    pub address: Option<IpAddr>,
    /// Accept passive data connections from any address, not only the control connection's
    /// (allows data-channel theft).
    pub allow_any_peer_unsafe: bool,
}

/// Active-mode settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ActiveConfig {
    /// Local port active data connections come from.
    pub source_port: SourcePort,
    /// Allow `PORT`/`EPRT` to addresses other than the client's (FXP; also the FTP bounce attack).
    pub allow_third_party_unsafe: bool,
    /// Allow `PORT`/`EPRT` to ports below 1024.
    pub allow_low_ports_unsafe: bool,
}

/// Where active data connections come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "SourcePortRepr")]
pub enum SourcePort {
    /// Any port the system picks (default).
    #[default]
    Ephemeral,
    /// The control port minus one (port 20 when listening on 21), as RFC 959 describes.
    ControlMinusOne,
    /// A fixed port.
    Fixed(u16),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SourcePortRepr {
    Num(u16),
    Name(String),
}

impl TryFrom<SourcePortRepr> for SourcePort {
    type Error = String;
    fn try_from(r: SourcePortRepr) -> Result<Self, String> {
        match r {
            SourcePortRepr::Num(0) => Ok(Self::Ephemeral),
            SourcePortRepr::Num(n) => Ok(Self::Fixed(n)),
            SourcePortRepr::Name(s) if s == "ephemeral" => Ok(Self::Ephemeral),
            SourcePortRepr::Name(s) if s == "control-minus-one" => Ok(Self::ControlMinusOne),
            SourcePortRepr::Name(s) => Err(format!(
                "active.source_port: expected a port number, \"ephemeral\" or \"control-minus-one\", got {s:?}"
            )),
        }
    }
}

/// A port range `LOW-HIGH`, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').ok_or_else(|| format!("expected LOW-HIGH, got {s:?}"))?;
        let low: u16 = a.trim().parse().map_err(|_| format!("{a:?} is not a port number"))?;
        let high: u16 = b.trim().parse().map_err(|_| format!("{b:?} is not a port number"))?;
        if low == 0 || low > high {
            return Err(format!("{s:?}: need 1 <= LOW <= HIGH"));
        }
        Ok(Self { low, high })
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|e| format!("passive.ports: {e}"))
    }
}

/// sshd-style `MaxStartups` for connections that have not logged in yet (see
/// [`Limits::max_startups_per_ip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MaxStartups {
    /// Below this many, every new connection is admitted.
    pub start: u32,
    /// From `start` on, the percentage of new connections refused (rising linearly to 100).
    pub rate: u32,
    /// At this many, every new connection is refused.
    pub full: u32,
}

impl MaxStartups {
    /// Whether a new connection is admitted while `waiting` from its address have not logged in;
    /// `roll` is a number in `0..100` drawn at random.
    pub fn admits(self, waiting: u32, roll: u32) -> bool {
        if waiting < self.start {
            return true;
        }
        if waiting >= self.full {
            return false;
        }
        let span = u64::from(self.full - self.start);
        let refused = u64::from(self.rate) + u64::from(100 - self.rate) * u64::from(waiting - self.start) / span;
        u64::from(roll) >= refused
    }
}

impl std::str::FromStr for MaxStartups {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("{v:?} is not a number"));
        let parts: Vec<&str> = s.split(':').collect();
        let m = match parts[..] {
            [n] => Self { start: num(n)?, rate: 100, full: num(n)? },
            [a, r, f] => Self { start: num(a)?, rate: num(r)?, full: num(f)? },
            _ => return Err(format!("expected START:RATE:FULL or N, got {s:?}")),
        };
        if m.full == 0 || m.start > m.full || m.rate > 100 {
            return Err(format!("{s:?}: need 1 <= FULL, START <= FULL and RATE <= 100"));
        }
        Ok(m)
    }
}

impl TryFrom<String> for MaxStartups {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|e| format!("limits.max_startups_per_ip: {e}"))
    }
}

/// Limits and timeouts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Sessions at once, in all (421 beyond).
    pub max_sessions: usize,
    /// Sessions at once from one IP address, logged in or not (421 beyond); 0, the default, is no
    /// limit: one address is often many people (a company's or a carrier's NAT, a CI farm).
    pub max_sessions_per_ip: usize,
    /// Sessions from one IP address that have not logged in yet, like sshd's `MaxStartups`:
    /// `"start:rate:full"` refuses a new connection (421) with probability `rate`% once `start`
    /// are waiting, rising to 100% at `full`; `"N"` is `"N:100:N"`. Default `"64:30:256"`.
    pub max_startups_per_ip: MaxStartups,
    /// Seconds from connect to a successful login.
    pub login_timeout_secs: u64,
    /// Seconds without a command before the session is closed (421).
    pub idle_timeout_secs: u64,
    /// Seconds to wait for a data connection, and for progress on it.
    pub data_timeout_secs: u64,
    /// Failed logins in one session before it is closed.
    pub max_login_failures: u32,
    /// Delay before answering a failed login, in milliseconds.
    pub failed_login_delay_ms: u64,
    /// Seconds running transfers get to finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// The longest command line accepted, in bytes.
    pub max_line: usize,
    /// The longest delay before answering a failed login (the delay doubles with each failure
    /// from the same address), in milliseconds.
    pub max_failed_login_delay_ms: u64,
    /// Failed logins from one address (within `failure_window_secs`) before it is banned; 0 never.
    pub ban_after_failures: u32,
    /// How long a ban lasts, in seconds.
    pub ban_secs: u64,
    /// The window in which failures from one address are counted, in seconds.
    pub failure_window_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 1024,
            max_sessions_per_ip: 0,
            max_startups_per_ip: MaxStartups { start: 64, rate: 30, full: 256 },
            login_timeout_secs: 60,
            idle_timeout_secs: 900,
            data_timeout_secs: 60,
            max_login_failures: 3,
            failed_login_delay_ms: 1000,
            shutdown_grace_secs: 30,
            max_line: ferry_proto::line::DEFAULT_MAX_LINE,
            max_failed_login_delay_ms: 10_000,
            ban_after_failures: 10,
            ban_secs: 900,
            failure_window_secs: 900,
        }
    }
}

impl Limits {
    /// The login timeout.
    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout_secs)
    }
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    /// The data timeout.
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 2121)), SocketAddr::from(([0u16; 8], 2121))],
            root: PathBuf::from("ftp-root"),
            users_file: None,
            anonymous: false,
            anonymous_root: None,
            banner: "Ferry FTP server ready.".into(),
            fsync: true,
            passive: PassiveConfig::default(),
            active: ActiveConfig::default(),
            limits: Limits::default(),
            tls: TlsConfig::default(),
            proxy_protocol: ProxyProtocolConfig::default(),
            storage: StorageConfig::default(),
            process: ProcessConfig::default(),
            log: crate::events::LogConfig::default(),
            admin: crate::admin::AdminConfig::default(),
            bans: crate::bans::BanConfig::default(),
            hooks: Vec::new(),
            hosts: Vec::new(),
            accounts: crate::auth::model::AccountsConfig::default(),
        }
    }
}

/// An invalid configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let c: Self = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks values that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_string()));
        if self.listen.is_empty() {
            return err("listen: at least one address is needed");
        }
        self.accounts.validate().map_err(ConfigError)?;
        if self.limits.max_sessions == 0 {
            return err("limits.max_sessions: must be at least 1");
        }
        if self.limits.max_line < 64 {
            return err("limits.max_line: must be at least 64");
        }
        for (name, v) in [
            ("limits.login_timeout_secs", self.limits.login_timeout_secs),
            ("limits.idle_timeout_secs", self.limits.idle_timeout_secs),
            ("limits.data_timeout_secs", self.limits.data_timeout_secs),
        ] {
            if v == 0 {
                return Err(ConfigError(format!("{name}: must be at least 1")));
            }
        }
        if let Some(IpAddr::V6(_)) = self.passive.address {
            return err("passive.address: must be an IPv4 address (PASV replies carry IPv4 only; EPSV needs none)");
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return err("tls.key: needed with tls.cert"),
            (None, Some(_)) => return err("tls.cert: needed with tls.key"),
            (None, None) if !self.tls.implicit_listen.is_empty() => {
                return err("tls.implicit_listen: needs tls.cert and tls.key")
            }
            (None, None) if self.tls.policy == Some(crate::tls::TlsPolicy::Required) => {
                return err("tls.policy: \"required\" needs tls.cert and tls.key")
            }
            _ => {}
        }
        if self.tls.handshake_timeout_secs == 0 {
            return err("tls.handshake_timeout_secs: must be at least 1");
        }
        if self.proxy_protocol.header_timeout_secs == 0 {
            return err("proxy_protocol.header_timeout_secs: must be at least 1");
        }
        crate::hosts::check(&self.hosts).map_err(ConfigError)?;
        for (i, hook) in self.hooks.iter().enumerate() {
            hook.check().map_err(|why| ConfigError(format!("hooks[{i}]: {why}")))?;
            if hook.verifies() && self.storage.kind != StorageKind::Local {
                return Err(ConfigError(format!(
                    "hooks[{i}]: \"upload.verify\" needs local storage (the hook reads the file)"
                )));
            }
        }
        if self.storage.kind == StorageKind::S3 {
            if self.storage.bucket.as_deref().unwrap_or_default().is_empty() {
                return err("storage.bucket: needed with kind = \"s3\"");
            }
            if !(5..=5120).contains(&self.storage.part_size_mib) {
                return err("storage.part_size_mib: must be 5 to 5120 (S3's part size limits)");
            }
            if self.storage.upload_concurrency == 0 {
                return err("storage.upload_concurrency: must be at least 1");
            }
        }
        if self.banner.contains(['\r', '\n']) {
            return err("banner: must be one line");
        }
        Ok(())
    }
}

/// The host and TCP port a URL names (`scheme://[user:password@]host[:port]/...`); the port is
/// the scheme's default when none is given (http 80, https 443, postgres 5432, ldap 389, ldaps
/// 636), none for another scheme without one. A URL without a scheme is taken as https.
pub fn url_host_port(url: &str) -> (&str, Option<u16>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match authority.rsplit_once(':') {
        // `[::1]` alone splits inside the brackets: no port.
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => match port.parse().ok() {
            Some(p) => (host, Some(p)),
            None => (authority, None),
        },
        _ => (authority, None),
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" | "postgresql" => Some(5432),
        "ldap" => Some(389),
        "ldaps" => Some(636),
        _ => None,
    };
    (host.trim_start_matches('[').trim_end_matches(']'), port.or(default))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_and_ports_of_urls() {
        use super::url_host_port as hp;
        assert_eq!(hp("postgres://u:p@127.0.0.1:5433/db"), ("127.0.0.1", Some(5433)));
        assert_eq!(hp("postgres://u:p@db/ferry"), ("db", Some(5432)));
        assert_eq!(hp("ldaps://dir.example"), ("dir.example", Some(636)));
        assert_eq!(hp("http://[::1]:9000/bucket"), ("::1", Some(9000)));
        assert_eq!(hp("https://[::1]"), ("::1", Some(443)));
        assert_eq!(hp("s3.example.com"), ("s3.example.com", Some(443)));
        assert_eq!(hp("gopher://x"), ("x", None));
    }

    use super::*;

    #[test]
    fn max_startups_spec_and_early_drop() {
        let m: MaxStartups = "10:30:20".parse().unwrap();
        assert_eq!(m, MaxStartups { start: 10, rate: 30, full: 20 });
        assert_eq!("4".parse::<MaxStartups>().unwrap(), MaxStartups { start: 4, rate: 100, full: 4 });
        for bad in ["", "1:2", "5:10:4", "1:101:2", "0", "a:b:c"] {
            assert!(bad.parse::<MaxStartups>().is_err(), "{bad}");
        }
        assert!((0..100).all(|roll| m.admits(9, roll)));
        assert!((0..100).all(|roll| !m.admits(20, roll)));
        // At START, RATE% are refused; halfway to FULL, 65%.
        assert_eq!((0..100).filter(|&roll| !m.admits(10, roll)).count(), 30);
        assert_eq!((0..100).filter(|&roll| !m.admits(15, roll)).count(), 65);
        let strict: MaxStartups = "4".parse().unwrap();
        assert!(strict.admits(3, 99) && !strict.admits(4, 0));
    }

    #[test]
    fn defaults_are_valid_and_secure() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(!c.passive.allow_any_peer_unsafe && !c.active.allow_third_party_unsafe && !c.anonymous && c.fsync);
        assert_eq!(Config::from_toml("").unwrap(), c);
    }

    #[test]
    fn full_file() {
        let c = Config::from_toml(
            r#"
            listen = ["127.0.0.1:2121"]
            root = "/srv/ftp"
            anonymous = true
            fsync = false
            [passive]
            ports = "50000-50100"
            address = "203.0.113.5"
            [active]
            source_port = "control-minus-one"
            [limits]
            idle_timeout_secs = 5
            "#,
        )
        .unwrap();
        assert_eq!(c.passive.ports, Some(PortRange { low: 50000, high: 50100 }));
        assert_eq!(c.active.source_port, SourcePort::ControlMinusOne);
        assert_eq!(c.limits.idle_timeout_secs, 5);
        assert_eq!(c.limits.login_timeout_secs, 60);
        assert_eq!(Config::from_toml("[active]\nsource_port = 20").unwrap().active.source_port, SourcePort::Fixed(20));
    }

    #[test]
    fn proxy_protocol_section() {
        let c = Config::from_toml("[proxy_protocol]\ntrusted = [\"10.0.0.5\", \"10.0.1.0/24\"]\n").unwrap();
        assert_eq!(c.proxy_protocol.trusted.len(), 2);
        assert!(c.proxy_protocol.trusted[1].contains("10.0.1.9".parse().unwrap()));
        assert_eq!(c.proxy_protocol.header_timeout_secs, 5);
        for (text, field) in [
            ("[proxy_protocol]\ntrusted = [\"10.0.1.5/24\"]", "proxy_protocol.trusted"),
            ("[proxy_protocol]\ntrusted = [\"balancer\"]", "proxy_protocol.trusted"),
            ("[proxy_protocol]\nheader_timeout_secs = 0", "proxy_protocol.header_timeout_secs"),
            ("[proxy_protocol]\ntrust = []", "trust"),
        ] {
            let e = Config::from_toml(text).unwrap_err().0;
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("lisen = []", "lisen"),
            ("listen = []", "listen"),
            ("[passive]\nports = \"9-1\"", "passive.ports"),
            ("[passive]\naddress = \"::1\"", "passive.address"),
            ("[limits]\nidle_timeout_secs = 0", "limits.idle_timeout_secs"),
            ("[limits]\nmax_sessions = -1", "max_sessions"),
            ("[active]\nsource_port = \"x\"", "active.source_port"),
            ("[tls]\ncert = \"c.pem\"", "tls.key"),
            ("[tls]\nimplicit_listen = [\"127.0.0.1:990\"]", "tls.implicit_listen"),
            ("[tls]\npolicy = \"required\"", "tls.policy"),
            ("[tls]\npolicy = \"sometimes\"", "policy"),
            ("[storage]\nkind = \"s3\"", "storage.bucket"),
            ("[storage]\nkind = \"s3\"\nbucket = \"b\"\npart_size_mib = 1", "storage.part_size_mib"),
            ("[storage]\nkind = \"ftp\"", "kind"),
        ] {
            let e = Config::from_toml(text).unwrap_err().0;
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}

#[cfg(test)]
mod example_file {
    #[test]
    fn the_example_file_is_the_default() {
        let text = include_str!("../../../ferry.example.toml");
        assert_eq!(super::Config::from_toml(text).unwrap(), super::Config::default());
    }
}
