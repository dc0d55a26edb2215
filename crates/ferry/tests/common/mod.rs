//! Test harness: starts `ferry serve` on port 0 and talks raw FTP to it.
#![allow(dead_code, unused_imports, reason = "each test binary uses its own part of the harness")]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod browser;
pub mod fake_ftp;

pub use ferry_testkit::ctrl::tls_wrap;
pub use ferry_testkit::{proc_status, random_bytes, rss_kib, Ctrl};

/// A running `ferry serve`, stopped (SIGTERM) on drop.
pub struct Ferry {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The admin HTTP listener, when `[admin] listen` was set.
    pub admin: Option<SocketAddr>,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

impl Ferry {
    /// Starts a server with user alice:secret on 127.0.0.1:0 and extra flags.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", extra)
    }

    pub fn start_on(listen: &str, extra: &[&str]) -> Self {
        Self::start_with(listen, extra, &[])
    }

    /// [`Ferry::start_on`] with extra environment variables.
    pub fn start_with(listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_full(listen, None, extra, env)
    }

    /// A server on 127.0.0.1:0 serving `root` (an existing directory, for example a mount point).
    pub fn start_at(root: &Path, extra: &[&str]) -> Self {
        Self::start_full("127.0.0.1:0", Some(root), extra, &[])
    }

    fn start_full(listen: &str, root: Option<&Path>, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = root.map_or_else(|| dir.path().join("root"), Path::to_path_buf);
        std::fs::create_dir_all(&root).unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(dir.path())
            .args(["serve", "--listen", listen, "--root"])
            .arg(&root)
            .args(["--user", "alice:secret"])
            .args(extra)
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("ferry binary runs");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut admin = None;
        let addr = loop {
            let line = lines.next().expect("ferry printed its address").unwrap();
            if let Some(a) = line.strip_prefix("admin listening on ") {
                admin = Some(a.parse().unwrap());
            }
            if let Some(a) = line.strip_prefix("listening on ") {
                break a.parse().unwrap();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self { child: Some(child), addr, admin, root, _dir: dir, stderr_path }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn connect(&self) -> Ctrl {
        Ctrl::connect(self.addr)
    }

    /// A logged-in session.
    pub fn login(&self) -> Ctrl {
        let mut c = self.connect();
        assert_eq!(c.read().code.0, 220);
        c.ok("USER alice", 331);
        c.ok("PASS secret", 230);
        c
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        for _ in 0..200 {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().unwrap().code()
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.stop();
        let log = self.stderr();
        if log.contains("panicked") {
            panic!("the server panicked:\n{log}");
        }
    }
}

/// A listener for active-mode tests.
pub fn active_listener(ip: &str) -> TcpListener {
    TcpListener::bind((ip, 0)).unwrap()
}

pub fn read_file(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// Asserts two directory trees hold the same names and bytes.
pub fn assert_trees_equal(a: &Path, b: &Path) {
    let list = |root: &Path| {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                    v.push((rel, None));
                } else {
                    v.push((rel, Some(std::fs::read(e.path()).unwrap())));
                }
            }
        }
        v.sort();
        v
    };
    assert!(list(a) == list(b), "{} and {} differ", a.display(), b.display());
}

/// Writes a self-signed pair with `ferry cert self-signed` and returns (dir, cert, key).
pub fn make_cert() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cert_for(dir.path(), "", &[]);
    (dir, cert, key)
}

/// A self-signed certificate and key, `DIR/TAGcert.pem` and `DIR/TAGkey.pem`, written by `ferry
/// cert self-signed` for `names` (its defaults, localhost and the loopback addresses, when empty).
pub fn cert_for(dir: &Path, tag: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join(format!("{tag}cert.pem")), dir.join(format!("{tag}key.pem")));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(["cert", "self-signed", "--cert"]).arg(&cert).arg("--key").arg(&key);
    for n in names {
        cmd.args(["--name", n]);
    }
    let st = cmd.output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    (cert, key)
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A rustls client configuration that trusts `cert` (PEM).
pub fn client_config(cert: &std::path::Path) -> std::sync::Arc<rustls::ClientConfig> {
    ferry_testkit::client_config(cert).expect("a usable certificate")
}

/// Starts `ferry serve` with a plain and an implicit-FTPS listener on loopback (user alice:secret,
/// rooted at `root`, working directory `dir`) plus `extra` flags; returns the process and the
/// implicit listener's address.
pub fn spawn_implicit_tls(
    dir: &std::path::Path,
    root: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    extra: &[&str],
    stderr: std::process::Stdio,
) -> (std::process::Child, SocketAddr) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--implicit-tls-listen", "127.0.0.1:0"])
        .args(["--user", "alice:secret", "--root"])
        .arg(root)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .args(extra)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let implicit = loop {
        let l = lines.next().unwrap().unwrap();
        if let Some(a) = l.strip_prefix("listening (implicit FTPS) on ") {
            break a.parse().unwrap();
        }
    };
    // Keep reading: the server prints more, and a closed pipe would fail its start-up.
    std::thread::spawn(move || lines.for_each(drop));
    (child, implicit)
}

/// Waits (up to 15 s) until `file` has at least `n` lines; its lines then.
pub fn wait_for_lines(file: &Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A session logged in over TLS made with `config`, with `PBSZ 0`, `PROT P` and `TYPE I`.
pub fn protected_login(f: &Ferry, config: &std::sync::Arc<rustls::ClientConfig>) -> Ctrl {
    let mut c = Ctrl::greeted(f.addr);
    c.auth_tls(config);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    c.ok("PBSZ 0", 200);
    c.ok("PROT P", 200);
    c.ok("TYPE I", 200);
    c
}

/// `ferry user ...` on `file`, the password on stdin.
pub fn user_cmd(args: &[&str], file: &Path, password: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("user")
        .args(args)
        .arg("--users")
        .arg(file)
        .args(password.map(|_| "--password-stdin"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(p) = password {
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{p}\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ferry user {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads one HTTP/1.1 message's head and body from `reader`: the header lines (name lowercased,
/// value trimmed) and the body (by Content-Length).
pub fn read_http(reader: &mut impl BufRead) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0u8; length];
    std::io::Read::read_exact(reader, &mut body).unwrap();
    (headers, body)
}
