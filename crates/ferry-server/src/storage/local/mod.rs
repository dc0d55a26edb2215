//! The local filesystem backend.
//!
//! Every path is opened beneath the user's root directory through `cap-std`, which resolves each
//! component relative to an open directory handle and refuses any path (`..`, an absolute symlink,
//! a symlink that climbs out) that would lead outside it. Calls that may block run on tokio's
//! blocking pool; the one exception is opening a file for reading whose path is entirely in the
//! dentry cache (`open_cached`: `openat2` with `RESOLVE_CACHED`, which cannot wait for the disk).

use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt, Permissions, PermissionsExt};
use ferry_proto::listing::EntryKind;
use ferry_proto::VirtualPath;

mod follow;
mod kept;
mod upload;

pub use upload::sweep_stale;

use super::{
    Capabilities, ListPages, Metadata, NamePages, ReadHandle, Result, Storage, StorageError, Upload, WriteMode,
};

/// Files beneath one root directory on the local filesystem.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    dir: Arc<Dir>,
    root: PathBuf,
    /// The root with symlinks resolved, to show absolute link targets as virtual paths.
    canonical_root: PathBuf,
    /// Keep the SHA-256 of whole-file uploads, computed beside them by a follower (HASH answers at once).
    digest_uploads: bool,
}

impl LocalStorage {
    /// Opens (creating it if missing) the root directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let dir = Dir::open_ambient_dir(root, ambient_authority())?;
        let canonical_root = std::fs::canonicalize(root)?;
        Ok(Self { dir: Arc::new(dir), root: root.to_path_buf(), canonical_root, digest_uploads: true })
    }

    /// Whether uploads keep their SHA-256 (on by default; off lets them use `splice`).
    pub fn with_upload_digests(mut self, on: bool) -> Self {
        self.digest_uploads = on;
        self
    }

    /// The root directory on the local filesystem.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A link target as the client may see it: relative targets as they are, absolute ones inside
    /// the root as virtual paths, and absolute ones outside not at all (they would reveal where
    /// the root lives on the server).
    fn shown(&self, mut m: Metadata) -> Metadata {
        if let EntryKind::Symlink(Some(t)) = &m.kind {
            if t.starts_with('/') {
                let shown = Path::new(t)
                    .strip_prefix(&self.canonical_root)
                    .or_else(|_| Path::new(t).strip_prefix(&self.root))
                    .ok()
                    .map(|rest| format!("/{}", rest.display()));
                m.kind = EntryKind::Symlink(shown);
            }
        }
        m
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Dir) -> io::Result<T> + Send + 'static,
    {
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || f(&dir)).await {
            Ok(r) => r.map_err(StorageError::from),
            Err(e) => Err(StorageError::Io(io::Error::other(e))),
        }
    }
}

/// Directories with at least this many entries are statted on several threads.
const PARALLEL_STAT_MIN: usize = 512;

/// Threads that stat one large directory: one per core, asked once (`available_parallelism`
/// reads several cgroup files on every call).
fn stat_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8))
}

fn rel(p: &VirtualPath) -> PathBuf {
    PathBuf::from(p.relative())
}

fn convert(dir: &Dir, path: &Path, m: &cap_std::fs::Metadata) -> Metadata {
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink(dir.read_link_contents(path).ok().map(|t| t.to_string_lossy().into_owned()))
    } else {
        EntryKind::File
    };
    Metadata {
        kind,
        size: m.len(),
        modified: m.modified().ok().map(|t| t.into_std()),
        mode: m.mode() & 0o7777,
        nlink: m.nlink(),
        unique: Some((m.dev(), m.ino())),
    }
}

/// Opens a regular file for reading right here, without a trip to the blocking pool, when that
/// cannot block: `openat2` with `RESOLVE_CACHED` resolves the path from the dentry cache only
/// (`EAGAIN` otherwise), and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` confine it to `dir` as
/// cap-std's own `openat2` does. `None` for anything else (not cached, an error, a directory,
/// a kernel without `openat2`): the caller then takes the blocking path, which gives the usual
/// answer and error.
fn open_cached(dir: &Dir, path: &Path, offset: u64) -> Option<(std::fs::File, u64)> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
    if path.as_os_str().is_empty() {
        return None;
    }
    let fd = openat2(
        dir,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::CACHED,
    )
    .ok()?;
    let mut file = std::fs::File::from(fd);
    let m = file.metadata().ok()?;
    if !m.is_file() {
        return None;
    }
    if offset > 0 && offset <= m.len() {
        file.seek(SeekFrom::Start(offset)).ok()?;
    }
    Some((file, m.len()))
}

#[async_trait]
impl Storage for LocalStorage {
    fn capabilities(&self) -> Capabilities {
        Capabilities { offset_writes: true, set_modified: true, chmod: true }
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        let p = rel(path);
        self.blocking(move |d| d.metadata(&p).map(|m| convert(d, &p, &m))).await
    }

    async fn symlink_metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        let p = rel(path);
        self.blocking(move |d| d.symlink_metadata(&p).map(|m| convert(d, &p, &m))).await.map(|m| self.shown(m))
    }

    async fn list(&self, path: &VirtualPath) -> Result<Vec<(String, Metadata)>> {
        let p = rel(path);
        // Sorted names (kept for large unchanged directories, see dir_names.rs): the shares
        // below keep the order, so the listing comes out sorted without sorting the entries.
        let (sub, names) = self
            .blocking(move |d| {
                let sub = d.open_dir(&p)?;
                let names = super::dir_names::sorted_names(&sub)?;
                Ok((Arc::new(sub), names))
            })
            .await?;
        // A stat per entry is most of a listing's cost: large directories are statted on every
        // core at once, each thread taking a contiguous share of the names.
        let workers = if names.len() < PARALLEL_STAT_MIN { 1 } else { stat_threads() };
        let share = names.len().div_ceil(workers).max(1);
        let mut tasks = Vec::with_capacity(workers);
        for start in (0..names.len()).step_by(share) {
            let (sub, names) = (sub.clone(), names.clone());
            tasks.push(tokio::task::spawn_blocking(move || {
                let part = &names[start..(start + share).min(names.len())];
                let mut out = Vec::with_capacity(part.len());
                for name in part {
                    // An entry that vanished between readdir and stat is simply not listed.
                    let Ok(m) = sub.symlink_metadata(name) else { continue };
                    let meta = convert(&sub, Path::new(name), &m);
                    out.push((name.clone(), meta));
                }
                out
            }));
        }
        let mut list = Vec::new();
        for t in tasks {
            let part = t.await.map_err(|e| StorageError::Io(io::Error::other(e)))?;
            list.extend(part.into_iter().map(|(n, m)| (n, self.shown(m))));
        }
        Ok(list)
    }

    async fn list_pages(&self, path: &VirtualPath) -> Result<ListPages> {
        // `list` returns the entries sorted by name already.
        let list = self.list(path).await?;
        Ok(Box::pin(futures_util::stream::once(std::future::ready(Ok(list)))))
    }

    async fn names(&self, path: &VirtualPath) -> Result<Vec<String>> {
        let p = rel(path);
        self.blocking(move |d| Ok(super::dir_names::sorted_names(&d.open_dir(&p)?)?.to_vec())).await
    }

    async fn names_pages(&self, path: &VirtualPath) -> Result<NamePages> {
        // `names` returns them sorted already.
        let names = self.names(path).await?;
        Ok(Box::pin(futures_util::stream::once(std::future::ready(Ok(names)))))
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<(ReadHandle, u64)> {
        let p = rel(path);
        if let Some((file, size)) = open_cached(&self.dir, &p, offset) {
            return Ok((ReadHandle::File(tokio::fs::File::from_std(file)), size));
        }
        let (file, size) = self
            .blocking(move |d| {
                let f = d.open(&p)?;
                let m = f.metadata()?;
                if m.is_dir() {
                    return Err(io::Error::from(io::ErrorKind::IsADirectory));
                }
                let mut f = f.into_std();
                if offset > 0 && offset <= m.len() {
                    f.seek(SeekFrom::Start(offset))?;
                }
                Ok((f, m.len()))
            })
            .await?;
        Ok((ReadHandle::File(tokio::fs::File::from_std(file)), size))
    }

    async fn write(&self, path: &VirtualPath, mode: WriteMode) -> Result<Box<dyn Upload>> {
        let target = rel(path);
        let dir = self.dir.clone();
        let digest = self.digest_uploads;
        let upload = self.blocking(move |d| upload::open(d, &target, mode, digest)).await?;
        Ok(Box::new(upload.with_dir(dir)))
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<()> {
        let p = rel(path);
        self.blocking(move |d| d.create_dir(&p)).await
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        let p = rel(path);
        self.blocking(move |d| {
            if d.symlink_metadata(&p)?.is_dir() {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            d.remove_file(&p)
        })
        .await
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let p = rel(path);
        self.blocking(move |d| d.remove_dir(&p)).await
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        let (f, t) = (rel(from), rel(to));
        self.blocking(move |d| d.rename(&f, d, &t)).await
    }

    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<()> {
        use cap_fs_ext::{DirExt, SystemTimeSpec};
        let p = rel(path);
        self.blocking(move |d| {
            // Kept digests describe the bytes, which MFMT does not change: they stay valid.
            let file =
                d.open(&p).ok().map(cap_std::fs::File::into_std).filter(|f| f.metadata().is_ok_and(|m| m.is_file()));
            let kept = file.as_ref().map(kept::valid).unwrap_or_default();
            let spec = SystemTimeSpec::from(cap_std::time::SystemTime::from_std(time));
            d.set_times(&p, None, Some(spec))?;
            if let Some(file) = file.filter(|_| !kept.is_empty()) {
                kept::restamp(&file, kept);
            }
            Ok(())
        })
        .await
    }

    async fn digest(
        &self,
        path: &VirtualPath,
        alg: crate::digest::HashAlg,
        range: Option<(u64, u64)>,
        watch: crate::digest::Watch,
    ) -> Result<(String, u64, u64)> {
        let p = rel(path);
        self.blocking(move |d| kept::digest(d, &p, alg, range, &watch)).await
    }

    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()> {
        let p = rel(path);
        self.blocking(move |d| d.set_permissions(&p, Permissions::from_mode(mode & 0o7777))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::parse(s).unwrap()
    }

    /// Small and large (statted in parallel) directories list every entry once, sorted by name
    /// byte order, each with its own metadata.
    #[tokio::test]
    async fn list_pages_come_sorted_with_the_right_metadata() {
        use futures_util::StreamExt as _;
        for n in [5usize, PARALLEL_STAT_MIN * 2 + 3] {
            let tmp = tempfile::tempdir().unwrap();
            // Created in an order unrelated to the sorted one; sizes tell the entries apart.
            let mut names: Vec<String> = (0..n).map(|i| format!("{}-{i}", (i * 7919) % n)).collect();
            for (i, name) in names.iter().enumerate() {
                std::fs::write(tmp.path().join(name), vec![b'x'; i % 97]).unwrap();
            }
            std::fs::create_dir(tmp.path().join("Zdir")).unwrap();
            let sizes: std::collections::HashMap<String, u64> =
                names.iter().enumerate().map(|(i, name)| (name.clone(), (i % 97) as u64)).collect();
            names.push("Zdir".into());
            names.sort();
            let s = LocalStorage::open(tmp.path()).unwrap();
            let mut pages = s.list_pages(&vp("/")).await.unwrap();
            let mut got = Vec::new();
            while let Some(page) = pages.next().await {
                got.extend(page.unwrap());
            }
            assert_eq!(got.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), names, "{n} entries");
            for (name, m) in &got {
                match sizes.get(name) {
                    Some(&size) => assert!(!m.is_dir() && m.size == size, "{name}"),
                    None => assert!(m.is_dir(), "{name}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn replace_is_atomic_and_abort_keeps_old() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("f"), b"old").unwrap();
        let mut up = s.write(&vp("/f"), WriteMode::Replace).await.unwrap();
        up.write_all(b"new data").await.unwrap();
        up.abort().await;
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "temp file removed");

        let mut up = s.write(&vp("/f"), WriteMode::Replace).await.unwrap();
        up.write_all(b"new data").await.unwrap();
        // Listing during the upload does not show the temporary file.
        assert_eq!(s.list(&vp("/")).await.unwrap().len(), 1);
        assert_eq!(up.commit(true).await.unwrap(), 8);
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"new data");

        let mut up = s.write(&vp("/f"), WriteMode::Replace).await.unwrap();
        up.write_all(b"dropped").await.unwrap();
        drop(up);
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"new data");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn concurrent_uploads_to_a_new_name_last_to_complete_wins_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        let mut a = s.write(&vp("/same"), WriteMode::Replace).await.unwrap();
        a.write_all(b"AAAA").await.unwrap();
        let mut b = s.write(&vp("/same"), WriteMode::Replace).await.unwrap();
        b.write_all(b"BBBB").await.unwrap();
        b.commit(false).await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("same")).unwrap(), b"BBBB");
        a.write_all(b"AAAA").await.unwrap();
        // A completes last and wins, whole; no temporary file is left.
        assert_eq!(a.commit(true).await.unwrap(), 8);
        assert_eq!(std::fs::read(tmp.path().join("same")).unwrap(), b"AAAAAAAA");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn offset_and_append() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("f"), b"0123456789").unwrap();
        let mut up = s.write(&vp("/f"), WriteMode::At(4)).await.unwrap();
        up.write_all(b"ab").await.unwrap();
        assert_eq!(up.commit(false).await.unwrap(), 6);
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"0123ab");
        let mut up = s.write(&vp("/f"), WriteMode::Append).await.unwrap();
        up.write_all(b"cd").await.unwrap();
        up.commit(false).await.unwrap();
        assert_eq!(std::fs::read(tmp.path().join("f")).unwrap(), b"0123abcd");
        assert!(matches!(s.write(&vp("/f"), WriteMode::CreateNew).await, Err(StorageError::AlreadyExists)));
    }

    #[tokio::test]
    async fn discard_undoes_in_place_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        let mut up = s.write(&vp("/new"), WriteMode::Replace).await.unwrap();
        up.write_all(b"partial").await.unwrap();
        up.discard().await;
        assert!(!tmp.path().join("new").exists());
        std::fs::write(tmp.path().join("log"), b"0123").unwrap();
        let mut up = s.write(&vp("/log"), WriteMode::Append).await.unwrap();
        up.write_all(b"4567").await.unwrap();
        up.discard().await;
        assert_eq!(std::fs::read(tmp.path().join("log")).unwrap(), b"0123");
        let mut up = s.write(&vp("/log"), WriteMode::At(2)).await.unwrap();
        up.write_all(b"xx").await.unwrap();
        up.discard().await;
        assert_eq!(std::fs::read(tmp.path().join("log")).unwrap(), b"01", "REST cut the tail already; no more is lost");
    }

    #[tokio::test]
    async fn symlinks_cannot_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), tmp.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../etc/passwd", tmp.path().join("rel")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("dirlink")).unwrap();
        std::fs::write(tmp.path().join("inside"), b"ok").unwrap();
        std::os::unix::fs::symlink("inside", tmp.path().join("good")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("inside"), tmp.path().join("abs-inside")).unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        let mut names = s.names(&vp("/")).await.unwrap();
        names.sort();
        assert_eq!(names, ["abs", "abs-inside", "dirlink", "good", "inside", "rel"]);
        let list = s.list(&vp("/")).await.unwrap();
        let target = |name: &str| list.iter().find(|(n, _)| n == name).map(|(_, m)| m.kind.clone()).unwrap();
        assert_eq!(target("abs"), EntryKind::Symlink(None), "outside targets are not shown");
        assert_eq!(target("abs-inside"), EntryKind::Symlink(Some("/inside".into())));
        assert_eq!(target("good"), EntryKind::Symlink(Some("inside".into())));
        for p in ["/abs", "/rel", "/dirlink/secret"] {
            assert!(s.read(&vp(p), 0).await.is_err(), "{p}");
            assert!(s.write(&vp(p), WriteMode::Replace).await.is_err(), "{p}");
        }
        assert!(s.list(&vp("/dirlink")).await.is_err());
        assert!(matches!(s.read(&vp("/good"), 0).await, Ok((ReadHandle::File(_), 2))));
    }

    /// The inline open serves cached regular files beneath the root and nothing else: escapes,
    /// directories and missing names are left to the blocking path (which refuses them).
    #[test]
    fn open_cached_stays_beneath_the_root() {
        use std::io::Read as _;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d/f"), b"0123456789").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), tmp.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../etc/passwd", tmp.path().join("rel")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("dirlink")).unwrap();
        std::os::unix::fs::symlink("d/f", tmp.path().join("good")).unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        // Looked up once, so the dentries are cached.
        for p in ["d/f", "good", "abs", "rel", "dirlink/secret", "d", "missing"] {
            let _ = std::fs::metadata(tmp.path().join(p));
        }
        // Whether this kernel (and sandbox) resolves from the cache at all: openat2 needs Linux
        // 5.6, RESOLVE_CACHED 5.12, and some container seccomp profiles refuse openat2.
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
        let cached = ResolveFlags::BENEATH | ResolveFlags::CACHED;
        let kernel_can = openat2(&dir, "d/f", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty(), cached).is_ok();
        if kernel_can {
            let (mut f, len) = open_cached(&dir, Path::new("d/f"), 4).expect("a cached file opens inline");
            assert_eq!(len, 10);
            let mut rest = String::new();
            f.read_to_string(&mut rest).unwrap();
            assert_eq!(rest, "456789", "positioned at the offset");
            assert!(open_cached(&dir, Path::new("good"), 0).is_some(), "a link inside the root");
        } else {
            eprintln!("openat2 with RESOLVE_CACHED is not available here: only the refusals are checked");
        }
        for p in ["abs", "rel", "dirlink/secret", "../x", "/etc/passwd", "d", "missing", ""] {
            assert!(open_cached(&dir, Path::new(p), 0).is_none(), "{p}");
        }
    }

    #[tokio::test]
    async fn dirs_rename_times_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        s.create_dir(&vp("/d")).await.unwrap();
        assert!(matches!(s.create_dir(&vp("/d")).await, Err(StorageError::AlreadyExists)));
        std::fs::write(tmp.path().join("d/f"), b"x").unwrap();
        assert!(matches!(s.remove_dir(&vp("/d")).await, Err(StorageError::NotEmpty)));
        s.rename(&vp("/d/f"), &vp("/g")).await.unwrap();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        s.set_modified(&vp("/g"), t).await.unwrap();
        s.set_mode(&vp("/g"), 0o600).await.unwrap();
        let m = s.metadata(&vp("/g")).await.unwrap();
        assert_eq!((m.modified, m.mode, m.size), (Some(t), 0o600, 1));
        s.remove_dir(&vp("/d")).await.unwrap();
        assert!(matches!(s.remove_file(&vp("/nope")).await, Err(StorageError::NotFound)));
        assert!(matches!(s.remove_dir(&vp("/")).await, Err(StorageError::PermissionDenied)));
    }
}
