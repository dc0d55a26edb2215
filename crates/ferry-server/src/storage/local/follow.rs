//! An upload's SHA-256, computed beside it rather than in its way.
//!
//! A [`Follower`] reads the file being uploaded from the page cache a little behind the writer (it
//! watches the file's size: the bytes below it are final, since a whole-file upload writes in
//! order from offset 0) and keeps the digest with the file ([`super::kept`]) once the upload has
//! committed. The upload itself never waits for it, so uploads keep `splice(2)` and the 226 waits
//! only for the disk; on a machine with a core to spare the digest is ready within a few
//! milliseconds of the 226, and on a busy one it finishes after it. `HASH` and `MFMT` wait for a
//! digest still being computed ([`wait`]) instead of reading the file a second time.

use std::collections::HashMap;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::digest::{HashAlg, Hasher, Stamp};

/// How long a follower that has caught up sleeps before it looks at the file's size again (the
/// writer may be `splice`ing, which nothing here is told about): from the first to the second,
/// doubling while nothing new comes (a slow upload costs a few wake-ups a second). The commit
/// wakes it at once.
const POLL: (Duration, Duration) = (Duration::from_millis(2), Duration::from_millis(100));

/// How much a follower reads at a time.
const CHUNK: usize = 1 << 20;

/// The upload's side of the story, as the follower sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upload {
    /// Still being written.
    Writing,
    /// Committed: the file was at this stamp after its last write.
    Committed(Stamp),
    /// Aborted, discarded or dropped: the digest is not wanted.
    Abandoned,
}

/// What the uploading side and the follower share.
#[derive(Debug)]
struct Shared {
    upload: Mutex<Upload>,
    changed: Condvar,
}

/// A digest being computed for one file (its device and inode), which `HASH` may wait for.
#[derive(Debug, Default)]
struct Pending {
    done: Mutex<bool>,
    finished: Condvar,
}

/// The digests being computed, by the file's device and inode.
type Registry = Mutex<HashMap<(u64, u64), Arc<Pending>>>;

/// The files whose digest a follower is computing.
fn pending() -> &'static Registry {
    static PENDING: OnceLock<Registry> = OnceLock::new();
    PENDING.get_or_init(Mutex::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The uploading side's handle on a follower: tell it how the upload ended. Dropping it without
/// [`Follower::committed`] abandons the digest.
#[derive(Debug)]
pub(super) struct Follower {
    shared: Arc<Shared>,
    /// The file's device and inode, and what `HASH` waits on once the upload has committed.
    key: (u64, u64),
    entry: Arc<Pending>,
}

impl Follower {
    /// Starts following `file` (open for reading, written from offset 0 by a whole-file upload)
    /// on a thread of its own (not the blocking pool: a follower waits for its upload's writes,
    /// which a pool full of followers would never run).
    pub(super) fn start(file: &std::fs::File) -> std::io::Result<Self> {
        let file = file.try_clone()?;
        let meta = file.metadata()?;
        let key = (meta.dev(), meta.ino());
        let entry = Arc::new(Pending::default());
        let shared = Arc::new(Shared { upload: Mutex::new(Upload::Writing), changed: Condvar::new() });
        let (theirs, done) = (shared.clone(), entry.clone());
        std::thread::Builder::new().name("ferry-digest".into()).spawn(move || {
            follow(&file, &theirs);
            // Under the registry's lock, as in `committed`: an entry is never left behind.
            let mut map = lock(pending());
            if map.get(&key).is_some_and(|e| Arc::ptr_eq(e, &done)) {
                map.remove(&key);
            }
            *lock(&done.done) = true;
            drop(map);
            done.finished.notify_all();
        })?;
        Ok(Self { shared, key, entry })
    }

    /// The upload committed with `file` (the same file) as it is now: the follower reads to its
    /// end and keeps the digest, unless the file changes meanwhile. From now on `HASH` waits for
    /// it (not before: a file still being uploaded is hashed as it is).
    pub(super) fn committed(self, file: &std::fs::File) {
        let to = match file.metadata() {
            Ok(meta) => Upload::Committed(Stamp::of(&meta)),
            Err(_) => Upload::Abandoned,
        };
        if to != Upload::Abandoned {
            // Not when the follower already gave up (a read error): nothing would remove it.
            let mut map = lock(pending());
            if !*lock(&self.entry.done) {
                map.insert(self.key, self.entry.clone());
            }
        }
        self.tell(to);
    }

    fn tell(&self, to: Upload) {
        let mut upload = lock(&self.shared.upload);
        if *upload == Upload::Writing {
            *upload = to;
        }
        drop(upload);
        self.shared.changed.notify_all();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.tell(Upload::Abandoned);
    }
}

/// The follower's loop: read what has been written, wait when caught up, keep the digest at the
/// end.
fn follow(file: &std::fs::File, shared: &Shared) {
    let mut hasher = Hasher::new(HashAlg::Sha256);
    let mut buf = vec![0u8; CHUNK];
    let mut hashed = 0u64;
    let mut idle = POLL.0;
    loop {
        let Ok(size) = file.metadata().map(|m| m.len()) else { return };
        if hashed < size {
            idle = POLL.0;
            let want = usize::try_from(size - hashed).unwrap_or(CHUNK).min(CHUNK);
            match file.read_at(&mut buf[..want], hashed) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    hashed += n as u64;
                }
            }
            continue;
        }
        let upload = lock(&shared.upload);
        match *upload {
            Upload::Abandoned => return,
            Upload::Committed(stamp) => {
                drop(upload);
                // Nothing was written after the commit, and the file is what was hashed.
                if hashed == stamp.size && file.metadata().is_ok_and(|m| Stamp::of(&m) == stamp) {
                    super::kept::write(file, HashAlg::Sha256, stamp, &hasher.finish());
                }
                return;
            }
            Upload::Writing => {
                let _ = shared.changed.wait_timeout(upload, idle);
                idle = (idle * 2).min(POLL.1);
            }
        }
    }
}

/// Waits for the digest a follower is computing for `meta`'s file, if any; true when there was
/// one (its result is then kept with the file, or was abandoned). Gives up waiting when
/// `cancelled` says so (checked a few times a second).
pub(super) fn wait(meta: &std::fs::Metadata, cancelled: &dyn Fn() -> bool) -> bool {
    let Some(entry) = lock(pending()).get(&(meta.dev(), meta.ino())).cloned() else { return false };
    let mut done = lock(&entry.done);
    while !*done && !cancelled() {
        done = entry.finished.wait_timeout(done, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner()).0;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn sha256(bytes: &[u8]) -> String {
        let mut h = Hasher::new(HashAlg::Sha256);
        h.update(bytes);
        h.finish()
    }

    #[test]
    fn a_follower_keeps_the_digest_of_what_was_written_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let follower = Follower::start(&file).unwrap();
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(700_000) {
            file.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        follower.committed(&file);
        let meta = file.metadata().unwrap();
        wait(&meta, &|| false);
        // The temporary directory is on ext4 or tmpfs, which keep user extended attributes.
        let kept = super::super::kept::read(&file, HashAlg::Sha256, Stamp::of(&meta));
        assert_eq!(kept, Some(sha256(&data)));
        assert!(!wait(&meta, &|| false), "the pending entry is gone once done");
    }

    #[test]
    fn an_abandoned_or_changed_upload_keeps_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            std::fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.path().join(name))
                .unwrap()
        };
        let mut dropped = open("dropped");
        let follower = Follower::start(&dropped).unwrap();
        dropped.write_all(b"partial").unwrap();
        drop(follower);
        let meta = dropped.metadata().unwrap();
        wait(&meta, &|| false);
        assert_eq!(super::super::kept::read(&dropped, HashAlg::Sha256, Stamp::of(&meta)), None);

        let mut changed = open("changed");
        let follower = Follower::start(&changed).unwrap();
        changed.write_all(b"first").unwrap();
        // Told of a commit at a stamp the file no longer has (written to after it).
        let stale = changed.metadata().unwrap();
        changed.write_all(b" and more").unwrap();
        *lock(&follower.shared.upload) = Upload::Committed(Stamp::of(&stale));
        follower.shared.changed.notify_all();
        drop(follower);
        let meta = changed.metadata().unwrap();
        wait(&meta, &|| false);
        assert_eq!(super::super::kept::read(&changed, HashAlg::Sha256, Stamp::of(&meta)), None);
        assert_eq!(super::super::kept::read(&changed, HashAlg::Sha256, Stamp::of(&stale)), None);
    }
}
