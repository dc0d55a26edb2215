//! The sessions open now: who, from where, since when, doing what. Filled by the sessions
//! themselves (each registers on start through a [`Listed`] guard that removes it on drop) and by
//! events (login, transfer start and end); read by `GET /api/v1/sessions` and `ferry who`.
//!
//! With the ladder on (an admin interface is configured), each session also keeps its last
//! [`LADDER_STEPS`] steps (commands, replies, data connections opening and closing) for the status
//! page, and every new step is broadcast to the page's event streams.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::events::{Direction, Event};

/// Steps kept per session for the status page.
pub const LADDER_STEPS: usize = 500;

/// One step of a session's ladder: what crossed the control connection, or a data connection
/// opening or closing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// Seconds since the session connected.
    pub t: f64,
    /// `command` (client to server), `reply` (server to client), `data-open`, `data-close`.
    pub kind: String,
    /// The command (passwords masked), the reply, or the data connection's ends and bytes.
    pub text: String,
}

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
    /// The last steps, when the ladder is on.
    ladder: VecDeque<Step>,
}

/// The registry.
#[derive(Debug)]
pub struct Live {
    sessions: Mutex<BTreeMap<u64, Entry>>,
    /// Keep and broadcast ladder steps.
    ladder: bool,
    steps: tokio::sync::broadcast::Sender<(u64, Step)>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new(false)
    }
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
    /// An empty registry; `ladder`: keep each session's steps.
    pub fn new(ladder: bool) -> Self {
        Self { sessions: Mutex::new(BTreeMap::new()), ladder, steps: tokio::sync::broadcast::channel(1024).0 }
    }

    /// Whether sessions' steps are kept (an admin interface is on).
    pub fn keeps_ladder(&self) -> bool {
        self.ladder
    }

    /// New steps of every session, as they happen.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(u64, Step)> {
        self.steps.subscribe()
    }

    /// Session `id`'s kept steps, oldest first.
    pub fn ladder(&self, id: u64) -> Option<Vec<Step>> {
        self.lock().get(&id).map(|e| e.ladder.iter().cloned().collect())
    }

    /// Adds a step to session `id`'s ladder and tells the watchers.
    fn step(&self, id: u64, kind: &str, text: String) {
        if !self.ladder {
            return;
        }
        let mut sessions = self.lock();
        let Some(e) = sessions.get_mut(&id) else { return };
        let step = Step { t: e.opened.elapsed().as_secs_f64(), kind: kind.to_owned(), text };
        if e.ladder.len() == LADDER_STEPS {
            e.ladder.pop_front();
        }
        e.ladder.push_back(step.clone());
        drop(sessions);
        if self.steps.receiver_count() > 0 {
            let _ = self.steps.send((id, step));
        }
    }

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
        let entry = Entry {
            peer,
            since: SystemTime::now(),
            opened: Instant::now(),
            user: None,
            running: None,
            kick,
            ladder: VecDeque::new(),
        };
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
            Event::Transfer(who, t) => {
                if let Some(e) = self.lock().get_mut(&who.id) {
                    e.running = None;
                }
                let how = t.error.map_or_else(String::new, |e| format!(" ({e})"));
                self.step(who.id, "data-close", format!("data connection closed: {} bytes{how}", t.bytes));
            }
            Event::Command(who, line) => self.step(who.id, "command", (*line).to_owned()),
            Event::Reply(who, reply) => {
                let text = reply.lines.iter().map(|l| format!("{} {l}", reply.code.0)).collect::<Vec<_>>().join("\n");
                self.step(who.id, "reply", text);
            }
            Event::DataOpened(who, ends) => {
                let peer = ends.peer.map_or_else(|| "the client".to_owned(), |p| p.to_string());
                self.step(who.id, "data-open", format!("data connection open: port {} <- {peer}", ends.local_port));
            }
            Event::Connected(_)
            | Event::Closed(..)
            | Event::Fs(..)
            | Event::Banned(..)
            | Event::Unbanned(_)
            | Event::Reloaded(..)
            | Event::TlsHandshake(..)
            | Event::NoPassivePort(_) => {}
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
