//! Segmented uploads (`SITE SEGMENT`, docs/segmented-upload.md): several connections of one
//! account write disjoint ranges of a new version of a file at once, into one hidden temporary
//! file, which replaces the file only when the client says it is complete and every byte has
//! arrived. Until then the old file is untouched; an abandoned one is removed.
//!
//! The registry is per server (one node): the connections of a segmented upload must reach the
//! same node (a balancer's source-IP affinity does that).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::VirtualPath;

/// The byte ranges received so far (half-open, merged, sorted).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Coverage(Vec<(u64, u64)>);

impl Coverage {
    /// Adds `start..end`.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.0.push((start, end));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for &(s, e) in &self.0 {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }

    /// The ranges of `0..size` not received.
    pub fn missing(&self, size: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.0 {
            if s > at {
                out.push((at, s.min(size)));
            }
            at = at.max(e);
            if at >= size {
                break;
            }
        }
        if at < size {
            out.push((at, size));
        }
        out.retain(|(s, e)| s < e);
        out
    }
}

/// The room a segmented upload holds in its account's quota: its whole growth, reserved at
/// `BEGIN` (the size is announced), so that uploads running meanwhile cannot take it.
#[derive(Debug)]
pub struct SegmentQuota {
    ledger: Arc<dyn crate::limits::QuotaLedger>,
    id: u64,
}

impl SegmentQuota {
    /// Reserves `growth` bytes in `ledger` (when it has a byte quota): `None` when they do not
    /// fit. A ledger that cannot be reached lets the upload go on unreserved (it is settled
    /// when the store is back), as streamed uploads do.
    pub async fn reserve(ledger: &Arc<dyn crate::limits::QuotaLedger>, growth: u64) -> Option<Self> {
        let id = crate::limits::reservation_id();
        if ledger.quota_bytes().is_some() && growth > 0 {
            match ledger.reserve(id, growth, growth).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "segmented upload not reserved: it goes on unreserved"),
            }
        }
        Some(Self { ledger: Arc::clone(ledger), id })
    }

    /// Whether the upload may be put in place (`false`: an older upload took its room).
    pub async fn confirm(&self) -> bool {
        self.ledger.confirm(self.id).await.unwrap_or(true)
    }

    /// Ends the reservation, recording what the upload changed (`0, 0` when it was undone).
    pub async fn settle(&self, bytes: i64, files: i64) {
        crate::limits::settle(&self.ledger, self.id, bytes, files).await;
    }
}

/// One segmented upload in progress.
#[derive(Debug)]
pub struct Segmented {
    /// The account's storage.
    pub storage: Arc<dyn crate::storage::Storage>,
    /// The hidden temporary the segments are written to (beside the target).
    pub temp: VirtualPath,
    /// The size announced at `BEGIN`.
    pub size: u64,
    /// Its reservation in the account's quota, when the account has a ledger.
    pub quota: Option<SegmentQuota>,
    /// What has arrived, and when something last did.
    state: Mutex<(Coverage, Instant)>,
}

impl Segmented {
    /// A segmented upload of `size` bytes into `temp`, nothing received yet.
    pub fn new(
        storage: Arc<dyn crate::storage::Storage>,
        temp: VirtualPath,
        size: u64,
        quota: Option<SegmentQuota>,
    ) -> Self {
        Self { storage, temp, size, quota, state: Mutex::new((Coverage::default(), Instant::now())) }
    }

    /// Gives its quota reservation back (an abandoned or failed upload).
    pub async fn release(&self) {
        if let Some(q) = &self.quota {
            q.settle(0, 0).await;
        }
    }

    /// A segment `start..end` arrived whole.
    pub fn received(&self, start: u64, end: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0.insert(start, end);
        s.1 = Instant::now();
    }

    /// A segment is being written: the upload is not idle.
    pub fn touch(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = Instant::now();
    }

    /// The ranges still missing.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0.missing(self.size)
    }

    fn idle_for(&self) -> Duration {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.elapsed()
    }
}

/// The segmented uploads of the server, by account and target path.
#[derive(Debug, Default)]
pub struct Segments(Mutex<HashMap<(String, String), Arc<Segmented>>>);

impl Segments {
    /// Starts `upload`; gives it back (`Err`) when one is already in progress for this account
    /// and path.
    pub fn begin(&self, user: &str, target: &VirtualPath, upload: Segmented) -> Result<Arc<Segmented>, Segmented> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = (user.to_owned(), target.to_string());
        if map.contains_key(&key) {
            return Err(upload);
        }
        let s = Arc::new(upload);
        map.insert(key, s.clone());
        Ok(s)
    }

    /// The one in progress for this account and path.
    pub fn get(&self, user: &str, target: &VirtualPath) -> Option<Arc<Segmented>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&(user.to_owned(), target.to_string())).cloned()
    }

    /// Ends it (published or abandoned): it is no longer found.
    pub fn remove(&self, user: &str, target: &VirtualPath) -> Option<Arc<Segmented>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&(user.to_owned(), target.to_string()))
    }

    /// Takes out those idle for longer than `idle`, for their temporaries to be removed.
    pub fn expired(&self, idle: Duration) -> Vec<Arc<Segmented>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let stale: Vec<(String, String)> =
            map.iter().filter(|(_, s)| s.idle_for() > idle).map(|(k, _)| k.clone()).collect();
        stale.into_iter().filter_map(|k| map.remove(&k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_merges_and_reports_gaps() {
        let mut c = Coverage::default();
        assert_eq!(c.missing(100), [(0, 100)]);
        c.insert(50, 75);
        c.insert(0, 25);
        assert_eq!(c.missing(100), [(25, 50), (75, 100)]);
        c.insert(20, 60);
        assert_eq!(c.missing(100), [(75, 100)]);
        c.insert(75, 100);
        assert!(c.missing(100).is_empty());
        c.insert(10, 10);
        assert_eq!(c.0, [(0, 100)]);
        assert!(Coverage::default().missing(0).is_empty(), "an empty file is complete");
    }

    #[test]
    fn one_per_account_and_path() {
        let s = Segments::default();
        let dir = tempfile::tempdir().unwrap();
        let st: Arc<dyn crate::storage::Storage> =
            Arc::new(crate::storage::local::LocalStorage::open(dir.path()).unwrap());
        let p = VirtualPath::root().join("f").unwrap();
        let t = VirtualPath::root().join(".ferry-upload.f").unwrap();
        let up = || Segmented::new(st.clone(), t.clone(), 10, None);
        assert!(s.begin("alice", &p, up()).is_ok());
        assert!(s.begin("alice", &p, up()).is_err());
        assert!(s.begin("bob", &p, up()).is_ok(), "another account's is its own");
        assert!(s.get("alice", &p).is_some());
        assert!(s.expired(Duration::from_secs(60)).is_empty());
        assert_eq!(s.expired(Duration::ZERO).len(), 2);
        assert!(s.get("alice", &p).is_none());
    }
}
