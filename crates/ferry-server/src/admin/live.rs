//! The sessions open now: who, from where, since when, doing what. Filled by the sessions
//! themselves (each registers on start through a [`Listed`] guard that removes it on drop) and by
//! events (login, transfer start and end); read by `GET /api/v1/sessions` and `ferry who`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::events::{Direction, Event};

/// A transfer in progress, as the registry keeps it.
#[derive(Debug)]
struct Running {
    verb: String,
    path: String,
    started: Instant,
    progress: Arc<AtomicU64>,
    size: Option<u64>,
    cancel: CancellationToken,
}

/// One session.
#[derive(Debug)]
struct Entry {
    peer: SocketAddr,
    since: SystemTime,
    opened: Instant,
    user: Option<String>,
    running: Option<Running>,
    /// Cancelled to disconnect the session (`DELETE /api/v1/sessions/{id}`, `ferry kick`).
    kick: CancellationToken,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Live {
    sessions: Mutex<BTreeMap<u64, Entry>>,
}

/// A session's place in the registry; removes it when dropped.
#[derive(Debug)]
pub(crate) struct Listed {
    shared: Arc<crate::server::Shared>,
    id: u64,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.shared.events.live.lock().remove(&self.id);
    }
}

/// A transfer, as `GET /api/v1/sessions` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct TransferView {
    /// `RETR`, `STOR`, `LIST`, ...
    pub verb: String,
    /// The path in the user's view.
    pub path: String,
    /// Bytes moved so far.
    pub bytes: u64,
    /// Bytes to send, when known.
    pub size: Option<u64>,
    /// Seconds since it started.
    pub secs: f64,
    /// Average rate so far, bytes per second.
    pub rate_bps: u64,
    /// Seconds left at that rate, when the size is known.
    pub eta_secs: Option<f64>,
}

/// A session, as `GET /api/v1/sessions` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionView {
    /// The id in the log's `session{id}`.
    pub id: u64,
    /// Logged in as, or the name given to USER; `null` before.
    pub user: Option<String>,
    /// The client's address and port.
    pub address: String,
    /// When it connected (RFC 3339, UTC).
    pub since: String,
    /// Seconds connected.
    pub secs: f64,
    /// `transferring` or `idle`.
    pub state: String,
    /// The transfer under way.
    pub transfer: Option<TransferView>,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds session `id`; it stays listed as long as the guard lives. `kick` disconnects it.
    pub(crate) fn register(
        shared: &Arc<crate::server::Shared>,
        id: u64,
        peer: SocketAddr,
        kick: CancellationToken,
    ) -> Listed {
        let entry = Entry { peer, since: SystemTime::now(), opened: Instant::now(), user: None, running: None, kick };
        shared.events.live.lock().insert(id, entry);
        Listed { shared: shared.clone(), id }
    }

    /// Follows `event`.
    pub fn record(&self, event: &Event<'_>) {
        match event {
            Event::LoginOk(who) | Event::LoginFailed(who, _) => {
                if let Some(e) = self.lock().get_mut(&who.id) {
                    e.user = who.user.map(str::to_owned);
                }
            }
            Event::TransferStarted(who, t) => {
                if let Some(e) = self.lock().get_mut(&who.id) {
                    e.running = Some(Running {
                        verb: t.verb.to_owned(),
                        path: t.path.to_owned(),
                        started: Instant::now(),
                        progress: t.progress.clone(),
                        size: t.size.filter(|_| t.direction == Direction::Download),
                        cancel: t.cancel.clone(),
                    });
                }
            }
            Event::Transfer(who, _) => {
                if let Some(e) = self.lock().get_mut(&who.id) {
                    e.running = None;
                }
            }
            Event::Connected(_) | Event::Closed(..) | Event::Fs(..) => {}
        }
    }

    /// Every session, oldest first.
    pub fn list(&self) -> Vec<SessionView> {
        self.lock()
            .iter()
            .map(|(&id, e)| SessionView {
                id,
                user: e.user.clone(),
                address: e.peer.to_string(),
                since: jiff::Timestamp::try_from(e.since).map(|t| t.to_string()).unwrap_or_default(),
                secs: e.opened.elapsed().as_secs_f64(),
                state: if e.running.is_some() { "transferring" } else { "idle" }.to_owned(),
                transfer: e.running.as_ref().map(|r| {
                    let bytes = r.progress.load(Ordering::Relaxed);
                    let secs = r.started.elapsed().as_secs_f64();
                    let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
                    TransferView {
                        verb: r.verb.clone(),
                        path: r.path.clone(),
                        bytes,
                        size: r.size,
                        secs,
                        rate_bps: rate as u64,
                        eta_secs: r.size.filter(|_| rate > 0.0).map(|s| s.saturating_sub(bytes) as f64 / rate),
                    }
                }),
            })
            .collect()
    }

    /// Disconnects session `id`; false when there is none.
    pub fn kick(&self, id: u64) -> bool {
        self.lock().get(&id).map(|e| e.kick.cancel()).is_some()
    }

    /// Stops session `id`'s transfer (as ABOR would); false when it has none.
    pub fn abort(&self, id: u64) -> bool {
        self.lock().get(&id).and_then(|e| e.running.as_ref()).map(|r| r.cancel.cancel()).is_some()
    }
}
