//! Transfers: one task per data connection, owning its inputs and returning an [`Outcome`].
//!
//! The session spawns [`run`] with a [`DataPlan`] and a [`Job`]; the task reports
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

use crate::datachan::DataPlan;
use crate::storage::{ReadHandle, StorageError, Upload};

/// Copy buffer size for one transfer.
const BUF: usize = 256 * 1024;
/// Bytes per `sendfile` call.
const SENDFILE_CHUNK: usize = 4 << 20;

/// What a transfer does once its data connection is open.
pub enum Job {
    /// `RETR`: send a file.
    Send {
        /// The open file, at the restart offset.
        source: ReadHandle,
        /// Convert LF to CRLF (`TYPE A`).
        ascii: bool,
    },
    /// `LIST`/`NLST`/`MLSD`: send prepared bytes.
    SendBytes(Vec<u8>),
    /// `STOR`/`STOU`/`APPE`: receive into an upload.
    Receive {
        /// Where the bytes go.
        upload: Box<dyn Upload>,
        /// Convert CRLF to LF (`TYPE A`).
        ascii: bool,
        /// fsync before reporting success.
        fsync: bool,
    },
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

/// Events from a transfer task to its session.
#[derive(Debug)]
pub enum TransferEvent {
    /// The data connection is open.
    Opened,
    /// The transfer is over and the data connection closed.
    Done(Outcome),
}

/// Runs one transfer to the end.
pub async fn run(
    plan: DataPlan,
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
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            if let Job::Receive { upload, .. } = job {
                upload.abort().await;
            }
            let result = if cancel.is_cancelled() { TransferError::Aborted } else { TransferError::Connect(e) };
            let _ = events
                .send(TransferEvent::Done(Outcome { bytes: 0, elapsed: Duration::ZERO, result: Err(result) }))
                .await;
            return;
        }
    };
    let _ = events.send(TransferEvent::Opened).await;
    let started = Instant::now();
    let result = match job {
        Job::Send { source, ascii } => {
            let r = tokio::select! {
                r = send(&mut stream, source, ascii, &progress, timeout) => r,
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
        Job::Receive { mut upload, ascii, fsync } => {
            let r = tokio::select! {
                r = receive(&mut stream, &mut *upload, ascii, &progress, timeout) => r,
                () = cancel.cancelled() => Err(TransferError::Aborted),
            };
            drop(stream);
            match r {
                Ok(()) => upload.commit(fsync).await.map(|_| ()).map_err(TransferError::Storage),
                Err(e) => {
                    upload.abort().await;
                    Err(e)
                }
            }
        }
    };
    let outcome = Outcome { bytes: progress.load(Ordering::Relaxed), elapsed: started.elapsed(), result };
    let _ = events.send(TransferEvent::Done(outcome)).await;
}

/// Closes a sending data connection: FIN after the last byte, so the client sees the end of the
/// file before it reads the 226.
async fn finish_send(
    mut stream: TcpStream,
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

async fn send(
    stream: &mut TcpStream,
    source: ReadHandle,
    ascii: bool,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(), TransferError> {
    match source {
        ReadHandle::File(file) if !ascii => {
            let file = file.into_std().await;
            sendfile_all(stream, &file, progress, timeout).await
        }
        ReadHandle::File(file) => copy_out(stream, file, ascii, progress, timeout).await,
        ReadHandle::Stream(s) => copy_out(stream, s, ascii, progress, timeout).await,
    }
}

/// Zero-copy send of the rest of a file with `sendfile(2)`.
async fn sendfile_all(
    stream: &TcpStream,
    file: &std::fs::File,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(), TransferError> {
    loop {
        let once = async {
            loop {
                stream.writable().await?;
                match stream.try_io(Interest::WRITABLE, || {
                    rustix::fs::sendfile(stream, file, None, SENDFILE_CHUNK).map_err(io::Error::from)
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
    }
}

async fn copy_out(
    stream: &mut TcpStream,
    mut source: impl AsyncRead + Unpin,
    ascii: bool,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(), TransferError> {
    let mut buf = vec![0u8; BUF];
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
    }
}

async fn receive(
    stream: &mut TcpStream,
    upload: &mut dyn Upload,
    ascii: bool,
    progress: &AtomicU64,
    timeout: Duration,
) -> Result<(), TransferError> {
    let mut buf = vec![0u8; BUF];
    let mut conv = ascii::FromWire::new();
    let mut out = Vec::new();
    loop {
        let n = read_timed(stream, &mut buf, timeout).await.map_err(TransferError::Data)?;
        if n == 0 {
            break;
        }
        progress.fetch_add(n as u64, Ordering::Relaxed);
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
    Ok(())
}
