//! pyftpdlib (Python, installed by `scripts/install-test-deps.sh`) as a peer server: one process
//! on a free port of 127.0.0.1 serving a temp dir to `alice:secret` with every permission, killed
//! on drop. Unlike vsftpd and Pure-FTPd it connects an active data connection as soon as it gets
//! `PORT`/`EPRT`, before the transfer command: the FXP order `ferry copy` uses must allow for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SERVER: &str = r#"
import sys, logging
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
logging.basicConfig(level=logging.DEBUG, filename=sys.argv[2])
users = DummyAuthorizer()
users.add_user("alice", "secret", sys.argv[1], perm="elradfmwMT")
FTPHandler.authorizer = users
server = FTPServer(("127.0.0.1", 0), FTPHandler)
print("listening on", server.address[1], flush=True)
server.serve_forever()
"#;

/// A running pyftpdlib server.
pub struct PyFtpd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PyFtpd {
    /// Starts it; panics with the install hint when pyftpdlib is missing.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(dir.path().join("root"))
            .arg(dir.path().join("server.log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = match lines.next() {
            Some(Ok(l)) if l.starts_with("listening on ") => l["listening on ".len()..].parse().unwrap(),
            other => {
                let _ = child.kill();
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
                panic!("pyftpdlib did not start ({other:?}): {err}\nrun scripts/install-test-deps.sh (pip install pyftpdlib)");
            }
        };
        Self { child, port, dir }
    }

    /// `ftp://alice:secret@127.0.0.1:port/rel`.
    pub fn url(&self, rel: &str) -> String {
        format!("ftp://alice:secret@127.0.0.1:{}{rel}", self.port)
    }

    /// The local file behind `rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root").join(rel.trim_start_matches('/'))
    }

    /// Its debug log (every command and reply).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PyFtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
