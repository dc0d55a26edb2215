//! `--trace`: both connections of a session as a timestamped ladder (or JSON lines), the way the
//! seeds draw an FTP session: every command and reply (password masked), each data connection with
//! its local and remote address, how its port was derived, bytes, rate, and who closed it.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;
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

/// A trace sink shared by the connections of one command.
pub struct Trace {
    start: Instant,
    format: TraceFormat,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").field("format", &self.format).finish()
    }
}

impl Trace {
    /// A trace writing to `out`.
    pub fn new(format: TraceFormat, out: Box<dyn Write + Send>) -> Self {
        Self { start: Instant::now(), format, out: Mutex::new(out) }
    }

    fn t(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn emit(&self, text: String, json: serde_json::Value) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = match self.format {
            TraceFormat::Text => writeln!(out, "[{:>8.3}s] {text}", self.t()),
            TraceFormat::Json => {
                let mut v = json;
                v["t"] = json!((self.t() * 1e6).round() / 1e6);
                writeln!(out, "{v}")
            }
        };
        let _ = out.flush();
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
        self.sent_line(&cmd.redacted());
    }

    /// A command line was sent as it is (a verb that [`Command`] does not know, like `XSHA256`).
    pub fn sent_line(&self, text: &str) {
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

    /// A data connection opened.
    pub fn data_open(&self, local: SocketAddr, remote: SocketAddr, mode: &str) {
        self.emit(
            format!("data     {local} -> {remote} opened ({mode})"),
            json!({"conn": "data", "event": "open", "local": local.to_string(), "remote": remote.to_string(), "mode": mode}),
        );
    }

    /// A data connection closed.
    pub fn data_close(&self, bytes: u64, elapsed: Duration, closed_by: &str) {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs / (1024.0 * 1024.0) } else { 0.0 };
        self.emit(
            format!("data     closed by {closed_by} after {bytes} bytes in {secs:.3} s ({rate:.1} MiB/s)"),
            json!({"conn": "data", "event": "close", "bytes": bytes, "secs": secs, "closed_by": closed_by}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
}
