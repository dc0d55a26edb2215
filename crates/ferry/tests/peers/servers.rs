//! Real vsftpd and Pure-FTPd servers for the client interop tests: each [`Peer`] is one foreground
//! server process on a free high port of 127.0.0.1 or ::1, with its configuration, its files and
//! its log in a temp dir; dropping it kills exactly that process.
//!
//! - vsftpd: anonymous only (no password asked), `anon_root` owned by root and not writable, with
//!   an `upload/` directory owned by the `ftp` user where anonymous may upload, create directories,
//!   delete, rename and resume (`anon_other_write_enable`, so REST+STOR and APPE are allowed).
//!   Every URL of a vsftpd peer points into `/upload`.
//! - Pure-FTPd: one virtual user `alice:secret` from a puredb (built with `pure-pw mkdb` from a
//!   passwd line with a SHA-512 crypt hash: `pure-pw useradd` would hash with argon2id tuned to take
//!   seconds per login), mapped to the `ftp` user's uid and chrooted in its home, the temp root.
//!
//! Both must run as root (they chroot and drop privileges). If a binary is missing the test fails
//! and says to run `scripts/install-peer-servers.sh`.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vsftpd,
    PureFtpd,
}

/// A SHA-512 crypt(3) hash of "secret" (`openssl passwd -6 -salt ferrypeers secret`).
const SECRET_HASH: &str =
    "$6$ferrypeers$93RuAxRwquvKjy2QBpnnaYps3Mn9D6V64BGPa6CDeg6H.fLSb.CKdK/doEwJ7nkGeNLpK3.mT07A1fE8IDiEh0";

const INSTALL_HINT: &str = "run `sudo scripts/install-peer-servers.sh` first (`make check` runs it)";

/// Ports in each server's passive range.
const PASSIVE_PORTS: u16 = 200;

/// A running peer server, killed on drop.
pub struct Peer {
    pub kind: Kind,
    pub ip: IpAddr,
    pub port: u16,
    /// The passive port range the server was given.
    pub passive: (u16, u16),
    child: Child,
    /// The local directory behind the URL path `base`.
    files: PathBuf,
    /// URL path prefix of everything the tests touch ("/upload" on vsftpd).
    base: &'static str,
    /// `user:password@` for the URL, or empty for anonymous.
    cred: &'static str,
    owner: Owner,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The unprivileged system user the servers write files as.
#[derive(Debug, Clone)]
struct Owner {
    name: String,
    uid: u32,
    gid: u32,
}

impl Peer {
    /// Starts `kind` on 127.0.0.1.
    pub fn start(kind: Kind) -> Self {
        Self::start_on(kind, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Starts `kind` listening on `ip` (one of the loopback addresses) on a free port. A port lost
    /// to another process between probing and binding makes the server exit: retried with another.
    pub fn start_on(kind: Kind, ip: IpAddr) -> Self {
        require_root();
        let mut last_log = String::new();
        for _ in 0..5 {
            match Self::try_start(kind, ip) {
                Ok(peer) => return peer,
                Err(log) => last_log = log,
            }
        }
        panic!("{kind:?} on {ip} did not start after 5 attempts; last log:\n{last_log}");
    }

    fn try_start(kind: Kind, ip: IpAddr) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let owner = server_user();
        let port = free_port(ip);
        let low = free_port(ip).clamp(1025, 65535 - PASSIVE_PORTS);
        let passive = (low, low + PASSIVE_PORTS - 1);
        let log = dir.path().join("server.log");
        let (cmd, files, base, cred) = match kind {
            Kind::Vsftpd => {
                let (cmd, files) = vsftpd_setup(dir.path(), ip, port, passive, &owner);
                (cmd, files, "/upload", "")
            }
            Kind::PureFtpd => {
                let (cmd, files) = pureftpd_setup(dir.path(), ip, port, passive, &owner);
                (cmd, files, "", "alice:secret@")
            }
        };
        let child = spawn(cmd, &log);
        let mut peer = Self { kind, ip, port, passive, child, files, base, cred, owner, log, _dir: dir };
        peer.wait_ready()?;
        Ok(peer)
    }

    /// Polls until the server answers with its 220 greeting (or exits, or 10 s pass).
    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::new(self.ip, self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited with {status} before greeting:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("no 220 greeting from {addr} within 10 s:\n{}", self.log()));
            }
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(stream) => {
                    let greeting = read_greeting(&stream);
                    let _ = (&stream).write_all(b"QUIT\r\n");
                    let expected = match self.kind {
                        Kind::Vsftpd => "vsFTPd",
                        Kind::PureFtpd => "Pure-FTPd",
                    };
                    // Someone else's server on a port we lost would greet differently (and ours
                    // would have exited on the failed bind).
                    if greeting.contains(expected) && self.child.try_wait().unwrap().is_none() {
                        return Ok(());
                    }
                    return Err(format!("unexpected greeting on {addr}: {greeting:?}\n{}", self.log()));
                }
                // Not listening yet: poll again.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// `ftp://[user:pass@]host:port/base/rel` (`rel` starts with '/').
    pub fn url(&self, rel: &str) -> String {
        format!("ftp://{}{}{}", self.cred, self.authority(), self.remote(rel))
    }

    /// `host:port`, with brackets for IPv6.
    pub fn authority(&self) -> String {
        SocketAddr::new(self.ip, self.port).to_string()
    }

    /// The path on the server (what a URL or `mv` names) of `rel`.
    pub fn remote(&self, rel: &str) -> String {
        format!("{}{rel}", self.base)
    }

    /// The local file behind the remote `rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.files.join(rel.trim_start_matches('/'))
    }

    /// Puts a file straight into the server's directory, owned by the server's user (so the
    /// server may also overwrite, append to or delete it), its directories too.
    pub fn seed(&self, rel: &str, data: &[u8]) {
        let p = self.path(rel);
        let mut missing = Vec::new();
        let mut d = p.parent().unwrap().to_path_buf();
        while !d.exists() {
            missing.push(d.clone());
            d = d.parent().unwrap().to_path_buf();
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d).unwrap();
            self.own(d, 0o755);
        }
        std::fs::write(&p, data).unwrap();
        self.own(&p, 0o644);
    }

    fn own(&self, p: &Path, mode: u32) {
        std::os::unix::fs::chown(p, Some(self.owner.uid), Some(self.owner.gid)).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The server's log (its stdout/stderr, and vsftpd's protocol log).
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(v) = std::fs::read_to_string(self._dir.path().join("vsftpd.log")) {
            s.push_str(&v);
        }
        s
    }
}

impl Drop for Peer {
    /// Lets the sessions the clients have quit end (each server forks one process per session;
    /// killed with the listener first, they would outlive it), then kills exactly the server we
    /// started and whatever session of it is still there, by pid.
    fn drop(&mut self) {
        let pid = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut sessions = children_of(pid);
        while !sessions.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            sessions = children_of(pid);
        }
        for s in sessions {
            let _ = Command::new("kill").args(["-KILL", &s.to_string()]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- {:?} on {} log (last lines) ---", self.kind, self.authority());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// The processes whose parent is `pid` (from /proc/*/stat).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let child: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == pid).then_some(child)
    })
    .collect()
}

fn spawn(mut cmd: Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// Reads the (possibly multi-line) greeting; empty on timeout.
fn read_greeting(stream: &TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut text = String::new();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("220 ") || !line.starts_with("220") {
            break;
        }
    }
    text
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0)).unwrap().local_addr().unwrap().port()
}

/// Whether ::1 can be used here.
pub fn ipv6_loopback() -> Option<IpAddr> {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    TcpListener::bind(SocketAddr::new(ip, 0)).ok().map(|_| ip)
}

fn require_root() {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    assert_eq!(uid, 0, "the peer tests start vsftpd and Pure-FTPd, which chroot: run them as root");
}

/// The first of `names` found in the usual places or on PATH.
pub fn binary(names: &[&str], dirs: &[&str]) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for name in names {
        for dir in dirs.iter().copied().chain(path.split(':')) {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{} not found: {INSTALL_HINT}", names[0]);
}

const SBIN: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/opt/ferry-peers/pure-ftpd/usr/sbin"];
const BIN: &[&str] = &["/usr/bin", "/usr/local/bin", "/opt/ferry-peers/pure-ftpd/usr/bin"];

/// `ftp` (created by the vsftpd package), else `nobody`, from /etc/passwd.
fn server_user() -> Owner {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    for want in ["ftp", "nobody"] {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[0] == want {
                if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                    return Owner { name: want.into(), uid, gid };
                }
            }
        }
    }
    panic!("no `ftp` or `nobody` user to run the servers' sessions as: {INSTALL_HINT}");
}

fn mkdir(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes vsftpd.conf; returns the command and the directory behind `/upload`.
fn vsftpd_setup(dir: &Path, ip: IpAddr, port: u16, passive: (u16, u16), owner: &Owner) -> (Command, PathBuf) {
    let bin = binary(&["vsftpd"], SBIN);
    // anon_root must not be writable by the anonymous user (vsftpd refuses a writable chroot).
    let anon = dir.join("anon");
    mkdir(&anon, 0o755);
    let upload = anon.join("upload");
    mkdir(&upload, 0o755);
    std::os::unix::fs::chown(&upload, Some(owner.uid), Some(owner.gid)).unwrap();
    let empty = dir.join("empty");
    mkdir(&empty, 0o755);
    let listen = match ip {
        IpAddr::V4(a) => format!("listen=YES\nlisten_ipv6=NO\nlisten_address={a}\n"),
        IpAddr::V6(a) => format!("listen=NO\nlisten_ipv6=YES\nlisten_address6={a}\n"),
    };
    let conf = format!(
        "{listen}listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
ftp_username={user}
anon_root={anon}
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
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
secure_chroot_dir={empty}
dirmessage_enable=NO
max_clients=200
max_per_ip=200
idle_session_timeout=60
data_connection_timeout=30
syslog_enable=NO
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file={log}
",
        user = owner.name,
        anon = anon.display(),
        low = passive.0,
        high = passive.1,
        empty = empty.display(),
        log = dir.join("vsftpd.log").display(),
    );
    let conf_path = dir.join("vsftpd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(conf_path);
    (cmd, upload)
}

/// Writes the passwd file and puredb; returns the command and the user's home.
fn pureftpd_setup(dir: &Path, ip: IpAddr, port: u16, passive: (u16, u16), owner: &Owner) -> (Command, PathBuf) {
    let bin = binary(&["pure-ftpd"], SBIN);
    let pure_pw = binary(&["pure-pw"], BIN);
    let home = dir.join("home");
    mkdir(&home, 0o755);
    std::os::unix::fs::chown(&home, Some(owner.uid), Some(owner.gid)).unwrap();
    // The passwd format pure-pw writes; "/./" marks the chroot point.
    let passwd = dir.join("pureftpd.passwd");
    let line = format!("alice:{SECRET_HASH}:{}:{}::{}/./::::::::::::\n", owner.uid, owner.gid, home.display());
    std::fs::write(&passwd, line).unwrap();
    let pdb = dir.join("pureftpd.pdb");
    let out = Command::new(&pure_pw).arg("mkdb").arg(&pdb).arg("-f").arg(&passwd).output().unwrap();
    assert!(out.status.success(), "pure-pw mkdb: {}", String::from_utf8_lossy(&out.stderr));
    let mut cmd = Command::new(bin);
    cmd.arg("-l")
        .arg(format!("puredb:{}", pdb.display()))
        .arg("-S")
        .arg(format!("{ip},{port}"))
        .arg("-p")
        .arg(format!("{}:{}", passive.0, passive.1))
        .args(["-E", "-A", "-H", "-f", "none", "-u", "1", "-c", "200", "-C", "200", "-I", "60"]);
    (cmd, home)
}
