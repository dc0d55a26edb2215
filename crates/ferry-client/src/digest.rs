//! Digests for `--verify`: computed here while the bytes stream (no second read of the file), and
//! asked of the server with `HASH` (draft-bryan-ftpext-hash-02), else `XSHA256` / `XMD5` (the
//! older non-standard commands some servers answer, with `250 <hex>` or `213 <hex>`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_proto::command::HashAlg;
use ferry_proto::Command;
use md5::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An algorithm both sides can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// MD5 (RFC 1321): only when the server offers nothing better.
    Md5,
}

impl Algorithm {
    /// Every algorithm, preferred first.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    /// The protocol's name for it.
    pub fn proto(self) -> HashAlg {
        match self {
            Self::Sha256 => HashAlg::Sha256,
            Self::Md5 => HashAlg::Md5,
        }
    }

    /// Its name in `HASH` replies and `OPTS HASH` (the IANA hash function textual name).
    pub fn name(self) -> &'static str {
        self.proto().name()
    }

    /// The older single-algorithm command for `path` (`XSHA256 path`, `XMD5 path`).
    pub fn x_command(self, path: &str) -> Command {
        match self {
            Self::Sha256 => Command::Xsha256(path.into()),
            Self::Md5 => Command::Xmd5(path.into()),
        }
    }

    /// The length of its hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Md5 => 32,
        }
    }

    /// The algorithm a `HASH` name stands for (any case), if we compute it.
    pub fn from_name(name: &str) -> Option<Self> {
        let alg = HashAlg::from_name(name)?;
        Self::ALL.into_iter().find(|a| a.proto() == alg)
    }
}

/// The digests of a byte stream, computed as it passes.
#[derive(Clone, Default)]
pub struct LocalDigest {
    sha256: Option<sha2::Sha256>,
    md5: Option<md5::Md5>,
}

impl std::fmt::Debug for LocalDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDigest").field("algorithms", &self.algorithms()).finish()
    }
}

impl LocalDigest {
    /// Digests with these algorithms.
    pub fn new(algorithms: &[Algorithm]) -> Self {
        Self {
            sha256: algorithms.contains(&Algorithm::Sha256).then(sha2::Sha256::new),
            md5: algorithms.contains(&Algorithm::Md5).then(md5::Md5::new),
        }
    }

    /// The algorithms computed, preferred first.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(|a| match a {
                Algorithm::Sha256 => self.sha256.is_some(),
                Algorithm::Md5 => self.md5.is_some(),
            })
            .collect()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.md5 {
            h.update(bytes);
        }
    }

    /// The hex digest with `algorithm`, if it was computed.
    pub fn hex(&self, algorithm: Algorithm) -> Option<String> {
        match algorithm {
            Algorithm::Sha256 => self.sha256.clone().map(|h| to_hex(&h.finalize())),
            Algorithm::Md5 => self.md5.clone().map(|h| to_hex(&h.finalize())),
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest the server computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDigest {
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Lower-case hex.
    pub hex: String,
    /// The command that produced it (`HASH`, `XSHA256`, `XMD5`).
    pub command: &'static str,
}

/// The algorithms a FEAT line `HASH SHA-256*;SHA-512;MD5` lists that we can compute, with the
/// one marked current (`*`), per draft-bryan-ftpext-hash-02 section 3.
pub fn parse_hash_feat(line: &str) -> (Vec<Algorithm>, Option<Algorithm>) {
    let mut known = Vec::new();
    let mut current = None;
    let list = line.split_once(' ').map_or("", |(_, l)| l);
    for name in list.split(';').map(str::trim).filter(|n| !n.is_empty()) {
        let (name, starred) = match name.strip_suffix('*') {
            Some(n) => (n, true),
            None => (name, false),
        };
        if let Some(a) = Algorithm::from_name(name) {
            known.push(a);
            if starred {
                current = Some(a);
            }
        }
    }
    (known, current)
}

/// The digest in a `213 <alg> <start>-<end> <hex> <path>` reply (draft-bryan-ftpext-hash-02
/// section 3.1); `None` when the reply has another shape.
pub fn parse_hash_reply(text: &str) -> Option<(Algorithm, String)> {
    let mut words = text.split_whitespace();
    let algorithm = Algorithm::from_name(words.next()?)?;
    let _range = words.next()?;
    let hex = words.next()?;
    is_hex(hex, algorithm).then(|| (algorithm, hex.to_ascii_lowercase()))
}

/// The digest in an `XSHA256`/`XMD5` reply: the first word of the right length that is hex
/// (servers answer `250 <hex>`, `213 <hex>`, or put the path first).
pub fn parse_x_reply(text: &str, algorithm: Algorithm) -> Option<String> {
    text.split_whitespace().find(|w| is_hex(w, algorithm)).map(str::to_ascii_lowercase)
}

fn is_hex(word: &str, algorithm: Algorithm) -> bool {
    word.len() == algorithm.hex_len() && word.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Passes reads through, adding what was read to a digest.
#[derive(Debug)]
pub struct HashingReader<'a, R: ?Sized> {
    inner: &'a mut R,
    /// The digest of everything read so far.
    pub digest: &'a mut LocalDigest,
}

impl<'a, R: AsyncRead + Unpin + ?Sized> HashingReader<'a, R> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut R, digest: &'a mut LocalDigest) -> Self {
        Self { inner, digest }
    }
}

impl<R: AsyncRead + Unpin + ?Sized> AsyncRead for HashingReader<'_, R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let fresh = &buf.filled()[before..];
            self.digest.update(fresh);
        }
        r
    }
}

/// Passes writes through, adding what was written to a digest.
#[derive(Debug)]
pub struct HashingWriter<'a, W: ?Sized> {
    inner: &'a mut W,
    digest: &'a mut LocalDigest,
}

impl<'a, W: AsyncWrite + Unpin + ?Sized> HashingWriter<'a, W> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut W, digest: &'a mut LocalDigest) -> Self {
        Self { inner, digest }
    }
}

impl<W: AsyncWrite + Unpin + ?Sized> AsyncWrite for HashingWriter<'_, W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut *self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            let n = *n;
            self.digest.update(&buf[..n]);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn feat_and_replies() {
        assert_eq!(
            parse_hash_feat("HASH SHA-1;SHA-256*;SHA-512;MD5"),
            (vec![Algorithm::Sha256, Algorithm::Md5], Some(Algorithm::Sha256))
        );
        assert_eq!(parse_hash_feat("HASH SHA-1*;MD5"), (vec![Algorithm::Md5], None));
        let hex = "a".repeat(64);
        assert_eq!(parse_hash_reply(&format!("SHA-256 0-5 {hex} /f")), Some((Algorithm::Sha256, hex.clone())));
        assert_eq!(parse_hash_reply("SHA-256 0-5 xyz /f"), None);
        assert_eq!(parse_x_reply(&format!("/some path {}", hex.to_uppercase()), Algorithm::Sha256), Some(hex));
        assert_eq!(parse_x_reply("d41d8cd98f00b204e9800998ecf8427e", Algorithm::Md5).unwrap().len(), 32);
    }

    #[tokio::test]
    async fn digests_of_what_streams_through() {
        let mut d = LocalDigest::new(&Algorithm::ALL);
        let mut src: &[u8] = b"abc";
        let mut out = Vec::new();
        HashingReader::new(&mut src, &mut d).read_to_end(&mut out).await.unwrap();
        assert_eq!(
            d.hex(Algorithm::Sha256).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.hex(Algorithm::Md5).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        let mut w = LocalDigest::new(&[Algorithm::Sha256]);
        let mut sink = Vec::new();
        HashingWriter::new(&mut sink, &mut w).write_all(b"abc").await.unwrap();
        assert_eq!(w.hex(Algorithm::Sha256), d.hex(Algorithm::Sha256));
        assert_eq!(w.algorithms(), vec![Algorithm::Sha256]);
        assert_eq!(w.hex(Algorithm::Md5), None);
    }
}
