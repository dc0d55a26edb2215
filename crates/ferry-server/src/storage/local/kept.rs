//! Digests kept with local files (extended attributes, [`crate::digest`]): read, computed once and
//! kept, carried over a change of modification time that Ferry makes itself (`MFMT`). An
//! upload's own SHA-256 is kept by its [`super::follow::Follower`].

use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::Path;

use cap_std::fs::Dir;

use crate::digest::{xattr_name, HashAlg, Hasher, Stamp};

/// The digest kept for `file` under `alg`, when it is still valid.
pub(super) fn read(file: &std::fs::File, alg: HashAlg, stamp: Stamp) -> Option<String> {
    let mut buf = [0u8; 256];
    let n = rustix::fs::fgetxattr(file, xattr_name(alg).as_str(), &mut buf).ok()?;
    stamp.check(&buf[..n])
}

/// Keeps `hex` as `file`'s digest under `alg`, computed when the file was at `stamp`. Best effort:
/// a filesystem without user extended attributes keeps nothing (the digest is computed again).
pub(super) fn write(file: &std::fs::File, alg: HashAlg, stamp: Stamp, hex: &str) {
    let value = stamp.encode(hex);
    if let Err(e) =
        rustix::fs::fsetxattr(file, xattr_name(alg).as_str(), value.as_bytes(), rustix::fs::XattrFlags::empty())
    {
        tracing::debug!(error = %e, "digest not kept (no user extended attributes here?)");
    }
}

/// The digest of `path` (relative to `dir`) under `alg`: of bytes `range` (`start..end`,
/// clamped to the file), or of the whole file, from what is kept when it is still valid. A whole
/// file's digest computed here is kept, unless the file changed while it was read. Returns the
/// digest, the range it covers, and whether it was read from the file.
pub(super) fn digest(
    dir: &Dir,
    path: &Path,
    alg: HashAlg,
    range: Option<(u64, u64)>,
    watch: &crate::digest::Watch,
) -> io::Result<(String, u64, u64)> {
    let file = dir.open(path)?.into_std();
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::from(io::ErrorKind::IsADirectory));
    }
    let mut stamp = Stamp::of(&meta);
    let (start, end) = match range {
        Some((s, e)) => (s.min(stamp.size), e.min(stamp.size)),
        None => {
            if let Some(hex) = read(&file, alg, stamp) {
                return Ok((hex, 0, stamp.size));
            }
            // A just-uploaded file's SHA-256 may still be on its way: wait for it rather than
            // read the file again.
            if alg == HashAlg::Sha256 && super::follow::wait(&meta, &|| watch.cancel.is_cancelled()) {
                stamp = Stamp::of(&file.metadata()?);
                if let Some(hex) = read(&file, alg, stamp) {
                    return Ok((hex, 0, stamp.size));
                }
            }
            (0, stamp.size)
        }
    };
    let mut hasher = Hasher::new(alg);
    let mut f = &file;
    f.seek(SeekFrom::Start(start))?;
    let mut left = end - start;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
        watch.read_blocking(n as u64)?;
    }
    let hex = hasher.finish();
    if range.is_none() && Stamp::of(&file.metadata()?) == stamp {
        write(&file, alg, stamp, &hex);
    }
    Ok((hex, start, end))
}

/// Before Ferry changes `file`'s modification time: the digests still valid now, to be stamped
/// again by [`restamp`] afterwards.
pub(super) fn valid(file: &std::fs::File) -> Vec<(HashAlg, String)> {
    let Ok(meta) = file.metadata() else { return Vec::new() };
    // A digest still being computed (an upload just committed) is valid too, once there.
    super::follow::wait(&meta, &|| false);
    let stamp = Stamp::of(&meta);
    HashAlg::ALL.into_iter().filter_map(|alg| read(file, alg, stamp).map(|hex| (alg, hex))).collect()
}

/// After Ferry changed `file`'s modification time (not its bytes): the digests that were valid
/// before stay valid.
pub(super) fn restamp(file: &std::fs::File, kept: Vec<(HashAlg, String)>) {
    let Ok(meta) = file.metadata() else { return };
    let stamp = Stamp::of(&meta);
    for (alg, hex) in kept {
        write(file, alg, stamp, &hex);
    }
}
