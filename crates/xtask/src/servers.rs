//! The servers under test, each a plain foreground process on a loopback high port with a
//! configuration written to its own temp dir, all serving the same data directory:
//!
//! | server | login | sendfile | uploads durable at 226? |
//! |---|---|---|---|
//! | Ferry | `bench:bench` (`--user`; argon2id, verified once then cached) | yes | fsync (default), or `--no-fsync` |
//! | vsftpd | anonymous, no password | yes (`use_sendfile=YES`) | no fsync |
//! | Pure-FTPd | virtual user `bench` (puredb, SHA-512 crypt) | no (read + write) | no fsync |
//! | ProFTPD | user `bench` (AuthUserFile, SHA-512 crypt) | yes (`UseSendfile on`) | no fsync |
//!
//! Every server logs one line per transfer to a file (Ferry: its default `info` log on stderr).
//! Each has its own passive port range of 2000 ports below the ephemeral range.
//! Session limits are raised to 5000 in all and per IP; ProFTPD's `mod_delay` (which pads every
//! login to hide timing) is off, as reverse DNS is everywhere.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ferry_testkit::peers::{self, Limits, Login, Setup};

use crate::cleanup;
use crate::tls::Certificate;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Ferry with its defaults (fsync on).
    Ferry,
    /// Ferry with `--no-fsync` (only the STOR workload uses it).
    FerryNoFsync,
    Vsftpd,
    PureFtpd,
    ProFtpd,
    /// The small-file floor (`xtask floor-server`, see `floor.rs`); reported as the limit.
    Floor,
}

impl Kind {
    /// The name used on the command line, in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ferry => "ferry",
            Kind::FerryNoFsync => "ferry-nofsync",
            Kind::Vsftpd => "vsftpd",
            Kind::PureFtpd => "pureftpd",
            Kind::ProFtpd => "proftpd",
            Kind::Floor => "floor",
        }
    }

    /// Whether the server keeps an upload's SHA-256 with the file (Ferry, for `HASH`; see
    /// [`crate::workloads::digest_settled`]).
    pub fn keeps_digests(self) -> bool {
        matches!(self, Kind::Ferry | Kind::FerryNoFsync)
    }

    /// Whether uploads are on stable storage when the server answers 226.
    pub fn durability(self) -> &'static str {
        match self {
            Kind::Ferry => "fsync before 226 (file, then its directory when a name was created or replaced)",
            Kind::FerryNoFsync => "no fsync (--no-fsync)",
            Kind::Vsftpd | Kind::PureFtpd | Kind::ProFtpd => "no fsync (page cache only; checked with strace)",
            Kind::Floor => "no fsync",
        }
    }

    /// The binary, if installed.
    pub fn binary(self, ferry: &Path) -> Option<PathBuf> {
        match self.peer() {
            Some(p) => p.binary(),
            None if self == Kind::Floor => std::env::current_exe().ok(),
            None => ferry.is_file().then(|| ferry.to_path_buf()),
        }
    }

    /// The peer server this is (`None` for Ferry and the floor).
    fn peer(self) -> Option<peers::Kind> {
        match self {
            Kind::Vsftpd => Some(peers::Kind::Vsftpd),
            Kind::PureFtpd => Some(peers::Kind::PureFtpd),
            Kind::ProFtpd => Some(peers::Kind::ProFtpd),
            Kind::Ferry | Kind::FerryNoFsync | Kind::Floor => None,
        }
    }
}

/// A SHA-512 crypt(3) hash of "bench" (`openssl passwd -6 -salt ferrybench bench`).
const BENCH_HASH: &str =
    "$6$ferrybench$HW02LIlSntvEIhnh4b9ZRA7u1XG3ZPnEgUx1V9dj9xGSbjWvru.o0j6ImqDBDTwDBpmU8U4MTTLBjyFR8wl.90";

pub use peers::{server_user, Owner};

/// A running server, stopped (by its PID) on [`Server::stop`] or drop.
pub struct Server {
    pub kind: Kind,
    /// Started with explicit FTPS required (the `ftps` workload's instances).
    pub tls: bool,
    pub addr: SocketAddr,
    pub user: &'static str,
    pub pass: &'static str,
    /// The server's upload directory, as a path on the server (`/upload/NAME`).
    pub upload: String,
    /// The same directory on the local filesystem.
    pub upload_local: PathBuf,
    pub version: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Where the servers' passive port ranges start: each server gets its own 2000 ports below the
/// ephemeral range (32768-60999), which the clients' connections and the TIME_WAIT sockets of
/// thousands of short data connections crowd. (Ferry's default, any free port, binds port 0 in
/// that range; see docs/performance.md for what that costs.)
const PASSIVE_BASE: u16 = 20000;
const PASSIVE_SPAN: u16 = 2000;
/// The FTPS instances' ranges: 1000 ports each from 10000.
const TLS_PASSIVE_BASE: u16 = 10000;
const TLS_PASSIVE_SPAN: u16 = 1000;

/// Accounts `login0000`... (password `login`) for the login workload, on Ferry.
pub const LOGIN_USERS: usize = 1000;

/// A users file with `n` accounts `login0000`... sharing one argon2id hash of `login` (made once
/// by `ferry user add`): every account's first login pays a full password check.
fn login_users(bin: &Path, dir: &Path, n: usize) -> Result<PathBuf> {
    use std::io::Write as _;
    let file = dir.join("users.toml");
    let mut child = Command::new(bin)
        .args(["user", "add", "login0000", "--password-stdin", "--users"])
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(b"login\n")?;
    if !child.wait()?.success() {
        bail!("ferry user add failed");
    }
    let text = std::fs::read_to_string(&file)?;
    let block = &text[text.find("[[users]]").context("no [[users]] in the users file")?..];
    let mut out = text.clone();
    for i in 1..n {
        out.push('\n');
        out.push_str(&block.replace("\"login0000\"", &format!("\"login{i:04}\"")));
    }
    std::fs::write(&file, out)?;
    Ok(file)
}

impl Server {
    /// Starts `kind` on 127.0.0.1 serving `root` (which holds `upload/NAME`, writable by `owner`);
    /// with `tls`, requiring explicit FTPS with that certificate on the control and data
    /// connections (and uploading to `upload/NAME-tls`).
    pub fn start(
        kind: Kind,
        bin: &Path,
        root: &Path,
        owner: Option<&Owner>,
        tls: Option<&Certificate>,
    ) -> Result<Self> {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(kind, bin, root, owner, tls) {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("{e:#}"),
            }
        }
        bail!("{} did not start after 5 attempts: {last}", kind.name())
    }

    fn try_start(
        kind: Kind,
        bin: &Path,
        root: &Path,
        owner: Option<&Owner>,
        tls: Option<&Certificate>,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix(&format!("ferry-bench-{}-", kind.name())).tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let port = peers::free_port(Ipv4Addr::LOCALHOST.into())?;
        let slot = match kind {
            Kind::Vsftpd => 0,
            Kind::PureFtpd => 1,
            Kind::ProFtpd => 2,
            Kind::Ferry => 3,
            Kind::FerryNoFsync => 4,
            Kind::Floor => 5,
        };
        let (base, span) =
            if tls.is_some() { (TLS_PASSIVE_BASE, TLS_PASSIVE_SPAN) } else { (PASSIVE_BASE, PASSIVE_SPAN) };
        let passive = (base + slot * span, base + (slot + 1) * span - 1);
        let log = dir.path().join("server.log");
        let upload_name = if tls.is_some() { format!("{}-tls", kind.name()) } else { kind.name().to_string() };
        let upload_local = root.join("upload").join(&upload_name);
        std::fs::create_dir_all(&upload_local)?;
        if let Some(o) = owner {
            std::os::unix::fs::chown(&upload_local, Some(o.uid), Some(o.gid))?;
        }
        let (mut cmd, user, pass) = match kind {
            Kind::Ferry | Kind::FerryNoFsync => {
                let mut cmd = Command::new(bin);
                cmd.arg("serve")
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--root")
                    .arg(root)
                    .args(["--user", "bench:bench", "--max-sessions", "20000", "--max-sessions-per-ip", "20000"])
                    .args(["--max-startups-per-ip", "20000"])
                    .args(["--idle-timeout", "600"])
                    .arg("--passive-ports")
                    .arg(format!("{}-{}", passive.0, passive.1));
                if kind == Kind::FerryNoFsync {
                    cmd.arg("--no-fsync");
                }
                if let Some(t) = tls {
                    cmd.arg("--tls-cert").arg(&t.cert).arg("--tls-key").arg(&t.key).args(["--tls-policy", "required"]);
                }
                // The login workload's users, and no delay or ban for its wrong passwords.
                let users = login_users(bin, dir.path(), LOGIN_USERS)?;
                let config = dir.path().join("ferry.toml");
                std::fs::write(
                    &config,
                    "[limits]\nfailed_login_delay_ms = 0\nban_after_failures = 0\nmax_login_failures = 1000000\n",
                )?;
                cmd.arg("--users").arg(users).arg("--config").arg(config);
                (cmd, "bench", "bench")
            }
            Kind::Floor => {
                let mut cmd = Command::new(bin);
                cmd.arg("floor-server")
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--root")
                    .arg(root)
                    .arg("--passive")
                    .arg(format!("{}-{}", passive.0, passive.1));
                (cmd, "bench", "bench")
            }
            Kind::Vsftpd | Kind::PureFtpd | Kind::ProFtpd => {
                let owner = owner.with_context(|| format!("{} needs an `ftp` or `nobody` user", kind.name()))?;
                let setup = Setup {
                    kind: kind.peer().context("a peer server")?,
                    bin,
                    dir: dir.path(),
                    root,
                    addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    passive,
                    owner,
                    login: Login { user: "bench", crypt: BENCH_HASH },
                    limits: Limits { sessions: 5000, idle_secs: 600 },
                    log_protocol: false,
                    tls: tls.map(|t| peers::Tls { cert: &t.cert, key: &t.key }),
                };
                let cmd = peers::command(&setup)?;
                match kind {
                    Kind::Vsftpd => (cmd, "anonymous", ""),
                    _ => (cmd, "bench", "bench"),
                }
            }
        };
        let out = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        cleanup::register(child.id());
        let mut server = Server {
            kind,
            tls: tls.is_some(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            user,
            pass,
            upload: format!("/upload/{upload_name}"),
            upload_local,
            version: String::new(),
            child: Some(child),
            log,
            _dir: dir,
        };
        server.version = server.wait_ready()?;
        Ok(server)
    }

    /// Polls until the server greets with 220 (10 s at most); returns the greeting.
    fn wait_ready(&mut self) -> Result<String> {
        let expected = match self.kind.peer() {
            Some(p) => p.greeting(),
            None if self.kind == Kind::Floor => "floor",
            None => "",
        };
        let Some(child) = self.child.as_mut() else { bail!("{} is not running", self.kind.name()) };
        match peers::wait_ready(child, self.addr, expected, Duration::from_secs(10)) {
            Ok(greeting) => Ok(greeting),
            Err(why) => {
                if let Some(c) = self.child.take() {
                    cleanup::unregister(c.id());
                }
                bail!("{}: {why}:\n{}", self.kind.name(), self.log())
            }
        }
    }

    /// The server's main PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `ftp://user:pass@127.0.0.1:port` (no credentials for anonymous).
    pub fn url_base(&self) -> String {
        if self.user == "anonymous" {
            format!("ftp://{}", self.addr)
        } else {
            format!("ftp://{}:{}@{}", self.user, self.pass, self.addr)
        }
    }

    /// What the server wrote to its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server: SIGTERM, up to 2 s, then SIGKILL to its process group and tree; reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            cleanup::terminate(pid, Duration::from_secs(2));
            let _ = child.wait();
            cleanup::unregister(pid);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
