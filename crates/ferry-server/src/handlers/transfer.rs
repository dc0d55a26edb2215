//! Data-connection setup (PORT, EPRT, PASV, EPSV), transfer parameters (TYPE, STRU, MODE, REST,
//! ALLO), the transfers themselves (RETR, STOR, STOU, APPE) and ABOR.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use ferry_proto::addr::{EpsvArg, NetProto};
use ferry_proto::command::{FormatControl, Structure, TransferMode, TransferType};
use ferry_proto::{Reply, VirtualPath};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Act, Answer};
use crate::datachan::{self, DataPlan, DataSetup, EarlyTls};
use crate::replies::{self, Opening};
use crate::session::state::Cx;
use crate::session::state::{Account, Pending, Repr, Running, Then, TransferInfo};
use crate::storage::{StorageError, WriteMode};
use crate::transfer::{self, Job};

fn active(a: &Account, cx: &mut Cx<'_>, target: SocketAddr, verb: &str) -> Reply {
    let fxp = a.user.limits.allow_fxp;
    if let Err(why) = datachan::active_target_allowed(target, cx.conn.peer.ip(), cx.config, fxp) {
        tracing::warn!(%target, "refused {verb} target");
        return replies::active_refused(why);
    }
    cx.xfer.data = Some(DataSetup::Active(target));
    replies::active_ok(verb)
}

pub(crate) fn port(a: &Account, cx: &mut Cx<'_>, target: SocketAddrV4) -> Reply {
    active(a, cx, SocketAddr::V4(target), "PORT")
}

pub(crate) fn eprt(a: &Account, cx: &mut Cx<'_>, target: SocketAddr) -> Reply {
    let control = NetProto::of(cx.conn.peer.ip());
    if NetProto::of(target.ip()) != control {
        return replies::network_protocol_not_supported(Some(control));
    }
    active(a, cx, target, "EPRT")
}

/// Opens a passive listener for the next transfer; its port. Under `PROT P` the client's
/// connection is accepted, and its TLS handshake run, as soon as it comes ([`EarlyTls`]).
async fn listen(cx: &mut Cx<'_>) -> Result<u16, Reply> {
    cx.xfer.data = None;
    let shared = cx.shared;
    let who = crate::events::Who { id: cx.conn.id, ip: cx.conn.peer.ip(), user: None, anonymous: false, root: None };
    let no_port = |e: std::io::Error| {
        shared.fds.warn("cannot bind a passive port: 425", &e);
        shared.events.emit(&crate::events::Event::NoPassivePort(who));
        replies::no_passive_port()
    };
    let mut l = datachan::bind_passive(cx.conn.local.ip(), cx.config.passive.ports).await.map_err(no_port)?;
    let port = l.local_addr().map_err(no_port)?.port();
    // Load balancers relaying data connections to it must put a PROXY header first.
    if let Some(trust) = &cx.shared.proxy {
        l.expect_proxy_from(trust.clone());
    }
    let setup = match data_tls(cx, None) {
        Some(tls) => {
            let allow_any = cx.config.passive.allow_any_peer_unsafe;
            DataSetup::PassiveTls(EarlyTls::start(l, cx.conn.peer.ip(), allow_any, tls).map_err(no_port)?)
        }
        None => DataSetup::Passive(l),
    };
    cx.xfer.data = Some(setup);
    Ok(port)
}

/// TLS for the next data connection, when `PROT P` is in force; `download`: its direction, when
/// the transfer command has come.
fn data_tls(cx: &Cx<'_>, download: Option<bool>) -> Option<transfer::DataTls> {
    let config = &cx.config;
    cx.tls.private_data().map(|c| transfer::DataTls {
        config: c.data.clone(),
        download: c.download.clone(),
        direction: Arc::new(download.map(std::sync::OnceLock::from).unwrap_or_default()),
        require_reuse: !config.tls.allow_data_without_reuse_unsafe,
        timeout: std::time::Duration::from_secs(config.tls.handshake_timeout_secs),
    })
}

pub(crate) async fn pasv(cx: &mut Cx<'_>) -> Answer {
    let announce = match (cx.config.passive.address, cx.conn.local.ip()) {
        (Some(IpAddr::V4(a)), IpAddr::V4(_)) => a,
        (_, IpAddr::V4(local)) => local,
        (_, IpAddr::V6(_)) => return Err(replies::pasv_ipv4_only()),
    };
    let port = listen(cx).await?;
    Ok(replies::passive(SocketAddrV4::new(announce, port)))
}

pub(crate) async fn epsv(cx: &mut Cx<'_>, arg: EpsvArg) -> Answer {
    let control = NetProto::of(cx.conn.local.ip());
    match arg {
        EpsvArg::All => {
            cx.xfer.epsv_all = true;
            return Ok(replies::epsv_all_ok());
        }
        EpsvArg::Proto(n) if n != 1 && n != 2 => return Err(replies::network_protocol_not_supported(None)),
        EpsvArg::Proto(n) if n != control.number() => {
            return Err(replies::network_protocol_not_supported(Some(control)))
        }
        _ => {}
    }
    let port = listen(cx).await?;
    Ok(replies::extended_passive(port))
}

pub(crate) fn type_(cx: &mut Cx<'_>, t: TransferType) -> Reply {
    let repr = match t {
        TransferType::Ascii(FormatControl::NonPrint) => Repr::Ascii,
        TransferType::Image | TransferType::Local(8) => Repr::Binary,
        other => return replies::type_set(other, None),
    };
    cx.xfer.repr = repr;
    replies::type_set(t, Some(repr == Repr::Ascii))
}

pub(crate) fn stru(st: Structure) -> Reply {
    replies::stru(st == Structure::File)
}

pub(crate) fn mode(m: TransferMode) -> Reply {
    replies::mode(m == TransferMode::Stream)
}

pub(crate) fn rest(a: &mut Account, n: u64) -> Reply {
    a.pending = if n > 0 { Pending::Rest(n) } else { Pending::Nothing };
    replies::rest(n)
}

pub(crate) fn allo() -> Reply {
    replies::allo()
}

pub(crate) fn abor(cx: &mut Cx<'_>) -> Act {
    if let Some(t) = cx.running.as_mut() {
        t.then.abort = true;
        t.cancel.cancel();
        // 426 and 226 follow when the transfer task has stopped.
        return Act::Later;
    }
    cx.xfer.data = None;
    replies::nothing_to_abort().into()
}

/// Starts a transfer on the data connection set up earlier (the policy checked there is one,
/// protected as required).
pub(crate) fn start(
    a: &Account,
    cx: &mut Cx<'_>,
    job: Job,
    verb: &'static str,
    path: String,
    opening: Opening,
) -> Result<Running, Reply> {
    let setup = cx.xfer.data.take().ok_or_else(replies::no_data_setup)?;
    // An upload's TLS handshake sends no ticket (see `SessionTls`): say which way the data goes
    // before the 150.
    let download = !matches!(job, Job::Receive { .. });
    if let DataSetup::PassiveTls(early) = &setup {
        early.set_direction(download);
    }
    let tls = data_tls(cx, Some(download));
    let config = &cx.config;
    let plan = DataPlan {
        setup,
        control_peer: cx.conn.peer.ip(),
        control_local: cx.conn.local,
        allow_any_peer: config.passive.allow_any_peer_unsafe,
        source_port: config.active.source_port,
        timeout: config.limits.data_timeout(),
    };
    let (tx, rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let progress = Arc::new(AtomicU64::new(0));
    let rate = match &job {
        Job::Receive { .. } => a.user.limits.upload_bps,
        _ => a.user.limits.download_bps,
    };
    let task = Box::pin(transfer::run(plan, tls, rate, job, progress.clone(), cancel.clone(), tx));
    Ok(Running {
        task: Some(std::sync::Mutex::new(task)),
        events: rx,
        cancel,
        progress,
        info: TransferInfo { verb, path, opening },
        started: Instant::now(),
        then: Then::default(),
    })
}

pub(crate) async fn retr(a: &mut Account, cx: &mut Cx<'_>, arg: &str) -> Result<Running, Reply> {
    let path = a.resolve(arg)?;
    let offset = a.take_rest();
    let (source, size) = match a.storage.read(&path, offset).await {
        Ok(h) => h,
        Err(StorageError::IsADirectory) => return Err(replies::not_a_regular_file(arg)),
        Err(e) => return Err(replies::storage_error(&e, arg)),
    };
    if offset > size {
        return Err(replies::rest_beyond_end(offset, size));
    }
    let ascii = cx.xfer.repr == Repr::Ascii;
    let opening = Opening::Download { ascii, shown: arg.to_string(), bytes: size - offset };
    start(a, cx, Job::Send { source, ascii }, "RETR", path.to_string(), opening)
}

/// Which upload command, with its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind<'a> {
    Stor(&'a str),
    Appe(&'a str),
    Stou(Option<&'a str>),
}

/// A unique name in `dir` based on `base` (STOU).
async fn unique_name(a: &Account, dir: &VirtualPath, base: &str) -> Result<VirtualPath, Reply> {
    for i in 0..100u32 {
        let name = if i == 0 { base.to_string() } else { format!("{base}.{i}") };
        let p = dir.join(&name).map_err(|_| replies::bad_path())?;
        match a.storage.symlink_metadata(&p).await {
            Err(StorageError::NotFound) => return Ok(p),
            Ok(_) => continue,
            Err(e) => return Err(replies::storage_error(&e, &name)),
        }
    }
    Err(replies::no_unique_name())
}

pub(crate) async fn store(a: &mut Account, cx: &mut Cx<'_>, kind: StoreKind<'_>) -> Result<Running, Reply> {
    let (path, arg) = match kind {
        StoreKind::Stou(None) => {
            let cwd = a.cwd.clone();
            (unique_name(a, &cwd, &format!("ftp{:08x}", rand::random::<u32>())).await?, None)
        }
        StoreKind::Stou(Some(arg)) => {
            let p = a.resolve(arg)?;
            let (dir, base) = (p.parent(), p.file_name().unwrap_or("file").to_string());
            (unique_name(a, &dir, &base).await?, Some(arg))
        }
        StoreKind::Stor(arg) | StoreKind::Appe(arg) => (a.resolve(arg)?, Some(arg)),
    };
    let shown = arg.unwrap_or(path.as_str()).to_string();
    let offset = a.take_rest();
    // A segment of a segmented upload in progress (SITE SEGMENT BEGIN): written at its offset
    // into the upload's temporary; nothing else may write the file meanwhile.
    if let Some(seg) = cx.shared.limit_state.segments.get(&a.user.name, &path) {
        if !matches!(kind, StoreKind::Stor(_)) {
            return Err(replies::segmented_in_progress(&shown));
        }
        if offset > seg.size {
            return Err(replies::rest_beyond_end(offset, seg.size));
        }
        if cx.xfer.repr == Repr::Ascii {
            // Offsets count bytes as stored: ASCII conversion would move every segment.
            return Err(replies::segments_need_binary());
        }
        let upload = seg
            .storage
            .write(&seg.temp, WriteMode::Segment(offset))
            .await
            .map_err(|e| replies::storage_error(&e, &shown))?;
        seg.touch();
        let ascii = cx.xfer.repr == Repr::Ascii;
        let segment = Some(transfer::Segment { upload: seg, offset });
        let job = Job::Receive { upload, ascii, fsync: cx.config.fsync, quota: None, verify: None, segment };
        return start(a, cx, job, "STOR", path.to_string(), Opening::Upload { ascii, shown });
    }
    let mode = match (kind, offset) {
        (StoreKind::Stou(_), _) => WriteMode::CreateNew,
        (StoreKind::Appe(_), _) => WriteMode::Append,
        (StoreKind::Stor(_), 0) => WriteMode::Replace,
        (StoreKind::Stor(_), n) => {
            if !a.storage.capabilities().offset_writes {
                return Err(replies::rest_stor_unsupported());
            }
            match a.storage.metadata(&path).await {
                Ok(m) if m.size >= n => WriteMode::At(n),
                Ok(m) => return Err(replies::rest_beyond_end(n, m.size)),
                Err(e) => return Err(replies::storage_error(&e, &shown)),
            }
        }
    };
    // With `upload.verify` hooks nothing appears under the name before their verdict.
    let verify = cx.shared.events.hooks.get().and_then(crate::hooks::Hooks::verifiers).map(|verifiers| {
        let payload = crate::hooks::Payload::verify(&a.who(cx.conn), path.as_str(), 0, std::path::Path::new(""));
        transfer::Verify { verifiers, payload, root: a.user.root.clone() }
    });
    let mode = if verify.is_some() && mode == WriteMode::Replace { WriteMode::ReplaceHidden } else { mode };
    super::segments::expire_abandoned(cx).await;
    let quota = quota_guard(a, &path, mode).await?;
    let upload = a.storage.write(&path, mode).await.map_err(|e| replies::storage_error(&e, &shown))?;
    let ascii = cx.xfer.repr == Repr::Ascii;
    let (opening, verb) = match kind {
        StoreKind::Stou(_) => (Opening::Unique { name: path.file_name().unwrap_or_default().to_string() }, "STOU"),
        StoreKind::Stor(_) => (Opening::Upload { ascii, shown }, "STOR"),
        StoreKind::Appe(_) => (Opening::Upload { ascii, shown }, "APPE"),
    };
    let job = Job::Receive { upload, ascii, fsync: cx.config.fsync, quota, verify, segment: None };
    start(a, cx, job, verb, path.to_string(), opening)
}

/// 552 when a new file (`old_len` none) would pass the account's file quota.
pub(super) async fn check_file_quota(
    a: &Account,
    ledger: &Arc<dyn crate::limits::QuotaLedger>,
    old_len: Option<u64>,
) -> Result<(), Reply> {
    if let (Some(max), None) = (ledger.quota_files(), old_len) {
        match ledger.usage().await {
            Ok(now) if now.files >= max => return Err(replies::quota_files_exceeded(max)),
            Ok(_) => {}
            // Logged in already: the upload goes on, and is counted when the store is back.
            Err(e) => tracing::warn!(user = %a.user.name, error = %e, "file quota not checked"),
        }
    }
    Ok(())
}

/// The quota bookkeeping for an upload, or 552 when the account already has all the files it
/// may have.
async fn quota_guard(
    a: &Account,
    path: &VirtualPath,
    mode: WriteMode,
) -> Result<Option<Box<transfer::QuotaGuard>>, Reply> {
    let Some(ledger) = &a.usage else { return Ok(None) };
    let old_len = match a.storage.metadata(path).await {
        Ok(m) if !m.is_dir() => Some(m.size),
        _ => None,
    };
    check_file_quota(a, ledger, old_len).await?;
    // What the upload may write before it reserves anything: the bytes of the old file it
    // replaces (an append or a segment replaces none).
    let credit = match mode {
        WriteMode::Append | WriteMode::Segment(_) => 0,
        WriteMode::At(n) => old_len.unwrap_or(0).saturating_sub(n),
        WriteMode::Replace | WriteMode::ReplaceHidden | WriteMode::CreateNew => old_len.unwrap_or(0),
    };
    Ok(Some(Box::new(transfer::QuotaGuard::new(ledger.clone(), credit, old_len))))
}
