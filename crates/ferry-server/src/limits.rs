//! Runtime limits shared by all sessions: failed-login tracking and temporary bans per source IP,
//! sessions per account, quota usage per account, and the per-transfer rate limiter.

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
    pub bans: crate::bans::Bans,
    ips: Mutex<HashMap<IpAddr, IpRecord>>,
    accounts: Mutex<HashMap<String, u32>>,
    usage: Mutex<HashMap<String, Arc<Mutex<Usage>>>>,
    /// Segmented uploads in progress (`SITE SEGMENT`).
    pub segments: crate::segments::Segments,
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
        Self::new(crate::bans::Bans::in_memory(crate::bans::BanConfig::default()))
    }
}

impl LimitState {
    /// The state of a server with these bans.
    pub fn new(bans: crate::bans::Bans) -> Self {
        Self {
            bans,
            ips: Mutex::default(),
            accounts: Mutex::default(),
            usage: Mutex::default(),
            segments: crate::segments::Segments::default(),
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

    /// Claims a session slot for an account; `None` when it has `max` already.
    pub fn claim_account(self: &Arc<Self>, name: &str, max: Option<u32>) -> Option<AccountSlot> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let n = accounts.entry(name.to_string()).or_insert(0);
        if max.is_some_and(|m| *n >= m) {
            return None;
        }
        *n += 1;
        Some(AccountSlot { state: self.clone(), name: name.to_string() })
    }

    /// The usage record of an account, measured from its root the first time.
    pub async fn usage(&self, account: &str, root: &Path) -> Arc<Mutex<Usage>> {
        if let Some(u) = self.usage.lock().unwrap_or_else(|p| p.into_inner()).get(account) {
            return u.clone();
        }
        let root = root.to_path_buf();
        let measured = tokio::task::spawn_blocking(move || measure(&root)).await.unwrap_or_default();
        let mut map = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(account.to_string()).or_insert_with(|| Arc::new(Mutex::new(measured))).clone()
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

/// A logged-in session of an account; released on drop.
#[derive(Debug)]
pub struct AccountSlot {
    state: Arc<LimitState>,
    name: String,
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

    #[test]
    fn account_slots() {
        let s = Arc::new(LimitState::default());
        let a = s.claim_account("u", Some(2)).unwrap();
        let _b = s.claim_account("u", Some(2)).unwrap();
        assert!(s.claim_account("u", Some(2)).is_none());
        drop(a);
        assert!(s.claim_account("u", Some(2)).is_some());
        assert!(s.claim_account("v", None).is_some());
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
