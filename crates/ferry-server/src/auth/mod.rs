//! Authentication: who may log in, where their root is, and what they may do.
//!
//! Users come from a TOML users file ([`users_file`]) with argon2id password hashes, from
//! `--user NAME:PASSWORD` (hashed in memory at start-up), and optionally `anonymous`/`ftp` with
//! read-only rights.

pub mod http;
pub mod ldap;
pub mod model;
pub mod postgres;
pub mod users_file;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use async_trait::async_trait;

pub use ferry_proto::command::spec::Permission;

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// All permissions.
    pub fn all() -> Self {
        Self::from_list(&Permission::ALL)
    }
    /// Read-only: list and read.
    pub fn read_only() -> Self {
        Self::from_list(&[Permission::List, Permission::Read])
    }
    /// From a list.
    pub fn from_list(list: &[Permission]) -> Self {
        Self(list.iter().fold(0, |acc, p| acc | (1 << *p as u8)))
    }
    /// Whether `p` is granted.
    pub fn has(self, p: Permission) -> bool {
        self.0 & (1 << p as u8) != 0
    }
    /// The granted permissions, in a fixed order.
    pub fn to_list(self) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| self.has(*p)).collect()
    }
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The user's root directory on the local filesystem.
    pub root: PathBuf,
    /// What the user may do.
    pub permissions: Permissions,
    /// Whether this is an anonymous login.
    pub anonymous: bool,
    /// Whether this account may log in only over TLS (and transfer only on protected data
    /// connections).
    pub tls_required: bool,
    /// Per-account limits.
    pub limits: AccountLimits,
}

/// Limits on one account (all off by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountLimits {
    /// Sessions logged in at once.
    pub max_sessions: Option<u32>,
    /// Download rate, bytes per second, per transfer.
    pub download_bps: Option<u64>,
    /// Upload rate, bytes per second, per transfer.
    pub upload_bps: Option<u64>,
    /// Bytes the account's root may hold.
    pub quota_bytes: Option<u64>,
    /// Files the account's root may hold.
    pub quota_files: Option<u64>,
    /// Allow PORT/EPRT to third-party addresses (FXP) for this account.
    pub allow_fxp: bool,
}

/// Why a login failed. The client is told only "Login incorrect".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user or wrong password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Internal failure (logged).
    #[error("authentication backend failed: {0}")]
    Backend(String),
    /// The accounts store (database, directory, auth service) cannot be reached: the client gets
    /// 421, not 530 (its password is not known to be wrong).
    #[error("accounts store unavailable: {0}")]
    Unavailable(String),
    /// The password is right but the account may not log in now (disabled, expired, not from
    /// this address); the client is told only "Login incorrect".
    #[error("account refused: {0}")]
    Refused(&'static str),
}

/// Checks credentials.
#[async_trait]
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// Whether `name` logs in without a password check (anonymous).
    fn is_anonymous(&self, name: &str) -> bool;
    /// Checks a name and password, given by a client at `from` (password checks are queued
    /// fairly among client addresses).
    async fn authenticate(&self, name: &str, password: &str, from: IpAddr) -> Result<User, AuthError>;
    /// Whether the accounts store can be reached (for `/readyz`); in-memory users always can.
    async fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Hashes a password with argon2id and a random salt, as stored in users files (PHC string format).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| AuthError::Backend(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Backend(e.to_string()))
}

/// Verifies a password against a PHC hash string.
pub fn verify_password(password: &str, hash: &str) -> bool {
    verify_password_in(password, hash, &mut Vec::new())
}

/// Verifies a password against a stored hash of any format Ferry accepts: argon2 (PHC), and,
/// for accounts imported from Pure-FTPd, ProFTPD or an LDAP directory, bcrypt (`$2a$`, `$2b$`,
/// `$2y$`) and SHA-crypt (`$6$`, `$5$`), with or without a `{CRYPT}` prefix.
pub fn verify_any(password: &str, hash: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    let hash = hash.strip_prefix("{CRYPT}").or_else(|| hash.strip_prefix("{crypt}")).unwrap_or(hash);
    if hash.starts_with("$argon2") {
        verify_password_in(password, hash, blocks)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else if hash.starts_with("$6$") {
        sha_crypt::sha512_check(password, hash).is_ok()
    } else if hash.starts_with("$5$") {
        sha_crypt::sha256_check(password, hash).is_ok()
    } else {
        false
    }
}

/// Whether a stored hash is what Ferry writes today (argon2id); others are replaced by an
/// argon2id hash at the next successful login.
pub fn is_current_hash(hash: &str) -> bool {
    hash.starts_with("$argon2id$")
}

/// Verifies a password against a PHC hash string in `blocks`, the argon2 working memory, which is
/// grown to the hash's memory cost and kept for the next call.
fn verify_password_in(password: &str, hash: &str, blocks: &mut Vec<argon2::Block>) -> bool {
    use argon2::{Algorithm, Params, Version};
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let n = params.block_count();
    if blocks.len() < n {
        blocks.resize(n, argon2::Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut blocks[..n],
    );
    // `Output` compares in constant time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// A job for the hashing threads: (password, hash, where the answer goes).
type HashJob = (String, String, tokio::sync::oneshot::Sender<bool>);

/// How long a hashing thread keeps its argon2 memory (19 MiB) without work.
const HASH_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// Password checks waiting for a hashing thread, one queue per client address, served in turn:
/// a flood of wrong passwords from one address waits behind itself, not in front of everyone
/// else's logins.
#[derive(Default)]
struct FairQueue {
    state: std::sync::Mutex<Waiting>,
    ready: std::sync::Condvar,
}

#[derive(Default)]
struct Waiting {
    queues: HashMap<IpAddr, std::collections::VecDeque<HashJob>>,
    /// Addresses with work, in the order they are served next.
    turn: std::collections::VecDeque<IpAddr>,
}

impl FairQueue {
    fn push(&self, from: IpAddr, job: HashJob) {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let q = w.queues.entry(from).or_default();
        q.push_back(job);
        if q.len() == 1 {
            w.turn.push_back(from);
        }
        drop(w);
        self.ready.notify_one();
    }

    /// The next job, taking addresses in turn; `None` after `idle` without one.
    fn pop(&self, idle: std::time::Duration) -> Option<HashJob> {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ip) = w.turn.pop_front() {
                let q = w.queues.get_mut(&ip)?;
                let job = q.pop_front();
                if q.is_empty() {
                    w.queues.remove(&ip);
                } else {
                    w.turn.push_back(ip);
                }
                return job;
            }
            let (next, timeout) = self.ready.wait_timeout(w, idle).unwrap_or_else(|p| p.into_inner());
            w = next;
            if timeout.timed_out() && w.turn.is_empty() {
                return None;
            }
        }
    }
}

/// A bounded number of threads verify passwords (argon2id: ~19 MiB and a core each, for tens of
/// milliseconds). Each keeps its argon2 memory between jobs and frees it after [`HASH_IDLE`]
/// without work, so a burst of logins leaves no memory behind; jobs come from a [`FairQueue`].
struct HashPool {
    queue: std::sync::Arc<FairQueue>,
}

impl HashPool {
    fn start(threads: usize) -> Self {
        let queue = std::sync::Arc::new(FairQueue::default());
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("ferry-argon2-{i}")).spawn(move || {
                let mut blocks = Vec::new();
                loop {
                    match queue.pop(HASH_IDLE) {
                        Some((password, hash, reply)) => {
                            let _ = reply.send(verify_any(&password, &hash, &mut blocks));
                        }
                        // Idle: give the working memory back.
                        None => blocks = Vec::new(),
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self { queue }
    }

    async fn verify(&self, from: IpAddr, password: String, hash: String) -> Result<bool, AuthError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.push(from, (password, hash, tx));
        rx.await.map_err(|_| AuthError::Backend("password hashing thread failed".into()))
    }
}

/// How many threads verify passwords: `[process] hash_threads`, else the cores, at most 4.
static HASH_THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Sets how many threads verify passwords (before the first login; later calls change nothing).
pub fn set_hash_threads(n: usize) {
    let _ = HASH_THREADS.set(n.max(1));
}

/// The process's hashing threads, started on first use.
fn hashing_pool() -> &'static HashPool {
    static POOL: std::sync::OnceLock<HashPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        HashPool::start(*HASH_THREADS.get_or_init(|| cores.min(4)))
    })
}

#[derive(Clone)]
struct Account {
    hash: String,
    root: PathBuf,
    permissions: Permissions,
    tls_required: bool,
    limits: AccountLimits,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account").field("root", &self.root).field("permissions", &self.permissions).finish()
    }
}

/// An authenticator whose users can be replaced while the server runs: a reload swaps the whole
/// set at once; sessions already logged in keep the account they logged in with.
#[derive(Debug)]
pub struct Swappable {
    current: std::sync::RwLock<std::sync::Arc<dyn Authenticator>>,
}

impl Swappable {
    /// Starts with `users`.
    pub fn new(users: std::sync::Arc<dyn Authenticator>) -> Self {
        Self { current: std::sync::RwLock::new(users) }
    }

    /// New logins see `users` from now on.
    pub fn replace(&self, users: std::sync::Arc<dyn Authenticator>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = users;
    }

    fn get(&self) -> std::sync::Arc<dyn Authenticator> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Authenticator for Swappable {
    fn is_anonymous(&self, name: &str) -> bool {
        self.get().is_anonymous(name)
    }

    async fn authenticate(&self, name: &str, password: &str, from: IpAddr) -> Result<User, AuthError> {
        self.get().authenticate(name, password, from).await
    }

    async fn health(&self) -> Result<(), String> {
        self.get().health().await
    }
}

/// The users of `--user` and `--anonymous` in front of an accounts store: a name they know is
/// theirs, every other one is the store's.
#[derive(Debug)]
pub struct Layered {
    /// The command line's users.
    pub local: UserDb,
    /// The store.
    pub store: std::sync::Arc<dyn Authenticator>,
}

#[async_trait]
impl Authenticator for Layered {
    fn is_anonymous(&self, name: &str) -> bool {
        self.local.is_anonymous(name)
    }

    async fn authenticate(&self, name: &str, password: &str, from: IpAddr) -> Result<User, AuthError> {
        if self.local.is_anonymous(name) || self.local.accounts.contains_key(name) {
            return self.local.authenticate(name, password, from).await;
        }
        self.store.authenticate(name, password, from).await
    }

    async fn health(&self) -> Result<(), String> {
        self.store.health().await
    }
}

/// Users in memory: from a users file, `--user` flags, and optional anonymous access.
///
/// argon2id is slow on purpose (tens of milliseconds), which would cap logins per second far below
/// what FTP clients that reconnect per file need. After a password has been verified once, a keyed
/// BLAKE2b digest of (name, password) under a random per-process key is kept in memory; later logins
/// with the same password compare digests in constant time. Nothing of it is ever written out, a
/// failed verification is never cached, and unknown names always pay the full argon2 price.
#[derive(Debug, Clone)]
pub struct UserDb {
    accounts: HashMap<String, Account>,
    anonymous_root: Option<PathBuf>,
    dummy_hash: String,
    verified: std::sync::Arc<VerifiedCache>,
}

/// Digests of passwords verified in this process (see [`UserDb`]).
pub(crate) struct VerifiedCache {
    key: [u8; 32],
    digests: std::sync::Mutex<HashMap<String, [u8; 64]>>,
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifiedCache")
    }
}

impl VerifiedCache {
    pub(crate) fn new() -> Self {
        Self { key: rand::random(), digests: std::sync::Mutex::new(HashMap::new()) }
    }

    /// Keyed by the stored hash too: a password changed in a database (which no reload
    /// announces) misses the cache at once.
    fn digest(&self, name: &str, password: &str, hash: &str) -> [u8; 64] {
        keyed_digest(&self.key, &[name, hash], password)
    }

    fn check(&self, name: &str, password: &str, hash: &str) -> bool {
        let d = self.digest(name, password, hash);
        let digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        digests.get(name).is_some_and(|known| known.iter().zip(d.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0)
    }

    fn remember(&self, name: &str, password: &str, hash: &str) {
        let d = self.digest(name, password, hash);
        let mut digests = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        if digests.len() >= 100_000 {
            digests.clear();
        }
        digests.insert(name.to_string(), d);
    }
}

impl UserDb {
    /// An empty database (no one can log in).
    pub fn new() -> Self {
        Self {
            accounts: HashMap::new(),
            anonymous_root: None,
            // Verified against for unknown names, so both answers take the same time.
            dummy_hash: hash_password("ferry-dummy-password").unwrap_or_default(),
            verified: std::sync::Arc::new(VerifiedCache::new()),
        }
    }

    /// Forgets the passwords verified so far (after a reload, a changed password must be checked
    /// against its new hash; the old one must stop working at once).
    pub fn forget_verified(&mut self) {
        self.verified = std::sync::Arc::new(VerifiedCache::new());
    }

    /// Every root directory the accounts use (the anonymous one too), each once.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> =
            self.accounts.values().map(|a| a.root.clone()).chain(self.anonymous_root.clone()).collect();
        roots.sort();
        roots.dedup();
        roots
    }

    /// Adds an account with a password hash.
    pub fn add_hashed(&mut self, name: &str, hash: String, root: PathBuf, permissions: Permissions) {
        self.accounts.insert(
            name.to_string(),
            Account { hash, root, permissions, tls_required: false, limits: AccountLimits::default() },
        );
    }

    /// Sets an account's limits.
    pub fn set_limits(&mut self, name: &str, limits: AccountLimits) {
        if let Some(a) = self.accounts.get_mut(name) {
            a.limits = limits;
        }
    }

    /// Makes an account TLS-only.
    pub fn require_tls(&mut self, name: &str) {
        if let Some(a) = self.accounts.get_mut(name) {
            a.tls_required = true;
        }
    }

    /// Adds an account with a clear password, hashed now.
    pub fn add_password(
        &mut self,
        name: &str,
        password: &str,
        root: PathBuf,
        permissions: Permissions,
    ) -> Result<(), AuthError> {
        let hash = hash_password(password)?;
        self.add_hashed(name, hash, root, permissions);
        Ok(())
    }

    /// Allows read-only anonymous logins (`anonymous` or `ftp`, any password) rooted at `root`.
    pub fn allow_anonymous(&mut self, root: PathBuf) {
        self.anonymous_root = Some(root);
    }

    /// The number of password accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether there are no password accounts.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

impl Default for UserDb {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Authenticator for UserDb {
    fn is_anonymous(&self, name: &str) -> bool {
        self.anonymous_root.is_some()
            && (name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp"))
            && !self.accounts.contains_key(name)
    }

    async fn authenticate(&self, name: &str, password: &str, from: IpAddr) -> Result<User, AuthError> {
        if self.is_anonymous(name) {
            let root = self.anonymous_root.clone().unwrap_or_default();
            return Ok(User {
                name: "anonymous".into(),
                root,
                permissions: Permissions::read_only(),
                anonymous: true,
                tls_required: false,
                limits: AccountLimits::default(),
            });
        }
        let account = self.accounts.get(name).cloned();
        let hash = account.as_ref().map(|a| a.hash.as_str());
        let ok = check_password(&self.verified, name, password, hash, &self.dummy_hash, from).await?;
        match account {
            Some(_) if ok => Ok(account_user(name, account)),
            _ => Err(AuthError::InvalidCredentials),
        }
    }
}

/// Checks `password` against the account's stored `hash` (`None`: no such account, checked
/// against `dummy` so that both answers take as long), through the cache of verified passwords
/// and the hashing threads.
pub(crate) async fn check_password(
    verified: &VerifiedCache,
    name: &str,
    password: &str,
    hash: Option<&str>,
    dummy: &str,
    from: IpAddr,
) -> Result<bool, AuthError> {
    if hash.is_some_and(|h| verified.check(name, password, h)) {
        return Ok(true);
    }
    let ok = hashing_pool().verify(from, password.to_string(), hash.unwrap_or(dummy).to_string()).await?;
    match hash {
        Some(hash) if ok => {
            verified.remember(name, password, hash);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A keyed BLAKE2b digest of `parts` (each length-prefixed) and `secret`, under a per-process
/// `key`: what the caches of verified passwords keep instead of the password.
pub(crate) fn keyed_digest(key: &[u8; 32], parts: &[&str], secret: &str) -> [u8; 64] {
    use blake2::Digest;
    let mut h = blake2::Blake2b512::new();
    h.update(key);
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// A TLS client configuration (rustls, ring) trusting the CAs of `roots`: the PEM file `ca_file`
/// (read now, before the sandbox closes the filesystem), else the system's store. `field` names
/// the setting in errors.
pub(crate) fn client_tls(ca_file: Option<&std::path::Path>, field: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(file) => {
            let pem = std::fs::read(file).map_err(|e| format!("{field} {}: {e}", file.display()))?;
            for cert in <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(&pem)
            {
                let cert = cert.map_err(|e| format!("{field} {}: {e}", file.display()))?;
                roots.add(cert).map_err(|e| format!("{field} {}: {e}", file.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        return Err(format!("{field}: no CA certificate to trust"));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A hash no password matches in practice, checked for unknown names (computed once).
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("ferry-dummy-password").unwrap_or_default())
}

/// The logged-in user for a verified account.
fn account_user(name: &str, account: Option<Account>) -> User {
    let a = account.unwrap_or_else(|| Account {
        hash: String::new(),
        root: PathBuf::new(),
        permissions: Permissions::default(),
        tls_required: false,
        limits: AccountLimits::default(),
    });
    User {
        name: name.to_string(),
        root: a.root,
        permissions: a.permissions,
        anonymous: false,
        tls_required: a.tls_required,
        limits: a.limits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn job(tag: &'static str) -> (HashJob, tokio::sync::oneshot::Receiver<bool>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        ((tag.to_string(), String::new(), tx), rx)
    }

    #[test]
    fn the_queue_serves_addresses_in_turn() {
        let q = FairQueue::default();
        let (flood, quiet): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let mut keep = Vec::new();
        for _ in 0..100 {
            let (j, rx) = job("flood");
            keep.push(rx);
            q.push(flood, j);
        }
        let (j, _rx) = job("quiet");
        q.push(quiet, j);
        let first: Vec<String> = (0..2).map(|_| q.pop(std::time::Duration::ZERO).unwrap().0).collect();
        assert_eq!(first, ["flood", "quiet"], "the quiet address waits one turn, not a hundred");
        let rest = std::iter::from_fn(|| q.pop(std::time::Duration::ZERO)).count();
        assert_eq!(rest, 99);
        assert!(q.pop(std::time::Duration::from_millis(10)).is_none(), "empty: None after the idle time");
    }

    #[tokio::test]
    async fn passwords_and_anonymous() {
        let mut db = UserDb::new();
        db.add_password("alice", "s3cret", "/srv/a".into(), Permissions::all()).unwrap();
        let u = db.authenticate("alice", "s3cret", LOCAL).await.unwrap();
        assert_eq!(u.root, PathBuf::from("/srv/a"));
        assert!(u.permissions.has(Permission::Write));
        assert_eq!(db.authenticate("alice", "wrong", LOCAL).await, Err(AuthError::InvalidCredentials));
        assert_eq!(db.authenticate("bob", "s3cret", LOCAL).await, Err(AuthError::InvalidCredentials));
        assert_eq!(db.authenticate("anonymous", "x", LOCAL).await, Err(AuthError::InvalidCredentials));
        db.allow_anonymous("/pub".into());
        let a = db.authenticate("ftp", "me@example.com", LOCAL).await.unwrap();
        assert!(a.anonymous && a.permissions.has(Permission::Read) && !a.permissions.has(Permission::Write));
    }

    #[tokio::test]
    async fn verified_passwords_are_cached_but_wrong_ones_never_pass() {
        let mut db = UserDb::new();
        db.add_password("alice", "right", "/".into(), Permissions::all()).unwrap();
        assert!(db.authenticate("alice", "right", LOCAL).await.is_ok());
        let t = std::time::Instant::now();
        for _ in 0..50 {
            assert!(db.authenticate("alice", "right", LOCAL).await.is_ok());
        }
        assert!(t.elapsed() < std::time::Duration::from_millis(500), "cached logins skip argon2: {:?}", t.elapsed());
        assert_eq!(db.authenticate("alice", "wrong", LOCAL).await, Err(AuthError::InvalidCredentials));
        assert_eq!(db.authenticate("alice", "righ", LOCAL).await, Err(AuthError::InvalidCredentials));
        assert!(db.authenticate("alice", "right", LOCAL).await.is_ok());
    }

    #[test]
    fn permission_sets() {
        let p = Permissions::from_list(&[Permission::Read, Permission::Mkdir]);
        assert!(p.has(Permission::Read) && p.has(Permission::Mkdir) && !p.has(Permission::List));
        assert_eq!(p.to_list(), vec![Permission::Read, Permission::Mkdir]);
        assert_eq!(Permissions::all().to_list().len(), 6);
    }

    #[test]
    fn verifying_in_reused_memory_agrees_with_the_library() {
        let hash = hash_password("right").unwrap();
        let mut blocks = Vec::new();
        assert!(verify_password_in("right", &hash, &mut blocks));
        let used = blocks.len();
        assert!(used >= 19456, "{used} blocks");
        assert!(!verify_password_in("wrong", &hash, &mut blocks));
        assert!(verify_password_in("right", &hash, &mut blocks));
        assert_eq!(blocks.len(), used, "memory is reused, not grown");
        assert!(!verify_password_in("right", "not a hash", &mut blocks));
        // Other parameters and argon2i/argon2d hashes too.
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        for alg in [argon2::Algorithm::Argon2i, argon2::Algorithm::Argon2d] {
            let params = argon2::Params::new(64, 3, 1, Some(24)).unwrap();
            let h = Argon2::new(alg, argon2::Version::V0x10, params).hash_password(b"pw", &salt).unwrap().to_string();
            assert!(verify_password_in("pw", &h, &mut blocks), "{h}");
            assert!(!verify_password_in("pX", &h, &mut blocks), "{h}");
            assert!(verify_password("pw", &h));
        }
    }

    #[test]
    fn imported_bcrypt_and_sha_crypt_hashes_verify() {
        let mut blocks = Vec::new();
        let bcrypt = bcrypt::hash("old-pw", 4).unwrap();
        assert!(verify_any("old-pw", &bcrypt, &mut blocks) && !verify_any("old-pX", &bcrypt, &mut blocks));
        assert!(verify_any("old-pw", &bcrypt.replacen("$2b$", "$2y$", 1), &mut blocks), "PHP's $2y$");
        // The test vector of the SHA-crypt specification (rounds=5000 is the default).
        let sha512 =
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        assert!(verify_any("Hello world!", sha512, &mut blocks));
        assert!(verify_any("Hello world!", &format!("{{CRYPT}}{sha512}"), &mut blocks), "LDAP's {{CRYPT}} prefix");
        assert!(!verify_any("Hello world?", sha512, &mut blocks));
        let sha256 = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";
        assert!(verify_any("Hello world!", sha256, &mut blocks));
        assert!(!verify_any("x", "$1$md5$notsupported", &mut blocks), "MD5-crypt is not accepted");
        assert!(!is_current_hash(&bcrypt) && !is_current_hash(sha512));
        assert!(is_current_hash(&hash_password("x").unwrap()));
    }

    #[test]
    fn hashes_are_salted_argon2id() {
        let a = hash_password("pw").unwrap();
        let b = hash_password("pw").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("pw", &a) && !verify_password("pW", &a));
        assert!(!verify_password("pw", "not a hash"));
    }
}
