//! Runtime limits shared by all sessions: failed-login tracking and temporary bans per source IP,
//! sessions per account, quota usage per account, and the per-transfer rate limiter.
//!
//! A node keeps these in memory. With an accounts database ([`Cluster`], PostgreSQL), the session
//! counts, the quota ledger and the bans live there instead, shared by every node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// The most IP records kept; beyond it, stale ones are dropped first.
const MAX_IP_RECORDS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct IpRecord {
    failures: u32,
    window_start: Instant,
}

/// What a failed login leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureVerdict {
    /// How long to wait before answering.
    pub delay: Duration,
    /// The ban this failure led to, if any.
    pub ban: Option<crate::bans::Ban>,
}

/// Shared limit state.
#[derive(Debug)]
pub struct LimitState {
    /// Banned addresses.
    pub bans: Arc<crate::bans::Bans>,
    ips: Mutex<HashMap<IpAddr, IpRecord>>,
    accounts: Mutex<HashMap<String, u32>>,
    usage: Mutex<HashMap<String, Arc<LocalLedger>>>,
    /// Segmented uploads in progress (`SITE SEGMENT`).
    pub segments: crate::segments::Segments,
    /// Where the nodes of a cluster share session counts, quotas and bans, when they do.
    pub cluster: Option<Arc<dyn Cluster>>,
}

/// Why the state the nodes share could not be used: the accounts database is unreachable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("accounts store unavailable: {0}")]
pub struct Unavailable(pub String);

/// What the nodes of a cluster share through the accounts database: session counts per account,
/// quota ledgers and bans.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync + std::fmt::Debug {
    /// Claims one of `max` sessions of `account` on all nodes; `None` when they are all taken.
    /// The slot is released when the returned value is dropped.
    async fn claim_session(&self, account: &str, max: u32) -> Result<Option<Box<dyn Released>>, Unavailable>;
    /// The quota ledger of an account with these limits.
    fn ledger(&self, account: &str, quota_bytes: Option<u64>, quota_files: Option<u64>) -> Arc<dyn QuotaLedger>;
    /// The bans all nodes see.
    fn bans(&self) -> Arc<dyn crate::bans::BanStore>;
    /// Starts what keeps this node's share alive (called once, in the runtime).
    fn start(&self) {}
}

/// Something given back when dropped (a session slot in the accounts database).
pub trait Released: Send + Sync + std::fmt::Debug {}

/// An account's quota: what it uses, and the bytes that uploads in progress have reserved.
///
/// An upload reserves as its bytes arrive (in growing steps), so that two uploads of the same
/// account, on one node or on two, cannot together go beyond the quota: the reservation that
/// does not fit is refused and that upload gets 552. When the upload ends, [`QuotaLedger::settle`]
/// replaces its reservation by what it really changed.
#[async_trait::async_trait]
pub trait QuotaLedger: Send + Sync + std::fmt::Debug {
    /// The bytes and files used now (not counting reservations).
    async fn usage(&self) -> Result<Usage, Unavailable>;
    /// Reserves between `need` and `want` more bytes for upload `id`: the bytes granted (at least
    /// `need`), or 0 when not even `need` fits in the quota. When uploads contend for the last of
    /// the quota the older one wins: it may revoke younger ones, which then get 0 here and
    /// `false` from [`QuotaLedger::confirm`].
    async fn reserve(&self, id: u64, need: u64, want: u64) -> Result<u64, Unavailable>;
    /// Upload `id` is about to be put in place: `false` when an older upload revoked its
    /// reservation (it must be undone); afterwards it can no longer be revoked.
    async fn confirm(&self, id: u64) -> Result<bool, Unavailable>;
    /// Ends reservation `id` (when there is one) and records a change of the usage, once per id
    /// (a retried call changes nothing more).
    async fn settle(&self, id: u64, bytes: i64, files: i64) -> Result<(), Unavailable>;
    /// The account's byte quota, when it has one.
    fn quota_bytes(&self) -> Option<u64>;
    /// The account's file quota, when it has one.
    fn quota_files(&self) -> Option<u64>;
}

/// A fresh id for an upload's reservation (unique in this process).
pub fn reservation_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Settles `id` now, or, when the ledger does not answer, in the background, retrying until it
/// does (the accounts database may be down for a while: the change is applied once it is back,
/// exactly once).
pub async fn settle(ledger: &Arc<dyn QuotaLedger>, id: u64, bytes: i64, files: i64) {
    if ledger.settle(id, bytes, files).await.is_ok() {
        return;
    }
    let ledger = Arc::clone(ledger);
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(100);
        loop {
            match ledger.settle(id, bytes, files).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, bytes, files, "quota change not recorded yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
}

/// The quota ledger of one account on one node: measured from its root at the first login, kept
/// in memory.
#[derive(Debug)]
pub struct LocalLedger {
    state: Mutex<(Usage, HashMap<u64, Held>)>,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
}

/// A reservation in a [`LocalLedger`] (ids grow with time: a smaller one is older).
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    bytes: u64,
    revoked: bool,
    confirmed: bool,
}

impl LocalLedger {
    /// A ledger starting at `usage`.
    pub fn new(usage: Usage, quota_bytes: Option<u64>, quota_files: Option<u64>) -> Self {
        Self { state: Mutex::new((usage, HashMap::new())), quota_bytes, quota_files }
    }
}

#[async_trait::async_trait]
impl QuotaLedger for LocalLedger {
    async fn usage(&self) -> Result<Usage, Unavailable> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).0)
    }

    async fn reserve(&self, id: u64, need: u64, want: u64) -> Result<u64, Unavailable> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.1.get(&id).is_some_and(|h| h.revoked) {
            return Ok(0);
        }
        let quota = self.quota_bytes.unwrap_or(u64::MAX);
        let room = |s: &(Usage, HashMap<u64, Held>), counts: &dyn Fn(u64, &Held) -> bool| {
            let held: u64 = s.1.iter().filter(|(k, h)| !h.revoked && counts(**k, h)).map(|(_, h)| h.bytes).sum();
            quota.saturating_sub(s.0.bytes.saturating_add(held))
        };
        let mut free = room(&s, &|_, _| true);
        if free < need {
            // Only what older or confirmed uploads hold counts against this one.
            free = room(&s, &|k, h| h.confirmed || k <= id);
            if free < need {
                return Ok(0);
            }
            for (_, h) in s.1.iter_mut().filter(|(k, h)| **k > id && !h.confirmed) {
                h.revoked = true;
            }
        }
        let granted = want.max(need).min(free);
        s.1.entry(id).or_default().bytes += granted;
        Ok(granted)
    }

    async fn confirm(&self, id: u64) -> Result<bool, Unavailable> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match s.1.get_mut(&id) {
            Some(h) if h.revoked => false,
            Some(h) => {
                h.confirmed = true;
                true
            }
            None => true,
        })
    }

    async fn settle(&self, id: u64, bytes: i64, files: i64) -> Result<(), Unavailable> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1.remove(&id);
        s.0.bytes = s.0.bytes.saturating_add_signed(bytes);
        s.0.files = s.0.files.saturating_add_signed(files);
        Ok(())
    }

    fn quota_bytes(&self) -> Option<u64> {
        self.quota_bytes
    }

    fn quota_files(&self) -> Option<u64> {
        self.quota_files
    }
}

/// Bytes and files under an account's root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in regular files.
    pub bytes: u64,
    /// Regular files.
    pub files: u64,
}

impl Default for LimitState {
    fn default() -> Self {
        Self::new(crate::bans::Bans::in_memory(crate::bans::BanConfig::default()), None)
    }
}

impl LimitState {
    /// The state of a server with these bans, and the cluster it shares limits with.
    pub fn new(bans: crate::bans::Bans, cluster: Option<Arc<dyn Cluster>>) -> Self {
        Self {
            bans: Arc::new(bans),
            ips: Mutex::default(),
            accounts: Mutex::default(),
            usage: Mutex::default(),
            segments: crate::segments::Segments::default(),
            cluster,
        }
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.bans.is_banned(ip)
    }

    /// Records a failed login from `ip`: the delay grows with each failure in the window, and the
    /// address is banned after `ban_after_failures`.
    pub fn login_failed(&self, ip: IpAddr, limits: &Limits) -> FailureVerdict {
        let now = Instant::now();
        let window = Duration::from_secs(limits.failure_window_secs);
        let mut ips = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        if ips.len() >= MAX_IP_RECORDS {
            ips.retain(|_, r| now.duration_since(r.window_start) < window);
        }
        let r = ips.entry(ip).or_insert(IpRecord { failures: 0, window_start: now });
        if now.duration_since(r.window_start) >= window {
            *r = IpRecord { failures: 0, window_start: now };
        }
        r.failures += 1;
        let exp = r.failures.saturating_sub(1).min(16);
        let delay = Duration::from_millis(
            limits.failed_login_delay_ms.saturating_mul(1u64 << exp).min(limits.max_failed_login_delay_ms),
        );
        let ban = if limits.ban_after_failures > 0 && r.failures >= limits.ban_after_failures {
            // Counting starts again after a ban (a repeat offender's next ban is longer).
            *r = IpRecord { failures: 0, window_start: now };
            self.bans.add(ip, Duration::from_secs(limits.ban_secs)).ok()
        } else {
            None
        };
        FailureVerdict { delay, ban }
    }

    /// Forgets failures from `ip` after a successful login.
    pub fn login_succeeded(&self, ip: IpAddr) {
        self.ips.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }

    /// Claims a session slot for an account (on every node of a cluster, when `max` is set and
    /// there is one); `Ok(None)` when it has `max` already.
    pub async fn claim_account(
        self: &Arc<Self>,
        name: &str,
        max: Option<u32>,
    ) -> Result<Option<AccountSlot>, Unavailable> {
        let shared = match (&self.cluster, max) {
            (Some(cluster), Some(max)) => match cluster.claim_session(name, max).await? {
                Some(slot) => Some(slot),
                None => return Ok(None),
            },
            _ => None,
        };
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let n = accounts.entry(name.to_string()).or_insert(0);
        if shared.is_none() && max.is_some_and(|m| *n >= m) {
            return Ok(None);
        }
        *n += 1;
        Ok(Some(AccountSlot { state: self.clone(), name: name.to_string(), _shared: shared }))
    }

    /// The quota ledger of an account: the cluster's, else one measured from its root the first
    /// time and kept in memory.
    pub async fn ledger(
        &self,
        account: &str,
        root: &Path,
        limits: &crate::auth::AccountLimits,
    ) -> Arc<dyn QuotaLedger> {
        if let Some(cluster) = &self.cluster {
            return cluster.ledger(account, limits.quota_bytes, limits.quota_files);
        }
        if let Some(u) = self.usage.lock().unwrap_or_else(|p| p.into_inner()).get(account) {
            return u.clone();
        }
        let root = root.to_path_buf();
        let measured = tokio::task::spawn_blocking(move || measure(&root)).await.unwrap_or_default();
        let mut map = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account.to_string())
            .or_insert_with(|| Arc::new(LocalLedger::new(measured, limits.quota_bytes, limits.quota_files)))
            .clone()
    }
}

/// Walks a directory tree (without following links) and adds up regular files.
pub fn measure(root: &Path) -> Usage {
    let mut u = Usage::default();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                u.files += 1;
                u.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    u
}

/// A logged-in session of an account; released on drop (here, and in the cluster's count).
#[derive(Debug)]
pub struct AccountSlot {
    state: Arc<LimitState>,
    name: String,
    _shared: Option<Box<dyn Released>>,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        let mut accounts = self.state.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = accounts.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                accounts.remove(&self.name);
            }
        }
    }
}

/// Paces a transfer to a rate in bytes per second.
#[derive(Debug)]
pub struct Throttle {
    bps: u64,
    start: Instant,
    done: u64,
}

impl Throttle {
    /// A throttle at `bps` bytes per second.
    pub fn new(bps: u64) -> Self {
        Self { bps: bps.max(1), start: Instant::now(), done: 0 }
    }

    /// The largest chunk to move at once (a tenth of a second's worth, at least 1 KiB).
    pub fn chunk(&self) -> usize {
        (self.bps / 10).clamp(1024, 1 << 20) as usize
    }

    /// Accounts for `n` bytes and sleeps until the rate allows more.
    pub async fn pace(&mut self, n: u64) {
        self.done += n;
        let due = Duration::from_secs_f64(self.done as f64 / self.bps as f64);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            failed_login_delay_ms: 100,
            max_failed_login_delay_ms: 500,
            ban_after_failures: 4,
            ban_secs: 60,
            ..Limits::default()
        }
    }

    #[test]
    fn delays_grow_then_ban() {
        let s = LimitState::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let l = limits();
        let d: Vec<_> = (0..4).map(|_| s.login_failed(ip, &l)).collect();
        assert_eq!(d.iter().map(|v| v.delay.as_millis()).collect::<Vec<_>>(), vec![100, 200, 400, 500]);
        assert_eq!(d.iter().map(|v| v.ban.is_some()).collect::<Vec<_>>(), vec![false, false, false, true]);
        assert!(s.is_banned(ip));
        assert!(!s.is_banned("192.0.2.2".parse().unwrap()));
        s.login_succeeded(ip);
        assert!(s.is_banned(ip), "a success does not lift a ban");
    }

    #[tokio::test]
    async fn account_slots() {
        let s = Arc::new(LimitState::default());
        let a = s.claim_account("u", Some(2)).await.unwrap().unwrap();
        let _b = s.claim_account("u", Some(2)).await.unwrap().unwrap();
        assert!(s.claim_account("u", Some(2)).await.unwrap().is_none());
        drop(a);
        assert!(s.claim_account("u", Some(2)).await.unwrap().is_some());
        assert!(s.claim_account("v", None).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn reservations_never_add_up_beyond_the_quota() {
        let l = LocalLedger::new(Usage { bytes: 1000, files: 1 }, Some(3000), None);
        assert_eq!(l.reserve(1, 500, 800).await.unwrap(), 800);
        // 1200 left; the second upload wants 1500 but needs only 1000.
        assert_eq!(l.reserve(2, 1000, 1500).await.unwrap(), 1200);
        assert_eq!(l.reserve(3, 1, 1).await.unwrap(), 0, "full: nothing granted to a younger upload");
        l.settle(1, 700, 1).await.unwrap();
        assert_eq!(l.usage().await.unwrap(), Usage { bytes: 1700, files: 2 });
        // Upload 1's unused 100 bytes came back.
        assert_eq!(l.reserve(3, 100, 100).await.unwrap(), 100);
        l.settle(2, -1700, -2).await.unwrap();
        assert_eq!(l.usage().await.unwrap(), Usage { bytes: 0, files: 0 });
    }

    #[tokio::test]
    async fn the_older_upload_wins_the_last_of_the_quota() {
        // Two 2000-byte uploads, 3000 bytes of quota, reserving in lockstep.
        let l = LocalLedger::new(Usage::default(), Some(3000), None);
        assert_eq!(l.reserve(1, 1000, 1000).await.unwrap(), 1000);
        assert_eq!(l.reserve(2, 1000, 1000).await.unwrap(), 1000);
        // The older one needs 1000 more: only 1000 is free, so it gets it.
        assert_eq!(l.reserve(1, 1000, 1000).await.unwrap(), 1000);
        // The younger one wants 1000 more: nothing left, and it was not revoked (room was there).
        assert_eq!(l.reserve(2, 1000, 1000).await.unwrap(), 0);
        assert!(l.confirm(1).await.unwrap());
        // Contention the other way: the younger holds room the older needs.
        let l = LocalLedger::new(Usage::default(), Some(3000), None);
        assert_eq!(l.reserve(1, 1000, 1000).await.unwrap(), 1000);
        assert_eq!(l.reserve(2, 1500, 1500).await.unwrap(), 1500);
        assert_eq!(l.reserve(1, 1000, 1000).await.unwrap(), 1000, "older: granted, the younger revoked");
        assert_eq!(l.reserve(2, 1, 1).await.unwrap(), 0);
        assert!(!l.confirm(2).await.unwrap(), "revoked: undone before it commits");
        assert!(l.confirm(1).await.unwrap());
        // A confirmed upload is never revoked.
        let l = LocalLedger::new(Usage::default(), Some(3000), None);
        assert_eq!(l.reserve(1, 1000, 1000).await.unwrap(), 1000);
        assert_eq!(l.reserve(2, 2000, 2000).await.unwrap(), 2000);
        assert!(l.confirm(2).await.unwrap());
        assert_eq!(l.reserve(1, 1000, 1000).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn throttle_paces() {
        let mut t = Throttle::new(100_000);
        let start = Instant::now();
        for _ in 0..5 {
            t.pace(10_000).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(450), "{:?}", start.elapsed());
    }

    #[test]
    fn measures_trees() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("x")).unwrap();
        std::fs::write(d.path().join("a"), b"123").unwrap();
        std::fs::write(d.path().join("x/b"), b"45").unwrap();
        assert_eq!(measure(d.path()), Usage { bytes: 5, files: 2 });
    }
}
