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

/// One segmented upload in progress.
#[derive(Debug)]
pub struct Segmented {
    /// The account's storage.
    pub storage: Arc<dyn crate::storage::Storage>,
    /// The hidden temporary the segments are written to (beside the target).
    pub temp: VirtualPath,
    /// The size announced at `BEGIN`.
    pub size: u64,
    /// What has arrived, and when something last did.
    state: Mutex<(Coverage, Instant)>,
}

impl Segmented {
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
    /// Starts one; `None` when one is already in progress for this account and path.
    pub fn begin(
        &self,
        user: &str,
        target: &VirtualPath,
        storage: Arc<dyn crate::storage::Storage>,
        temp: VirtualPath,
        size: u64,
    ) -> Option<Arc<Segmented>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = (user.to_owned(), target.to_string());
        if map.contains_key(&key) {
            return None;
        }
        let s = Arc::new(Segmented { storage, temp, size, state: Mutex::new((Coverage::default(), Instant::now())) });
        map.insert(key, s.clone());
        Some(s)
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
        assert!(s.begin("alice", &p, st.clone(), t.clone(), 10).is_some());
        assert!(s.begin("alice", &p, st.clone(), t.clone(), 10).is_none());
        assert!(s.begin("bob", &p, st.clone(), t.clone(), 10).is_some(), "another account's is its own");
        assert!(s.get("alice", &p).is_some());
        assert!(s.expired(Duration::from_secs(60)).is_empty());
        assert_eq!(s.expired(Duration::ZERO).len(), 2);
        assert!(s.get("alice", &p).is_none());
    }
}
