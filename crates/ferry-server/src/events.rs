//! What happens in a session, as one event type, and the sinks that record it.
//!
//! Handlers and the session loop [`Events::emit`] an [`Event`]; each sink turns it into its own
//! format: the `tracing` log (text on stderr), the transfer log in the wu-ftpd `xferlog` format
//! (read by AWStats, `xferstats`, OSSEC and log-scraping exporters) and a log in vsftpd's own
//! format (read by fail2ban's stock `vsftpd` filter). No handler formats a log line.
//!
//! The files are opened at start-up (before the sandbox), appended to one line per `write`, and
//! reopened by [`Events::reopen`] (`SIGUSR1`, after logrotate moved them).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

/// Who an event is about: the client's address and, once known, the user name.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The session (as in the log's `session{id}` and the admin API).
    pub id: u64,
    /// The client (from a PROXY header when a trusted balancer relays).
    pub ip: IpAddr,
    /// The user: logged in, or the name a failed login gave.
    pub user: Option<&'a str>,
    /// An anonymous login.
    pub anonymous: bool,
    /// The user's root, once logged in (a directory, or what an S3 key prefix derives from).
    pub root: Option<&'a Path>,
}

/// Which way a transfer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RETR.
    Download,
    /// STOR, APPE, STOU.
    Upload,
    /// LIST, NLST, MLSD (not in the transfer logs).
    Listing,
}

/// A finished transfer, complete or not.
#[derive(Debug, Clone, Copy)]
pub struct Transfer<'a> {
    /// The command (`RETR`, `STOR`, ...).
    pub verb: &'a str,
    /// Which way.
    pub direction: Direction,
    /// The absolute path in the user's view.
    pub path: &'a str,
    /// Bytes moved on the data connection.
    pub bytes: u64,
    /// From the command to the end.
    pub elapsed: Duration,
    /// `TYPE A`.
    pub ascii: bool,
    /// The data connection was under TLS.
    pub protected: bool,
    /// Why it failed; `None` when it completed (226).
    pub error: Option<&'a str>,
}

/// A transfer that has just started (its data connection is being set up).
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    /// The command.
    pub verb: &'a str,
    /// Which way.
    pub direction: Direction,
    /// The absolute path in the user's view.
    pub path: &'a str,
    /// Bytes to send, when known (downloads).
    pub size: Option<u64>,
    /// Bytes moved so far, updated as it runs.
    pub progress: &'a std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Cancels it (as ABOR does).
    pub cancel: &'a tokio_util::sync::CancellationToken,
}

/// How a session ended.
#[derive(Debug, Clone, Copy)]
pub struct Closed<'a> {
    /// How long it lasted.
    pub duration: Duration,
    /// Bytes received on its data connections (uploads).
    pub bytes_in: u64,
    /// Bytes sent on its data connections (downloads, listings).
    pub bytes_out: u64,
    /// Why: `QUIT`'s reply, a 421's text (timeout, shutdown, the administrator), the client
    /// closing the connection, or an error.
    pub reason: &'a str,
}

/// Which connection of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The control connection.
    Control,
    /// A data connection.
    Data,
}

/// A change to the file tree (the reply was 2xx).
#[derive(Debug, Clone, Copy)]
pub enum FsOp<'a> {
    /// MKD.
    Mkdir(&'a str),
    /// RMD.
    Rmdir(&'a str),
    /// DELE, with the size the file had (0 when unknown).
    Delete(&'a str, u64),
    /// RNFR + RNTO.
    Rename(&'a str, &'a str),
}

/// Something that happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A control connection was accepted (past the limits).
    Connected(Who<'a>),
    /// It closed.
    Closed(Who<'a>, Closed<'a>),
    /// A successful login.
    LoginOk(Who<'a>),
    /// A refused login, and why (for the log; never the password).
    LoginFailed(Who<'a>, &'a str),
    /// A command arrived (passwords masked).
    Command(Who<'a>, &'a str),
    /// A reply went out.
    Reply(Who<'a>, &'a ferry_proto::Reply),
    /// A transfer's data connection opened.
    DataOpened(Who<'a>, crate::datachan::DataEnds),
    /// A TLS handshake ended, on the control or a data connection: succeeded or not.
    TlsHandshake(Who<'a>, Channel, bool),
    /// PASV/EPSV found no free port (425).
    NoPassivePort(Who<'a>),
    /// A transfer started.
    TransferStarted(Who<'a>, Started<'a>),
    /// A transfer ended.
    Transfer(Who<'a>, Transfer<'a>),
    /// The file tree changed.
    Fs(Who<'a>, FsOp<'a>),
    /// An address was banned, and why (`failed logins`, `administrator`).
    Banned(&'a crate::bans::Ban, &'a str),
    /// A ban was lifted by the administrator.
    Unbanned(IpAddr),
    /// A reload (SIGHUP, a reload request) ran; what triggered it.
    Reloaded(&'a crate::reload::ReloadReport, &'a str),
}

/// `[log]` in the configuration: the main log's format and place, and the files beside it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default) or `json` (one JSON object per line, events named `session.open`, ...).
    pub format: LogFormat,
    /// The main log's file; stderr when unset.
    pub file: Option<PathBuf>,
    /// The transfer log, in the wu-ftpd `xferlog` format; none when unset.
    pub xferlog: Option<PathBuf>,
    /// Which `xferlog` dialect.
    pub xferlog_flavor: XferlogFlavor,
    /// A log in vsftpd's own format (`OK LOGIN`, `FAIL LOGIN`, `OK UPLOAD`, ...), for fail2ban's
    /// stock `vsftpd` filter and vsftpd log parsers; none when unset.
    pub vsftpd_log: Option<PathBuf>,
}

impl LogConfig {
    /// The log files configured.
    pub fn files(&self) -> Vec<PathBuf> {
        self.file.iter().chain(&self.xferlog).chain(&self.vsftpd_log).cloned().collect()
    }
}

/// The main log's format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`tracing`'s format).
    #[default]
    Text,
    /// JSON lines with fixed keys: `ts`, `event`, `session`, `ip`, `user`, then the event's own.
    Json,
}

/// The two `xferlog` dialects in use.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XferlogFlavor {
    /// wu-ftpd and vsftpd: a space-padded day, `ftp 0 *` in fields 11-13, transfers only.
    #[default]
    Wuftpd,
    /// ProFTPD: a zero-padded day, `ftps` in field 11 for protected data, `d` rows for DELE.
    Proftpd,
}

/// A log file, appended to one line per `write` (so lines of concurrent sessions never mix).
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
    /// A write failed and was logged; quiet until the next success or reopen.
    failing: AtomicBool,
}

impl LogFile {
    /// Opens (creates, mode 0640) `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self { path: path.to_owned(), file: Mutex::new(open_append(path)?), failing: AtomicBool::new(false) })
    }

    /// Appends `line` (which ends with a newline) in one write.
    pub fn write_line(&self, line: &str) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match file.write_all(line.as_bytes()) {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(file = %self.path.display(), error = %e, "cannot write the log file");
                }
            }
        }
    }

    /// Appends `bytes` in one write; the error is returned (for `tracing`'s writer).
    pub fn write_bytes(&self, bytes: &[u8]) -> io::Result<()> {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).write_all(bytes)
    }

    /// Opens the file again under its name (after a rotation moved it).
    pub fn reopen(&self) -> io::Result<()> {
        let new = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = new;
        self.failing.store(false, Ordering::Relaxed);
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("log file {}: {e}", path.display())))
}

/// Where the main log goes.
#[derive(Debug)]
enum MainLog {
    /// `tracing` formats the events (`[log] format = "text"`).
    Text,
    /// JSON lines, to stderr or a file.
    Json(Option<std::sync::Arc<LogFile>>),
}

/// The sinks: the main log, the metrics and the live session list always, the files when
/// configured.
#[derive(Debug)]
pub struct Events {
    main: MainLog,
    /// The main log's file, shared with the `tracing` writer (reopened with the others).
    main_file: Option<std::sync::Arc<LogFile>>,
    xferlog: Option<(LogFile, XferlogFlavor)>,
    vsftpd: Option<LogFile>,
    pid: u32,
    /// Prometheus metrics.
    pub metrics: crate::admin::Metrics,
    /// The sessions open now, for the admin API.
    pub live: crate::admin::Live,
    /// Commands and webhooks, started with the runtime ([`crate::Bound::start`]).
    pub hooks: std::sync::OnceLock<crate::hooks::Hooks>,
}

impl Events {
    /// Opens the configured files (creating them, mode 0640). `ladder`: keep each session's
    /// commands, replies and data connections for the live view (when an admin interface is on).
    /// `per_user`: per-user metric series for at most this many users.
    pub fn open(config: &LogConfig, ladder: bool, per_user: usize) -> io::Result<Self> {
        let main_file = config.file.as_deref().map(LogFile::open).transpose()?.map(std::sync::Arc::new);
        Ok(Self {
            main: match config.format {
                LogFormat::Text => MainLog::Text,
                LogFormat::Json => MainLog::Json(main_file.clone()),
            },
            main_file,
            xferlog: config.xferlog.as_deref().map(LogFile::open).transpose()?.map(|f| (f, config.xferlog_flavor)),
            vsftpd: config.vsftpd_log.as_deref().map(LogFile::open).transpose()?,
            pid: std::process::id(),
            metrics: crate::admin::Metrics::new(per_user),
            live: crate::admin::Live::new(ladder),
            hooks: std::sync::OnceLock::new(),
        })
    }

    /// Whether anything records each command and reply (the status page's ladder, or the log at
    /// debug level): when not, the session does not build those events at all.
    pub fn wants_lines(&self) -> bool {
        self.live.keeps_ladder() || tracing::enabled!(tracing::Level::DEBUG)
    }

    /// The main log's file, for the `tracing` writer, when `[log] file` is set.
    pub fn main_file(&self) -> Option<std::sync::Arc<LogFile>> {
        self.main_file.clone()
    }

    /// Reopens the files under their names (after a rotation).
    pub fn reopen(&self) -> io::Result<()> {
        let main = self.main_file.as_deref();
        let files = main.into_iter().chain(self.xferlog.iter().map(|(f, _)| f)).chain(&self.vsftpd);
        files.into_iter().try_for_each(LogFile::reopen)
    }

    /// Records `event` in every sink.
    pub fn emit(&self, event: &Event<'_>) {
        match &self.main {
            MainLog::Text => trace(event),
            MainLog::Json(file) => {
                if let Some(line) = json_line(jiff::Timestamp::now(), event) {
                    match file {
                        Some(f) => f.write_line(&line),
                        None => {
                            let _ = io::stderr().lock().write_all(line.as_bytes());
                        }
                    }
                }
            }
        }
        self.metrics.record(event);
        self.live.record(event);
        if let Some(hooks) = self.hooks.get() {
            hooks.record(event);
        }
        let now = jiff::Zoned::now();
        if let Some((file, flavor)) = &self.xferlog {
            if let Some(line) = xferlog_line(*flavor, &now, event) {
                file.write_line(&line);
            }
        }
        if let Some(file) = &self.vsftpd {
            if let Some(line) = vsftpd_line(self.pid, &now, event) {
                file.write_line(&line);
            }
        }
    }
}

/// The `tracing` sink: logins, failures and transfers at info/warn, with the user on each line.
fn trace(event: &Event<'_>) {
    match event {
        Event::Connected(who) => tracing::info!(ip = %who.ip, "connected"),
        Event::Closed(who, c) => {
            let (ip, user, secs) = (who.ip, who.user.unwrap_or("-"), c.duration.as_secs_f64());
            tracing::info!(%ip, user, secs, bytes_in = c.bytes_in, bytes_out = c.bytes_out, reason = c.reason, "disconnected");
        }
        Event::LoginOk(who) => {
            tracing::info!(ip = %who.ip, user = who.user.unwrap_or("-"), anonymous = who.anonymous, "logged in");
        }
        Event::LoginFailed(who, reason) => {
            tracing::warn!(ip = %who.ip, user = who.user.unwrap_or("-"), reason, "failed login");
        }
        Event::Command(_, line) => tracing::debug!(command = %line, "command"),
        Event::Reply(_, reply) => tracing::debug!(code = reply.code.0, text = %reply.lines.join(" | "), "reply"),
        Event::DataOpened(_, ends) => {
            tracing::debug!(port = ends.local_port, peer = ?ends.peer, "data connection open")
        }
        Event::TlsHandshake(who, channel, ok) => tracing::debug!(ip = %who.ip, ?channel, ok, "TLS handshake"),
        Event::NoPassivePort(who) => tracing::warn!(ip = %who.ip, "no free passive port (425)"),
        Event::TransferStarted(who, t) => {
            tracing::debug!(user = who.user.unwrap_or("-"), verb = t.verb, path = %t.path, "transfer started");
        }
        Event::Transfer(who, t) => {
            let secs = t.elapsed.as_secs_f64();
            let user = who.user.unwrap_or("-");
            match t.error {
                None => {
                    let rate = if secs > 0.0 { t.bytes as f64 / secs } else { 0.0 };
                    tracing::info!(
                        user,
                        verb = t.verb,
                        path = %t.path,
                        bytes = t.bytes,
                        secs,
                        rate_bps = rate as u64,
                        "transfer complete"
                    );
                }
                Some(error) => {
                    tracing::info!(user, verb = t.verb, path = %t.path, bytes = t.bytes, secs, error, "transfer failed");
                }
            }
        }
        Event::Banned(ban, why) => {
            let (ip, until, count) = (ban.ip, ban.until, ban.count);
            match *why {
                "failed logins" => tracing::warn!(%ip, until, count, "address banned after failed logins"),
                _ => tracing::warn!(%ip, until, count, why, "address banned"),
            }
        }
        Event::Unbanned(ip) => tracing::info!(%ip, "ban lifted"),
        Event::Reloaded(report, by) => {
            for failure in &report.failed {
                tracing::error!("{by}: {failure}");
            }
            if report.reloaded.is_empty() {
                tracing::info!("{by}: nothing reloaded");
            } else {
                tracing::info!("{by}: reloaded {}", report.reloaded.join(", "));
            }
            if !report.restart_needed.is_empty() {
                tracing::warn!(
                    "{by}: changed settings that apply only after a restart (running values kept): {}",
                    report.restart_needed.join(", ")
                );
            }
        }
        Event::Fs(who, op) => {
            let user = who.user.unwrap_or("-");
            match op {
                FsOp::Mkdir(p) => tracing::info!(user, path = %p, "directory created"),
                FsOp::Rmdir(p) => tracing::info!(user, path = %p, "directory removed"),
                FsOp::Delete(p, _) => tracing::info!(user, path = %p, "file deleted"),
                FsOp::Rename(from, to) => tracing::info!(user, from = %from, to = %to, "renamed"),
            }
        }
    }
}

/// One JSON object, keys in the order they are added.
struct Json(String);

impl Json {
    /// `ts` and `event`: the keys every line starts with.
    fn start(ts: jiff::Timestamp, event: &str) -> Self {
        let mut j = Json(String::from("{"));
        j.field("ts", ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        j.field("event", event);
        j
    }

    /// A session's event: `ts`, `event`, `session`, `ip`, `user`.
    fn new(ts: jiff::Timestamp, event: &str, who: &Who<'_>) -> Self {
        let mut j = Json::start(ts, event);
        j.field("session", who.id);
        j.field("ip", who.ip.to_canonical().to_string());
        if let Some(user) = who.user {
            j.field("user", user);
        }
        j
    }

    fn field(&mut self, key: &str, value: impl serde::Serialize) -> &mut Self {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "\"{key}\":{}", serde_json::to_string(&value).unwrap_or_else(|_| "null".into()));
        self
    }

    fn end(mut self) -> String {
        self.0.push_str("}\n");
        self.0
    }
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Download => "download",
        Direction::Upload => "upload",
        Direction::Listing => "listing",
    }
}

/// The JSON line of an event: `ts` (UTC, milliseconds), `event`, `session`, `ip`, `user` when
/// known, then the event's own fields. Commands, replies and data connections are not logged.
fn json_line(ts: jiff::Timestamp, event: &Event<'_>) -> Option<String> {
    let j = match event {
        Event::Connected(who) => Json::new(ts, "session.open", who),
        Event::Closed(who, c) => {
            let mut j = Json::new(ts, "session.close", who);
            j.field("secs", c.duration.as_secs_f64())
                .field("bytes_in", c.bytes_in)
                .field("bytes_out", c.bytes_out)
                .field("reason", c.reason);
            j
        }
        Event::LoginOk(who) => {
            let mut j = Json::new(ts, "login.ok", who);
            j.field("anonymous", who.anonymous);
            j
        }
        Event::LoginFailed(who, reason) => {
            let mut j = Json::new(ts, "login.fail", who);
            j.field("reason", reason);
            j
        }
        Event::TransferStarted(who, t) => {
            let mut j = Json::new(ts, "transfer.start", who);
            j.field("verb", t.verb).field("direction", direction_name(t.direction)).field("path", t.path);
            j.field("size", t.size);
            j
        }
        Event::Transfer(who, t) => {
            let secs = t.elapsed.as_secs_f64();
            let mut j = Json::new(ts, "transfer.end", who);
            j.field("verb", t.verb).field("direction", direction_name(t.direction)).field("path", t.path);
            j.field("bytes", t.bytes).field("secs", secs);
            j.field("rate_bps", if secs > 0.0 { (t.bytes as f64 / secs) as u64 } else { 0 });
            j.field("protected", t.protected).field("ascii", t.ascii);
            j.field("result", if t.error.is_none() { "complete" } else { "failed" });
            if let Some(e) = t.error {
                j.field("error", e);
            }
            j
        }
        Event::Fs(who, op) => match op {
            FsOp::Mkdir(p) => {
                let mut j = Json::new(ts, "fs.mkdir", who);
                j.field("path", p);
                j
            }
            FsOp::Rmdir(p) => {
                let mut j = Json::new(ts, "fs.rmdir", who);
                j.field("path", p);
                j
            }
            FsOp::Delete(p, size) => {
                let mut j = Json::new(ts, "fs.delete", who);
                j.field("path", p).field("size", size);
                j
            }
            FsOp::Rename(from, to) => {
                let mut j = Json::new(ts, "fs.rename", who);
                j.field("from", from).field("to", to);
                j
            }
        },
        Event::Banned(ban, why) => {
            let mut j = Json::start(ts, "ban.add");
            j.field("ip", ban.ip.to_string()).field("until", ban.until).field("count", ban.count).field("reason", why);
            j
        }
        Event::Reloaded(report, by) => {
            let mut j = Json::start(ts, "config.reload");
            j.field("by", by)
                .field("reloaded", &report.reloaded)
                .field("failed", &report.failed)
                .field("restart_needed", &report.restart_needed);
            j
        }
        Event::Unbanned(ip) => {
            let mut j = Json::start(ts, "ban.remove");
            j.field("ip", ip.to_string());
            j
        }
        Event::Command(..)
        | Event::Reply(..)
        | Event::DataOpened(..)
        | Event::TlsHandshake(..)
        | Event::NoPassivePort(_) => return None,
    };
    Some(j.end())
}

/// `Sun Dec  6 18:38:20 2026`: ctime's form, English names, the day padded with a space (or with
/// a zero, as ProFTPD writes it).
fn date(now: &jiff::Zoned, zero_padded_day: bool) -> String {
    now.strftime(if zero_padded_day { "%a %b %d %H:%M:%S %Y" } else { "%a %b %e %H:%M:%S %Y" }).to_string()
}

/// A path as one field: whitespace and control characters become `_`.
fn field(path: &str) -> String {
    path.chars().map(|c| if c.is_whitespace() || c.is_control() { '_' } else { c }).collect()
}

/// One `xferlog` line (18 fields), for downloads, uploads and, in the ProFTPD dialect, deletions:
/// `date secs ip bytes path a|b _ o|i|d a|r user ftp|ftps 0 * c|i`.
fn xferlog_line(flavor: XferlogFlavor, now: &jiff::Zoned, event: &Event<'_>) -> Option<String> {
    let proftpd = flavor == XferlogFlavor::Proftpd;
    let (who, secs, bytes, path, ascii, direction, protected, complete) = match event {
        Event::Transfer(who, t) => {
            let direction = match t.direction {
                Direction::Download => 'o',
                Direction::Upload => 'i',
                Direction::Listing => return None,
            };
            // Whole seconds, at least 1 (as vsftpd writes them).
            let secs = t.elapsed.as_secs_f64().round().max(1.0) as u64;
            (who, secs, t.bytes, t.path, t.ascii, direction, t.protected, t.error.is_none())
        }
        Event::Fs(who, FsOp::Delete(path, size)) if proftpd => (who, 0, *size, *path, false, 'd', false, true),
        _ => return None,
    };
    let (mode, user) = match (who.anonymous, who.user) {
        (true, user) => ('a', user.unwrap_or("anonymous")),
        (false, user) => ('r', user.unwrap_or("-")),
    };
    let service = if proftpd && protected { "ftps" } else { "ftp" };
    let mut line = date(now, proftpd);
    let _ = writeln!(
        line,
        " {secs} {} {bytes} {} {} _ {direction} {mode} {} {service} 0 * {}",
        who.ip.to_canonical(),
        field(path),
        if ascii { 'a' } else { 'b' },
        field(user),
        if complete { 'c' } else { 'i' }
    );
    Some(line)
}

/// One line in vsftpd's own log format:
/// `date [pid N] [user] OK|FAIL VERB: Client "ip"[, "path"][, N bytes, R Kbyte/sec]`.
fn vsftpd_line(pid: u32, now: &jiff::Zoned, event: &Event<'_>) -> Option<String> {
    let who = match event {
        Event::Connected(w)
        | Event::LoginOk(w)
        | Event::LoginFailed(w, _)
        | Event::Transfer(w, _)
        | Event::Fs(w, _) => w,
        Event::Banned(..)
        | Event::Unbanned(_)
        | Event::Reloaded(..)
        | Event::TlsHandshake(..)
        | Event::NoPassivePort(_) => return None,
        Event::Closed(..)
        | Event::TransferStarted(..)
        | Event::Command(..)
        | Event::Reply(..)
        | Event::DataOpened(..) => return None,
    };
    let mut line = format!("{} [pid {pid}] ", date(now, false));
    if let Some(user) = who.user {
        let _ = write!(line, "[{}] ", user.replace(['\r', '\n'], "_"));
    }
    let client = format!("Client \"{}\"", who.ip.to_canonical());
    let quoted = |p: &str| format!("\"{}\"", p.replace(['\r', '\n'], "_"));
    let _ = match event {
        Event::Connected(_) => write!(line, "CONNECT: {client}"),
        Event::LoginOk(_) => write!(line, "OK LOGIN: {client}"),
        Event::LoginFailed(..) => write!(line, "FAIL LOGIN: {client}"),
        Event::Transfer(_, t) => {
            let verb = match t.direction {
                Direction::Download => "DOWNLOAD",
                Direction::Upload => "UPLOAD",
                Direction::Listing => return None,
            };
            let status = if t.error.is_none() { "OK" } else { "FAIL" };
            let kbps = t.bytes as f64 / t.elapsed.as_secs_f64().max(0.001) / 1024.0;
            write!(line, "{status} {verb}: {client}, {}, {} bytes, {kbps:.2}Kbyte/sec", quoted(t.path), t.bytes)
        }
        Event::Fs(_, op) => match op {
            FsOp::Mkdir(p) => write!(line, "OK MKDIR: {client}, {}", quoted(p)),
            FsOp::Rmdir(p) => write!(line, "OK RMDIR: {client}, {}", quoted(p)),
            FsOp::Delete(p, _) => write!(line, "OK DELETE: {client}, {}", quoted(p)),
            FsOp::Rename(from, to) => write!(line, "OK RENAME: {client}, {}", quoted(&format!("{from} {to}"))),
        },
        Event::Closed(..)
        | Event::TransferStarted(..)
        | Event::Command(..)
        | Event::Reply(..)
        | Event::DataOpened(..)
        | Event::Banned(..)
        | Event::Unbanned(_)
        | Event::Reloaded(..)
        | Event::TlsHandshake(..)
        | Event::NoPassivePort(_) => return None,
    };
    line.push('\n');
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Zoned {
        s.parse().unwrap()
    }

    fn alice() -> Who<'static> {
        Who { id: 1, ip: "192.0.2.7".parse().unwrap(), user: Some("alice"), anonymous: false, root: None }
    }

    fn download(path: &str, ms: u64) -> Transfer<'_> {
        Transfer {
            verb: "RETR",
            direction: Direction::Download,
            path,
            bytes: 1234,
            elapsed: Duration::from_millis(ms),
            ascii: false,
            protected: true,
            error: None,
        }
    }

    #[test]
    fn xferlog_lines_have_18_fields_in_both_flavours() {
        let now = at("2026-12-06T08:05:09[UTC]");
        let event = Event::Transfer(alice(), download("/dir/my file\t.bin", 200));
        let wu = xferlog_line(XferlogFlavor::Wuftpd, &now, &event).unwrap();
        assert_eq!(wu, "Sun Dec  6 08:05:09 2026 1 192.0.2.7 1234 /dir/my_file_.bin b _ o r alice ftp 0 * c\n");
        assert_eq!(wu.split_whitespace().count(), 18);
        let pro = xferlog_line(XferlogFlavor::Proftpd, &now, &event).unwrap();
        assert_eq!(pro, "Sun Dec 06 08:05:09 2026 1 192.0.2.7 1234 /dir/my_file_.bin b _ o r alice ftps 0 * c\n");
    }

    #[test]
    fn xferlog_marks_uploads_failures_anonymous_and_deletions() {
        let now = at("2026-03-15T23:59:59[UTC]");
        let anon =
            Who { id: 2, ip: "::ffff:10.0.0.1".parse().unwrap(), user: Some("ftp"), anonymous: true, root: None };
        let t = Transfer {
            direction: Direction::Upload,
            ascii: true,
            error: Some("reset"),
            elapsed: Duration::from_millis(2600),
            ..download("/up.txt", 0)
        };
        let line = xferlog_line(XferlogFlavor::Wuftpd, &now, &Event::Transfer(anon, t)).unwrap();
        assert_eq!(line, "Sun Mar 15 23:59:59 2026 3 10.0.0.1 1234 /up.txt a _ i a ftp ftp 0 * i\n");
        let dele = Event::Fs(alice(), FsOp::Delete("/old.txt", 99));
        assert_eq!(xferlog_line(XferlogFlavor::Wuftpd, &now, &dele), None, "wu-ftpd logs transfers only");
        let line = xferlog_line(XferlogFlavor::Proftpd, &now, &dele).unwrap();
        assert_eq!(line, "Sun Mar 15 23:59:59 2026 0 192.0.2.7 99 /old.txt b _ d r alice ftp 0 * c\n");
        let listing = Transfer { direction: Direction::Listing, ..download("/", 1) };
        assert_eq!(xferlog_line(XferlogFlavor::Wuftpd, &now, &Event::Transfer(alice(), listing)), None);
    }

    #[test]
    fn json_lines_have_fixed_keys_in_order() {
        let ts: jiff::Timestamp = "2026-12-07T00:10:49.9004Z".parse().unwrap();
        let line = json_line(ts, &Event::Transfer(alice(), download("/a \"b\"", 2000))).unwrap();
        assert_eq!(
            line,
            "{\"ts\":\"2026-12-07T00:10:49.900Z\",\"event\":\"transfer.end\",\"session\":1,\"ip\":\"192.0.2.7\",\
             \"user\":\"alice\",\"verb\":\"RETR\",\"direction\":\"download\",\"path\":\"/a \\\"b\\\"\",\"bytes\":1234,\
             \"secs\":2.0,\"rate_bps\":617,\"protected\":true,\"ascii\":false,\"result\":\"complete\"}\n"
        );
        let closed = Closed { duration: Duration::from_secs(3), bytes_in: 5, bytes_out: 7, reason: "221 Goodbye." };
        let line = json_line(ts, &Event::Closed(alice(), closed)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "session.close");
        assert_eq!(v["reason"], "221 Goodbye.");
        assert_eq!(v["bytes_out"], 7);
        assert!(json_line(ts, &Event::Command(alice(), "NOOP")).is_none());
    }

    #[test]
    fn vsftpd_lines_match_vsftpd() {
        let now = at("2026-12-06T18:38:20[UTC]");
        let unknown = Who { user: Some("mallory"), ..alice() };
        assert_eq!(
            vsftpd_line(42, &now, &Event::LoginFailed(unknown, "bad password")).unwrap(),
            "Sun Dec  6 18:38:20 2026 [pid 42] [mallory] FAIL LOGIN: Client \"192.0.2.7\"\n"
        );
        let nobody = Who { user: None, ..alice() };
        assert_eq!(
            vsftpd_line(42, &now, &Event::Connected(nobody)).unwrap(),
            "Sun Dec  6 18:38:20 2026 [pid 42] CONNECT: Client \"192.0.2.7\"\n"
        );
        assert_eq!(
            vsftpd_line(42, &now, &Event::Transfer(alice(), download("/a b", 500))).unwrap(),
            "Sun Dec  6 18:38:20 2026 [pid 42] [alice] OK DOWNLOAD: Client \"192.0.2.7\", \"/a b\", 1234 bytes, 2.41Kbyte/sec\n"
        );
        assert_eq!(
            vsftpd_line(42, &now, &Event::Fs(alice(), FsOp::Rename("/a", "/b"))).unwrap(),
            "Sun Dec  6 18:38:20 2026 [pid 42] [alice] OK RENAME: Client \"192.0.2.7\", \"/a /b\"\n"
        );
    }
}
