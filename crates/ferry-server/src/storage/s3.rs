//! The S3 backend: files as objects in a bucket, through Apache OpenDAL.
//!
//! FTP assumes a filesystem; S3 has objects, no directories, no rename and no append. The mapping
//! (docs/s3.md has the whole table):
//!
//! - A file is the object `prefix + path`; a directory is either a marker object `dir/` (what MKD
//!   makes) or implied by any key below it. `metadata` tries the file, then the directory.
//! - Listings stream page by page from ListObjectsV2 with a delimiter, in key order.
//! - STOR streams into a multipart upload. Parts start at the configured size and grow as the
//!   upload grows (×2 every 1000 parts, up to 128 MiB), so very large files fit S3's 10,000-part
//!   limit while memory stays bounded (one part being filled plus the parts in flight). The object
//!   appears only when the upload commits; an aborted upload is aborted on S3 and leaves nothing.
//! - `REST n` + `STOR` and `APPE` start a new multipart upload whose first bytes are copied on the
//!   server (UploadPartCopy) from the current object, then stream the rest. The old object stays
//!   readable, whole, until the new one completes.
//! - RETR with `REST` is a ranged GET.
//! - RNFR/RNTO is copy + delete (a directory: every key below it, up to a limit).
//! - Modification times and permissions cannot be set (MFMT and SITE CHMOD answer 502).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::BytesMut;
use ferry_proto::listing::EntryKind;
use ferry_proto::VirtualPath;
use futures_util::{StreamExt, TryStreamExt};
use opendal::{EntryMode, ErrorKind, Operator, Writer};
use tokio::io::AsyncWrite;

use super::{
    Capabilities, ListPages, Metadata, NamePages, ReadHandle, Result, Storage, StorageError, Upload, WriteMode,
};
use crate::config::StorageConfig;
use crate::digest::HashAlg;

/// Entries per listing page handed to the transfer.
const PAGE: usize = 1000;
/// The most bytes one UploadPartCopy may copy.
const MAX_COPY: u64 = 5 << 30;
/// The largest part the upload grows to.
const MAX_PART: usize = 128 << 20;

/// One user's view of a bucket: every key below a prefix.
#[derive(Clone)]
pub struct S3Storage {
    op: Operator,
    /// The prefix, for messages.
    root: String,
    part_size: usize,
    concurrency: usize,
    max_rename_keys: usize,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage").field("root", &self.root).finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Connects (lazily: no request is made here) to the configured bucket, below
    /// `storage.prefix` + `user_prefix`.
    pub fn open(config: &StorageConfig, user_prefix: &str) -> io::Result<Self> {
        opendal::install_default();
        let bucket = config.bucket.as_deref().unwrap_or_default();
        let root = key_root(&config.prefix, user_prefix);
        let mut b = opendal::services::S3::default().bucket(bucket).root(&root);
        if let Some(e) = &config.endpoint {
            // Not AWS: credentials come from the config or the environment, never from the EC2
            // instance metadata service (which would be a request to 169.254.169.254).
            b = b.endpoint(e).disable_ec2_metadata();
        }
        b = b.region(config.region());
        if let Some(k) = &config.access_key_id {
            b = b.access_key_id(k);
        }
        if let Some(k) = &config.secret_access_key {
            b = b.secret_access_key(k);
        }
        let op = Operator::new(b)
            .map_err(io::Error::other)?
            .layer(opendal::layers::RetryLayer::new().with_max_times(3).with_jitter());
        Ok(Self {
            op,
            root,
            part_size: (config.part_size_mib as usize) << 20,
            concurrency: config.upload_concurrency.max(1),
            max_rename_keys: config.max_rename_keys,
        })
    }

    /// Checks that the bucket answers (one listing request).
    pub async fn check(&self) -> io::Result<()> {
        self.op.check().await.map_err(io::Error::other)
    }

    /// Where this storage points, for messages: `bucket/prefix/`.
    pub fn describe(config: &StorageConfig) -> String {
        let root = key_root(&config.prefix, "");
        format!(
            "s3://{}{} at {}",
            config.bucket.as_deref().unwrap_or_default(),
            root.trim_end_matches('/'),
            config.endpoint.as_deref().unwrap_or("AWS")
        )
    }

    async fn stat_file(&self, path: &VirtualPath) -> Result<Option<Metadata>> {
        if path.is_root() {
            return Ok(None);
        }
        match self.op.stat(file_key(path)).await {
            Ok(m) if m.is_file() => Ok(Some(convert(&m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn is_dir(&self, path: &VirtualPath) -> Result<bool> {
        if path.is_root() {
            return Ok(true);
        }
        match self.op.stat(&dir_key(path)).await {
            Ok(m) => Ok(m.is_dir()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }

    /// The parent of a path that is about to be created must be a directory.
    async fn check_parent(&self, path: &VirtualPath) -> Result<()> {
        let parent = path.parent();
        if parent.is_root() || self.is_dir(&parent).await? {
            return Ok(());
        }
        match self.stat_file(&parent).await? {
            Some(_) => Err(StorageError::NotADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    fn upload(&self, writer: Writer, written: u64, parts: u32, digest: Option<UploadDigest>) -> S3Upload {
        S3Upload {
            state: State::Idle(Some(writer)),
            buf: BytesMut::new(),
            base: self.part_size,
            parts,
            written,
            digest,
        }
    }

    /// Forgets the digests kept for `path` (it was deleted or renamed).
    async fn forget_digests(&self, path: &VirtualPath) {
        let keys: Vec<String> = HashAlg::ALL.iter().map(|a| digest_key(path, *a)).collect();
        if let Err(e) = self.op.delete_iter(keys).await {
            tracing::debug!(error = %e, "kept digests not removed from S3");
        }
    }
}

/// Where digests are kept on S3: a hidden tree beside the user's files (its name starts with
/// `TEMP_PREFIX`, so it is never listed and every command that names it gets 553), one small
/// object per file and algorithm holding `SIZE:ETAG:HEX` ([`crate::digest::stamped`]).
const DIGESTS: &str = ".ferry-upload.digests";

fn digest_key(path: &VirtualPath, alg: HashAlg) -> String {
    format!("{DIGESTS}/{}.{}", path.relative(), alg.name().to_ascii_lowercase())
}

/// The SHA-256 of an upload that writes a whole object, computed as the parts are filled.
struct UploadDigest {
    hasher: crate::digest::Hasher,
    op: Operator,
    path: VirtualPath,
}

impl UploadDigest {
    /// Keeps the digest of the object just written (best effort: without it, HASH reads the
    /// object once and keeps the digest then).
    async fn keep(self) {
        let key = file_key(&self.path).to_string();
        let hex = self.hasher.finish();
        let kept = async {
            let m = self.op.stat(&key).await?;
            let value = crate::digest::stamped(m.content_length(), m.etag().unwrap_or_default(), &hex);
            self.op.write(&digest_key(&self.path, HashAlg::Sha256), value).await.map(|_| ())
        };
        if let Err(e) = kept.await {
            tracing::debug!(error = %e, "upload digest not kept on S3");
        }
    }
}

/// The operator root for a server prefix and a user prefix: `/a/b/`.
fn key_root(prefix: &str, user: &str) -> String {
    let mut root = String::from("/");
    for part in prefix.split('/').chain(user.split('/')).filter(|p| !p.is_empty() && *p != ".") {
        root.push_str(part);
        root.push('/');
    }
    root
}

fn file_key(path: &VirtualPath) -> &str {
    path.relative()
}

fn dir_key(path: &VirtualPath) -> String {
    if path.is_root() {
        "/".to_string()
    } else {
        format!("{}/", path.relative())
    }
}

fn map_err(e: opendal::Error) -> StorageError {
    match e.kind() {
        ErrorKind::NotFound => StorageError::NotFound,
        ErrorKind::PermissionDenied => StorageError::PermissionDenied,
        ErrorKind::IsADirectory => StorageError::IsADirectory,
        ErrorKind::NotADirectory => StorageError::NotADirectory,
        ErrorKind::AlreadyExists => StorageError::AlreadyExists,
        ErrorKind::Unsupported => StorageError::Unsupported,
        _ => StorageError::Io(io::Error::other(e)),
    }
}

fn dir_metadata(modified: Option<SystemTime>) -> Metadata {
    Metadata { kind: EntryKind::Dir, size: 0, modified, mode: 0o755, nlink: 1, unique: None }
}

fn convert(m: &opendal::Metadata) -> Metadata {
    let modified = m.last_modified().map(SystemTime::from);
    match m.mode() {
        EntryMode::DIR => dir_metadata(modified),
        _ => {
            Metadata { kind: EntryKind::File, size: m.content_length(), modified, mode: 0o644, nlink: 1, unique: None }
        }
    }
}

/// The size of part number `n` (0-based): the base size, doubled every 1000 parts up to
/// [`MAX_PART`]. With 8 MiB parts the 10,000 parts hold about 870 GiB.
fn part_size(base: usize, n: u32) -> usize {
    let grown = base << (n / 1000).min(8);
    grown.min(MAX_PART.max(base))
}

/// Puts a ListObjectsV2 entry stream into key order.
///
/// S3 returns each page as its common prefixes (sorted), then its objects (sorted), and every key
/// of a page sorts before every key of the next. So a prefix that arrives after an object starts a
/// new page, and within a page the two sorted runs are merged as the objects arrive.
#[derive(Debug, Default)]
struct KeyOrder {
    prefixes: VecDeque<(String, String, Metadata)>,
    in_objects: bool,
}

impl KeyOrder {
    fn push(&mut self, key: String, name: String, m: Metadata, out: &mut Vec<(String, Metadata)>) {
        if m.is_dir() {
            if self.in_objects {
                self.flush(out);
            }
            self.prefixes.push_back((key, name, m));
        } else {
            self.in_objects = true;
            while self.prefixes.front().is_some_and(|(k, _, _)| *k < key) {
                if let Some((_, n, m)) = self.prefixes.pop_front() {
                    out.push((n, m));
                }
            }
            out.push((name, m));
        }
    }

    fn flush(&mut self, out: &mut Vec<(String, Metadata)>) {
        out.extend(self.prefixes.drain(..).map(|(_, n, m)| (n, m)));
        self.in_objects = false;
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn capabilities(&self) -> Capabilities {
        Capabilities { offset_writes: true, set_modified: false, chmod: false }
    }

    async fn metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        if let Some(m) = self.stat_file(path).await? {
            return Ok(m);
        }
        if self.is_dir(path).await? {
            return Ok(dir_metadata(None));
        }
        Err(StorageError::NotFound)
    }

    async fn symlink_metadata(&self, path: &VirtualPath) -> Result<Metadata> {
        self.metadata(path).await
    }

    async fn list(&self, path: &VirtualPath) -> Result<Vec<(String, Metadata)>> {
        let mut pages = self.list_pages(path).await?;
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            all.extend(page?);
        }
        Ok(all)
    }

    async fn list_pages(&self, path: &VirtualPath) -> Result<ListPages> {
        let dir = dir_key(path);
        let lister = self.op.lister(&dir).await.map_err(map_err)?;
        let own = dir.trim_start_matches('/').to_string();
        let state = (lister, KeyOrder::default(), false, own);
        let pages = futures_util::stream::unfold(state, |(mut lister, mut order, done, own)| async move {
            if done {
                return None;
            }
            let mut out = Vec::new();
            loop {
                match lister.next().await {
                    Some(Ok(entry)) => {
                        let (key, meta) = entry.into_parts();
                        let key = key.trim_start_matches('/').to_string();
                        if key == own || key.is_empty() {
                            continue;
                        }
                        let name = key.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
                        // Ferry's own hidden objects (the kept digests) are never listed.
                        if name.is_empty() || name.starts_with(crate::storage::TEMP_PREFIX) {
                            continue;
                        }
                        order.push(key, name, convert(&meta), &mut out);
                        if out.len() >= PAGE {
                            return Some((Ok(out), (lister, order, false, own)));
                        }
                    }
                    Some(Err(e)) => return Some((Err(map_err(e)), (lister, order, true, own))),
                    None => {
                        order.flush(&mut out);
                        return Some((Ok(out), (lister, order, true, own)));
                    }
                }
            }
        });
        Ok(Box::pin(pages))
    }

    async fn names_pages(&self, path: &VirtualPath) -> Result<NamePages> {
        let pages = self.list_pages(path).await?;
        Ok(Box::pin(pages.map(|p| p.map(|entries| entries.into_iter().map(|(n, _)| n).collect()))))
    }

    async fn read(&self, path: &VirtualPath, offset: u64) -> Result<(ReadHandle, u64)> {
        let Some(m) = self.stat_file(path).await? else {
            return Err(if self.is_dir(path).await? { StorageError::IsADirectory } else { StorageError::NotFound });
        };
        let size = m.size;
        if offset >= size {
            return Ok((ReadHandle::Stream(Box::pin(tokio::io::empty())), size));
        }
        // Ranged GETs of 8 MiB, two in flight: one GET stream is slower than the data connection.
        let reader = self.op.reader_with(file_key(path)).chunk(8 << 20).concurrent(2).await.map_err(map_err)?;
        let stream = reader.into_bytes_stream(offset..size).await.map_err(map_err)?;
        Ok((ReadHandle::Stream(Box::pin(tokio_util::io::StreamReader::new(stream))), size))
    }

    async fn write(&self, path: &VirtualPath, mode: WriteMode) -> Result<Box<dyn Upload>> {
        if path.is_root() || self.is_dir(path).await? {
            return Err(StorageError::IsADirectory);
        }
        self.check_parent(path).await?;
        let key = file_key(path);
        let keep = match mode {
            WriteMode::Replace | WriteMode::ReplaceHidden => 0,
            WriteMode::Segment(_) => return Err(StorageError::Unsupported),
            WriteMode::CreateNew => {
                if self.stat_file(path).await?.is_some() {
                    return Err(StorageError::AlreadyExists);
                }
                0
            }
            WriteMode::Append => self.stat_file(path).await?.map_or(0, |m| m.size),
            WriteMode::At(n) => {
                let size = self.stat_file(path).await?.map_or(0, |m| m.size);
                if n > size {
                    return Err(StorageError::InvalidName);
                }
                n
            }
        };
        let mut writer = self.op.writer_with(key).concurrent(self.concurrency).await.map_err(map_err)?;
        // The kept bytes are copied on the server, at most 5 GiB per part.
        let mut copied = 0;
        let mut parts = 0;
        while copied < keep {
            let n = (keep - copied).min(MAX_COPY);
            if let Err(e) = writer.copy_from(key, copied..copied + n).await {
                let _ = writer.abort().await;
                return Err(map_err(e));
            }
            copied += n;
            parts += 1;
        }
        // A whole new object: its SHA-256 as it streams, kept at commit (HASH answers at once).
        let digest = (keep == 0).then(|| UploadDigest {
            hasher: crate::digest::Hasher::new(HashAlg::Sha256),
            op: self.op.clone(),
            path: path.clone(),
        });
        Ok(Box::new(self.upload(writer, keep, parts, digest)))
    }

    async fn create_dir(&self, path: &VirtualPath) -> Result<()> {
        if path.is_root() || self.stat_file(path).await?.is_some() || self.is_dir(path).await? {
            return Err(StorageError::AlreadyExists);
        }
        self.check_parent(path).await?;
        self.op.create_dir(&dir_key(path)).await.map_err(map_err)
    }

    async fn remove_file(&self, path: &VirtualPath) -> Result<()> {
        if self.stat_file(path).await?.is_none() {
            return Err(if self.is_dir(path).await? { StorageError::IsADirectory } else { StorageError::NotFound });
        }
        self.op.delete(file_key(path)).await.map_err(map_err)?;
        self.forget_digests(path).await;
        Ok(())
    }

    async fn remove_dir(&self, path: &VirtualPath) -> Result<()> {
        if path.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        if !self.is_dir(path).await? {
            return Err(if self.stat_file(path).await?.is_some() {
                StorageError::NotADirectory
            } else {
                StorageError::NotFound
            });
        }
        let dir = dir_key(path);
        let mut lister = self.op.lister_with(&dir).limit(2).await.map_err(map_err)?;
        while let Some(e) = lister.try_next().await.map_err(map_err)? {
            if e.path().trim_start_matches('/') != dir {
                return Err(StorageError::NotEmpty);
            }
        }
        self.op.delete(&dir).await.map_err(map_err)
    }

    async fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<()> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::PermissionDenied);
        }
        if from == to {
            return Ok(());
        }
        self.check_parent(to).await?;
        if self.is_dir(to).await? {
            return Err(StorageError::AlreadyExists);
        }
        if self.stat_file(from).await?.is_some() {
            // Not atomic: a crash between the two leaves both names (docs/s3.md).
            self.op.copy(file_key(from), file_key(to)).await.map_err(map_err)?;
            self.op.delete(file_key(from)).await.map_err(map_err)?;
            // The copy's ETag may differ: both names' digests are computed again when asked.
            self.forget_digests(from).await;
            self.forget_digests(to).await;
            return Ok(());
        }
        if !self.is_dir(from).await? {
            return Err(StorageError::NotFound);
        }
        let (src, dst) = (dir_key(from), dir_key(to));
        if dst.starts_with(&src) {
            return Err(StorageError::InvalidName);
        }
        if self.stat_file(to).await?.is_some() {
            return Err(StorageError::AlreadyExists);
        }
        let mut keys = Vec::new();
        let mut lister = self.op.lister_with(&src).recursive(true).await.map_err(map_err)?;
        while let Some(e) = lister.try_next().await.map_err(map_err)? {
            let key = e.path().trim_start_matches('/').to_string();
            if key != src {
                keys.push(key);
            }
            if keys.len() > self.max_rename_keys {
                return Err(StorageError::Refused(format!(
                    "directory holds more than {} objects; renaming it on S3 is refused",
                    self.max_rename_keys
                )));
            }
        }
        self.op.create_dir(&dst).await.map_err(map_err)?;
        for key in &keys {
            let target = format!("{dst}{}", &key[src.len()..]);
            if key.ends_with('/') {
                self.op.create_dir(&target).await.map_err(map_err)?;
            } else {
                self.op.copy(key, &target).await.map_err(map_err)?;
            }
        }
        keys.push(src);
        self.op.delete_iter(keys).await.map_err(map_err)
    }

    async fn set_modified(&self, _path: &VirtualPath, _time: SystemTime) -> Result<()> {
        Err(StorageError::Unsupported)
    }

    async fn digest(
        &self,
        path: &VirtualPath,
        alg: HashAlg,
        range: Option<(u64, u64)>,
        watch: crate::digest::Watch,
    ) -> Result<(String, u64, u64)> {
        if range.is_some() {
            return crate::storage::read_digest(self, path, alg, range, watch).await;
        }
        // The object's size and ETag: a kept digest holds while both are the same.
        let stamp = |m: &opendal::Metadata| (m.content_length(), m.etag().unwrap_or_default().to_string());
        let m = match self.op.stat(file_key(path)).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(StorageError::IsADirectory),
            Err(e) if e.kind() == ErrorKind::NotFound && self.is_dir(path).await? => {
                return Err(StorageError::IsADirectory)
            }
            Err(e) => return Err(map_err(e)),
        };
        let (size, etag) = stamp(&m);
        if let Ok(kept) = self.op.read(&digest_key(path, alg)).await {
            if let Some(hex) = crate::digest::unstamp(&kept.to_vec(), size, &etag) {
                return Ok((hex, 0, size));
            }
        }
        let (hex, start, end) = crate::storage::read_digest(self, path, alg, None, watch).await?;
        // Kept only if the object did not change while it was read.
        if self.op.stat(file_key(path)).await.map(|m| stamp(&m)).ok() == Some((size, etag.clone())) {
            let _ = self.op.write(&digest_key(path, alg), crate::digest::stamped(size, &etag, &hex)).await;
        }
        Ok((hex, start, end))
    }

    async fn set_mode(&self, _path: &VirtualPath, _mode: u32) -> Result<()> {
        Err(StorageError::Unsupported)
    }
}

type PartFuture = Pin<Box<dyn Future<Output = (Writer, opendal::Result<()>)> + Send>>;

enum State {
    /// No part in flight; `None` once the writer is gone (closed, aborted, failed).
    Idle(Option<Writer>),
    /// A part is being handed to the writer.
    Busy(PartFuture),
}

/// A multipart upload in progress.
struct S3Upload {
    state: State,
    /// The part being filled.
    buf: BytesMut,
    base: usize,
    /// Parts handed to the writer so far.
    parts: u32,
    /// Bytes in the object so far (the kept prefix included).
    written: u64,
    /// The object's SHA-256, when the upload writes all of it.
    digest: Option<UploadDigest>,
}

impl S3Upload {
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let State::Busy(f) = &mut self.state {
            let (w, r) = ready!(f.as_mut().poll(cx));
            match r {
                Ok(()) => self.state = State::Idle(Some(w)),
                Err(e) => {
                    self.state = State::Idle(None);
                    spawn_abort(w);
                    return Poll::Ready(Err(io::Error::other(e)));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Hands the filled part to the writer.
    fn send_part(&mut self) -> io::Result<()> {
        let State::Idle(w) = &mut self.state else { return Ok(()) };
        let Some(mut w) = w.take() else { return Err(io::Error::other("upload already failed")) };
        let data = self.buf.split().freeze();
        self.parts += 1;
        self.state = State::Busy(Box::pin(async move {
            let r = w.write(data).await;
            (w, r)
        }));
        Ok(())
    }

    async fn settle(&mut self) -> io::Result<Writer> {
        std::future::poll_fn(|cx| self.poll_idle(cx)).await?;
        match &mut self.state {
            State::Idle(w) => w.take().ok_or_else(|| io::Error::other("upload already finished")),
            State::Busy(_) => Err(io::Error::other("part still in flight")),
        }
    }
}

fn spawn_abort(mut w: Writer) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Err(e) = w.abort().await {
                tracing::warn!(error = %e, "could not abort an S3 multipart upload");
            }
        });
    }
}

impl AsyncWrite for S3Upload {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_idle(cx))?;
        let target = part_size(this.base, this.parts);
        if this.buf.capacity() == 0 {
            this.buf.reserve(target);
        }
        let n = data.len().min(target - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        if let Some(d) = &mut this.digest {
            d.hasher.update(&data[..n]);
        }
        this.written += n as u64;
        if this.buf.len() >= target {
            this.send_part()?;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_idle(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_idle(cx)
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn commit(mut self: Box<Self>, _fsync: bool) -> Result<u64> {
        // S3 acknowledges a completed upload only once it is durable; there is nothing to fsync.
        let mut w = self.settle().await.map_err(StorageError::Io)?;
        let rest = self.buf.split().freeze();
        let r = async {
            if !rest.is_empty() {
                w.write(rest).await?;
            }
            w.close().await
        }
        .await;
        match r {
            Ok(_) => {
                if let Some(d) = self.digest.take() {
                    d.keep().await;
                }
                Ok(self.written)
            }
            Err(e) => {
                spawn_abort(w);
                Err(map_err(e))
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        if let Ok(mut w) = self.settle().await {
            if let Err(e) = w.abort().await {
                tracing::warn!(error = %e, "could not abort an S3 multipart upload");
            }
        }
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        // Neither committed nor aborted (the task was cancelled): abort on S3 in the background.
        match std::mem::replace(&mut self.state, State::Idle(None)) {
            State::Idle(Some(w)) => spawn_abort(w),
            State::Idle(None) => {}
            State::Busy(f) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let (mut w, _) = f.await;
                        let _ = w.abort().await;
                    });
                }
            }
        }
    }
}

/// The key prefix of a user rooted at `root` when the server's root is `server_root`: the path
/// between them, `/`-separated (`..` and the like dropped).
pub fn user_prefix(server_root: &std::path::Path, root: &std::path::Path) -> String {
    let rel = root.strip_prefix(server_root).unwrap_or(root);
    rel.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> Metadata {
        Metadata { kind: EntryKind::File, size, modified: None, mode: 0o644, nlink: 1, unique: None }
    }

    #[test]
    fn roots() {
        assert_eq!(key_root("", ""), "/");
        assert_eq!(key_root("ftp/", "alice"), "/ftp/alice/");
        assert_eq!(key_root("/ftp//x", "/home/bob/"), "/ftp/x/home/bob/");
    }

    #[test]
    fn parts_grow_and_fit_large_files() {
        let base = 8 << 20;
        assert_eq!(part_size(base, 0), base);
        assert_eq!(part_size(base, 999), base);
        assert_eq!(part_size(base, 1000), 2 * base);
        assert_eq!(part_size(base, 9999), MAX_PART);
        let total: u64 = (0..10_000).map(|n| part_size(base, n) as u64).sum();
        assert!(total > 200 << 30, "10,000 parts hold {total} bytes");
        // A configured part size above the cap is kept.
        assert_eq!(part_size(256 << 20, 5000), 256 << 20);
    }

    #[test]
    fn key_order_merges_each_page() {
        // Page 1: prefixes b/, d/; objects a, c, e. Page 2: prefix f/; objects ea, g.
        let mut o = KeyOrder::default();
        let mut out = Vec::new();
        let dir = || dir_metadata(None);
        for (key, m) in [
            ("b/", dir()),
            ("d/", dir()),
            ("a", file(1)),
            ("c", file(1)),
            ("e", file(1)),
            ("f/", dir()),
            ("ea", file(1)),
            ("g", file(1)),
        ] {
            let name = key.trim_end_matches('/').to_string();
            o.push(key.to_string(), name, m, &mut out);
        }
        o.flush(&mut out);
        let names: Vec<_> = out.iter().map(|(n, _)| n.as_str()).collect();
        // "ea" and "f/" are on page 2, so both sort after every key of page 1; within page 2 the
        // object "ea" comes before the prefix "f/".
        assert_eq!(names, ["a", "b", "c", "d", "e", "ea", "f", "g"]);
    }

    #[test]
    fn key_order_with_only_objects_streams_at_once() {
        let mut o = KeyOrder::default();
        let mut out = Vec::new();
        o.push("a".into(), "a".into(), file(1), &mut out);
        assert_eq!(out.len(), 1);
    }
}
