//! Running out of file descriptors (`EMFILE`, `ENFILE`) without spinning, without dying, and
//! without leaving clients to time out.
//!
//! Every session and transfer is a descriptor; when the process or the system has none left,
//! `accept` fails while the connection waits in the kernel's backlog, readable forever. The server
//! keeps one descriptor in reserve (`/dev/null`): on exhaustion it gives that one up, accepts the
//! waiting connection, tells it `421` and closes it, then takes the reserve back. The condition is
//! logged at most once a second, and service resumes by itself when descriptors are free again.

use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::replies::{self, Refusal};

/// The reserve descriptor, and when exhaustion was last logged.
#[derive(Debug)]
pub(crate) struct Descriptors {
    reserve: Mutex<Option<std::fs::File>>,
    started: Instant,
    /// Milliseconds after `started` of the last warning.
    last_warning: AtomicU64,
}

impl Descriptors {
    /// Takes the reserve descriptor.
    pub(crate) fn new() -> Self {
        Self { reserve: Mutex::new(open_reserve()), started: Instant::now(), last_warning: AtomicU64::new(0) }
    }

    /// Logs `what` (a warning) unless one was logged less than a second ago.
    pub(crate) fn warn(&self, what: &'static str, error: &io::Error) {
        let now = self.started.elapsed().as_millis() as u64 + 1000;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self.last_warning.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(%error, "{what} (this is logged at most once a second)");
        }
    }

    /// After `accept` failed with `EMFILE`/`ENFILE` on `listener`: refuses the waiting connection
    /// with the reserve descriptor, so its client gets `421` now instead of a timeout later.
    pub(crate) async fn refuse_one(&self, listener: &TcpListener, error: &io::Error) {
        self.warn("out of file descriptors: refusing connections with 421", error);
        {
            let mut reserve = self.reserve.lock().unwrap_or_else(|p| p.into_inner());
            drop(reserve.take());
            // The listener is non-blocking: this takes a waiting connection or returns at once.
            if let Ok((stream, _)) = socket2::SockRef::from(listener).accept() {
                let mut stream = std::net::TcpStream::from(stream);
                let _ = stream.write_all(&replies::refused(Refusal::OutOfDescriptors).encode());
            }
            *reserve = open_reserve();
        }
        // Whatever happened, give the descriptors a moment to come back.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether an error means the process or the system is out of descriptors.
pub(crate) fn exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error())
}

fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}
