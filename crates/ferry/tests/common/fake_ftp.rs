//! A scripted FTP server for client tests: the replies a real server would not give (a wrong
//! digest, a short file, `XSHA256` answered 250), on loopback, one thread per connection.
//!
//! It serves one file (any path names it; SIZE gives the last STOR's size once there was one) over EPSV, answers the login, FEAT, TYPE, SIZE, REST,
//! RETR and STOR itself, and asks the test's `answer` first for every line: `Some(reply)` (one or
//! more CRLF-separated lines, sent as they are) overrides the default.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The test's say on a command line: `answer(verb, argument)`.
pub type Answer = dyn Fn(&str, &str) -> Option<String> + Send + Sync;

/// A running fake server; stops accepting when dropped.
pub struct FakeFtp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every command line it received, in order (all connections).
    pub lines: Arc<Mutex<Vec<String>>>,
    /// The bytes of the last STOR.
    pub stored: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl FakeFtp {
    /// Serves `content` for every path; `answer` overrides any reply.
    pub fn start(content: Vec<u8>, answer: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stored = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answer> = Arc::new(answer);
        let content = Arc::new(content);
        let (l, s, st) = (lines.clone(), stored.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (l, s, a, c) = (l.clone(), s.clone(), answer.clone(), content.clone());
                std::thread::spawn(move || session(conn, &l, &s, &*a, &c));
            }
        });
        Self { addr, lines, stored, stop }
    }

    /// `ftp://u:p@addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("ftp://u:p@{}{path}", self.addr)
    }

    /// Whether a command line starting with `prefix` was received.
    pub fn got(&self, prefix: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.starts_with(prefix))
    }
}

impl Drop for FakeFtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn session(conn: TcpStream, lines: &Mutex<Vec<String>>, stored: &Mutex<Vec<u8>>, answer: &Answer, content: &[u8]) {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut out = conn.try_clone().unwrap();
    let mut input = BufReader::new(conn);
    let mut send = |text: &str| out.write_all(format!("{text}\r\n").as_bytes()).is_ok();
    if !send("220 fake ready") {
        return;
    }
    let mut passive: Option<TcpListener> = None;
    let mut offset = 0usize;
    loop {
        let mut line = String::new();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        lines.lock().unwrap().push(line.clone());
        let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
        let verb = verb.to_ascii_uppercase();
        if let Some(reply) = answer(&verb, arg) {
            send(&reply);
            continue;
        }
        match verb.as_str() {
            "USER" => send("331 password?"),
            "PASS" => send("230 in"),
            "FEAT" => send("211-Features:\r\n EPSV\r\n SIZE\r\n REST STREAM\r\n211 End"),
            "TYPE" | "OPTS" => send("200 ok"),
            "PWD" => send("257 \"/\""),
            "SIZE" => {
                // The size of what was stored, once something was.
                let stored = stored.lock().unwrap().len();
                send(&format!("213 {}", if stored > 0 { stored } else { content.len() }))
            }
            "REST" => {
                offset = arg.parse().unwrap_or(0);
                send(&format!("350 restarting at {offset}"))
            }
            "EPSV" => {
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let port = l.local_addr().unwrap().port();
                passive = Some(l);
                send(&format!("229 Entering Extended Passive Mode (|||{port}|)"))
            }
            "RETR" | "STOR" => {
                let Some(l) = passive.take() else {
                    send("425 no data connection");
                    continue;
                };
                send("150 opening");
                let (mut data, _) = l.accept().unwrap();
                if verb == "RETR" {
                    let _ = data.write_all(&content[offset.min(content.len())..]);
                } else {
                    let mut got = Vec::new();
                    let _ = data.read_to_end(&mut got);
                    *stored.lock().unwrap() = got;
                }
                offset = 0;
                drop(data);
                send("226 done")
            }
            "QUIT" => {
                send("221 bye");
                return;
            }
            _ => send("502 not here"),
        };
    }
}
