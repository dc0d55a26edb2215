//! Uploads to local files ([`WriteMode`] says where the bytes go).
//!
//! A `STOR` over an existing file never touches it until the upload is complete: the bytes go to
//! an unnamed file (`O_TMPFILE`) in the same directory, which is given a name (`linkat`) and
//! renamed over the old file only at commit. A crash at any point before leaves nothing behind:
//! the kernel frees an unnamed file when its last descriptor closes. Where the filesystem has no
//! `O_TMPFILE` (or `/proc` is missing, which `linkat` needs), a named temporary
//! `.ferry-upload.NAME.RANDOM` is used instead, removed on abort and swept at start-up
//! ([`sweep_stale`]) after a crash. New files, `APPE` and `REST`+`STOR` are written in place, so
//! an interrupted upload can be resumed.

use std::future::Future as _;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cap_std::fs::{Dir, MetadataExt as _, OpenOptions, Permissions, PermissionsExt};
use tokio::io::AsyncWrite;

use crate::storage::{Result, StagedUpload, StorageError, Upload, WriteMode, TEMP_PREFIX};

/// A named temporary for `target` in the same directory: `.ferry-upload.NAME.PID.RANDOM`, with
/// the writing process's id so that a sweep can tell a dead server's leftovers from a live one's.
fn temp_name(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = crate::storage::temp_file_name(&name);
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(tmp),
        _ => PathBuf::from(tmp),
    }
}

/// Where a replacement is written until it commits.
#[derive(Debug)]
enum Temp {
    /// An `O_TMPFILE` in the target's directory (`parent`, opened beneath the root): named and
    /// renamed over `name` at commit. `target`: the whole path, relative to the root.
    Unnamed { parent: Dir, name: PathBuf, target: PathBuf },
    /// A named temporary beside the target (both relative to the root).
    Named { tmp: PathBuf, target: PathBuf },
}

/// How to undo an in-place upload.
#[derive(Debug)]
enum Undo {
    Nothing,
    /// The file was created by this upload.
    Remove(PathBuf),
    /// The file had this length before.
    Truncate(PathBuf, u64),
}

/// The file an upload writes, and what to do with it at the end.
#[derive(Debug)]
pub(super) struct Opened {
    file: std::fs::File,
    temp: Option<Temp>,
    undo: Undo,
    append: bool,
    /// The SHA-256 kept with the file, when the upload writes the whole file.
    digest: Digest,
}

/// The SHA-256 of a whole-file upload, kept with the file for `HASH`.
#[derive(Debug)]
enum Digest {
    /// Not kept: the upload does not write the whole file, or `upload_digests = false`.
    Off,
    /// Nothing written yet: an upload that ends in one piece is hashed as it commits.
    AtCommit,
    /// Followed from the page cache as it is written, by a thread of its own.
    Following(super::follow::Follower),
}

impl Digest {
    /// More than one piece is being written (or bytes are spliced in, unseen): follow the file.
    fn follow(&mut self, file: &std::fs::File) {
        if matches!(self, Digest::AtCommit) {
            *self = match super::follow::Follower::start(file) {
                Ok(f) => Digest::Following(f),
                Err(e) => {
                    tracing::debug!(error = %e, "upload digest not followed");
                    Digest::Off
                }
            };
        }
    }

    /// The upload wrote its `last` bytes and is committing (before the file's fsync).
    fn committed(self, file: &std::fs::File, last: &[u8]) {
        match self {
            Digest::Off => {}
            Digest::AtCommit => {
                // `last` is all the file holds.
                let mut hasher = crate::digest::Hasher::new(crate::digest::HashAlg::Sha256);
                hasher.update(last);
                if let Ok(meta) = file.metadata() {
                    super::kept::write(file, hasher.alg(), crate::digest::Stamp::of(&meta), &hasher.finish());
                }
            }
            Digest::Following(f) => f.committed(file),
        }
    }
}

impl Opened {
    /// The upload, writing through `dir` (the root).
    pub(super) fn with_dir(self, dir: Arc<Dir>) -> LocalUpload {
        LocalUpload {
            file: Arc::new(self.file),
            inflight: None,
            spare: None,
            append: self.append,
            dir,
            temp: self.temp,
            undo: self.undo,
            done: false,
            digest: self.digest,
        }
    }
}

/// Opens `target` (relative to the root `d`) for an upload in `mode` (blocking). `digest`: keep
/// the SHA-256 of an upload that writes the whole file.
pub(super) fn open(d: &Dir, target: &Path, mode: WriteMode, digest: bool) -> io::Result<Opened> {
    let existing = match d.metadata(target) {
        Ok(m) if m.is_dir() => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let append = mode == WriteMode::Append;
    // Readable too: a replaced in-place upload is copied back from its handle at commit.
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    let (file, temp, undo) = match mode {
        WriteMode::Replace | WriteMode::ReplaceHidden if existing.is_some() => {
            let mode_bits = existing.as_ref().map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
            let (file, temp) = replacement(d, target, mode_bits)?;
            (file, Some(temp), Undo::Nothing)
        }
        WriteMode::ReplaceHidden => {
            let (file, temp) = replacement(d, target, 0o644)?;
            (file, Some(temp), Undo::Nothing)
        }
        WriteMode::Replace => {
            // A new name is created exclusively and written in place (so it can be resumed); if
            // another upload created it meanwhile, write beside it.
            let mut excl = OpenOptions::new();
            excl.read(true).write(true).create_new(true);
            match d.open_with(target, &excl) {
                Ok(f) => (f.into_std(), None, Undo::Remove(target.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let (file, temp) = replacement(d, target, 0o644)?;
                    (file, Some(temp), Undo::Nothing)
                }
                Err(e) => return Err(e),
            }
        }
        WriteMode::CreateNew => {
            opts.create_new(true);
            (d.open_with(target, &opts)?.into_std(), None, Undo::Remove(target.to_path_buf()))
        }
        WriteMode::Append => {
            opts.append(true).create(true);
            let undo = match &existing {
                None => Undo::Remove(target.to_path_buf()),
                Some(m) => Undo::Truncate(target.to_path_buf(), m.len()),
            };
            (d.open_with(target, &opts)?.into_std(), None, undo)
        }
        WriteMode::Segment(offset) => {
            let mut f = d.open_with(target, &opts)?.into_std();
            f.seek(SeekFrom::Start(offset))?;
            (f, None, Undo::Nothing)
        }
        WriteMode::At(offset) => {
            opts.create(offset == 0);
            let mut f = d.open_with(target, &opts)?.into_std();
            f.set_len(offset)?;
            f.seek(SeekFrom::Start(offset))?;
            let undo = match &existing {
                Some(_) => Undo::Truncate(target.to_path_buf(), offset),
                None => Undo::Remove(target.to_path_buf()),
            };
            (f, None, undo)
        }
    };
    let whole = matches!(mode, WriteMode::Replace | WriteMode::ReplaceHidden | WriteMode::CreateNew | WriteMode::At(0));
    let digest = if digest && whole { Digest::AtCommit } else { Digest::Off };
    Ok(Opened { file, temp, undo, append, digest })
}

/// Where a replacement of `target` is written: an unnamed file in its directory where the
/// filesystem can, else a named temporary beside it.
fn replacement(d: &Dir, target: &Path, mode_bits: u32) -> io::Result<(std::fs::File, Temp)> {
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = target.file_name().map(PathBuf::from).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let parent = d.open_dir(parent)?;
    if proc_fd_available() {
        use rustix::fs::{openat, Mode, OFlags};
        match openat(&parent, ".", OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from_raw_mode(mode_bits)) {
            Ok(fd) => {
                let file = std::fs::File::from(fd);
                // The umask may have taken bits off; the replacement keeps the old file's mode.
                let _ = file
                    .set_permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode_bits));
                return Ok((file, Temp::Unnamed { parent, name, target: target.to_path_buf() }));
            }
            // Filesystems without O_TMPFILE answer EOPNOTSUPP (old kernels EISDIR or EINVAL).
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let tmp = temp_name(target);
    let mut excl = OpenOptions::new();
    excl.read(true).write(true).create_new(true);
    let f = d.open_with(&tmp, &excl)?;
    let _ = f.set_permissions(Permissions::from_mode(mode_bits));
    Ok((f.into_std(), Temp::Named { tmp, target: target.to_path_buf() }))
}

/// Whether `/proc/self/fd` is there: `linkat` names an unnamed file through it (the other way,
/// `AT_EMPTY_PATH`, needs `CAP_DAC_READ_SEARCH`).
fn proc_fd_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// An upload to a local file.
///
/// Writes run on the blocking pool, one at a time and in order: while one chunk is written to
/// the file the transfer reads the next from the socket, so the two overlap on two cores.
pub(super) struct LocalUpload {
    file: Arc<std::fs::File>,
    /// The chunk being written; it returns its buffer for reuse.
    inflight: Option<tokio::task::JoinHandle<io::Result<Vec<u8>>>>,
    /// A buffer back from a finished write.
    spare: Option<Vec<u8>>,
    /// Opened with O_APPEND (`APPE`).
    append: bool,
    dir: Arc<Dir>,
    /// Where a replacement is written until it commits.
    temp: Option<Temp>,
    /// How [`Upload::discard`] undoes an in-place write.
    undo: Undo,
    done: bool,
    /// The SHA-256 kept with the file (whole-file uploads).
    digest: Digest,
}

impl LocalUpload {
    /// Waits for the write in flight, if any; its buffer becomes the spare.
    fn poll_inflight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(h) = &mut self.inflight {
            let r = std::task::ready!(Pin::new(h).poll(cx));
            self.inflight = None;
            match r {
                Ok(Ok(buf)) => self.spare = Some(buf),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(e) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
        Poll::Ready(Ok(()))
    }

    async fn settle(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_inflight(cx)).await
    }

    /// Starts writing `buf` (after the previous write finished).
    fn start_write(&mut self, buf: Vec<u8>) {
        self.digest.follow(&self.file);
        let file = self.file.clone();
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            (&*file).write_all(&buf)?;
            Ok(buf)
        }));
    }
}

impl AsyncWrite for LocalUpload {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_inflight(cx))?;
        let mut owned = self.spare.take().unwrap_or_default();
        owned.clear();
        owned.extend_from_slice(buf);
        self.start_write(owned);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_inflight(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_inflight(cx)
    }
}

#[async_trait]
impl Upload for LocalUpload {
    fn splice_target(&self) -> Option<Arc<std::fs::File>> {
        // splice(2) refuses files opened with O_APPEND.
        (self.inflight.is_none() && !self.append).then(|| self.file.clone())
    }

    fn splicing(&mut self) {
        self.digest.follow(&self.file);
    }

    async fn write_owned(&mut self, buf: Vec<u8>) -> io::Result<Vec<u8>> {
        self.settle().await?;
        let spare = self.spare.take().unwrap_or_else(|| Vec::with_capacity(buf.capacity()));
        self.start_write(buf);
        Ok(spare)
    }

    async fn commit(self: Box<Self>, fsync: bool) -> Result<u64> {
        self.complete(None, fsync).await
    }

    async fn finish(self: Box<Self>, last: Vec<u8>, fsync: bool) -> Result<u64> {
        self.complete(Some(last), fsync).await
    }

    async fn discard(mut self: Box<Self>) {
        self.undo().await;
        self.abort().await;
    }

    async fn stage(mut self: Box<Self>, last: Vec<u8>, fsync: bool) -> Result<Box<dyn StagedUpload>> {
        self.settle().await?;
        let file = self.file.clone();
        let dir = self.dir.clone();
        let temp = self.temp.take();
        let undo = std::mem::replace(&mut self.undo, Undo::Nothing);
        let digest = std::mem::replace(&mut self.digest, Digest::Off);
        self.done = true;
        let staged = tokio::task::spawn_blocking(move || stage_blocking(file, dir, last, temp, undo, digest, fsync))
            .await
            .map_err(|e| StorageError::Io(io::Error::other(e)))??;
        Ok(Box::new(staged))
    }

    async fn abort(mut self: Box<Self>) {
        // What was received stays in a file written in place: let it all land (resumable).
        let _ = self.settle().await;
        self.done = true;
        if let Some(Temp::Named { tmp, .. }) = self.temp.take() {
            let dir = self.dir.clone();
            let _ = tokio::task::spawn_blocking(move || dir.remove_file(tmp)).await;
        }
        // An unnamed replacement vanishes with its last descriptor.
    }
}

impl LocalUpload {
    /// Writes `last`, makes the upload durable and visible: one blocking call, so a small upload
    /// costs one trip to the blocking pool here.
    async fn complete(mut self: Box<Self>, last: Option<Vec<u8>>, fsync: bool) -> Result<u64> {
        self.settle().await?;
        let file = self.file.clone();
        let dir = self.dir.clone();
        let in_place = match &self.undo {
            Undo::Remove(p) => Some(InPlace { path: p.clone(), created: true }),
            Undo::Truncate(p, _) => Some(InPlace { path: p.clone(), created: false }),
            Undo::Nothing => None,
        };
        let temp = self.temp.take();
        let digest = std::mem::replace(&mut self.digest, Digest::Off);
        let len =
            tokio::task::spawn_blocking(move || complete_blocking(&file, &dir, last, in_place, temp, digest, fsync))
                .await
                .map_err(|e| StorageError::Io(io::Error::other(e)))??;
        self.done = true;
        Ok(len)
    }

    async fn undo(&mut self) {
        // No write may land after the truncation.
        let _ = self.settle().await;
        let undo = std::mem::replace(&mut self.undo, Undo::Nothing);
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || match undo {
            Undo::Nothing => Ok(()),
            Undo::Remove(p) => dir.remove_file(p),
            Undo::Truncate(p, len) => dir.open_with(p, OpenOptions::new().write(true)).and_then(|f| f.set_len(len)),
        })
        .await;
    }
}

/// An upload written under its final name (a new file, `APPE`, `REST`+`STOR`).
struct InPlace {
    path: PathBuf,
    /// The upload created the name, so the directory changed too.
    created: bool,
}

/// The parent of `path` within `dir`, for its fsync.
fn parent_of(dir: &Dir, path: &Path) -> io::Result<Dir> {
    dir.open_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// The blocking part of [`LocalUpload::complete`]; returns the file's final length. With
/// `fsync`: the file's data and metadata, then the directory whenever a name was created or
/// replaced, so that the name survives a power cut as well as the bytes.
fn complete_blocking(
    file: &std::fs::File,
    dir: &Dir,
    last: Option<Vec<u8>>,
    in_place: Option<InPlace>,
    temp: Option<Temp>,
    digest: Digest,
    fsync: bool,
) -> io::Result<u64> {
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    let last = last.unwrap_or_default();
    (&*file).write_all(&last)?;
    digest.committed(file, &last);
    if fsync {
        file.sync_all()?;
    }
    let meta = file.metadata()?;
    let len = meta.len();
    if let Some(InPlace { path, created }) = in_place {
        // Another upload may have renamed a new file over this one while it was written: then
        // this data is not what the name holds, and the client must not be told otherwise.
        let same = dir.symlink_metadata(&path).map(|m| m.dev() == meta.dev() && m.ino() == meta.ino()).unwrap_or(false);
        if !same {
            // The name now holds another upload's data, committed before this one. This one
            // completes last, so it wins whole: copy it from the (unlinked) file into place.
            let mut src = file.try_clone()?;
            let tmp = temp_name(&path);
            let mut excl = OpenOptions::new();
            excl.write(true).create_new(true);
            let mut out = dir.open_with(&tmp, &excl)?.into_std();
            src.seek(SeekFrom::Start(0))?;
            let copied = std::io::copy(&mut src, &mut out).and_then(|_| if fsync { out.sync_all() } else { Ok(()) });
            return match copied.and_then(|()| dir.rename(&tmp, dir, &path)) {
                Ok(()) => {
                    if fsync {
                        sync_dir(&parent_of(dir, &path)?);
                    }
                    Ok(len)
                }
                Err(e) => {
                    let _ = dir.remove_file(&tmp);
                    Err(e)
                }
            };
        }
        if created && fsync {
            sync_dir(&parent_of(dir, &path)?);
        }
    }
    match temp {
        None => {}
        Some(Temp::Named { tmp, target }) => {
            dir.rename(&tmp, dir, &target)?;
            if fsync {
                sync_dir(&parent_of(dir, &target)?);
            }
        }
        Some(Temp::Unnamed { parent, name, .. }) => {
            // Named for an instant (link), then renamed over the old file: a crash between the
            // two leaves a named temporary, which the start-up sweep removes.
            use std::os::fd::AsRawFd as _;
            let tmp = temp_name(&name);
            let source = format!("/proc/self/fd/{}", file.as_raw_fd());
            rustix::fs::linkat(rustix::fs::CWD, source.as_str(), &parent, &tmp, rustix::fs::AtFlags::SYMLINK_FOLLOW)?;
            if let Err(e) = parent.rename(&tmp, &parent, &name) {
                let _ = parent.remove_file(&tmp);
                return Err(e);
            }
            if fsync {
                sync_dir(&parent);
            }
        }
    }
    Ok(len)
}

/// An upload waiting for its verdict ([`Upload::stage`]).
struct LocalStaged {
    file: Arc<std::fs::File>,
    dir: Arc<Dir>,
    len: u64,
    /// `None` once published or quarantined.
    at: Option<Staging>,
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        // Dropped without a verdict (the session ended while the verifier ran): like an aborted
        // upload, the temporary goes; bytes written in place stay (resumable).
        if let Some(Staging::Hidden { tmp, .. }) = &self.at {
            let _ = self.dir.remove_file(tmp);
        }
    }
}

/// Where a staged upload's bytes are.
enum Staging {
    /// Under a hidden temporary name (relative to the root), renamed to `target` when accepted.
    Hidden { tmp: PathBuf, target: PathBuf },
    /// Under the final name already (`APPE`, `REST`+`STOR`); `undo` takes it back.
    InPlace { path: PathBuf, undo: Undo },
}

/// The blocking part of [`LocalUpload::stage`]: the last bytes, `fsync`, and a name to read the
/// bytes by.
fn stage_blocking(
    file: Arc<std::fs::File>,
    dir: Arc<Dir>,
    last: Vec<u8>,
    temp: Option<Temp>,
    undo: Undo,
    digest: Digest,
    fsync: bool,
) -> io::Result<LocalStaged> {
    use std::io::Write as _;
    (&*file).write_all(&last)?;
    digest.committed(&file, &last);
    if fsync {
        file.sync_all()?;
    }
    let len = file.metadata()?.len();
    let at = match (temp, undo) {
        (Some(Temp::Named { tmp, target }), _) => Staging::Hidden { tmp, target },
        (Some(Temp::Unnamed { parent, target, .. }), _) => {
            use std::os::fd::AsRawFd as _;
            let tmp = temp_name(&target);
            let tmp_name = tmp.file_name().map(PathBuf::from).unwrap_or_default();
            let source = format!("/proc/self/fd/{}", file.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                source.as_str(),
                &parent,
                &tmp_name,
                rustix::fs::AtFlags::SYMLINK_FOLLOW,
            )?;
            Staging::Hidden { tmp, target }
        }
        (None, undo) => {
            let path = match &undo {
                Undo::Remove(p) | Undo::Truncate(p, _) => p.clone(),
                Undo::Nothing => return Err(io::Error::other("an in-place upload without its path")),
            };
            Staging::InPlace { path, undo }
        }
    };
    Ok(LocalStaged { file, dir, len, at: Some(at) })
}

#[async_trait]
impl StagedUpload for LocalStaged {
    fn path(&self) -> &Path {
        match &self.at {
            Some(Staging::Hidden { tmp, .. }) => tmp,
            Some(Staging::InPlace { path, .. }) => path,
            None => Path::new(""),
        }
    }

    fn size(&self) -> u64 {
        self.len
    }

    async fn publish(mut self: Box<Self>, fsync: bool) -> Result<u64> {
        let len = self.len;
        tokio::task::spawn_blocking(move || {
            let path = match self.at.take() {
                Some(Staging::Hidden { tmp, target }) => {
                    if let Err(e) = self.dir.rename(&tmp, &self.dir, &target) {
                        let _ = self.dir.remove_file(&tmp);
                        return Err(e);
                    }
                    target
                }
                Some(Staging::InPlace { path, .. }) => path,
                None => return Ok(len),
            };
            if fsync {
                sync_dir(&parent_of(&self.dir, &path)?);
            }
            Ok(len)
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
        .map_err(StorageError::from)
    }

    async fn quarantine(mut self: Box<Self>, to: &Path, name: &str) -> Result<()> {
        let to = to.to_path_buf();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let q = Dir::open_ambient_dir(&to, cap_std::ambient_authority());
            let at = self.at.take();
            let q = match (q, at) {
                (Ok(q), at) => (q, at),
                // Not published either way: the temporary goes, an in-place write is undone.
                (Err(e), Some(Staging::Hidden { tmp, .. })) => {
                    let _ = self.dir.remove_file(tmp);
                    return Err(e);
                }
                (Err(e), Some(Staging::InPlace { path, undo })) => {
                    undo_in_place(&self.dir, &self.file, &path, undo)?;
                    return Err(e);
                }
                (Err(e), None) => return Err(e),
            };
            let (q, at) = q;
            match at {
                None => Ok(()),
                Some(Staging::Hidden { tmp, .. }) => {
                    // The same filesystem: a rename; else a copy (the temporary goes either way).
                    let moved = match self.dir.rename(&tmp, &q, &name) {
                        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                            copy_out(&self.file, &q, &name)
                        }
                        r => r,
                    };
                    let _ = self.dir.remove_file(&tmp);
                    moved
                }
                Some(Staging::InPlace { path, undo }) => {
                    let copied = copy_out(&self.file, &q, &name);
                    undo_in_place(&self.dir, &self.file, &path, undo)?;
                    copied
                }
            }
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
        .map_err(StorageError::from)
    }
}

/// Takes back an upload written in place: a file it created is removed, an appended or resumed
/// one cut back to its old length.
fn undo_in_place(dir: &Dir, file: &std::fs::File, path: &Path, undo: Undo) -> io::Result<()> {
    match undo {
        Undo::Remove(_) => dir.remove_file(path),
        Undo::Truncate(_, len) => file.set_len(len).and_then(|()| file.sync_all()),
        Undo::Nothing => Ok(()),
    }
}

/// Copies the whole of `file` to a new file `name` in `dir`, durably.
fn copy_out(file: &std::fs::File, dir: &Dir, name: &str) -> io::Result<()> {
    let mut excl = OpenOptions::new();
    excl.write(true).create_new(true);
    let mut out = dir.open_with(name, &excl)?.into_std();
    let mut src = file.try_clone()?;
    src.seek(SeekFrom::Start(0))?;
    std::io::copy(&mut src, &mut out)?;
    out.sync_all()
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Dir) {
    let _ = dir.open(".").and_then(|d| d.sync_all());
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // An upload dropped without commit (its task was cancelled) never replaces the old file.
        if !self.done {
            if let Some(Temp::Named { tmp, .. }) = &self.temp {
                let _ = self.dir.remove_file(tmp);
            }
        }
    }
}

/// Whether a temporary's name says it was written by a process that is no longer running here.
fn writer_is_gone(name: &str) -> bool {
    let mut fields = name.rsplit('.');
    let (Some(_random), Some(pid)) = (fields.next(), fields.next()) else { return false };
    match u32::from_str_radix(pid, 16) {
        Ok(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

/// Removes the named temporaries that uploads interrupted by a crash left beneath `root`: those
/// whose writer (the process id in the name) is gone, and any not written to for `quiet` (a live
/// upload writes all the time, and the data timeout ends one that stalls). Returns how many were
/// removed. Runs at start-up, off the serving path.
pub fn sweep_stale(root: &Path, quiet: Duration) -> usize {
    let now = SystemTime::now();
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if !ft.is_file() || !name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let quiet_for = e.metadata().and_then(|m| m.modified()).map(|t| now.duration_since(t).unwrap_or_default());
            let stale = writer_is_gone(&name) || quiet_for.is_ok_and(|q| q >= quiet);
            if stale && std::fs::remove_file(e.path()).is_ok() {
                tracing::info!(path = %e.path().display(), "removed an upload's temporary file left by a crash");
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStorage;
    use crate::storage::Storage as _;
    use tokio::io::AsyncWriteExt as _;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_replacement_has_no_name_until_it_commits() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d/f"), b"old").unwrap();
        let s = LocalStorage::open(tmp.path()).unwrap();
        let p = ferry_proto::VirtualPath::parse("/d/f").unwrap();
        let mut up = s.write(&p, WriteMode::Replace).await.unwrap();
        up.write_all(b"new contents").await.unwrap();
        up.flush().await.unwrap();
        // Where the filesystem has O_TMPFILE (ext4, XFS, Btrfs, tmpfs) the replacement has no name:
        // the directory shows only the old file while the upload runs, and a crash leaves nothing.
        let tmpfile = rustix::fs::openat(
            rustix::fs::CWD,
            tmp.path(),
            rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR,
            rustix::fs::Mode::from_raw_mode(0o600),
        );
        if tmpfile.is_ok() {
            assert_eq!(names(&tmp.path().join("d")), ["f"]);
        } else {
            eprintln!("no O_TMPFILE on this filesystem: the named temporary is used");
        }
        assert_eq!(std::fs::read(tmp.path().join("d/f")).unwrap(), b"old");
        assert_eq!(up.commit(true).await.unwrap(), 12);
        assert_eq!(std::fs::read(tmp.path().join("d/f")).unwrap(), b"new contents");
        assert_eq!(names(&tmp.path().join("d")), ["f"]);
        // An aborted replacement leaves the old file and nothing else.
        let mut up = s.write(&p, WriteMode::Replace).await.unwrap();
        up.write_all(b"half").await.unwrap();
        up.abort().await;
        assert_eq!(std::fs::read(tmp.path().join("d/f")).unwrap(), b"new contents");
        assert_eq!(names(&tmp.path().join("d")), ["f"]);
    }

    #[test]
    fn the_sweep_removes_stale_temporaries_only() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        let me = std::process::id();
        let stale = tmp.path().join(format!("sub/{TEMP_PREFIX}f.{me:x}.1"));
        // A process id beyond the kernel's maximum (4194304) cannot be running.
        let dead_writer = tmp.path().join(format!("{TEMP_PREFIX}h.ffffffff.3"));
        let fresh = tmp.path().join(format!("{TEMP_PREFIX}g.{me:x}.2"));
        let user_file = tmp.path().join("sub/ferry-upload.txt");
        for p in [&stale, &dead_writer, &fresh, &user_file] {
            std::fs::write(p, b"x").unwrap();
        }
        let old = SystemTime::now() - Duration::from_secs(600);
        std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
        std::fs::File::options().write(true).open(&user_file).unwrap().set_modified(old).unwrap();
        assert_eq!(sweep_stale(tmp.path(), Duration::from_secs(120)), 2);
        assert!(!stale.exists(), "a stale temporary is removed");
        assert!(!dead_writer.exists(), "a dead server's temporary is removed at once");
        assert!(fresh.exists(), "one a live upload may still write is kept");
        assert!(user_file.exists(), "a user's file is never touched");
    }
}
