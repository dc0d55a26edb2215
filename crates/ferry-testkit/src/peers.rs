//! The real FTP servers Ferry is tested and measured against: vsftpd, Pure-FTPd and ProFTPD, each
//! given a configuration in a directory of its own and started as a plain foreground process on
//! a loopback address and a free high port.
//!
//! [`command`] writes what a server needs ([`Setup`]) and returns the command that starts it;
//! [`wait_ready`] polls until it greets. What runs the process (and kills it) is the caller's: the
//! tests (`crates/ferry/tests/peers/servers.rs`) and the benchmark (`crates/xtask/src/servers.rs`)
//! each own theirs. The servers chroot and drop privileges, so they must be started as root, with
//! an unprivileged [`Owner`] for their sessions. `scripts/install-peer-servers.sh` installs
//! vsftpd and Pure-FTPd, `scripts/install-bench-deps.sh` ProFTPD.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// vsftpd (anonymous logins).
    Vsftpd,
    /// Pure-FTPd (a virtual user in a puredb).
    PureFtpd,
    /// ProFTPD (a user in an AuthUserFile).
    ProFtpd,
}

impl Kind {
    /// The lower-case name used in tables and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vsftpd => "vsftpd",
            Self::PureFtpd => "pureftpd",
            Self::ProFtpd => "proftpd",
        }
    }

    /// What its 220 greeting contains (to tell it from another server on a port we lost).
    pub fn greeting(self) -> &'static str {
        match self {
            Self::Vsftpd => "vsFTPd",
            Self::PureFtpd => "Pure-FTPd",
            Self::ProFtpd => "ProFTPD",
        }
    }

    /// The server's binary, if installed.
    pub fn binary(self) -> Option<PathBuf> {
        match self {
            Self::Vsftpd => find(&["vsftpd"], SBIN),
            Self::PureFtpd => find(&["pure-ftpd"], SBIN),
            Self::ProFtpd => find(&["proftpd"], SBIN),
        }
    }
}

/// Where the install scripts put the servers (Debian's, or unpacked under /opt/ferry-peers).
const SBIN: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/ferry-peers/vsftpd/usr/sbin",
    "/opt/ferry-peers/pure-ftpd/usr/sbin",
    "/opt/ferry-peers/proftpd-core/usr/sbin",
];
const BIN: &[&str] = &["/usr/bin", "/usr/local/bin", "/opt/ferry-peers/pure-ftpd/usr/bin"];

/// The first of `names` found in `dirs` or on PATH.
pub fn find(names: &[&str], dirs: &[&str]) -> Option<PathBuf> {
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

/// The unprivileged system user the servers run sessions as and write files as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
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

/// A port on `ip` that was free a moment ago (bind port 0, read it, release it).
pub fn free_port(ip: IpAddr) -> io::Result<u16> {
    Ok(TcpListener::bind(SocketAddr::new(ip, 0))?.local_addr()?.port())
}

/// The login a server is given (vsftpd takes anonymous logins instead).
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The user name.
    pub user: &'a str,
    /// Its password as a SHA-512 crypt(3) hash (`openssl passwd -6`): `pure-pw useradd` would
    /// hash with argon2id tuned to take seconds per login.
    pub crypt: &'a str,
}

/// Everything a server is started with.
#[derive(Debug, Clone)]
pub struct Setup<'a> {
    /// Which server.
    pub kind: Kind,
    /// Its binary.
    pub bin: &'a Path,
    /// A directory of its own: configuration, password files, logs.
    pub dir: &'a Path,
    /// What it serves: vsftpd's `anon_root`, the user's home (chroot) for the others.
    pub root: &'a Path,
    /// The listen address and port.
    pub addr: SocketAddr,
    /// The passive port range.
    pub passive: (u16, u16),
    /// The user sessions run as.
    pub owner: &'a Owner,
    /// The login (Pure-FTPd, ProFTPD).
    pub login: Login<'a>,
    /// Sessions in all and per address, and the idle timeout.
    pub limits: Limits,
    /// Log the protocol exchange too (vsftpd's `log_ftp_protocol`): for tests, not benchmarks.
    pub log_protocol: bool,
    /// Explicit FTPS (AUTH TLS), required on the control and the data connections, the data
    /// connections resuming the control connection's TLS session; `None`: plain FTP only.
    pub tls: Option<Tls<'a>>,
}

/// A server's session limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sessions in all and per address.
    pub sessions: u32,
    /// Idle timeout in seconds.
    pub idle_secs: u32,
}

/// The certificate a server presents for FTPS (PEM files readable by root).
#[derive(Debug, Clone, Copy)]
pub struct Tls<'a> {
    /// The certificate chain.
    pub cert: &'a Path,
    /// Its private key (EC or RSA).
    pub key: &'a Path,
}

/// The server's log file in `dir` (its transfer log; vsftpd's also has the protocol exchange).
pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("xfer.log")
}

/// Writes what `setup.kind` needs into `setup.dir` and returns the command that starts it in the
/// foreground.
pub fn command(setup: &Setup<'_>) -> io::Result<Command> {
    match setup.kind {
        Kind::Vsftpd => vsftpd(setup),
        Kind::PureFtpd => pureftpd(setup),
        Kind::ProFtpd => proftpd(setup),
    }
}

fn vsftpd(s: &Setup<'_>) -> io::Result<Command> {
    // vsftpd refuses a chroot it cannot leave empty: its secure_chroot_dir.
    let empty = s.dir.join("empty");
    std::fs::create_dir_all(&empty)?;
    let listen = match s.addr.ip() {
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
max_clients={max}
max_per_ip={max}
idle_session_timeout={idle}
data_connection_timeout=60
syslog_enable=NO
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file={log}
log_ftp_protocol={protocol}
",
        port = s.addr.port(),
        user = s.owner.name,
        root = s.root.display(),
        low = s.passive.0,
        high = s.passive.1,
        empty = empty.display(),
        max = s.limits.sessions,
        idle = s.limits.idle_secs,
        log = log_file(s.dir).display(),
        protocol = if s.log_protocol { "YES" } else { "NO" },
    );
    // TLS required for logins and data, every protocol version OpenSSL allows from 1.2 up, and
    // data connections that resume the control connection's session (the default, said anyway).
    let tls = match s.tls {
        Some(t) => format!(
            "ssl_enable=YES\nallow_anon_ssl=YES\nforce_anon_logins_ssl=YES\nforce_anon_data_ssl=YES\n\
             force_local_logins_ssl=YES\nforce_local_data_ssl=YES\nssl_sslv2=NO\nssl_sslv3=NO\nssl_tlsv1=YES\n\
             require_ssl_reuse=YES\nssl_ciphers=HIGH\nrsa_cert_file={}\nrsa_private_key_file={}\n",
            t.cert.display(),
            t.key.display()
        ),
        None => String::new(),
    };
    let path = s.dir.join("vsftpd.conf");
    std::fs::write(&path, conf + &tls)?;
    let mut cmd = Command::new(s.bin);
    cmd.arg(path);
    Ok(cmd)
}

fn pureftpd(s: &Setup<'_>) -> io::Result<Command> {
    let sibling = s.bin.parent().and_then(|p| p.parent()).map(|usr| usr.join("bin/pure-pw")).filter(|p| p.is_file());
    let pure_pw = sibling.or_else(|| find(&["pure-pw"], BIN)).unwrap_or_else(|| PathBuf::from("pure-pw"));
    // The passwd format pure-pw writes; "/./" marks the chroot point.
    let passwd = s.dir.join("pureftpd.passwd");
    let Login { user, crypt } = s.login;
    let line = format!("{user}:{crypt}:{}:{}::{}/./::::::::::::\n", s.owner.uid, s.owner.gid, s.root.display());
    std::fs::write(&passwd, line)?;
    let pdb = s.dir.join("pureftpd.pdb");
    let out = Command::new(&pure_pw).arg("mkdb").arg(&pdb).arg("-f").arg(&passwd).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("pure-pw mkdb: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let mut cmd = Command::new(s.bin);
    cmd.arg("-l")
        .arg(format!("puredb:{}", pdb.display()))
        .arg("-S")
        .arg(format!("{},{}", s.addr.ip(), s.addr.port()))
        .arg("-p")
        .arg(format!("{}:{}", s.passive.0, s.passive.1))
        // No anonymous, chroot, no DNS, no syslog, sessions in all and per IP, idle minutes,
        // listings up to 100,000 entries, transfer log in CLF.
        .args(["-E", "-A", "-H", "-f", "none", "-u", "1"])
        .args(["-c", &s.limits.sessions.to_string(), "-C", &s.limits.sessions.to_string()])
        .args(["-I", &s.limits.idle_secs.div_ceil(60).to_string(), "-L", "100000:5"])
        .arg("-O")
        .arg(format!("clf:{}", log_file(s.dir).display()));
    if let Some(t) = s.tls {
        // -Y 3: TLS required on the control connection and for data (Pure-FTPd requires no
        // session reuse on data connections and has no setting for it).
        cmd.args(["-Y", "3", "-2"]).arg(format!("{},{}", t.cert.display(), t.key.display()));
    }
    Ok(cmd)
}

fn proftpd(s: &Setup<'_>) -> io::Result<Command> {
    let Login { user, crypt } = s.login;
    let passwd = s.dir.join("passwd");
    let line = format!("{user}:{crypt}:{}:{}::{}:/bin/sh\n", s.owner.uid, s.owner.gid, s.root.display());
    std::fs::write(&passwd, line)?;
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600))?;
    let group = s.dir.join("group");
    std::fs::write(&group, format!("{}:x:{}:\n", s.owner.name, s.owner.gid))?;
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o600))?;
    let conf = format!(
        "ServerType standalone
DefaultServer on
ServerName \"ferry-peer\"
Port {port}
DefaultAddress {ip}
SocketBindTight on
UseIPv6 {ipv6}
User {owner}
Group {owner}
Umask 022
MaxInstances {max}
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
TransferLog {log}
TimeoutIdle {idle}
TimeoutNoTransfer {idle}
",
        port = s.addr.port(),
        ip = s.addr.ip(),
        ipv6 = if s.addr.is_ipv6() { "on" } else { "off" },
        owner = s.owner.name,
        max = s.limits.sessions,
        low = s.passive.0,
        high = s.passive.1,
        passwd = passwd.display(),
        groupfile = group.display(),
        dir = s.dir.display(),
        log = log_file(s.dir).display(),
        idle = s.limits.idle_secs,
    );
    // mod_tls is a loadable module (Debian's proftpd-mod-crypto), next to the binary's tree.
    let tls = match s.tls {
        Some(t) => {
            let bin = std::fs::canonicalize(s.bin)?;
            let modules = bin.parent().and_then(Path::parent).map(|usr| usr.join("lib/proftpd")).unwrap_or_default();
            if !modules.join("mod_tls.so").is_file() {
                return Err(io::Error::other(format!(
                    "no mod_tls.so in {} (scripts/install-bench-deps.sh installs proftpd-mod-crypto)",
                    modules.display()
                )));
            }
            // An EC key goes in TLSECCertificate*, an RSA key in TLSRSACertificate*.
            let pem = std::fs::read_to_string(t.key).unwrap_or_default();
            let kind = if pem.contains("EC PRIVATE KEY") || ec_pkcs8(&pem) { "EC" } else { "RSA" };
            format!(
                "ModulePath {modules}\nLoadModule mod_tls.c\nTLSEngine on\nTLSRequired on\nTLSProtocol TLSv1.2 TLSv1.3\n\
                 TLS{kind}CertificateFile {cert}\nTLS{kind}CertificateKeyFile {key}\nTLSLog {dir}/tls.log\n",
                modules = modules.display(),
                cert = t.cert.display(),
                key = t.key.display(),
                dir = s.dir.display(),
            )
        }
        None => String::new(),
    };
    let path = s.dir.join("proftpd.conf");
    std::fs::write(&path, conf + &tls)?;
    let mut cmd = Command::new(s.bin);
    cmd.arg("-n").arg("-q").arg("-c").arg(path);
    Ok(cmd)
}

/// Whether a PKCS#8 PEM key holds an EC key: its algorithm identifier, id-ecPublicKey
/// (1.2.840.10045.2.1), comes at the same offset in every P-256 and P-384 key, where its base64
/// reads `ByqGSM49AgE`.
fn ec_pkcs8(pem: &str) -> bool {
    pem.contains("-----BEGIN PRIVATE KEY-----") && pem.lines().nth(1).is_some_and(|l| l.contains("ByqGSM49AgE"))
}

/// Polls `addr` until the server greets with 220 and `expected` in the greeting (or `child`
/// exits, or `within` passes); returns the greeting's text. A greeting without `expected` is some
/// other server on a port this one lost (this one then exits on its failed bind).
pub fn wait_ready(child: &mut Child, addr: SocketAddr, expected: &str, within: Duration) -> Result<String, String> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before greeting"));
        }
        if Instant::now() > deadline {
            return Err(format!("no 220 greeting from {addr} within {within:?}"));
        }
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(stream) => {
                let greeting = read_greeting(&stream);
                let _ = (&stream).write_all(b"QUIT\r\n");
                if greeting.starts_with("220") && greeting.contains(expected) {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("exited with {status} right after a greeting on {addr}"));
                    }
                    let first = greeting.lines().next().unwrap_or_default();
                    return Ok(first.trim_start_matches("220").trim_start_matches(['-', ' ']).to_string());
                }
                return Err(format!("unexpected greeting on {addr}: {greeting:?}"));
            }
            // Not listening yet: poll again.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Reads the (possibly multi-line) greeting; empty on timeout.
fn read_greeting(stream: &TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
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

/// The processes whose parent is `pid` (from /proc/*/stat): a server's sessions.
pub fn children_of(pid: u32) -> Vec<u32> {
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

/// Whether this process runs as root (the servers chroot and drop privileges).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::ec_pkcs8;

    #[test]
    fn ec_keys_are_told_from_rsa_keys() {
        // The first base64 lines of an `openssl req -newkey ec` P-256 key and of an RSA key.
        let ec = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggHN9uAQ8H0Y5b7YG\n";
        let rsa = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n";
        assert!(ec_pkcs8(ec));
        assert!(!ec_pkcs8(rsa));
        assert!(!ec_pkcs8("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA\n"));
    }
}
