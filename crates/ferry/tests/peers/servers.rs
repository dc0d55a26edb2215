//! Real vsftpd and Pure-FTPd servers for the client interop tests: each [`Peer`] is one foreground
//! server process on a free high port of 127.0.0.1 or ::1, with its configuration, its files and
//! its log in a temp dir; dropping it kills exactly that process. The configurations and the
//! readiness check are `ferry_testkit::peers`', shared with the benchmark.
//!
//! - vsftpd: anonymous only (no password asked), `anon_root` owned by root and not writable, with
//!   an `upload/` directory owned by the `ftp` user where anonymous may upload, create directories,
//!   delete, rename and resume (`anon_other_write_enable`, so REST+STOR and APPE are allowed).
//!   Every URL of a vsftpd peer points into `/upload`.
//! - Pure-FTPd: one virtual user `alice:secret` from a puredb, mapped to the `ftp` user's uid and
//!   chrooted in its home, the temp root.
//!
//! Both must run as root (they chroot and drop privileges). If a binary is missing the test fails
//! and says to run `scripts/install-peer-servers.sh`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry_testkit::peers::{self, Limits, Login, Owner, Setup};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Vsftpd,
    PureFtpd,
}

impl Kind {
    fn peer(self) -> peers::Kind {
        match self {
            Kind::Vsftpd => peers::Kind::Vsftpd,
            Kind::PureFtpd => peers::Kind::PureFtpd,
        }
    }
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
    dir: tempfile::TempDir,
}

impl Peer {
    /// Starts `kind` on 127.0.0.1.
    pub fn start(kind: Kind) -> Self {
        Self::start_on(kind, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Starts `kind` listening on `ip` (one of the loopback addresses) on a free port. A port lost
    /// to another process between probing and binding makes the server exit: retried with another.
    pub fn start_on(kind: Kind, ip: IpAddr) -> Self {
        assert!(peers::is_root(), "the peer tests start vsftpd and Pure-FTPd, which chroot: run them as root");
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
        let owner = peers::server_user()
            .unwrap_or_else(|| panic!("no `ftp` or `nobody` user to run the servers' sessions as: {INSTALL_HINT}"));
        let port = peers::free_port(ip).unwrap();
        let low = peers::free_port(ip).unwrap().clamp(1025, 65535 - PASSIVE_PORTS);
        let passive = (low, low + PASSIVE_PORTS - 1);
        let (root, files, base, cred) = match kind {
            Kind::Vsftpd => {
                // anon_root must not be writable by the anonymous user (vsftpd refuses a writable
                // chroot); uploads go to upload/, owned by the session user.
                let anon = dir.path().join("anon");
                mkdir(&anon, 0o755);
                let upload = anon.join("upload");
                mkdir(&upload, 0o755);
                std::os::unix::fs::chown(&upload, Some(owner.uid), Some(owner.gid)).unwrap();
                (anon, upload, "/upload", "")
            }
            Kind::PureFtpd => {
                let home = dir.path().join("home");
                mkdir(&home, 0o755);
                std::os::unix::fs::chown(&home, Some(owner.uid), Some(owner.gid)).unwrap();
                (home.clone(), home, "", "alice:secret@")
            }
        };
        let bin = binary(kind.peer());
        let setup = Setup {
            kind: kind.peer(),
            bin: &bin,
            dir: dir.path(),
            root: &root,
            addr: SocketAddr::new(ip, port),
            passive,
            owner: &owner,
            login: Login { user: "alice", crypt: SECRET_HASH },
            limits: Limits { sessions: 200, idle_secs: 600 },
            log_protocol: true,
            tls: None,
        };
        let cmd = peers::command(&setup).unwrap_or_else(|e| panic!("setting up {kind:?}: {e}"));
        let child = spawn(cmd, &dir.path().join("server.log"));
        let mut peer = Self { kind, ip, port, passive, child, files, base, cred, owner, dir };
        let addr = SocketAddr::new(ip, port);
        match peers::wait_ready(&mut peer.child, addr, kind.peer().greeting(), Duration::from_secs(10)) {
            Ok(_) => Ok(peer),
            Err(why) => Err(format!("{why}\n{}", peer.log())),
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

    /// The server's log (its stdout/stderr, and its transfer and protocol log).
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        s.push_str(&std::fs::read_to_string(peers::log_file(self.dir.path())).unwrap_or_default());
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
        let mut sessions = peers::children_of(pid);
        while !sessions.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            sessions = peers::children_of(pid);
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

fn spawn(mut cmd: Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// Whether ::1 can be used here.
pub fn ipv6_loopback() -> Option<IpAddr> {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    TcpListener::bind(SocketAddr::new(ip, 0)).ok().map(|_| ip)
}

/// The server's binary; panics with the install hint when it is missing.
fn binary(kind: peers::Kind) -> PathBuf {
    kind.binary().unwrap_or_else(|| panic!("{} not found: {INSTALL_HINT}", kind.name()))
}

/// The first of `names` found in `dirs` or on PATH; panics with the install hint.
pub fn require(names: &[&str], dirs: &[&str]) -> PathBuf {
    peers::find(names, dirs).unwrap_or_else(|| panic!("{} not found: {INSTALL_HINT}", names[0]))
}

fn mkdir(p: &Path, mode: u32) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
