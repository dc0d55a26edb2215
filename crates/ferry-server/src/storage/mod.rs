//! Storage: the semantic file operations the FTP commands need, behind one trait.
//!
//! Backends declare what they can do ([`Capabilities`]) so `FEAT` and the replies stay honest.
//! The local filesystem backend ([`local::LocalStorage`]) is the default.

mod dir_names;
pub mod local;
pub mod s3;
pub mod s3_sweep;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use ferry_proto::listing::{Entry, EntryKind};
use ferry_proto::VirtualPath;
use tokio::io::{AsyncRead, AsyncWrite};

/// What a backend supports beyond reading and whole-file writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `APPE` and `REST` + `STOR` (writing at an offset).
    pub offset_writes: bool,
    /// `MFMT` (setting modification times).
    pub set_modified: bool,
    /// `SITE CHMOD`.
    pub chmod: bool,
}

/// Storage errors, by what the client should be told.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such file or directory.
    #[error("not found")]
    NotFound,
    /// The path exists already.
    #[error("already exists")]
    AlreadyExists,
    /// Permission denied by the filesystem, or a path that would lead outside the root.
    #[error("permission denied")]
    PermissionDenied,
    /// A directory was expected.
    #[error("not a directory")]
    NotADirectory,
    /// A file was expected.
    #[error("is a directory")]
    IsADirectory,
    /// The directory is not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// The file name is not acceptable to the backend.
    #[error("invalid file name")]
    InvalidName,
    /// No space left, or a quota was exceeded.
    #[error("insufficient storage")]
    NoSpace,
    /// The backend does not support this operation.
    #[error("not supported by this storage")]
    Unsupported,
    /// The backend refuses this operation, for the reason given (sent to the client).
    #[error("refused: {0}")]
    Refused(String),
    /// Anything else; the text goes to the log, never to the client.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        use io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Self::NotFound,
            K::AlreadyExists => Self::AlreadyExists,
            K::PermissionDenied => Self::PermissionDenied,
            K::NotADirectory => Self::NotADirectory,
            K::IsADirectory => Self::IsADirectory,
            K::DirectoryNotEmpty => Self::NotEmpty,
            K::InvalidFilename | K::InvalidInput => Self::InvalidName,
            K::StorageFull | K::QuotaExceeded | K::FileTooLarge => Self::NoSpace,
            _ => match e.raw_os_error() {
                // ELOOP / EXDEV from a path that would leave the root, ENAMETOOLONG.
                Some(40) | Some(18) => Self::PermissionDenied,
                Some(36) => Self::InvalidName,
                _ => Self::Io(e),
            },
        }
    }
}

/// A storage result.
pub type Result<T> = std::result::Result<T, StorageError>;

/// A directory read page by page: every page sorted, and every item of a page sorted before those
/// of the next.
pub type Pages<T> = Pin<Box<dyn futures_util::Stream<Item = Result<Vec<T>>> + Send>>;

/// A directory's entries, page by page.
pub type ListPages = Pages<(String, Metadata)>;

/// A directory's names, page by page.
pub type NamePages = Pages<String>;

/// What is known about a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// File, directory or link.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: Option<SystemTime>,
    /// Unix permission bits.
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
    /// Device and inode.
    pub unique: Option<(u64, u64)>,
}

impl Metadata {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// The listing entry for this metadata under `name`.
    pub fn entry(&self, name: impl Into<String>) -> Entry {
        self.clone().into_entry(name.into())
    }

    /// The listing entry for this metadata under `name`, without copying either.
    pub fn into_entry(self, name: String) -> Entry {
        Entry {
            name,
            kind: self.kind,
            size: self.size,
            modified: self.modified,
            mode: self.mode,
            nlink: self.nlink,
            unique: self.unique,
        }
    }
}

/// An open file for reading, positioned at the requested offset.
pub enum ReadHandle {
    /// A local file: the transfer may use `sendfile` on it.
    File(tokio::fs::File),
    /// Any other byte stream.
    Stream(Pin<Box<dyn AsyncRead + Send>>),
}

impl fmt::Debug for ReadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(_) => f.write_str("ReadHandle::File"),
            Self::Stream(_) => f.write_str("ReadHandle::Stream"),
        }
    }
}

/// How `write` opens its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `STOR`: replace the whole file. Over an existing file the data goes to a temporary file
    /// that replaces the old one only on [`Upload::commit`]; a new file is written in place so an
    /// interrupted upload can be resumed.
    Replace,
    /// `STOR` when uploads are verified before they appear: as [`WriteMode::Replace`], but a new
    /// file too is written to a temporary, so nothing is under the name before the verdict.
    ReplaceHidden,
    /// `STOU`: create a new file; fail if the name exists.
    CreateNew,
    /// `APPE`: append, creating the file if needed.
    Append,
    /// `REST n` + `STOR`: keep the first `n` bytes, write from there; the file ends where the
    /// upload ends.
    At(u64),
    /// A segment of a segmented upload: write at `n` into an existing file, leaving the rest of
    /// it as it is (other segments).
    Segment(u64),
}

/// An upload in progress: write the bytes, then commit or abort.
#[async_trait]
pub trait Upload: AsyncWrite + Send + Unpin {
    /// Makes the upload durable (`fsync` when asked) and visible under its final name. Returns the
    /// final size of the file.
    async fn commit(self: Box<Self>, fsync: bool) -> Result<u64>;
    /// Writes `last` (the end of the upload) and commits: one step, so backends can do both in
    /// one blocking call.
    async fn finish(mut self: Box<Self>, last: Vec<u8>, fsync: bool) -> Result<u64> {
        self.write_owned(last).await?;
        self.commit(fsync).await
    }
    /// The file that the bytes can be spliced into (`splice(2)` from the data socket), when the
    /// backend writes a local file at its current position and nothing is pending.
    fn splice_target(&self) -> Option<std::sync::Arc<std::fs::File>> {
        None
    }
    /// The transfer is about to splice bytes into [`Upload::splice_target`]'s file: bytes this
    /// upload never sees.
    fn splicing(&mut self) {}
    /// Writes all of `buf` and returns a buffer for the next chunk. Backends that write on
    /// another thread take the buffer instead of copying it; the default copies.
    async fn write_owned(&mut self, buf: Vec<u8>) -> io::Result<Vec<u8>> {
        use tokio::io::AsyncWriteExt as _;
        self.write_all(&buf).await?;
        Ok(buf)
    }
    /// Writes `last` and completes the upload up to the point of publishing it, for a verifier
    /// (the `upload.verify` hook): the bytes are durable (with `fsync`) in a file a verifier can
    /// read, not yet under the final name when the upload replaces or creates a file.
    /// [`StagedUpload::publish`] or [`StagedUpload::quarantine`] ends it. Backends without local
    /// files answer [`StorageError::Unsupported`].
    async fn stage(self: Box<Self>, last: Vec<u8>, fsync: bool) -> Result<Box<dyn StagedUpload>> {
        let _ = (last, fsync);
        self.abort().await;
        Err(StorageError::Unsupported)
    }
    /// Abandons the upload: a temporary file is removed and the old file is left untouched; data
    /// written in place (new file, append, offset) stays, so the client can resume.
    async fn abort(self: Box<Self>);
    /// Abandons the upload and undoes it entirely (a quota was exceeded): a new file is removed,
    /// an appended or resumed file goes back to its old length, a replacement leaves the old file.
    async fn discard(self: Box<Self>) {
        self.abort().await;
    }
}

/// An upload whose bytes are complete and durable, waiting for a verifier's verdict
/// ([`Upload::stage`]).
#[async_trait]
pub trait StagedUpload: Send {
    /// Where the bytes are, relative to the root: a hidden temporary name (`TEMP_PREFIX`), or
    /// the final name for `APPE` and `REST`+`STOR`, which write in place.
    fn path(&self) -> &std::path::Path;
    /// The file's length.
    fn size(&self) -> u64;
    /// Accepted: the file takes its final name (replacing the old one). Returns its length.
    async fn publish(self: Box<Self>, fsync: bool) -> Result<u64>;
    /// Rejected: the bytes are moved (or, written in place, copied) to `dir/name` and the upload
    /// is undone: a replaced file stays as it was, a new one never appears, an appended or
    /// resumed one goes back to its old length.
    async fn quarantine(self: Box<Self>, dir: &std::path::Path, name: &str) -> Result<()>;
}

/// A digest computed by reading the file through [`Storage::read`] (the default of
/// [`Storage::digest`]).
pub async fn read_digest<S: Storage + ?Sized>(
    storage: &S,
    path: &VirtualPath,
    alg: crate::digest::HashAlg,
    range: Option<(u64, u64)>,
    watch: crate::digest::Watch,
) -> Result<(String, u64, u64)> {
    use tokio::io::AsyncReadExt as _;
    let (source, size) = storage.read(path, 0).await?;
    let (start, end) = range.map_or((0, size), |(s, e)| (s.min(size), e.min(size)));
    let mut source: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = match source {
        ReadHandle::File(f) => Box::pin(f),
        ReadHandle::Stream(s) => s,
    };
    let mut hasher = crate::digest::Hasher::new(alg);
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0u64;
    while at < end {
        let n = source.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        // The part of this chunk inside start..end.
        let from = usize::try_from(start.saturating_sub(at)).unwrap_or(usize::MAX).min(n);
        let to = usize::try_from(end - at).unwrap_or(usize::MAX).min(n);
        if from < to {
            hasher.update(&chunk[from..to]);
        }
        at += n as u64;
        watch.read(n as u64).await?;
    }
    Ok((hasher.finish(), start, end))
}

/// The file operations of one user's view of storage. Paths are virtual: the backend maps them
/// beneath its root and must never reach outside it.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;
    /// Metadata of a path (symbolic links are followed, within the root).
    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata>;
    /// Metadata of a path without following a final symbolic link.
    async fn symlink_metadata(&self, path: &VirtualPath) -> Result<Metadata>;
    /// The entries of a directory (without `.` and `..`), unsorted.
    async fn list(&self, path: &VirtualPath) -> Result<Vec<(String, Metadata)>>;
    /// The entries of a directory as a stream of pages, for listings that start before the whole
    /// directory is read (object stores list 1000 keys per request). Backends that read a
    /// directory at once return one sorted page.
    async fn list_pages(&self, path: &VirtualPath) -> Result<ListPages> {
        let mut list = self.list(path).await?;
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Box::pin(futures_util::stream::once(std::future::ready(Ok(list)))))
    }
    /// The names in a directory (without `.` and `..`), unsorted: for NLST, which needs no
    /// metadata. Backends that cannot do better list.
    async fn names(&self, path: &VirtualPath) -> Result<Vec<String>> {
        Ok(self.list(path).await?.into_iter().map(|(n, _)| n).collect())
    }
    /// The names in a directory as a stream of sorted pages, like [`Storage::list_pages`].
    async fn names_pages(&self, path: &VirtualPath) -> Result<NamePages> {
        let mut names = self.names(path).await?;
        names.sort_unstable();
        Ok(Box::pin(futures_util::stream::once(std::future::ready(Ok(names)))))
    }
    /// Opens a file for reading at `offset` and returns it with the file's size (one round trip
    /// to the storage per download). An offset past the end is the caller's to refuse.
    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<(ReadHandle, u64)>;
    /// Opens a file for writing.
    async fn write(&self, path: &VirtualPath, mode: WriteMode) -> Result<Box<dyn Upload>>;
    /// Creates a directory.
    async fn create_dir(&self, path: &VirtualPath) -> Result<()>;
    /// Removes a file.
    async fn remove_file(&self, path: &VirtualPath) -> Result<()>;
    /// Removes an empty directory.
    async fn remove_dir(&self, path: &VirtualPath) -> Result<()>;
    /// Renames a file or directory.
    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()>;
    /// Sets the modification time.
    async fn set_modified(&self, path: &VirtualPath, time: SystemTime) -> Result<()>;
    /// Sets Unix permission bits.
    async fn set_mode(&self, path: &VirtualPath, mode: u32) -> Result<()>;
    /// The digest of a file under `alg`: of bytes `range` (`start..end`, clamped to the file)
    /// or of the whole file. Returns the digest and the range it covers; `watch` counts the bytes
    /// read, stops the reading when cancelled, and paces it. Backends that keep digests answer
    /// from them when they still hold.
    async fn digest(
        &self,
        path: &VirtualPath,
        alg: crate::digest::HashAlg,
        range: Option<(u64, u64)>,
        watch: crate::digest::Watch,
    ) -> Result<(String, u64, u64)> {
        read_digest(self, path, alg, range, watch).await
    }
}

/// The prefix of temporary upload files; listings never show them.
pub const TEMP_PREFIX: &str = ".ferry-upload.";

/// A temporary's name for an upload to `name`: `.ferry-upload.NAME.PID.RANDOM`, with the writing
/// process's id so that a sweep can tell a dead server's leftovers from a live one's.
pub fn temp_file_name(name: &str) -> String {
    let short: String = name.chars().take(64).collect();
    format!("{TEMP_PREFIX}{short}.{:x}.{:016x}", std::process::id(), rand::random::<u64>())
}

/// Adds up the regular files beneath a storage's root, uploads' temporaries left out (`ferry
/// accounts recount`).
pub async fn measure(storage: &dyn Storage) -> Result<crate::limits::Usage> {
    let mut usage = crate::limits::Usage::default();
    let mut dirs = vec![VirtualPath::root()];
    while let Some(dir) = dirs.pop() {
        for (name, meta) in storage.list(&dir).await? {
            if name == "." || name == ".." || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let Ok(path) = dir.join(&name) else { continue };
            if meta.is_dir() {
                dirs.push(path);
            } else {
                usage.files += 1;
                usage.bytes += meta.size;
            }
        }
    }
    Ok(usage)
}
