//! End-to-end: what Ferry answered with 226 survives a power cut.
//!
//! The server serves an ext4 filesystem on a loop device (a file-backed image). Uploads run
//! (new files and replacements of existing ones) until, at a random moment, the server is frozen
//! (SIGSTOP) and the image file is copied: the copy holds exactly what the filesystem had handed
//! to its block device, and nothing of what was still in its page cache, which is what a disk
//! keeps when the power goes. The filesystem is mounted with `commit=300`, so the journal commits
//! only when someone asks (an fsync), never on its own timer during the test: whatever reaches the
//! copy got there because the server synced it. The copy is then mounted (the journal replays, as
//! after a reboot), checked with `e2fsck`, and every file is compared with what was sent:
//!
//! - every upload answered 226 is there, whole;
//! - a replacement cut short is the old content or the whole new one;
//! - a new file cut short is absent or a prefix of what was sent.
//!
//! The same run with `--no-fsync` must lose uploads that were answered 226: that shows the check
//! can fail. Needs root and loop devices (skipped otherwise, with a message).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{random_bytes, Ctrl, Ferry};
use ferry_testkit::peers::is_root;

/// An ext4 image on a loop device, mounted; unmounted and detached on drop.
struct Mounted {
    device: String,
    mount: PathBuf,
}

impl Mounted {
    /// Attaches `image` and mounts it at `mount` with `options`; `None` when loop devices are
    /// not available here.
    fn new(image: &Path, mount: &Path, options: &str) -> Option<Self> {
        let out = Command::new("losetup").args(["--find", "--show"]).arg(image).output().ok()?;
        if !out.status.success() {
            eprintln!("losetup: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let device = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        std::fs::create_dir_all(mount).unwrap();
        let status = Command::new("mount").args(["-t", "ext4", "-o", options, &device]).arg(mount).status().unwrap();
        if !status.success() {
            let _ = Command::new("losetup").args(["-d", &device]).status();
            return None;
        }
        Some(Self { device, mount: mount.to_owned() })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// A fresh ext4 image of `mib` MiB (sparse).
fn make_image(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(mib << 20).unwrap();
    drop(f);
    let out = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(path).output().expect("mkfs.ext4 runs");
    assert!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
}

/// Copies the image as its block device has it now (read through the host's page cache, where
/// the loop device's completed writes are).
fn snapshot(image: &Path, to: &Path) {
    let mut src = std::fs::File::open(image).unwrap();
    let mut dst = std::fs::File::create(to).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).unwrap();
    }
}

/// What the client was told, and what was in flight when the power went.
#[derive(Default)]
struct Record {
    /// Name -> the content of its last upload answered 226.
    done: BTreeMap<String, Vec<u8>>,
    /// The upload under way: name and content.
    inflight: Option<(String, Vec<u8>)>,
    /// Uploads answered 226 during the run.
    answered: usize,
}

/// One STOR over EPSV; `Some(())` when the server answered 226, `None` on any failure.
fn upload(c: &mut Ctrl, name: &str, body: &[u8]) -> Option<()> {
    c.send("EPSV");
    let r = c.try_read()?;
    if r.code.0 != 229 {
        return None;
    }
    let port = ferry_proto::addr::parse_epsv_reply(&r.lines[0]).ok()?;
    let mut data = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.send(&format!("STOR {name}"));
    if c.try_read()?.code.0 != 150 {
        return None;
    }
    for chunk in body.chunks(16 * 1024) {
        data.write_all(chunk).ok()?;
    }
    drop(data);
    (c.try_read()?.code.0 == 226).then_some(())
}

/// Names that exist before the cut, replaced during it.
const REPLACED: [&str; 4] = ["r0", "r1", "r2", "r3"];

/// One power cut: uploads against a server on a fresh image, a freeze after `cut`, a snapshot.
/// Returns the number of uploads answered 226 during the run and how many names lost theirs.
fn power_cut(dir: &Path, fsync: bool, cut: Duration, seed: u64) -> Option<(usize, usize)> {
    let image = dir.join("disk.img");
    make_image(&image, 256);
    let mounted = Mounted::new(&image, &dir.join("mnt"), "commit=300")?;
    let mut server = Ferry::start_at(&mounted.mount, if fsync { &[] } else { &["--no-fsync"] });
    let record = Arc::new(Mutex::new(Record::default()));
    // Before the run: the files to be replaced, made durable whatever the mode.
    let mut c = server.login();
    c.ok("TYPE I", 200);
    for (i, name) in REPLACED.iter().enumerate() {
        let body = random_bytes(60_000 + i * 10_000, seed ^ 0xA0 ^ i as u64);
        upload(&mut c, name, &body).expect("the first version of each replaced file");
        record.lock().unwrap().done.insert((*name).to_owned(), body);
    }
    assert!(Command::new("sync").arg("-f").arg(&mounted.mount).status().unwrap().success());
    let writer = {
        let record = record.clone();
        std::thread::spawn(move || {
            for i in 0u64.. {
                let name = if i % 3 == 0 { REPLACED[(i / 3 % 4) as usize].to_owned() } else { format!("n{i}") };
                let size = 4096 + (seed.wrapping_mul(31).wrapping_add(i * 7919) % 400_000) as usize;
                let body = random_bytes(size, seed.wrapping_add(i));
                record.lock().unwrap().inflight = Some((name.clone(), body.clone()));
                if upload(&mut c, &name, &body).is_none() {
                    return;
                }
                let mut r = record.lock().unwrap();
                r.inflight = None;
                r.answered += 1;
                r.done.insert(name, body);
            }
        })
    };
    std::thread::sleep(cut);
    // The power goes: no more writes from the server; the loop device finishes what it was given.
    let pid = server.pid().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    let copy = dir.join("after-cut.img");
    snapshot(&image, &copy);
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    let _ = server.stop();
    writer.join().unwrap();
    drop(mounted);

    // The reboot: mount the copy (the journal replays), check it, compare.
    let after = Mounted::new(&copy, &dir.join("after"), "ro").expect("the copy mounts");
    let record = std::mem::take(&mut *record.lock().unwrap());
    let answered = record.answered;
    let mut lost = Vec::new();
    for (name, body) in &record.done {
        let found = std::fs::read(after.mount.join(name)).ok();
        let ok = match (&record.inflight, &found) {
            (_, None) => false,
            // A replacement cut short: the old content or the whole new one.
            (Some((n, new)), Some(f)) if n == name => f == body || f == new,
            (_, Some(f)) => f == body,
        };
        if !ok {
            lost.push(format!("{name} ({} bytes answered 226, found {:?} bytes)", body.len(), found.map(|f| f.len())));
        }
    }
    if let Some((name, body)) = &record.inflight {
        if !record.done.contains_key(name) {
            if let Ok(f) = std::fs::read(after.mount.join(name)) {
                assert!(
                    body.starts_with(&f),
                    "{name}, cut short, holds {} bytes that are not a prefix of what was sent",
                    f.len()
                );
            }
        }
    }
    drop(after);
    let fsck = Command::new("e2fsck").args(["-f", "-n"]).arg(&copy).output().unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck after the cut: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    if fsync {
        assert!(lost.is_empty(), "answered 226 but lost in the power cut: {lost:?}");
    }
    eprintln!(
        "fsync {fsync}, cut after {cut:?}: {answered} uploads answered 226 ({} names), {} names lost, in flight: {:?}",
        record.done.len(),
        lost.len(),
        record.inflight.as_ref().map(|(n, b)| (n, b.len()))
    );
    Some((answered, lost.len()))
}

#[test]
fn every_upload_answered_226_survives_a_power_cut() {
    if !is_root() {
        eprintln!("skipped: needs root (loop devices, mount)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // With fsync (the default): three cuts at different moments, nothing answered is lost.
    for (round, ms) in [(1u64, 700u64), (2, 1100), (3, 1600)] {
        let Some((answered, lost)) = power_cut(dir.path(), true, Duration::from_millis(ms), round) else {
            eprintln!("skipped: no loop device available here");
            return;
        };
        assert!(answered >= 3, "round {round}: only {answered} uploads ran before the cut");
        assert_eq!(lost, 0);
    }
    // The control: without fsync the same check finds uploads answered 226 and lost.
    let (answered, lost) = power_cut(dir.path(), false, Duration::from_millis(900), 9).unwrap();
    assert!(answered >= 3, "only {answered} uploads ran before the cut");
    assert!(lost > 0, "--no-fsync lost nothing: the check cannot tell a durable server from one that is not");
}
