//! Banned addresses: added after repeated failed logins ([`crate::limits`]) or by the
//! administrator (`ferry ban`, the admin API), removed when they expire or by `ferry unban`.
//!
//! A repeat offender's ban grows: each ban of the same address lasts `increment` times the one
//! before (up to `max_secs`). Addresses in `allow` (monitoring, the office) are never banned.
//! With `state_file`, the bans are written there (JSON, replaced atomically) whenever they change
//! and read at start-up, so they survive restarts and reloads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::proxy::IpNet;

/// `[bans]` in the configuration (the threshold, window and first ban's length are
/// `[limits] ban_after_failures`, `failure_window_secs` and `ban_secs`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BanConfig {
    /// Addresses or CIDR ranges never banned (their failed logins are still delayed).
    pub allow: Vec<IpNet>,
    /// Each new ban of an address that was banned before lasts this many times longer.
    pub increment: f64,
    /// The longest ban, seconds.
    pub max_secs: u64,
    /// Where bans are kept across restarts; none: in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for BanConfig {
    fn default() -> Self {
        Self { allow: Vec::new(), increment: 2.0, max_secs: 7 * 24 * 3600, state_file: None }
    }
}

/// One banned address, as kept in the state file and shown by the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ban {
    /// The address.
    pub ip: IpAddr,
    /// Unix time when the ban ends.
    pub until: u64,
    /// How many times this address has been banned (1 for the first).
    pub count: u32,
}

/// Why a ban could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address is in `[bans] allow`.
    Allowed,
}

/// The banned addresses.
#[derive(Debug)]
pub struct Bans {
    config: BanConfig,
    map: Mutex<HashMap<IpAddr, Ban>>,
    /// The cluster's bans (the accounts database), when the nodes share them.
    shared: std::sync::OnceLock<Shared>,
}

/// Bans kept where every node of a cluster sees them (the accounts database).
#[async_trait::async_trait]
pub trait BanStore: Send + Sync + std::fmt::Debug {
    /// Adds or replaces a ban.
    async fn put(&self, ban: &Ban) -> Result<(), crate::limits::Unavailable>;
    /// Lifts the ban on an address.
    async fn delete(&self, ip: IpAddr) -> Result<(), crate::limits::Unavailable>;
    /// The bans in force.
    async fn load(&self) -> Result<Vec<Ban>, crate::limits::Unavailable>;
}

/// How often a node reads the cluster's bans (a ban made on one node holds on the others within
/// this time).
pub const SHARED_BANS_EVERY: Duration = Duration::from_millis(300);

/// The cluster's bans, and this node's changes not yet written there.
#[derive(Debug)]
struct Shared {
    store: std::sync::Arc<dyn BanStore>,
    /// Changes on their way to the store: `Some` a ban, `None` a lifted one.
    pending: std::sync::Arc<Mutex<HashMap<IpAddr, Option<Ban>>>>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Bans {
    /// No bans yet, none read from a file (whatever `config.state_file` says; it is written to).
    pub fn in_memory(config: BanConfig) -> Self {
        Self { config, map: Mutex::new(HashMap::new()), shared: std::sync::OnceLock::new() }
    }

    /// Shares the bans with the other nodes through `store`: this node's bans are written there,
    /// and the store's are read every [`SHARED_BANS_EVERY`] (in a task, until the process ends).
    pub fn share(self: &std::sync::Arc<Self>, store: std::sync::Arc<dyn BanStore>) {
        if self.shared.set(Shared { store, pending: std::sync::Arc::default() }).is_err() {
            return;
        }
        let me = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut logged = false;
            loop {
                let Some(bans) = me.upgrade() else { return };
                let Some(shared) = bans.shared.get() else { return };
                match shared.store.load().await {
                    Ok(list) => {
                        logged = false;
                        let pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        let mut map: HashMap<IpAddr, Ban> = list.into_iter().map(|b| (b.ip, b)).collect();
                        for (ip, change) in pending {
                            match change {
                                Some(ban) => map.insert(ip, ban),
                                None => map.remove(&ip),
                            };
                        }
                        *bans.lock() = map;
                    }
                    Err(e) if !logged => {
                        logged = true;
                        tracing::warn!(error = %e, "cannot read the cluster's bans; keeping the last known");
                    }
                    Err(_) => {}
                }
                drop(bans);
                tokio::time::sleep(SHARED_BANS_EVERY).await;
            }
        });
    }

    /// Writes a change to the cluster's store (in the background, retried until it is there).
    fn publish(&self, ip: IpAddr, change: Option<Ban>) {
        let Some(shared) = self.shared.get() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        shared.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(ip, change.clone());
        let (store, pending) = (shared.store.clone(), shared.pending.clone());
        rt.spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                let r = match &change {
                    Some(ban) => store.put(ban).await,
                    None => store.delete(ip).await,
                };
                match r {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(%ip, error = %e, "ban change not written to the cluster yet; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
            let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.get(&ip) == Some(&change) {
                p.remove(&ip);
            }
        });
    }

    /// The bans of `config`, with those of its state file that have not expired.
    pub fn load(config: &BanConfig) -> std::io::Result<Self> {
        let mut map = HashMap::new();
        if let Some(file) = &config.state_file {
            match std::fs::read_to_string(file) {
                Ok(text) => {
                    let list: Vec<Ban> = serde_json::from_str(&text).map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("ban state file {}: {e}", file.display()),
                        )
                    })?;
                    let now = now_secs();
                    map.extend(list.into_iter().filter(|b| b.until > now).map(|b| (b.ip, b)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(std::io::Error::new(e.kind(), format!("ban state file {}: {e}", file.display()))),
            }
        }
        let bans = Self::in_memory(config.clone());
        *bans.lock() = map;
        Ok(bans)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Ban>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.lock().get(&ip).is_some_and(|b| b.until > now_secs())
    }

    /// Whether `ip` may never be banned.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.config.allow.iter().any(|net| net.contains(ip))
    }

    /// Bans `ip` for `first` (a repeat offender: longer, see [`BanConfig::increment`]); the ban.
    pub fn add(&self, ip: IpAddr, first: Duration) -> Result<Ban, Refused> {
        let ip = ip.to_canonical();
        if self.is_allowed(ip) {
            return Err(Refused::Allowed);
        }
        let ban = {
            let mut map = self.lock();
            let count = map.get(&ip).map_or(1, |b| b.count.saturating_add(1));
            let factor = self.config.increment.max(1.0).powi(count.saturating_sub(1).min(64) as i32);
            let secs = (first.as_secs_f64() * factor).min(self.config.max_secs as f64).max(1.0) as u64;
            let ban = Ban { ip, until: now_secs() + secs, count };
            map.insert(ip, ban.clone());
            ban
        };
        self.save();
        self.publish(ip, Some(ban.clone()));
        Ok(ban)
    }

    /// Lifts the ban on `ip`; false when there was none.
    pub fn remove(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let removed = self.lock().remove(&ip).is_some();
        if removed {
            self.save();
        }
        if removed || self.shared.get().is_some() {
            // Another node's ban may not have reached this one yet: lifted everywhere.
            self.publish(ip, None);
        }
        removed
    }

    /// The bans in force, soonest to end first.
    pub fn list(&self) -> Vec<Ban> {
        let now = now_secs();
        let mut list: Vec<Ban> = self.lock().values().filter(|b| b.until > now).cloned().collect();
        list.sort_by_key(|b| b.until);
        list
    }

    /// Writes the bans (expired ones dropped, but an address's count kept while it is listed) to
    /// the state file: a temporary file renamed over it, so a crash leaves the old or the new.
    fn save(&self) {
        let Some(file) = &self.config.state_file else { return };
        let list: Vec<Ban> = self.lock().values().cloned().collect();
        if let Err(e) = write_atomically(file, &serde_json::to_vec_pretty(&list).unwrap_or_default()) {
            tracing::error!(file = %file.display(), error = %e, "cannot write the ban state file");
        }
    }
}

fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn repeat_offenders_wait_longer_and_allowed_addresses_never() {
        let config = BanConfig { allow: vec!["10.0.0.0/8".parse().unwrap()], max_secs: 250, ..BanConfig::default() };
        let bans = Bans::load(&config).unwrap();
        let first = bans.add(ip("192.0.2.1"), Duration::from_secs(100)).unwrap();
        let second = bans.add(ip("192.0.2.1"), Duration::from_secs(100)).unwrap();
        let third = bans.add(ip("::ffff:192.0.2.1"), Duration::from_secs(100)).unwrap();
        let now = now_secs();
        assert!((99..=101).contains(&(first.until - now)));
        assert!((199..=201).contains(&(second.until - now)), "doubled");
        assert!((249..=251).contains(&(third.until - now)), "capped at max_secs; the mapped address is the same");
        assert_eq!(third.count, 3);
        assert!(bans.is_banned(ip("192.0.2.1")));
        assert_eq!(bans.add(ip("10.1.2.3"), Duration::from_secs(100)), Err(Refused::Allowed));
        assert!(!bans.is_banned(ip("10.1.2.3")));
        assert!(bans.remove(ip("192.0.2.1")));
        assert!(!bans.is_banned(ip("192.0.2.1")));
        assert!(!bans.remove(ip("192.0.2.1")));
    }

    #[test]
    fn bans_survive_a_restart_through_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = BanConfig { state_file: Some(dir.path().join("bans.json")), ..BanConfig::default() };
        let bans = Bans::load(&config).unwrap();
        bans.add(ip("198.51.100.7"), Duration::from_secs(600)).unwrap();
        drop(bans);
        let again = Bans::load(&config).unwrap();
        assert!(again.is_banned(ip("198.51.100.7")));
        assert_eq!(again.list().len(), 1);
        // An expired ban is not loaded.
        let expired = vec![Ban { ip: ip("198.51.100.8"), until: 1, count: 1 }];
        std::fs::write(dir.path().join("bans.json"), serde_json::to_vec(&expired).unwrap()).unwrap();
        assert!(Bans::load(&config).unwrap().list().is_empty());
        std::fs::write(dir.path().join("bans.json"), "not json").unwrap();
        assert!(Bans::load(&config).unwrap_err().to_string().contains("bans.json"));
    }
}
