//! `--trace`: both connections of a session as a timestamped ladder (or JSON lines), the way the
//! seeds draw an FTP session: every command and reply (password masked), each data connection with
//! its local and remote address, how its port was derived, bytes, rate, and who closed it.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_proto::{Command, Reply};
use serde_json::json;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// A human-readable ladder.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which way a data connection's bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Server to client (RETR, LIST, MLSD, NLST).
    Download,
    /// Client to server (STOR, APPE).
    Upload,
}

impl Direction {
    fn arrow(self) -> &'static str {
        match self {
            Self::Download => "S->C",
            Self::Upload => "C->S",
        }
    }
}

/// What every trace of one command shares: the clock, the output, the recorded events, the
/// connection and lane numbers.
struct Shared {
    start: Instant,
    out: Option<(TraceFormat, Mutex<Box<dyn Write + Send>>)>,
    recorded: Option<Mutex<Vec<serde_json::Value>>>,
    sessions: AtomicU32,
    lanes: AtomicU32,
}

/// A trace sink shared by the connections of one command. Each control connection traces
/// through its own [`Trace::connection`], which numbers it and its data connections ("lanes");
/// [`Trace::for_party`] names the server (`A`, `B` for a copy) on every line.
pub struct Trace {
    shared: Arc<Shared>,
    party: Option<Arc<str>>,
    session: u32,
    /// The data connection open now on this control connection.
    lane: AtomicU32,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("party", &self.party).field("session", &self.session).finish()
    }
}

impl Trace {
    /// A trace writing to `out`.
    pub fn new(format: TraceFormat, out: Box<dyn Write + Send>) -> Self {
        Self::with_outputs(Some((format, out)), false)
    }

    /// A trace writing to `out` (if any) and, if `record`, keeping every event for
    /// [`Trace::events`] (for `--trace-html`).
    pub fn with_outputs(out: Option<(TraceFormat, Box<dyn Write + Send>)>, record: bool) -> Self {
        let shared = Shared {
            start: Instant::now(),
            out: out.map(|(f, w)| (f, Mutex::new(w))),
            recorded: record.then(|| Mutex::new(Vec::new())),
            sessions: AtomicU32::new(0),
            lanes: AtomicU32::new(0),
        };
        Self { shared: Arc::new(shared), party: None, session: 0, lane: AtomicU32::new(0) }
    }

    /// The same trace, its lines marked as `party`'s (the server a connection goes to).
    pub fn for_party(&self, party: &str) -> Arc<Self> {
        Arc::new(Self { shared: self.shared.clone(), party: Some(party.into()), session: 0, lane: AtomicU32::new(0) })
    }

    /// The trace of a new control connection: numbered, of the same party.
    pub fn connection(&self) -> Arc<Self> {
        let session = self.shared.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        Arc::new(Self { shared: self.shared.clone(), party: self.party.clone(), session, lane: AtomicU32::new(0) })
    }

    /// Every event so far, as the JSON objects `--trace=json` writes (empty unless recording).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.shared.recorded.as_ref().map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).clone()).unwrap_or_default()
    }

    fn t(&self) -> f64 {
        self.shared.start.elapsed().as_secs_f64()
    }

    fn emit(&self, text: String, json: serde_json::Value) {
        let t = self.t();
        let mut v = json;
        v["t"] = json!((t * 1e6).round() / 1e6);
        if self.session > 0 {
            v["session"] = json!(self.session);
        }
        if let Some(p) = &self.party {
            v["party"] = json!(p.as_ref());
        }
        if let Some((format, out)) = &self.shared.out {
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            let party = self.party.as_deref().map(|p| format!("{p}  ")).unwrap_or_default();
            let _ = match format {
                TraceFormat::Text => writeln!(out, "[{t:>8.3}s] {party}{text}"),
                TraceFormat::Json => writeln!(out, "{v}"),
            };
            let _ = out.flush();
        }
        if let Some(r) = &self.shared.recorded {
            r.lock().unwrap_or_else(|p| p.into_inner()).push(v);
        }
    }

    /// The control connection is open.
    pub fn control_open(&self, local: SocketAddr, remote: SocketAddr) {
        self.emit(
            format!("control  {local} -> {remote} connected"),
            json!({"conn": "control", "event": "open", "local": local.to_string(), "remote": remote.to_string()}),
        );
    }

    /// A command was sent (the password is masked).
    pub fn sent(&self, cmd: &Command) {
        let text = cmd.redacted();
        self.emit(format!("control  C->S  {text}"), json!({"conn": "control", "event": "command", "text": text}));
    }

    /// A reply arrived.
    pub fn received(&self, reply: &Reply) {
        let text = reply.lines.join("\n");
        let shown = if reply.lines.len() == 1 {
            format!("{} {}", reply.code, reply.lines[0])
        } else {
            let mut s = format!("{}-{}", reply.code, reply.lines[0]);
            for l in &reply.lines[1..reply.lines.len() - 1] {
                s.push_str(&format!("\n{:>13}             {l}", ""));
            }
            s.push_str(&format!("\n{:>13}             {} {}", "", reply.code, reply.lines[reply.lines.len() - 1]));
            s
        };
        self.emit(
            format!("control  S->C  {shown}"),
            json!({"conn": "control", "event": "reply", "code": reply.code.0, "text": text}),
        );
    }

    /// How the data port was derived from a 227/229 reply or chosen for PORT/EPRT.
    pub fn port_derivation(&self, how: &str, port: u16) {
        self.emit(format!("data     {how}"), json!({"conn": "data", "event": "port", "how": how, "port": port}));
    }

    /// A data connection opened: a new lane.
    pub fn data_open(&self, local: SocketAddr, remote: SocketAddr, mode: &str) {
        let lane = self.shared.lanes.fetch_add(1, Ordering::Relaxed) + 1;
        self.lane.store(lane, Ordering::Relaxed);
        self.emit(
            format!("data     {local} -> {remote} opened ({mode})"),
            json!({"conn": "data", "event": "open", "lane": lane, "local": local.to_string(),
                   "remote": remote.to_string(), "mode": mode}),
        );
    }

    /// The data connection closed after `bytes` went `direction`.
    pub fn data_close(&self, bytes: u64, elapsed: Duration, closed_by: &str, direction: Direction) {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs / (1024.0 * 1024.0) } else { 0.0 };
        self.emit(
            format!(
                "data     {} closed by {closed_by} after {bytes} bytes in {secs:.3} s ({rate:.1} MiB/s)",
                direction.arrow()
            ),
            json!({"conn": "data", "event": "close", "lane": self.lane.load(Ordering::Relaxed), "bytes": bytes,
                   "secs": secs, "closed_by": closed_by, "direction": direction.arrow()}),
        );
    }

    /// A third-party (FXP) data connection: `to` was told to connect to `from`'s `addr`.
    pub fn fxp_open(&self, from: &str, to: &str, addr: SocketAddr) {
        let lane = self.shared.lanes.fetch_add(1, Ordering::Relaxed) + 1;
        self.lane.store(lane, Ordering::Relaxed);
        self.emit(
            format!("fxp      {to} connects to {from} at {addr}"),
            json!({"conn": "fxp", "event": "open", "lane": lane, "from": from, "to": to, "addr": addr.to_string()}),
        );
    }

    /// The third-party transfer ended: `bytes` from `from` to `to`.
    pub fn fxp_close(&self, from: &str, to: &str, bytes: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs / (1024.0 * 1024.0) } else { 0.0 };
        self.emit(
            format!("fxp      {from} -> {to} {bytes} bytes in {secs:.3} s ({rate:.1} MiB/s)"),
            json!({"conn": "fxp", "event": "close", "lane": self.lane.load(Ordering::Relaxed), "from": from, "to": to,
                   "bytes": bytes, "secs": secs}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn masks_passwords_and_writes_json() {
        let buf = Buf::default();
        let t = Trace::new(TraceFormat::Json, Box::new(buf.clone()));
        t.sent(&Command::Pass(ferry_proto::command::Password("hunter2".into())));
        t.port_derivation("227 (192,168,120,240,232,151) -> port 232*256+151 = 59543", 59543);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("hunter2"));
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["text"], "PASS ****");
        assert_eq!(lines[1]["port"], 59543);
    }

    #[test]
    fn parties_sessions_and_lanes() {
        let buf = Buf::default();
        let root = Trace::with_outputs(Some((TraceFormat::Text, Box::new(buf.clone()))), true);
        let a = root.for_party("A").connection();
        let b = root.for_party("B").connection();
        let addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        a.data_open(addr, addr, "passive");
        b.data_open(addr, addr, "passive");
        a.data_close(10, Duration::from_millis(5), "server", Direction::Download);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.lines().all(|l| l.contains("] A  data") || l.contains("] B  data")), "{text}");
        let events = root.events();
        assert_eq!((events[0]["party"].as_str(), events[0]["session"].as_u64()), (Some("A"), Some(1)));
        assert_eq!((events[1]["party"].as_str(), events[1]["session"].as_u64()), (Some("B"), Some(2)));
        assert_eq!(events[2]["lane"], 1, "A's close is A's lane");
        assert_eq!(events[2]["direction"], "S->C");
    }
}
