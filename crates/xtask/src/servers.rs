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

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cleanup;

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

    /// Whether uploads are on stable storage when the server answers 226.
    pub fn durability(self) -> &'static str {
        match self {
            Kind::Ferry => "fsync before 226 (file + directory on replace)",
            Kind::FerryNoFsync => "no fsync (--no-fsync)",
            Kind::Vsftpd | Kind::PureFtpd | Kind::ProFtpd => "no fsync (page cache only; checked with strace)",
            Kind::Floor => "no fsync",
        }
    }

    /// The binary, if installed.
    pub fn binary(self, ferry: &Path) -> Option<PathBuf> {
        let (names, dirs): (&[&str], &[&str]) = match self {
            Kind::Ferry | Kind::FerryNoFsync => return ferry.is_file().then(|| ferry.to_path_buf()),
            Kind::Floor => return std::env::current_exe().ok(),
            Kind::Vsftpd => (&["vsftpd"], &["/usr/sbin", "/usr/local/sbin", "/opt/ferry-peers/vsftpd/usr/sbin"]),
            Kind::PureFtpd => {
                (&["pure-ftpd"], &["/usr/sbin", "/usr/local/sbin", "/opt/ferry-peers/pure-ftpd/usr/sbin"])
            }
            Kind::ProFtpd => {
                (&["proftpd"], &["/usr/sbin", "/usr/local/sbin", "/opt/ferry-peers/proftpd-core/usr/sbin"])
            }
        };
        let path = std::env::var("PATH").unwrap_or_default();
        for name in names {
            for dir in dirs.iter().copied().chain(path.split(':')) {
                let p = Path::new(dir).join(name);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        None
    }
}

/// A SHA-512 crypt(3) hash of "bench" (`openssl passwd -6 -salt ferrybench bench`).
const BENCH_HASH: &str =
    "$6$ferrybench$HW02LIlSntvEIhnh4b9ZRA7u1XG3ZPnEgUx1V9dj9xGSbjWvru.o0j6ImqDBDTwDBpmU8U4MTTLBjyFR8wl.90";

/// The unprivileged user the peers run sessions as and own uploads with.
#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// `ftp` (created by the vsftpd package), else `nobody`, from /etc/passwd.
pub fn server_user() -> Option<Owner> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    for want in ["ftp", "nobody"] {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[0] == want {
                if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                    return Some(Owner { name: want.into(), uid, gid });
                }
            }
        }
    }
    None
}

/// A running server, stopped (by its PID) on [`Server::stop`] or drop.
pub struct Server {
    pub kind: Kind,
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

impl Server {
    /// Starts `kind` on 127.0.0.1 serving `root` (which holds `upload/NAME`, writable by `owner`).
    pub fn start(kind: Kind, bin: &Path, root: &Path, owner: Option<&Owner>) -> Result<Self> {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(kind, bin, root, owner) {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("{e:#}"),
            }
        }
        bail!("{} did not start after 5 attempts: {last}", kind.name())
    }

    fn try_start(kind: Kind, bin: &Path, root: &Path, owner: Option<&Owner>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix(&format!("ferry-bench-{}-", kind.name())).tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let port = free_port()?;
        let slot = match kind {
            Kind::Vsftpd => 0,
            Kind::PureFtpd => 1,
            Kind::ProFtpd => 2,
            Kind::Ferry => 3,
            Kind::FerryNoFsync => 4,
            Kind::Floor => 5,
        };
        let passive = (PASSIVE_BASE + slot * PASSIVE_SPAN, PASSIVE_BASE + (slot + 1) * PASSIVE_SPAN - 1);
        let log = dir.path().join("server.log");
        let upload_local = root.join("upload").join(kind.name());
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
                    .args(["--idle-timeout", "600"])
                    .arg("--passive-ports")
                    .arg(format!("{}-{}", passive.0, passive.1));
                if kind == Kind::FerryNoFsync {
                    cmd.arg("--no-fsync");
                }
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
            Kind::Vsftpd => (vsftpd(bin, dir.path(), root, port, passive, owner)?, "anonymous", ""),
            Kind::PureFtpd => (pureftpd(bin, dir.path(), root, port, passive, owner)?, "bench", "bench"),
            Kind::ProFtpd => (proftpd(bin, dir.path(), root, port, passive, owner)?, "bench", "bench"),
        };
        let out = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).process_group(0);
        let child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        cleanup::register(child.id());
        let mut server = Server {
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            user,
            pass,
            upload: format!("/upload/{}", kind.name()),
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
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = self.log();
                if let Some(c) = self.child.take() {
                    cleanup::unregister(c.id());
                }
                bail!("{} exited with {status} before greeting:\n{log}", self.kind.name());
            }
            if Instant::now() > deadline {
                bail!("{}: no 220 greeting on {} within 10 s:\n{}", self.kind.name(), self.addr, self.log());
            }
            if let Ok(stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
                use std::io::{BufRead, BufReader, Write};
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line)?;
                let _ = (&stream).write_all(b"QUIT\r\n");
                let expected = match self.kind {
                    Kind::Ferry | Kind::FerryNoFsync => "220",
                    Kind::Vsftpd => "vsFTPd",
                    Kind::PureFtpd => "220",
                    Kind::ProFtpd => "ProFTPD",
                    Kind::Floor => "floor",
                };
                if line.starts_with("220") && line.contains(expected) {
                    return Ok(line.trim_end().trim_start_matches("220").trim_start_matches(['-', ' ']).to_string());
                }
                bail!("unexpected greeting on {}: {line:?}", self.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
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

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn vsftpd(
    bin: &Path,
    dir: &Path,
    root: &Path,
    port: u16,
    passive: (u16, u16),
    owner: Option<&Owner>,
) -> Result<Command> {
    let owner = owner.context("vsftpd needs an `ftp` or `nobody` user")?;
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty)?;
    let conf = format!(
        "listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
ftp_username={user}
anon_root={root}
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
pasv_enable=YES
pasv_min_port={low}
pasv_max_port={high}
port_enable=YES
connect_from_port_20=NO
use_sendfile=YES
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir={empty}
dirmessage_enable=NO
max_clients=5000
max_per_ip=5000
idle_session_timeout=600
data_connection_timeout=60
syslog_enable=NO
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file={log}
",
        user = owner.name,
        root = root.display(),
        low = passive.0,
        high = passive.1,
        empty = empty.display(),
        log = dir.join("xfer.log").display(),
    );
    let path = dir.join("vsftpd.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new(bin);
    cmd.arg(path);
    Ok(cmd)
}

fn pureftpd(
    bin: &Path,
    dir: &Path,
    root: &Path,
    port: u16,
    passive: (u16, u16),
    owner: Option<&Owner>,
) -> Result<Command> {
    let owner = owner.context("Pure-FTPd needs an `ftp` or `nobody` user")?;
    let pure_pw = bin.parent().and_then(|p| p.parent()).map(|usr| usr.join("bin/pure-pw")).filter(|p| p.is_file());
    let pure_pw = pure_pw.unwrap_or_else(|| PathBuf::from("pure-pw"));
    // The passwd format pure-pw writes; "/./" marks the chroot point. Written by hand: `pure-pw
    // useradd` would hash with argon2id tuned to take seconds per login.
    let passwd = dir.join("pureftpd.passwd");
    std::fs::write(
        &passwd,
        format!("bench:{BENCH_HASH}:{}:{}::{}/./::::::::::::\n", owner.uid, owner.gid, root.display()),
    )?;
    let pdb = dir.join("pureftpd.pdb");
    let out = Command::new(&pure_pw).arg("mkdb").arg(&pdb).arg("-f").arg(&passwd).output()?;
    if !out.status.success() {
        bail!("pure-pw mkdb: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut cmd = Command::new(bin);
    cmd.arg("-l")
        .arg(format!("puredb:{}", pdb.display()))
        .arg("-S")
        .arg(format!("127.0.0.1,{port}"))
        .arg("-p")
        .arg(format!("{}:{}", passive.0, passive.1))
        // No anonymous, chroot, no DNS, no syslog, 5000 sessions in all and per IP, idle 10 min,
        // listings up to 100,000 entries, transfer log in CLF.
        .args(["-E", "-A", "-H", "-f", "none", "-u", "1", "-c", "5000", "-C", "5000", "-I", "10"])
        .args(["-L", "100000:5"])
        .arg("-O")
        .arg(format!("clf:{}", dir.join("xfer.log").display()));
    Ok(cmd)
}

fn proftpd(
    bin: &Path,
    dir: &Path,
    root: &Path,
    port: u16,
    passive: (u16, u16),
    owner: Option<&Owner>,
) -> Result<Command> {
    let owner = owner.context("ProFTPD needs an `ftp` or `nobody` user")?;
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, format!("bench:{BENCH_HASH}:{}:{}::{}:/bin/sh\n", owner.uid, owner.gid, root.display()))?;
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600))?;
    let group = dir.join("group");
    std::fs::write(&group, format!("{}:x:{}:\n", owner.name, owner.gid))?;
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o600))?;
    let conf = format!(
        "ServerType standalone
DefaultServer on
ServerName \"ferry-bench\"
Port {port}
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User {user}
Group {group_name}
Umask 022
MaxInstances 5000
PassivePorts {low} {high}
UseReverseDNS off
DelayEngine off
AuthPAM off
AuthOrder mod_auth_file.c
AuthUserFile {passwd}
AuthGroupFile {groupfile}
RequireValidShell off
DefaultRoot ~
AllowOverwrite on
UseSendfile on
ScoreboardFile {dir}/proftpd.scoreboard
PidFile {dir}/proftpd.pid
WtmpLog off
SystemLog {dir}/proftpd.log
TransferLog {dir}/xfer.log
TimeoutIdle 600
TimeoutNoTransfer 600
",
        user = owner.name,
        group_name = owner.name,
        low = passive.0,
        high = passive.1,
        passwd = passwd.display(),
        groupfile = group.display(),
        dir = dir.display(),
    );
    let path = dir.join("proftpd.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = Command::new(bin);
    cmd.arg("-n").arg("-q").arg("-c").arg(path);
    Ok(cmd)
}
