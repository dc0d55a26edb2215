//! End-to-end: `kill -9` of the server at random points of 200 uploads (new files, replacements,
//! APPE, REST+STOR), restarting it on the same root each time. After every restart each file must
//! be what the rules allow: an upload answered 226 is there whole; a replacement cut short left
//! the old file (or the whole new one, when the kill came between the commit and the 226); a new
//! file, an APPE or a REST+STOR cut short left the old bytes and a prefix of what was sent (it can
//! be resumed). No temporary file may remain.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{random_bytes, Ctrl};

/// A server process, killed when dropped (a failed assertion must not leave it running).
struct Server(Child);

impl Server {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server on `root`, and its address.
fn serve(root: &Path) -> (Server, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--user", "alice:secret", "--root"])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("ferry printed its address").unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (Server(child), addr)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stor,
    Appe,
    Rest(usize),
}

/// One upload: what was there, what was sent, and whether the server answered 226.
#[derive(Debug)]
struct Upload {
    name: String,
    kind: Kind,
    old: Option<Vec<u8>>,
    sent: Vec<u8>,
    done: bool,
}

impl Upload {
    /// The file once this upload is complete.
    fn whole(&self) -> Vec<u8> {
        let old = self.old.as_deref().unwrap_or_default();
        match self.kind {
            Kind::Stor => self.sent.clone(),
            Kind::Appe => [old, &self.sent[..]].concat(),
            Kind::Rest(k) => [&old[..k], &self.sent[..]].concat(),
        }
    }

    /// The file's content is one this upload allows after a crash at any point.
    fn allows(&self, now: Option<&[u8]>) -> bool {
        let old = self.old.as_deref();
        let whole = self.whole();
        if self.done {
            return now == Some(&whole[..]);
        }
        if now == old {
            return true;
        }
        let Some(now) = now else { return false };
        match (self.kind, old) {
            // A replacement is the old file or the whole new one, never a mix.
            (Kind::Stor, Some(_)) => now == whole,
            // Written in place: the kept bytes and a prefix of the rest.
            _ => {
                let kept = match self.kind {
                    Kind::Stor => 0,
                    Kind::Appe => old.map_or(0, <[u8]>::len),
                    Kind::Rest(k) => k,
                };
                now.len() >= kept && whole.starts_with(now)
            }
        }
    }
}

/// Runs uploads one after the other until the server dies; reports each as it starts and ends.
fn uploader(addr: SocketAddr, files: HashMap<String, Vec<u8>>, seed: u64, tx: mpsc::Sender<Upload>) {
    let mut files = files;
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let Ok(mut c) = std::panic::catch_unwind(|| {
        let mut c = Ctrl::greeted(addr);
        c.ok("USER alice", 331);
        c.ok("PASS secret", 230);
        c.ok("TYPE I", 200);
        c
    }) else {
        return;
    };
    for i in 0.. {
        let name = format!("f{}", next(6));
        let old = files.get(&name).cloned();
        let kind = match (next(4), &old) {
            (1, _) => Kind::Appe,
            (2, Some(o)) if !o.is_empty() => Kind::Rest(next(o.len() as u64 + 1) as usize),
            _ => Kind::Stor,
        };
        let sent = random_bytes(20_000 + next(300_000) as usize, seed ^ i);
        let step = |c: &mut Ctrl| -> Option<bool> {
            c.send("EPSV");
            let r = c.try_read()?;
            let port = ferry_proto::addr::parse_epsv_reply(&r.lines[0]).ok()?;
            let mut data = std::net::TcpStream::connect((addr.ip(), port)).ok()?;
            if let Kind::Rest(k) = kind {
                c.send(&format!("REST {k}"));
                (c.try_read()?.code.0 == 350).then_some(())?;
            }
            c.send(&format!("{} {name}", if kind == Kind::Appe { "APPE" } else { "STOR" }));
            (c.try_read()?.code.0 == 150).then_some(())?;
            for chunk in sent.chunks(16 * 1024) {
                data.write_all(chunk).ok()?;
                std::thread::sleep(Duration::from_micros(500));
            }
            drop(data);
            Some(c.try_read()?.code.0 == 226)
        };
        // Reported before it starts: the kill may come at any point of it.
        let pending = Upload { name: name.clone(), kind, old: old.clone(), sent: sent.clone(), done: false };
        if tx.send(pending).is_err() {
            return;
        }
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(&mut c))).ok().flatten();
        match done {
            Some(true) => {
                let up = Upload { name: name.clone(), kind, old, sent, done: true };
                files.insert(name, up.whole());
                if tx.send(up).is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

fn temporaries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferry-upload."))
        .collect()
}

#[test]
fn kill_9_during_200_uploads_loses_nothing_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut uploads, mut rounds, mut cut) = (0, 0u64, 0);
    while uploads < 200 {
        rounds += 1;
        let (mut server, addr) = serve(&root);
        // What the last round left: every file allowed, no temporary.
        assert!(temporaries(&root).is_empty(), "round {rounds}: temporaries left: {:?}", temporaries(&root));
        let (tx, rx) = mpsc::channel();
        let start = files.clone();
        let worker = std::thread::spawn(move || uploader(addr, start, rounds * 7919, tx));
        // Kill at a random point of a random upload, 50 to 400 ms in.
        std::thread::sleep(Duration::from_millis(50 + (rounds * 37) % 350));
        server.kill();
        worker.join().unwrap();
        // The uploads in order: each answered 226 moves the model on; the last, cut by the kill,
        // is only reported as started.
        let mut cut_short: Option<Upload> = None;
        for u in rx.try_iter() {
            if u.done {
                files.insert(u.name.clone(), u.whole());
                uploads += 1;
                cut_short = None;
            } else {
                cut_short = Some(u);
            }
        }
        let cut_name = cut_short.as_ref().map(|u| u.name.clone());
        for (name, want) in &files {
            if Some(name) != cut_name.as_ref() {
                let now = std::fs::read(root.join(name)).ok();
                assert!(
                    now.as_deref() == Some(&want[..]),
                    "round {rounds}: {name} differs from its last upload answered 226"
                );
            }
        }
        if let Some(u) = cut_short {
            // The upload the kill cut: its file is one the rules allow.
            let now = std::fs::read(root.join(&u.name)).ok();
            assert!(
                u.allows(now.as_deref()),
                "round {rounds}: {} {:?} cut short left {:?} bytes (old {:?}, sent {})",
                u.name,
                u.kind,
                now.as_ref().map(Vec::len),
                u.old.as_ref().map(Vec::len),
                u.sent.len()
            );
            match now {
                Some(bytes) => files.insert(u.name, bytes),
                None => files.remove(&u.name),
            };
            uploads += 1;
            cut += 1;
        }
    }
    // A last restart: nothing left behind by the last kill either.
    let (mut server, addr) = serve(&root);
    assert!(temporaries(&root).is_empty(), "temporaries left: {:?}", temporaries(&root));
    let mut c = Ctrl::greeted(addr);
    c.ok("USER alice", 331);
    c.ok("PASS secret", 230);
    c.ok("NOOP", 200);
    server.kill();
    eprintln!("{uploads} uploads in {rounds} rounds, {cut} cut short by a kill");
    assert!(cut >= 10, "only {cut} of {uploads} uploads were cut by a kill: the test did not test much");
}

/// The check, exactly: three `kill -9`s during uploads that replace a file, each followed
/// by a restart, leave the old file intact and no other file in the directory.
#[test]
fn three_kills_during_replacements_leave_the_old_file_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let old = random_bytes(1 << 20, 11);
    std::fs::write(root.join("report.pdf"), &old).unwrap();
    for kill in 0..3 {
        let (mut server, addr) = serve(&root);
        let mut c = Ctrl::greeted(addr);
        c.ok("USER alice", 331);
        c.ok("PASS secret", 230);
        c.ok("TYPE I", 200);
        c.send("EPSV");
        let port = ferry_proto::addr::parse_epsv_reply(&c.read().lines[0]).unwrap();
        let mut data = std::net::TcpStream::connect((addr.ip(), port)).unwrap();
        c.ok("STOR report.pdf", 150);
        // Half of a new 4 MiB version, then the kill in the middle of the transfer.
        let new = random_bytes(4 << 20, 100 + kill);
        for chunk in new[..2 << 20].chunks(64 * 1024) {
            data.write_all(chunk).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        server.kill();
        drop(data);
        let (mut server, _) = serve(&root);
        let names: Vec<String> =
            std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["report.pdf"], "after kill {}: the directory holds {names:?}", kill + 1);
        assert!(
            std::fs::read(root.join("report.pdf")).unwrap() == old,
            "after kill {}: the old file changed",
            kill + 1
        );
        server.kill();
    }
}
