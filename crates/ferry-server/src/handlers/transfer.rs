//! Data-connection setup (PORT, EPRT, PASV, EPSV), transfer parameters (TYPE, STRU, MODE, REST,
//! ALLO), the transfers themselves (RETR, STOR, STOU, APPE) and ABOR.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use ferry_proto::addr::{self, EpsvArg, NetProto};
use ferry_proto::command::{FormatControl, Structure, TransferMode, TransferType};
use ferry_proto::{Reply, ReplyCode as C, VirtualPath};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{tri, Answer};
use crate::auth::Permission;
use crate::datachan::{self, DataPlan, DataSetup};
use crate::replies::{self, r};
use crate::session::{Running, Session};
use crate::storage::{StorageError, WriteMode, TEMP_PREFIX};
use crate::transfer::{self, Job};

fn active(s: &mut Session, target: SocketAddr, verb: &str) -> Answer {
    if s.epsv_all {
        return Some(replies::epsv_all_in_effect());
    }
    let fxp = s.user.as_ref().is_some_and(|u| u.limits.allow_fxp);
    if let Err(why) = datachan::active_target_allowed(target, s.peer.ip(), &s.shared.config, fxp) {
        tracing::warn!(%target, "refused {verb} target");
        return Some(r(C::PARAM_NOT_IMPLEMENTED, why));
    }
    s.data = Some(DataSetup::Active(target));
    Some(r(C::OK, format!("{verb} command successful.")))
}

pub(super) fn port(s: &mut Session, target: SocketAddrV4) -> Answer {
    active(s, SocketAddr::V4(target), "PORT")
}

pub(super) fn eprt(s: &mut Session, target: SocketAddr) -> Answer {
    let control = NetProto::of(s.peer.ip());
    if NetProto::of(target.ip()) != control {
        return Some(r(
            C::NETWORK_PROTOCOL_NOT_SUPPORTED,
            format!("Network protocol not supported, use ({}).", control.number()),
        ));
    }
    active(s, target, "EPRT")
}

async fn listen(s: &mut Session) -> Result<u16, Reply> {
    s.data = None;
    let ip = s.local.ip();
    match datachan::bind_passive(ip, s.shared.config.passive.ports).await {
        Ok(l) => {
            let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
            s.data = Some(DataSetup::Passive(l));
            Ok(port)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot bind a passive port");
            Err(r(C::CANT_OPEN_DATA, "No passive port available; try again later."))
        }
    }
}

pub(super) async fn pasv(s: &mut Session) -> Answer {
    if s.epsv_all {
        return Some(replies::epsv_all_in_effect());
    }
    let announce = match (s.shared.config.passive.address, s.local.ip()) {
        (Some(IpAddr::V4(a)), IpAddr::V4(_)) => a,
        (_, IpAddr::V4(local)) => local,
        (_, IpAddr::V6(_)) => return Some(r(C::CANT_OPEN_DATA, "PASV is IPv4 only; use EPSV over IPv6.")),
    };
    let port = tri!(listen(s).await);
    Some(r(
        C::ENTERING_PASSIVE,
        format!("Entering Passive Mode ({}).", addr::format_port(SocketAddrV4::new(announce, port))),
    ))
}

pub(super) async fn epsv(s: &mut Session, arg: EpsvArg) -> Answer {
    let control = NetProto::of(s.local.ip());
    match arg {
        EpsvArg::All => {
            s.epsv_all = true;
            return Some(r(C::OK, "EPSV ALL ok; only EPSV will be accepted."));
        }
        EpsvArg::Proto(n) if n != 1 && n != 2 => {
            return Some(r(C::NETWORK_PROTOCOL_NOT_SUPPORTED, "Network protocol not supported, use (1,2)."));
        }
        EpsvArg::Proto(n) if n != control.number() => {
            return Some(r(
                C::NETWORK_PROTOCOL_NOT_SUPPORTED,
                format!("Network protocol not supported, use ({}).", control.number()),
            ));
        }
        _ => {}
    }
    let port = tri!(listen(s).await);
    Some(r(C::ENTERING_EXTENDED_PASSIVE, format!("Entering Extended Passive Mode {}.", addr::format_epsv(port))))
}

pub(super) fn type_(s: &mut Session, t: TransferType) -> Answer {
    Some(match t {
        TransferType::Ascii(FormatControl::NonPrint) => {
            s.ascii = true;
            r(C::OK, "Switching to ASCII mode.")
        }
        TransferType::Image | TransferType::Local(8) => {
            s.ascii = false;
            r(C::OK, "Switching to Binary mode.")
        }
        other => r(C::PARAM_NOT_IMPLEMENTED, format!("TYPE {other} not implemented; use A or I.")),
    })
}

pub(super) fn stru(st: Structure) -> Answer {
    Some(match st {
        Structure::File => r(C::OK, "Structure set to F."),
        _ => r(C::PARAM_NOT_IMPLEMENTED, "Only STRU F is supported."),
    })
}

pub(super) fn mode(m: TransferMode) -> Answer {
    Some(match m {
        TransferMode::Stream => r(C::OK, "Mode set to S."),
        _ => r(C::PARAM_NOT_IMPLEMENTED, "Only MODE S is supported."),
    })
}

pub(super) fn rest(s: &mut Session, n: u64) -> Answer {
    s.rest = Some(n).filter(|n| *n > 0);
    Some(r(C::PENDING_FURTHER_INFO, format!("Restarting at {n}. Send STOR or RETR to initiate transfer.")))
}

pub(super) fn allo() -> Answer {
    Some(r(C::SUPERFLUOUS, "ALLO not needed; storage is allocated as data arrives."))
}

pub(super) fn abor(s: &mut Session) -> Answer {
    if let Some(t) = &mut s.transfer {
        t.abort_requested = true;
        t.cancel.cancel();
        // 426 and 226 follow when the transfer task has stopped.
        return None;
    }
    s.data = None;
    Some(r(C::DATA_OPEN_NO_TRANSFER, "No transfer to abort."))
}

/// Starts a transfer task on the data setup chosen earlier.
pub(super) fn start(
    s: &mut Session,
    job: Job,
    opening: Reply,
    success: Reply,
    verb: &'static str,
    path: String,
) -> Answer {
    if s.data.is_none() {
        return Some(replies::no_data_setup());
    }
    if super::auth::tls_required(s) && !s.prot_private {
        return Some(r(C::PROT_NOT_SUPPORTED, "Data connections must be protected: send PBSZ 0 and PROT P."));
    }
    let Some(setup) = s.data.take() else {
        return Some(replies::no_data_setup());
    };
    let config = &s.shared.config;
    let tls = match (&s.tls, s.prot_private) {
        (Some(c), true) => Some(transfer::DataTls {
            config: c.data.clone(),
            require_reuse: !config.tls.allow_data_without_reuse_unsafe,
            timeout: std::time::Duration::from_secs(config.tls.handshake_timeout_secs),
        }),
        _ => None,
    };
    let plan = DataPlan {
        setup,
        control_peer: s.peer.ip(),
        control_local: s.local,
        allow_any_peer: config.passive.allow_any_peer_unsafe,
        source_port: config.active.source_port,
        timeout: config.limits.data_timeout(),
    };
    let (tx, rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let progress = Arc::new(AtomicU64::new(0));
    let limits = s.user.as_ref().map(|u| u.limits).unwrap_or_default();
    let rate = match &job {
        Job::Receive { .. } => limits.upload_bps,
        _ => limits.download_bps,
    };
    let task = Box::pin(transfer::run(plan, tls, rate, job, progress.clone(), cancel.clone(), tx));
    s.transfer = Some(Running {
        task: Some(std::sync::Mutex::new(task)),
        events: rx,
        cancel,
        progress,
        opening,
        success,
        verb,
        path,
        started: Instant::now(),
        abort_requested: false,
    });
    None
}

fn mode_name(s: &Session) -> &'static str {
    if s.ascii {
        "ASCII"
    } else {
        "BINARY"
    }
}

pub(super) async fn retr(s: &mut Session, arg: &str) -> Answer {
    tri!(s.require(Permission::Read));
    let path = tri!(s.resolve(arg));
    if s.data.is_none() {
        return Some(replies::no_data_setup());
    }
    let store = tri!(s.store());
    let offset = s.rest.take().unwrap_or(0);
    let (source, size) = match store.read(&path, offset).await {
        Ok(h) => h,
        Err(StorageError::IsADirectory) => return Some(r(C::FILE_UNAVAILABLE, format!("{arg}: Not a regular file."))),
        Err(e) => return Some(replies::storage_error(&e, arg)),
    };
    if offset > size {
        return Some(r(
            C::INVALID_REST,
            format!("Restart offset {offset} is beyond the end of the file ({size} bytes)."),
        ));
    }
    let opening = r(
        C::FILE_STATUS_OK,
        format!("Opening {} mode data connection for {arg} ({} bytes).", mode_name(s), size - offset),
    );
    let ascii = s.ascii;
    start(s, Job::Send { source, ascii }, opening, replies::transfer_complete(), "RETR", path.to_string())
}

/// Which upload command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreKind {
    Stor,
    Appe,
    Stou,
}

/// A unique name in `dir` based on `base` (STOU).
async fn unique_name(s: &Session, dir: &VirtualPath, base: &str) -> Result<VirtualPath, Reply> {
    let store = s.store()?;
    for i in 0..100u32 {
        let name = if i == 0 { base.to_string() } else { format!("{base}.{i}") };
        let p = dir.join(&name).map_err(|_| replies::bad_path())?;
        match store.symlink_metadata(&p).await {
            Err(StorageError::NotFound) => return Ok(p),
            Ok(_) => continue,
            Err(e) => return Err(replies::storage_error(&e, &name)),
        }
    }
    Err(r(C::BAD_FILE_NAME, "Cannot find a unique file name."))
}

pub(super) async fn store(s: &mut Session, arg: Option<&str>, kind: StoreKind) -> Answer {
    tri!(s.require(Permission::Write));
    if s.data.is_none() {
        return Some(replies::no_data_setup());
    }
    let store = tri!(s.store());
    let path = match (kind, arg) {
        (StoreKind::Stou, None) => {
            let cwd = s.cwd.clone();
            tri!(unique_name(s, &cwd, &format!("ftp{:08x}", rand::random::<u32>())).await)
        }
        (StoreKind::Stou, Some(a)) => {
            let p = tri!(s.resolve(a));
            let (dir, base) = (p.parent(), p.file_name().unwrap_or("file").to_string());
            tri!(unique_name(s, &dir, &base).await)
        }
        (_, Some(a)) => tri!(s.resolve(a)),
        (_, None) => return Some(r(C::SYNTAX_ERROR_ARGS, "A file name is needed.")),
    };
    let shown = arg.unwrap_or(path.as_str()).to_string();
    if path.file_name().is_some_and(|n| n.starts_with(TEMP_PREFIX)) {
        return Some(r(C::BAD_FILE_NAME, format!("{shown}: File name not allowed.")));
    }
    let offset = s.rest.take();
    let mode = match (kind, offset) {
        (StoreKind::Stou, _) => WriteMode::CreateNew,
        (StoreKind::Appe, _) => WriteMode::Append,
        (StoreKind::Stor, Some(n)) => {
            if !store.capabilities().offset_writes {
                return Some(r(C::NOT_IMPLEMENTED, "REST STOR is not supported by this storage."));
            }
            match store.metadata(&path).await {
                Ok(m) if m.size >= n => WriteMode::At(n),
                Ok(m) => {
                    return Some(r(
                        C::INVALID_REST,
                        format!("Restart offset {n} is beyond the end of the file ({} bytes).", m.size),
                    ))
                }
                Err(e) => return Some(replies::storage_error(&e, &shown)),
            }
        }
        (StoreKind::Stor, None) => WriteMode::Replace,
    };
    let quota = match quota_guard(s, &path, mode).await {
        Ok(q) => q,
        Err(reply) => return Some(reply),
    };
    let upload = match store.write(&path, mode).await {
        Ok(u) => u,
        Err(e) => return Some(replies::storage_error(&e, &shown)),
    };
    let (opening, success) = if kind == StoreKind::Stou {
        let name = path.file_name().unwrap_or_default().to_string();
        (
            r(C::FILE_STATUS_OK, format!("FILE: {name}")),
            r(C::CLOSING_DATA, format!("Transfer complete (unique file name: {name}).")),
        )
    } else {
        (
            r(C::FILE_STATUS_OK, format!("Opening {} mode data connection for {shown}.", mode_name(s))),
            replies::transfer_complete(),
        )
    };
    let job = Job::Receive { upload, ascii: s.ascii, fsync: s.shared.config.fsync, quota };
    let verb = match kind {
        StoreKind::Stor => "STOR",
        StoreKind::Appe => "APPE",
        StoreKind::Stou => "STOU",
    };
    start(s, job, opening, success, verb, path.to_string())
}

/// The quota bookkeeping for an upload, or 552 when the account is already full.
async fn quota_guard(s: &Session, path: &VirtualPath, mode: WriteMode) -> Result<Option<transfer::QuotaGuard>, Reply> {
    let (Some(user), Some(usage)) = (&s.user, &s.usage) else { return Ok(None) };
    let store = s.store()?;
    let old_len = match store.metadata(path).await {
        Ok(m) if !m.is_dir() => Some(m.size),
        _ => None,
    };
    let now = *usage.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(max) = user.limits.quota_files {
        if old_len.is_none() && now.files >= max {
            return Err(r(C::EXCEEDED_STORAGE, format!("Quota exceeded: {max} files.")));
        }
    }
    let cap = user.limits.quota_bytes.map(|q| {
        // What stays of the account's bytes while this upload is written.
        let kept = match mode {
            WriteMode::Append => now.bytes,
            WriteMode::At(n) => now.bytes.saturating_sub(old_len.unwrap_or(0)) + n,
            WriteMode::Replace | WriteMode::CreateNew => now.bytes.saturating_sub(old_len.unwrap_or(0)),
        };
        q.saturating_sub(kept)
    });
    Ok(Some(transfer::QuotaGuard { usage: usage.clone(), cap, old_len }))
}
