//! DELE, RNFR/RNTO, SIZE, MDTM, MFMT, HASH and SITE.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::command::SiteCommand;
use ferry_proto::listing;

use super::Answer;
use crate::auth::Permission;
use crate::events::{Event, FsOp};
use crate::replies;
use crate::session::state::{Account, Cx, Pending};
use crate::storage::{Metadata, StorageError};

pub(crate) async fn dele(a: &Account, cx: &Cx<'_>, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    // The size, for the quota and the transfer log's deletion rows.
    let size = a.storage.symlink_metadata(&path).await.ok().map(|m| m.size);
    a.storage.remove_file(&path).await.map_err(|e| replies::storage_error(&e, arg))?;
    let shown = path.to_string();
    cx.shared.events.emit(&Event::Fs(a.who(cx.conn), FsOp::Delete(&shown, size.unwrap_or(0))));
    if let (Some(usage), Some(size)) = (&a.usage, size) {
        let mut u = usage.lock().unwrap_or_else(|p| p.into_inner());
        u.bytes = u.bytes.saturating_sub(size);
        u.files = u.files.saturating_sub(1);
    }
    Ok(replies::deleted())
}

pub(crate) async fn rnfr(a: &mut Account, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    a.storage.symlink_metadata(&path).await.map_err(|e| replies::storage_error(&e, arg))?;
    if path.is_root() {
        return Err(replies::permission_denied());
    }
    a.pending = Pending::RenameFrom(path);
    Ok(replies::ready_for_rnto())
}

pub(crate) async fn rnto(a: &mut Account, cx: &Cx<'_>, arg: &str) -> Answer {
    let Pending::RenameFrom(from) = std::mem::replace(&mut a.pending, Pending::Nothing) else {
        // The policy let RNTO through only after RNFR.
        return Err(replies::rnfr_first());
    };
    let to = a.resolve(arg)?;
    a.storage.rename(&from, &to).await.map_err(|e| replies::storage_error(&e, arg))?;
    let (from, to) = (from.to_string(), to.to_string());
    cx.shared.events.emit(&Event::Fs(a.who(cx.conn), FsOp::Rename(&from, &to)));
    Ok(replies::renamed())
}

pub(crate) async fn size(a: &Account, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    match a.storage.metadata(&path).await {
        Ok(m) if m.is_dir() => Err(replies::not_a_regular_file(arg)),
        Ok(m) => Ok(replies::size(m.size)),
        Err(e) => Err(replies::storage_error(&e, arg)),
    }
}

/// Drops sub-second precision: MDTM answers `YYYYMMDDHHMMSS` exactly, which every client parses.
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

pub(crate) async fn mdtm(a: &Account, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    match a.storage.metadata(&path).await {
        Ok(Metadata { modified: Some(t), .. }) => Ok(replies::mdtm(listing::format_timeval(whole_seconds(t)))),
        Ok(_) => Err(replies::mtime_unknown(arg)),
        Err(e) => Err(replies::storage_error(&e, arg)),
    }
}

pub(crate) async fn mfmt(a: &Account, time: SystemTime, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    if !a.storage.capabilities().set_modified {
        return Err(replies::unsupported_by_storage("MFMT"));
    }
    a.storage.set_modified(&path, time).await.map_err(|e| replies::storage_error(&e, arg))?;
    Ok(replies::mfmt(listing::format_timeval(time), arg))
}

/// HASH (draft-bryan-ftpext-hash-02): the digest of the file (of the `RANG` range, when one
/// is pending) under the session's algorithm (`OPTS HASH`). Files uploaded through Ferry, and
/// those hashed before, answer from the digest kept with them.
pub(crate) async fn hash(a: &mut Account, cx: &Cx<'_>, arg: &str) -> Answer {
    let range = match std::mem::replace(&mut a.pending, Pending::Nothing) {
        Pending::Range(start, end) => Some((start, end)),
        _ => None,
    };
    let alg = cx.xfer.hash;
    let (hex, start, end) = digest(a, alg, range, arg).await?;
    Ok(replies::hash(alg.name(), start, end, &hex, arg))
}

/// RANG (draft-bryan-ftpext-hash-02 section 4): the range of the next HASH.
pub(crate) fn rang(a: &mut Account, start: u64, end: u64) -> ferry_proto::Reply {
    a.pending = Pending::Range(start, end);
    replies::range_set(start, end)
}

/// XSHA1, XSHA256, XSHA512, XMD5, XCRC: the whole file's digest, as ProFTPD's mod_digest
/// answers them (`250 HEX`).
pub(crate) async fn xdigest(a: &Account, alg: crate::digest::HashAlg, arg: &str) -> Answer {
    let (hex, _, _) = digest(a, alg, None, arg).await?;
    Ok(replies::xdigest(&hex))
}

async fn digest(
    a: &Account,
    alg: crate::digest::HashAlg,
    range: Option<(u64, u64)>,
    arg: &str,
) -> Result<(String, u64, u64), ferry_proto::Reply> {
    let path = a.resolve(arg)?;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    match a.storage.digest(&path, alg, range, progress).await {
        Ok(d) => Ok(d),
        Err(StorageError::IsADirectory) => Err(replies::not_a_regular_file(arg)),
        Err(e) => Err(replies::storage_error(&e, arg)),
    }
}

pub(crate) async fn site(a: &Account, cx: &Cx<'_>, cmd: SiteCommand) -> Answer {
    match cmd {
        SiteCommand::Help(_) => Ok(replies::site_help()),
        SiteCommand::Chmod { mode, path: arg } => {
            // The permission depends on the subcommand, so it is checked here.
            a.require(Permission::Write)?;
            let path = a.resolve(&arg)?;
            if !a.storage.capabilities().chmod {
                return Err(replies::unsupported_by_storage("SITE CHMOD"));
            }
            a.storage.set_mode(&path, mode).await.map_err(|e| replies::storage_error(&e, &arg))?;
            Ok(replies::chmod_ok(mode, &arg))
        }
        SiteCommand::Segment(op) => super::segments::segment(a, cx, op).await,
        SiteCommand::Other(x) => {
            #[cfg(debug_assertions)]
            if let Some(reply) = crate::planted::site(&x).await {
                return Ok(reply);
            }
            Err(replies::unknown_site(x.split(' ').next().unwrap_or("")))
        }
    }
}
