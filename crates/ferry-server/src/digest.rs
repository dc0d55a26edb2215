//! File digests for `HASH` (draft-bryan-ftpext-hash-02) and the `XSHA1`/`XSHA256`/`XSHA512`/
//! `XMD5`/`XCRC` verbs: the algorithms, a streaming hasher, and the digest kept with a file.
//!
//! A digest is kept in an extended attribute of the file (`user.ferry.hash.<alg>`), stamped with
//! the file's size and modification time: `SIZE:MTIME_NS:HEX`. A change made behind Ferry's back
//! changes one of the two and the kept digest is ignored (and computed again, once). Uploads
//! through Ferry compute the SHA-256 while the bytes stream ([`crate::storage::Upload`]), so
//! `HASH` of such a file answers without reading it.

use std::fmt;

pub use ferry_proto::command::HashAlg;

/// A digest being computed.
pub enum Hasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
    /// MD5.
    Md5(md5::Md5),
    /// CRC-32 (IEEE).
    Crc32(crc32fast::Hasher),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.alg().name())
    }
}

impl Hasher {
    /// A new hasher for `alg`.
    pub fn new(alg: HashAlg) -> Self {
        use sha2::Digest as _;
        match alg {
            HashAlg::Sha1 => Self::Sha1(sha1::Sha1::new()),
            HashAlg::Sha256 => Self::Sha256(sha2::Sha256::new()),
            HashAlg::Sha512 => Self::Sha512(sha2::Sha512::new()),
            HashAlg::Md5 => Self::Md5(md5::Md5::new()),
            HashAlg::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
        }
    }

    /// Its algorithm.
    pub fn alg(&self) -> HashAlg {
        match self {
            Self::Sha1(_) => HashAlg::Sha1,
            Self::Sha256(_) => HashAlg::Sha256,
            Self::Sha512(_) => HashAlg::Sha512,
            Self::Md5(_) => HashAlg::Md5,
            Self::Crc32(_) => HashAlg::Crc32,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match self {
            Self::Sha1(h) => h.update(bytes),
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
            Self::Md5(h) => h.update(bytes),
            Self::Crc32(h) => h.update(bytes),
        }
    }

    /// The digest, in lower-case hex (CRC-32: 8 hex digits).
    pub fn finish(self) -> String {
        use sha2::Digest as _;
        match self {
            Self::Sha1(h) => hex(&h.finalize()),
            Self::Sha256(h) => hex(&h.finalize()),
            Self::Sha512(h) => hex(&h.finalize()),
            Self::Md5(h) => hex(&h.finalize()),
            Self::Crc32(h) => format!("{:08x}", h.finalize()),
        }
    }
}

/// What watches a digest being computed from a file's bytes: the bytes read so far (`STAT`),
/// `ABOR` (the reading stops), and the pace (the user's download rate, when limited: hashing reads
/// the file as a download would).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Bytes read so far.
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Cancelled by ABOR or the end of the session.
    pub cancel: tokio_util::sync::CancellationToken,
    /// Bytes per second at most.
    pub rate: Option<u64>,
    /// When the reading started, for the pace.
    pub started: Option<std::time::Instant>,
}

impl Watch {
    /// Counts `n` more bytes read: an error when cancelled, else how long to wait so as not to
    /// exceed the rate.
    fn account(&self, n: u64) -> std::io::Result<Option<std::time::Duration>> {
        let total = self.progress.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "digest aborted"));
        }
        let (Some(rate), Some(started)) = (self.rate.filter(|r| *r > 0), self.started) else { return Ok(None) };
        let due = std::time::Duration::from_secs_f64(total as f64 / rate as f64);
        Ok(due.checked_sub(started.elapsed()))
    }

    /// `n` more bytes were read (on a blocking thread): count them, stop if cancelled, keep the pace.
    pub fn read_blocking(&self, n: u64) -> std::io::Result<()> {
        if let Some(p) = self.account(n)? {
            std::thread::sleep(p);
        }
        Ok(())
    }

    /// `n` more bytes were read (in a task): count them, stop if cancelled, keep the pace.
    pub async fn read(&self, n: u64) -> std::io::Result<()> {
        if let Some(p) = self.account(n)? {
            tokio::time::sleep(p).await;
        }
        Ok(())
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The extended attribute a digest of `alg` is kept in.
pub fn xattr_name(alg: HashAlg) -> String {
    format!("user.ferry.hash.{}", alg.name().to_ascii_lowercase())
}

/// What a file is when its digest is computed: a kept digest is valid while both are unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Its size.
    pub size: u64,
    /// Its modification time, in nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self { size: meta.len(), mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()) }
    }

    /// The attribute's value for `hex` computed at this stamp.
    pub fn encode(self, hex: &str) -> String {
        stamped(self.size, &self.mtime_ns.to_string(), hex)
    }

    /// The digest in an attribute value, when it was computed at this stamp.
    pub fn check(self, value: &[u8]) -> Option<String> {
        unstamp(value, self.size, &self.mtime_ns.to_string())
    }
}

/// A kept digest: `SIZE:VERSION:HEX`, where the version is what changes when the file does (its
/// modification time on a filesystem, its ETag on S3).
pub fn stamped(size: u64, version: &str, hex: &str) -> String {
    format!("{size}:{version}:{hex}")
}

/// The digest in a kept value, when it was kept for a file of this size and version.
pub fn unstamp(value: &[u8], size: u64, version: &str) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let (head, hex) = text.rsplit_once(':')?;
    let (kept_size, kept_version) = head.split_once(':')?;
    let valid = kept_size.parse::<u64>().ok()? == size
        && kept_version == version
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| hex.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(alg: HashAlg, data: &[u8]) -> String {
        let mut h = Hasher::new(alg);
        // In two pieces: streaming gives the same as one update.
        let (a, b) = data.split_at(data.len() / 2);
        h.update(a);
        h.update(b);
        h.finish()
    }

    #[test]
    fn known_answers() {
        // FIPS 180 / RFC 1321 / the CRC-32 check value.
        assert_eq!(digest(HashAlg::Sha1, b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(digest(HashAlg::Sha256, b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(digest(HashAlg::Sha512, b"abc").starts_with("ddaf35a193617aba"));
        assert_eq!(digest(HashAlg::Md5, b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(digest(HashAlg::Crc32, b"123456789"), "cbf43926");
    }

    #[test]
    fn a_stamp_validates_only_its_own_file_state() {
        let s = Stamp { size: 10, mtime_ns: 1_700_000_000_123_456_789 };
        let v = s.encode("abcdef");
        assert_eq!(s.check(v.as_bytes()).as_deref(), Some("abcdef"));
        assert_eq!(Stamp { size: 11, ..s }.check(v.as_bytes()), None, "size changed");
        assert_eq!(Stamp { mtime_ns: s.mtime_ns + 1, ..s }.check(v.as_bytes()), None, "mtime changed");
        assert_eq!(s.check(b"10:1700000000123456789:"), None);
        assert_eq!(s.check(b"garbage"), None);
        assert_eq!(xattr_name(HashAlg::Sha256), "user.ferry.hash.sha-256");
        // An S3 ETag has quotes and may have a dash suffix; the version is opaque.
        let v = stamped(5, "\"abc-2\"", "00ff");
        assert_eq!(unstamp(v.as_bytes(), 5, "\"abc-2\"").as_deref(), Some("00ff"));
        assert_eq!(unstamp(v.as_bytes(), 5, "\"abc-3\""), None);
        // An S3 ETag has quotes and may have a colon-free dash suffix; the version is opaque.
        let v = stamped(5, "\"abc-2\"", "00ff");
        assert_eq!(unstamp(v.as_bytes(), 5, "\"abc-2\"").as_deref(), Some("00ff"));
        assert_eq!(unstamp(v.as_bytes(), 5, "\"abc-3\""), None);
    }
}
