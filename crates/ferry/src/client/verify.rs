//! `--verify`: after a transfer, the server's digest of the file against the one this client
//! computed while the bytes streamed (draft-bryan-ftpext-hash-02 `HASH`, else `XSHA256`/`XMD5`).
//!
//! A mismatch is exit 6 and the file is kept (so `-c` can resume a short one). A server that
//! computes no digest fails `--verify` too (exit 6, the file kept): verification was asked for
//! and could not be done, and a script must not take that for success.

use anyhow::Result;
use ferry_client::digest::{Algorithm, LocalDigest};
use ferry_client::{Client, ClientError};
use tokio::io::AsyncReadExt;

use super::Ctx;

/// Whether to compare digests after a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Sizes only (the default).
    Size,
    /// Sizes and digests.
    Digest,
}

impl Verify {
    /// From the `--verify` flag; refused with `--ascii` (the bytes on the two sides differ).
    pub fn from_flag(verify: bool, ctx: &Ctx) -> Result<Self> {
        match (verify, ctx.common.ascii) {
            (false, _) => Ok(Self::Size),
            (true, false) => Ok(Self::Digest),
            (true, true) => Err(super::Usage("--verify compares bytes: it cannot be used with --ascii".into()).into()),
        }
    }

    /// The local digest to compute while streaming to or from `c`, if any.
    pub fn digest_for(self, c: &Client) -> Option<LocalDigest> {
        match self {
            Self::Size => None,
            Self::Digest => Some(LocalDigest::new(&c.digest_plan())),
        }
    }
}

/// Reads `len` bytes of `source` into `digest` (the part of a file a resumed transfer does not
/// send again).
pub async fn hash_prefix<R: tokio::io::AsyncRead + Unpin>(
    source: &mut R,
    len: u64,
    digest: &mut LocalDigest,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = source.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        digest.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// The digest of a whole local file, read once (for segmented transfers, whose pieces do not
/// stream in order).
pub async fn hash_file(path: &std::path::Path, algorithms: &[Algorithm]) -> Result<LocalDigest> {
    let mut digest = LocalDigest::new(algorithms);
    let mut f = tokio::fs::File::open(path).await.map_err(ClientError::Local)?;
    let len = f.metadata().await.map_err(ClientError::Local)?.len();
    hash_prefix(&mut f, len, &mut digest).await.map_err(ClientError::Local)?;
    Ok(digest)
}

/// Compares the server's digest of `remote` with `local`; `name` is what the messages call the
/// file.
pub async fn check(ctx: &Ctx, c: &mut Client, remote: &str, local: &LocalDigest, name: &str) -> Result<()> {
    let Some(theirs) = c.remote_digest(remote, &local.algorithms()).await? else {
        return Err(ClientError::Verify(format!(
            "{name}: cannot verify: the server answers none of HASH, XSHA256, XMD5 (the file is kept)"
        ))
        .into());
    };
    let alg = theirs.algorithm.name();
    match local.hex(theirs.algorithm) {
        Some(mine) if mine == theirs.hex => {
            ctx.say(format!("{name}: verified ({alg} {} from {})", theirs.hex, theirs.command));
            Ok(())
        }
        Some(mine) => Err(ClientError::Verify(format!(
            "{name}: {alg} differs: {mine} here, {} on the server (the file is kept; -c resumes a short one)",
            theirs.hex
        ))
        .into()),
        None => {
            Err(ClientError::Verify(format!("{name}: the server answered {alg}, which was not computed here")).into())
        }
    }
}
