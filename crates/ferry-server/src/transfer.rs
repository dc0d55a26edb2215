//! Transfers: one future per data connection, owning its inputs and returning an [`Outcome`].
//!
//! The session polls [`run`] (with a [`DataPlan`] and a [`Job`]) from its own task; it reports
//! [`TransferEvent::Opened`] once the data connection is up (the session answers 150) and
//! [`TransferEvent::Done`] after the data connection is closed (the session answers 226, 426 or
//! 451). Binary downloads of local files use `sendfile`; everything else copies through one
//! buffer per transfer. Progress is visible to `STAT` through a shared counter.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_proto::ascii;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::datachan::{DataConnection, DataPlan, DataTlsStream};
use crate::limits::Throttle;
use crate::storage::{ReadHandle, StorageError, Upload};

/// Copy buffer size for one transfer.
const BUF: usize = 256 * 1024;
/// The pipe size and the most bytes per `splice` call for uploads spliced into a file.
const SPLICE_CHUNK: usize = 1 << 20;
/// Bytes of a spliced upload read before the splice starts: an upload no larger ends without one.
const HEAD: usize = 64 * 1024;
/// Bytes handed to the storage at a time by binary uploads.
const RECEIVE_CHUNK: usize = 1 << 20;
/// Bytes per `sendfile` call: 512 KiB kept curl, lftp and a 1 MiB reader fastest here (1 and
/// 4 MiB, and 256 KiB, were measured too; docs/performance.md).
const SENDFILE_CHUNK: usize = 512 << 10;

/// What a transfer does once its data connection is open.
pub enum Job {
    /// `RETR`: send a file.
    Send {
        /// The open file, at the restart offset.
        source: ReadHandle,
        /// Convert LF to CRLF (`TYPE A`).
        ascii: bool,
    },
    /// `LIST`/`NLST`/`MLSD` of a file or pattern: send prepared bytes.
    SendBytes(Vec<u8>),
    /// `LIST`/`NLST`/`MLSD` of a directory: send each page as the storage reads it.
    SendPages(std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Vec<u8>, StorageError>> + Send>>),
    /// `STOR`/`STOU`/`APPE`: receive into an upload.
    Receive {
        /// Where the bytes go.
        upload: Box<dyn Upload>,
        /// Convert CRLF to LF (`TYPE A`).
        ascii: bool,
        /// fsync before reporting success.
        fsync: bool,
        /// The account's quota, when it has one.
        quota: Option<Box<QuotaGuard>>,
        /// Verification before the upload is published, when `upload.verify` hooks are set.
        verify: Option<Verify>,
        /// A segment of a segmented upload: where it starts.
        segment: Option<Segment>,
    },
}

/// A segment of a segmented upload (`SITE SEGMENT`): recorded as received when it is whole.
#[derive(Debug)]
pub struct Segment {
    /// The segmented upload.
    pub upload: Arc<crate::segments::Segmented>,
    /// Where this segment starts.
    pub offset: u64,
}

/// Quota bookkeeping for one upload: it reserves room in the account's ledger as its bytes
/// arrive, in steps that double (a small upload reserves little, a large one asks rarely), and
/// settles what it really changed when it ends.
#[derive(Debug)]
pub struct QuotaGuard {
    ledger: Arc<dyn crate::limits::QuotaLedger>,
    /// This upload's reservation.
    id: u64,
    /// Bytes it may write without reserving: what it replaces of the old file.
    credit: u64,
    /// Bytes reserved so far.
    reserved: u64,
    /// The next reservation's size.
    step: u64,
    /// The length of the file it replaces or extends.
    old_len: Option<u64>,
    /// The ledger could not be reached (the accounts database is down): the upload goes on and
    /// is settled once it is back.
    unreserved: bool,
}

/// The first reservation of an upload; each next one doubles, up to [`RESERVE_MAX`].
const RESERVE_FIRST: u64 = 256 * 1024;
/// The largest reservation step.
const RESERVE_MAX: u64 = 64 << 20;

impl QuotaGuard {
    /// The bookkeeping of an upload that may write `credit` bytes before reserving any (what it
    /// replaces), over a file of `old_len` bytes (none: a new file).
    pub fn new(ledger: Arc<dyn crate::limits::QuotaLedger>, credit: u64, old_len: Option<u64>) -> Self {
        let credit = if ledger.quota_bytes().is_none() { u64::MAX } else { credit };
        let id = crate::limits::reservation_id();
        Self { ledger, id, credit, reserved: 0, step: RESERVE_FIRST, old_len, unreserved: false }
    }

    fn fits(&self, total: u64) -> bool {
        self.unreserved || total <= self.credit.saturating_add(self.reserved)
    }

    /// Makes room for `total` bytes in all: `NoSpace` when the quota has none left.
    async fn allow(&mut self, total: u64) -> Result<(), TransferError> {
        if self.fits(total) {
            return Ok(());
        }
        let need = total - self.credit.saturating_add(self.reserved);
        match self.ledger.reserve(self.id, need, need.max(self.step)).await {
            Ok(0) => Err(TransferError::Storage(StorageError::NoSpace)),
            Ok(granted) => {
                self.reserved += granted;
                self.step = (self.step * 2).min(RESERVE_MAX);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "quota reservation not possible: the upload goes on unreserved");
                self.unreserved = true;
                Ok(())
            }
        }
    }

    /// Whether the upload may be put in place: `false` when an older upload of the account took
    /// its room (it is then undone).
    async fn confirm(&self) -> bool {
        if self.reserved == 0 || self.unreserved {
            return true;
        }
        match self.ledger.confirm(self.id).await {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(error = %e, "quota reservation not confirmed: the upload is kept");
                true
            }
        }
    }

    /// The upload is in place with `len` bytes: the usage changes by what it added.
    async fn committed(self: Box<Self>, len: u64) {
        let (bytes, files) = (len as i64 - self.old_len.unwrap_or(0) as i64, i64::from(self.old_len.is_none()));
        self.settle(bytes, files).await;
    }

    /// The upload was undone: its reservation is given back.
    async fn undone(self: Box<Self>) {
        self.settle(0, 0).await;
    }

    async fn settle(self: Box<Self>, bytes: i64, files: i64) {
        crate::limits::settle(&self.ledger, self.id, bytes, files).await;
    }
}

/// How much an upload may still write: the room of its segment, and its account's quota.
#[derive(Debug, Default)]
struct Budget {
    /// A segment may not reach past the size announced for the whole.
    room: Option<u64>,
    quota: Option<Box<QuotaGuard>>,
}

impl Budget {
    /// Whether `total` bytes fit without asking anyone.
    fn fits(&self, total: u64) -> bool {
        self.room.is_none_or(|r| total <= r) && self.quota.as_ref().is_none_or(|q| q.fits(total))
    }

    /// Makes room for `total` bytes, or says there is none (552, and the upload is undone).
    async fn allow(&mut self, total: u64) -> Result<(), TransferError> {
        if self.room.is_some_and(|r| total > r) {
            return Err(TransferError::Storage(StorageError::NoSpace));
        }
        match &mut self.quota {
            Some(q) => q.allow(total).await,
            None => Ok(()),
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The data connection could not be opened.
    #[error("cannot open data connection: {0}")]
    Connect(io::Error),
    /// `ABOR` or the end of the session.
    #[error("aborted")]
    Aborted,
    /// The data connection failed or stalled.
    #[error("data connection: {0}")]
    Data(io::Error),
    /// Reading or writing the file failed.
    #[error("storage: {0}")]
    Storage(StorageError),
    /// The data connection's TLS handshake failed.
    #[error("data connection TLS: {0}")]
    Tls(String),
    /// The data connection's TLS handshake did not resume a session of this control connection,
    /// and that is required.
    #[error("data connection TLS: did not resume the control connection's session")]
    NotResumed,
    /// An `upload.verify` hook rejected the upload (it is quarantined).
    #[error("rejected by the verify hook: {0}")]
    Rejected(String),
    /// An `upload.verify` hook could not decide (it is quarantined).
    #[error("not verified: {0}")]
    Unverified(String),
}

/// An upload's verification before it is published (`upload.verify` hooks).
#[derive(Debug)]
pub struct Verify {
    /// The hooks.
    pub verifiers: Arc<crate::hooks::Verifiers>,
    /// What they are told (size and local path are filled in when the bytes are staged).
    pub payload: crate::hooks::Payload,
    /// The user's root on the local filesystem.
    pub root: std::path::PathBuf,
}

impl Verify {
    /// Stages the upload, asks the hooks, then publishes it or quarantines it. The final length.
    async fn commit(self, upload: Box<dyn Upload>, last: Vec<u8>, fsync: bool) -> Result<u64, TransferError> {
        let staged = upload.stage(last, fsync).await.map_err(TransferError::Storage)?;
        let mut payload = self.payload;
        payload.bytes = Some(staged.size());
        payload.local_path = Some(self.root.join(staged.path()).display().to_string());
        let (quarantine, error) = match self.verifiers.check(&payload).await {
            crate::hooks::Verdict::Accepted => return staged.publish(fsync).await.map_err(TransferError::Storage),
            crate::hooks::Verdict::Rejected { reason, quarantine } => (quarantine, TransferError::Rejected(reason)),
            crate::hooks::Verdict::Undecided { reason, quarantine } => (quarantine, TransferError::Unverified(reason)),
        };
        // `SECONDS-USER-NAME-RANDOM`: sortable, and never a name a client chose alone.
        let file = payload.path.as_deref().and_then(|p| p.rsplit('/').next()).unwrap_or("upload");
        let safe = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).take(80).collect()
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let name = format!("{now}-{}-{}-{:08x}", safe(&payload.user), safe(file), rand::random::<u32>());
        match staged.quarantine(&quarantine, &name).await {
            Ok(()) => tracing::warn!(
                user = %payload.user,
                path = payload.path.as_deref().unwrap_or_default(),
                quarantined = %quarantine.join(&name).display(),
                "upload not published: {error}"
            ),
            Err(e) => tracing::error!(
                user = %payload.user,
                path = payload.path.as_deref().unwrap_or_default(),
                "upload not published ({error}) and not quarantined either (removed): {e}"
            ),
        }
        Err(error)
    }
}

/// A data connection: plain TCP (which may use `sendfile`) or TLS.
pub trait DataIo: AsyncRead + AsyncWrite + Unpin + Send {
    /// The TCP socket when nothing sits between it and the file (zero-copy possible).
    fn plain_tcp(&self) -> Option<&TcpStream>;
}

impl DataIo for TcpStream {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl DataIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        None
    }
}

/// TLS for a protected data connection.
#[derive(Debug, Clone)]
pub struct DataTls {
    /// The control connection's per-session configuration (its session cache), sending no
    /// TLS 1.3 ticket: for uploads.
    pub config: Arc<rustls::ServerConfig>,
    /// The same with one TLS 1.3 ticket, for any data connection not known to be an upload's
    /// when its handshake begins (see [`crate::tls::SessionTls`]).
    pub download: Arc<rustls::ServerConfig>,
    /// The transfer's direction once its command has come (`false`: an upload); shared with the
    /// passive listener that accepts ahead of the command.
    pub direction: Arc<std::sync::OnceLock<bool>>,
    /// Refuse handshakes that do not resume a session of this control connection.
    pub require_reuse: bool,
    /// Handshake time limit.
    pub timeout: Duration,
}

/// How a transfer ended.
#[derive(Debug)]
pub struct Outcome {
    /// Bytes moved over the data connection.
    pub bytes: u64,
    /// How long it took from the data connection's opening.
    pub elapsed: Duration,
    /// Success, or why not.
    pub result: Result<(), TransferError>,
}

/// Events from a transfer to its session.
#[derive(Debug)]
pub enum TransferEvent {
    /// The data connection is open, between these ends.
    Opened(crate::datachan::DataEnds),
    /// The transfer is over and the data connection closed.
    Done(Outcome),
    /// A job without a data connection (a digest) is over: its reply.
    Answered(ferry_proto::Reply),
}

/// Runs one transfer to the end.
pub async fn run(
    plan: DataPlan,
    tls: Option<DataTls>,
    rate: Option<u64>,
    job: Job,
    progress: Arc<AtomicU64>,
    cancel: CancellationToken,
    events: mpsc::Sender<TransferEvent>,
) {
    let timeout = plan.timeout;
    let stream = tokio::select! {
        r = plan.open() => r,
        () = cancel.cancelled() => Err(io::Error::new(io::ErrorKind::Interrupted, "aborted")),
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            let result = if cancel.is_cancelled() { TransferError::Aborted } else { TransferError::Connect(e) };
            fail(job, result, &events).await;
            return;
        }
    };
    // 150 goes out before the data TLS handshake: most clients start it only after the 1xx reply.
    let _ = events.send(TransferEvent::Opened(stream.ends())).await;
    let started = Instant::now();
    let result = match (stream, tls) {
        (DataConnection::Tcp(s), None) => run_job(s, job, rate, &progress, &cancel, timeout).await,
        (DataConnection::Tcp(s), Some(tls)) => {
            protected(accept_data_tls(s, &tls), job, rate, &progress, &cancel, timeout).await
        }
        // Accepted when the client connected, its handshake maybe done already.
        (DataConnection::Tls(early), _) => {
            let finish = async move {
                match tokio::time::timeout(timeout, early.finish()).await {
                    Ok(r) => r,
                    Err(_) => Err(TransferError::Tls("handshake timed out".into())),
                }
            };
            protected(finish, job, rate, &progress, &cancel, timeout).await
        }
    };
    let outcome = Outcome { bytes: progress.load(Ordering::Relaxed), elapsed: started.elapsed(), result };
    let _ = events.send(TransferEvent::Done(outcome)).await;
}

/// Runs `job` once `handshake` gives the protected stream.
async fn protected(
    handshake: impl std::future::Future<Output = Result<DataTlsStream, TransferError>>,
    job: Job,
    rate: Option<u64>,
    progress: &Arc<AtomicU64>,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Result<(), TransferError> {
    let accepted = tokio::select! {
        r = handshake => r,
        () = cancel.cancelled() => Err(TransferError::Aborted),
    };
    match accepted {
        Ok(s) => run_job(s, job, rate, progress, cancel, timeout).await,
        Err(e) => {
            abandon(job).await;
            Err(e)
        }
    }
}

async fn abandon(job: Job) {
    if let Job::Receive { upload, .. } = job {
        upload.abort().await;
    }
}

async fn fail(job: Job, e: TransferError, events: &mpsc::Sender<TransferEvent>) {
    abandon(job).await;
    let _ = events.send(TransferEvent::Done(Outcome { bytes: 0, elapsed: Duration::ZERO, result: Err(e) })).await;
}

/// Runs the server side of a data connection's TLS handshake, and refuses a session that did not
/// resume one of this control connection's when reuse is required.
pub(crate) async fn accept_data_tls(stream: TcpStream, tls: &DataTls) -> Result<DataTlsStream, TransferError> {
    // The configuration is chosen once the ClientHello is in: by then a client that sends its
    // command first has had its 150, so the direction is known (see `DataTls::direction`).
    let accept = async {
        let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
        let config = if tls.direction.get() == Some(&false) { &tls.config } else { &tls.download };
        start.into_stream(config.clone()).await
    };
    let s = match tokio::time::timeout(tls.timeout, accept).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(TransferError::Tls(format!("handshake failed: {e}"))),
        Err(_) => return Err(TransferError::Tls("handshake timed out".into())),
    };
    let kind = s.get_ref().1.handshake_kind();
    if tls.require_reuse && kind != Some(rustls::HandshakeKind::Resumed) {
        tracing::warn!("refused a protected data connection that did not resume the control connection's TLS session");
        return Err(TransferError::NotResumed);
    }
    Ok(s)
}

async fn run_job<S: DataIo>(
    mut stream: S,
    job: Job,
    rate: Option<u64>,
    progress: &Arc<AtomicU64>,
    cancel: &CancellationToken,
    timeout: Duration,
) -> Result<(), TransferError> {
    match job {
        Job::Send { source, ascii } => {
            let r = tokio::select! {
                r = send(&mut stream, source, ascii, rate, progress, timeout) => r,
                () = cancel.cancelled() => Err(TransferError::Aborted),
            };
            finish_send(stream, r, timeout).await
        }
        Job::SendBytes(bytes) => {
            let r = tokio::select! {
                r = write_timed(&mut stream, &bytes, timeout) => r.map(|()| {
                    progress.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }),
                () = cancel.cancelled() => Err(TransferError::Aborted),
            };
            finish_send(stream, r, timeout).await
        }
        Job::SendPages(mut pages) => {
            let r = tokio::select! {
                r = async {
                    use futures_util::StreamExt as _;
                    while let Some(page) = pages.next().await {
                        let page = page.map_err(TransferError::Storage)?;
                        write_timed(&mut stream, &page, timeout).await?;
                        progress.fetch_add(page.len() as u64, Ordering::Relaxed);
                    }
                    Ok(())
                } => r,
                () = cancel.cancelled() => Err(TransferError::Aborted),
            };
            finish_send(stream, r, timeout).await
        }
        Job::Receive { mut upload, ascii, fsync, quota, verify, segment } => {
            // A segment may not reach past the size announced for the whole.
            let room = segment.as_ref().map(|s| s.upload.size.saturating_sub(s.offset));
            let mut budget = Budget { room, quota };
            let splice = match stream.plain_tcp() {
                Some(_) if !ascii && rate.is_none() => upload.splice_target(),
                _ => None,
            };
            let r = match splice {
                Some(file) => {
                    // What has arrived is read first: a small upload ends here, and the storage
                    // writes it as it commits, with no pipe and no thread of its own.
                    let head = tokio::select! {
                        r = read_head(&mut stream, &mut budget, progress, timeout) => r,
                        () = cancel.cancelled() => Err(TransferError::Aborted),
                    };
                    match head {
                        Ok((head, true)) => Ok(head),
                        Ok((head, false)) => match stream.plain_tcp() {
                            Some(tcp) => {
                                upload.splicing();
                                let spliced = splice_in(
                                    tcp,
                                    file,
                                    head,
                                    std::mem::take(&mut budget),
                                    progress.clone(),
                                    timeout,
                                    cancel.clone(),
                                )
                                .await;
                                let r;
                                (r, budget) = spliced;
                                r.map(|()| Vec::new())
                            }
                            None => Err(TransferError::Data(io::Error::other("data connection is not plain TCP"))),
                        },
                        Err(e) => Err(e),
                    }
                }
                None => tokio::select! {
                    r = receive(&mut stream, &mut *upload, ascii, rate, &mut budget, progress, timeout) => r,
                    () = cancel.cancelled() => Err(TransferError::Aborted),
                },
            };
            if r.is_ok() {
                // Answer the client's close: TLS close_notify (clients such as Python's ftplib wait
                // for it), FIN on plain TCP.
                let _ = tokio::time::timeout(timeout, stream.shutdown()).await;
            }
            drop(stream);
            let quota = budget.quota;
            let r = match (r, &quota) {
                (Ok(_), Some(q)) if !q.confirm().await => Err(TransferError::Storage(StorageError::NoSpace)),
                (r, _) => r,
            };
            match r {
                Ok(last) => {
                    let finished = match verify {
                        None => upload.finish(last, fsync).await.map_err(TransferError::Storage),
                        Some(v) => v.commit(upload, last, fsync).await,
                    };
                    let len = match finished {
                        Ok(len) => len,
                        Err(e) => {
                            if let Some(q) = quota {
                                q.undone().await;
                            }
                            return Err(e);
                        }
                    };
                    if let Some(s) = segment {
                        // The file's length is where the furthest write ended, not this
                        // segment's: the bytes received are what `progress` counted.
                        let received = progress.load(std::sync::atomic::Ordering::Relaxed);
                        s.upload.received(s.offset, s.offset + received);
                    }
                    if let Some(q) = quota {
                        q.committed(len).await;
                    }
                    Ok(())
                }
                Err(TransferError::Storage(StorageError::NoSpace)) => {
                    // Over quota: undo the upload entirely, so nothing else is lost.
                    upload.discard().await;
                    if let Some(q) = quota {
                        q.undone().await;
                    }
                    Err(TransferError::Storage(StorageError::NoSpace))
                }
                Err(e) => {
                    upload.abort().await;
                    if let Some(q) = quota {
                        // Kept bytes of an aborted upload (REST resumes them) count; the rest of
                        // the reservation comes back.
                        q.undone().await;
                    }
                    Err(e)
                }
            }
        }
    }
}

/// Closes a sending data connection: FIN after the last byte, so the client sees the end of the
/// file before it reads the 226.
async fn finish_send<S: DataIo>(
    mut stream: S,
    r: Result<(), TransferError>,
    timeout: Duration,
) -> Result<(), TransferError> {
    if r.is_ok() {
        match tokio::time::timeout(timeout, stream.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(TransferError::Data(e)),
            Err(_) => return Err(TransferError::Data(io::ErrorKind::TimedOut.into())),
        }
    }
    r
}

async fn write_timed(
    stream: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), TransferError> {
    match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
        Ok(r) => r.map_err(TransferError::Data),
        Err(_) => Err(TransferError::Data(io::ErrorKind::TimedOut.into())),
    }
}

async fn read_timed(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8], timeout: Duration) -> Result<usize, io::Error> {
    match tokio::time::timeout(timeout, r.read(buf)).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

async fn send<S: DataIo>(
    stream: &mut S,
    source: ReadHandle,
    ascii: bool,
    rate: Option<u64>,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(), TransferError> {
    let mut throttle = rate.map(Throttle::new);
    match source {
        ReadHandle::File(file) if !ascii && stream.plain_tcp().is_some() => {
            let file = file.into_std().await;
            match stream.plain_tcp() {
                Some(tcp) => sendfile_all(tcp, &file, throttle.as_mut(), progress, timeout).await,
                None => Ok(()),
            }
        }
        ReadHandle::File(file) => copy_out(stream, file, ascii, throttle.as_mut(), progress, timeout).await,
        ReadHandle::Stream(s) => copy_out(stream, s, ascii, throttle.as_mut(), progress, timeout).await,
    }
}

/// Zero-copy send of the rest of a file with `sendfile(2)`.
async fn sendfile_all(
    stream: &TcpStream,
    file: &std::fs::File,
    throttle: Option<&mut Throttle>,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(), TransferError> {
    let chunk = throttle.as_ref().map(|t| t.chunk()).unwrap_or(SENDFILE_CHUNK);
    // Not corked: with TCP_CORK and 4 MiB per call, curl read at half the speed (each GiB cost
    // it twice the CPU to receive; docs/performance.md, issue 19).
    sendfile_loop(stream, file, throttle, progress, timeout, chunk).await
}

async fn sendfile_loop(
    stream: &TcpStream,
    file: &std::fs::File,
    mut throttle: Option<&mut Throttle>,
    progress: &AtomicU64,
    timeout: Duration,
    chunk: usize,
) -> Result<(), TransferError> {
    loop {
        let once = async {
            loop {
                stream.writable().await?;
                match stream.try_io(Interest::WRITABLE, || {
                    rustix::fs::sendfile(stream, file, None, chunk).map_err(io::Error::from)
                }) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        let n = match tokio::time::timeout(timeout, once).await {
            Ok(Ok(n)) => n,
            // EINVAL/ENOSYS: a file sendfile cannot read (procfs, some FUSE): not expected under a
            // root we serve, reported as a storage error.
            Ok(Err(e)) if matches!(e.raw_os_error(), Some(22) | Some(38)) => {
                return Err(TransferError::Storage(StorageError::Io(e)))
            }
            Ok(Err(e)) => return Err(TransferError::Data(e)),
            Err(_) => return Err(TransferError::Data(io::ErrorKind::TimedOut.into())),
        };
        if n == 0 {
            return Ok(());
        }
        progress.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(t) = throttle.as_deref_mut() {
            t.pace(n as u64).await;
        }
    }
}

async fn copy_out<S: DataIo>(
    stream: &mut S,
    mut source: impl AsyncRead + Unpin,
    ascii: bool,
    mut throttle: Option<&mut Throttle>,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(), TransferError> {
    let mut buf = vec![0u8; throttle.as_ref().map(|t| t.chunk()).unwrap_or(BUF)];
    let mut conv = ascii::ToWire::new();
    let mut out = Vec::new();
    loop {
        let n = source.read(&mut buf).await.map_err(|e| TransferError::Storage(StorageError::Io(e)))?;
        if n == 0 {
            return Ok(());
        }
        if ascii {
            out.clear();
            conv.convert(&buf[..n], &mut out);
            write_timed(stream, &out, timeout).await?;
            progress.fetch_add(out.len() as u64, Ordering::Relaxed);
        } else {
            write_timed(stream, &buf[..n], timeout).await?;
            progress.fetch_add(n as u64, Ordering::Relaxed);
        }
        if let Some(t) = throttle.as_deref_mut() {
            t.pace(n as u64).await;
        }
    }
}

async fn receive<S: DataIo>(
    stream: &mut S,
    upload: &mut dyn Upload,
    ascii: bool,
    rate: Option<u64>,
    budget: &mut Budget,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<Vec<u8>, TransferError> {
    let mut throttle = rate.map(Throttle::new);
    if !ascii && throttle.is_none() {
        return receive_binary(stream, upload, budget, progress, timeout).await;
    }
    let mut buf = vec![0u8; throttle.as_ref().map(|t| t.chunk()).unwrap_or(BUF)];
    let mut conv = ascii::FromWire::new();
    let mut out = Vec::new();
    let mut total = 0u64;
    loop {
        let n = read_timed(stream, &mut buf, timeout).await.map_err(TransferError::Data)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if !budget.fits(total) {
            budget.allow(total).await?;
        }
        progress.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(t) = throttle.as_mut() {
            t.pace(n as u64).await;
        }
        let data = if ascii {
            out.clear();
            conv.convert(&buf[..n], &mut out);
            &out[..]
        } else {
            &buf[..n]
        };
        upload.write_all(data).await.map_err(|e| TransferError::Storage(e.into()))?;
    }
    if ascii {
        out.clear();
        conv.finish(&mut out);
        upload.write_all(&out).await.map_err(|e| TransferError::Storage(e.into()))?;
    }
    Ok(Vec::new())
}

/// Binary upload without a rate limit: the socket fills one chunk while the storage writes the
/// previous one (handed over, not copied). Returns the last, partial chunk, which the storage
/// writes as it commits (a small file: one step).
async fn receive_binary<S: DataIo>(
    stream: &mut S,
    upload: &mut dyn Upload,
    budget: &mut Budget,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<Vec<u8>, TransferError> {
    let mut buf = Vec::with_capacity(RECEIVE_CHUNK);
    let mut total = 0u64;
    while !fill(stream, &mut buf, &mut total, budget, progress, timeout).await? {
        buf = upload.write_owned(buf).await.map_err(|e| TransferError::Storage(e.into()))?;
        buf.clear();
        buf.reserve(RECEIVE_CHUNK);
    }
    Ok(buf)
}

/// Reads the start of an upload, up to [`HEAD`] bytes; `true` with it when that was all of it.
async fn read_head<S: DataIo>(
    stream: &mut S,
    budget: &mut Budget,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(Vec<u8>, bool), TransferError> {
    let mut head = Vec::with_capacity(HEAD);
    let eof = fill(stream, &mut head, &mut 0, budget, progress, timeout).await?;
    Ok((head, eof))
}

/// Reads into `buf` until it is full (`false`) or the data connection ends (`true`), counting
/// the bytes in `total` against the `budget` and in `progress`.
async fn fill<S: DataIo>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    total: &mut u64,
    budget: &mut Budget,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<bool, TransferError> {
    while buf.len() < buf.capacity() {
        let n = match tokio::time::timeout(timeout, stream.read_buf(buf)).await {
            Ok(r) => r.map_err(TransferError::Data)?,
            Err(_) => return Err(TransferError::Data(io::ErrorKind::TimedOut.into())),
        };
        *total += n as u64;
        if !budget.fits(*total) {
            budget.allow(*total).await?;
        }
        progress.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Binary upload from plain TCP straight into a local file with `splice(2)`, socket -> pipe ->
/// file, on one blocking thread: the bytes never enter this process's memory. `head`, already
/// read from the socket, is written first. The budget comes back with the result.
async fn splice_in(
    tcp: &TcpStream,
    file: Arc<std::fs::File>,
    head: Vec<u8>,
    mut budget: Budget,
    progress: Arc<AtomicU64>,
    timeout: Duration,
    cancel: CancellationToken,
) -> (Result<(), TransferError>, Budget) {
    // Its own descriptor: the thread may outlive this future if the session is dropped.
    let sock = match rustix::io::dup(tcp) {
        Ok(sock) => sock,
        Err(e) => return (Err(TransferError::Data(e.into())), budget),
    };
    let rt = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let r = splice_loop(&sock, &file, head, &mut budget, &rt, &progress, timeout, &cancel);
        (r, budget)
    });
    match task.await {
        Ok(done) => done,
        Err(e) => (Err(TransferError::Storage(StorageError::Io(io::Error::other(e)))), Budget::default()),
    }
}

/// The loop of [`splice_in`], on its blocking thread (`rt` asks the quota ledger for room).
#[allow(clippy::too_many_arguments, reason = "the loop's whole state, handed over from splice_in")]
fn splice_loop(
    sock: &rustix::fd::OwnedFd,
    file: &std::fs::File,
    head: Vec<u8>,
    budget: &mut Budget,
    rt: &tokio::runtime::Handle,
    progress: &AtomicU64,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), TransferError> {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::pipe::{splice, SpliceFlags};
    let storage = |e: rustix::io::Errno| TransferError::Storage(io::Error::from(e).into());
    {
        use std::io::Write as _;
        (&*file).write_all(&head).map_err(|e| TransferError::Storage(e.into()))?;
    }
    let mut total = head.len() as u64;
    drop(head);
    let (pipe_r, pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(storage)?;
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe_w, SPLICE_CHUNK);
    let tick = rustix::time::Timespec { tv_sec: 0, tv_nsec: 200_000_000 };
    let mut idle_since = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return Err(TransferError::Aborted);
        }
        let n = match splice(sock, None, &pipe_w, None, SPLICE_CHUNK, SpliceFlags::MOVE | SpliceFlags::NONBLOCK) {
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {
                if idle_since.elapsed() > timeout {
                    return Err(TransferError::Data(io::ErrorKind::TimedOut.into()));
                }
                let mut fds = [PollFd::new(sock, PollFlags::IN)];
                poll(&mut fds, Some(&tick)).map_err(|e| TransferError::Data(e.into()))?;
                continue;
            }
            Err(e) => return Err(TransferError::Data(e.into())),
        };
        if n == 0 {
            return Ok(());
        }
        idle_since = Instant::now();
        total += n as u64;
        if !budget.fits(total) {
            rt.block_on(budget.allow(total))?;
        }
        let mut left = n;
        while left > 0 {
            left -= splice(&pipe_r, None, file, None, left, SpliceFlags::MOVE).map_err(storage)?;
        }
        progress.fetch_add(n as u64, Ordering::Relaxed);
    }
}
