//! DELE, RNFR/RNTO, SIZE, MDTM, MFMT, HASH and SITE.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_proto::command::SiteCommand;
use ferry_proto::listing;
use ferry_proto::Reply;

use super::Answer;
use crate::auth::Permission;
use crate::digest::{HashAlg, Watch};
use crate::events::{Event, FsOp};
use crate::replies;
use crate::session::state::{Account, Cx, Pending, Running, Then, TransferInfo};
use crate::storage::{Metadata, StorageError};
use crate::transfer::TransferEvent;

pub(crate) async fn dele(a: &Account, cx: &Cx<'_>, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    // The size, for the quota and the transfer log's deletion rows.
    let size = a.storage.symlink_metadata(&path).await.ok().map(|m| m.size);
    a.storage.remove_file(&path).await.map_err(|e| replies::storage_error(&e, arg))?;
    let shown = path.to_string();
    cx.shared.events.emit(&Event::Fs(a.who(cx.conn), FsOp::Delete(&shown, size.unwrap_or(0))));
    if let (Some(ledger), Some(size)) = (&a.usage, size) {
        let (bytes, id) = (-i64::try_from(size).unwrap_or(i64::MAX), crate::limits::reservation_id());
        crate::limits::settle(ledger, id, bytes, -1).await;
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
/// those hashed before, answer from the digest kept with them; others are read while the session
/// goes on serving `STAT` (progress), `ABOR` (stops it), `NOOP` and `QUIT`.
pub(crate) fn hash(a: &mut Account, cx: &Cx<'_>, arg: &str) -> Result<Running, Reply> {
    let range = match std::mem::replace(&mut a.pending, Pending::Nothing) {
        Pending::Range(start, end) => Some((start, end)),
        _ => None,
    };
    digest_job(a, cx.xfer.hash, range, arg, DigestAnswer::Hash)
}

/// RANG (draft-bryan-ftpext-hash-02 section 4): the range of the next HASH.
pub(crate) fn rang(a: &mut Account, start: u64, end: u64) -> Reply {
    a.pending = Pending::Range(start, end);
    replies::range_set(start, end)
}

/// XSHA1, XSHA256, XSHA512, XMD5, XCRC: the whole file's digest, as ProFTPD's mod_digest
/// answers them (`250 HEX`).
pub(crate) fn xdigest(a: &Account, alg: HashAlg, arg: &str) -> Result<Running, Reply> {
    digest_job(a, alg, None, arg, DigestAnswer::Hex)
}

/// How a digest is answered.
#[derive(Debug, Clone, Copy)]
enum DigestAnswer {
    /// `213 ALG START-END HEX PATH` (HASH).
    Hash,
    /// `250 HEX` (the X verbs).
    Hex,
}

/// Computes a digest as a job the session runs beside its control connection, like a transfer.
fn digest_job(
    a: &Account,
    alg: HashAlg,
    range: Option<(u64, u64)>,
    arg: &str,
    answer: DigestAnswer,
) -> Result<Running, Reply> {
    let path = a.resolve(arg)?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let watch = Watch { rate: a.user.limits.download_bps, started: Some(Instant::now()), ..Watch::default() };
    let (cancel, progress) = (watch.cancel.clone(), watch.progress.clone());
    let storage = a.storage.clone();
    let shown = arg.to_string();
    let shown_path = path.to_string();
    let task = Box::pin(async move {
        let reply = match storage.digest(&path, alg, range, watch).await {
            Ok((hex, start, end)) => match answer {
                DigestAnswer::Hash => replies::hash(alg.name(), start, end, &hex, &shown),
                DigestAnswer::Hex => replies::xdigest(&hex),
            },
            Err(StorageError::IsADirectory) => replies::not_a_regular_file(&shown),
            Err(StorageError::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => replies::digest_aborted(),
            Err(e) => replies::storage_error(&e, &shown),
        };
        let _ = tx.send(TransferEvent::Answered(reply)).await;
    });
    Ok(Running {
        task: Some(std::sync::Mutex::new(task)),
        events: rx,
        cancel,
        progress,
        info: TransferInfo { verb: "HASH", path: shown_path, opening: replies::Opening::Digest },
        started: Instant::now(),
        then: Then::default(),
    })
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
