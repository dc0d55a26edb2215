//! End-to-end: `ferry serve` start-up. A root that was asked for must exist (only the default
//! `./ftp-root` is created), every start-up error names its file once and says what to do, and the
//! open-files limit is raised to the hard one.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn serve(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_missing_root_is_an_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("no/such/dir");
    let out = serve(dir.path(), &["--root", root.to_str().unwrap(), "--user", "a:b"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(root.to_str().unwrap()) && err.contains("does not exist"), "{err}");
    assert!(!dir.path().join("no").exists(), "the root must not be created");
}

#[test]
fn a_root_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), b"x").unwrap();
    let out = serve(dir.path(), &["--root", "afile", "--user", "a:b"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("afile is not a directory"), "{err}");
}

#[test]
fn a_missing_users_file_is_named_once_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    let out = serve(dir.path(), &["--root", "root", "--users", "missing.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("missing.toml").count(), 2, "named, and in the command to fix it: {err}");
    assert!(err.contains("ferry user add"), "{err}");
    assert!(!err.contains("os error 2): No such file"), "the OS error said twice: {err}");
}

#[test]
fn the_default_root_is_created_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--user", "a:b"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("listening on"));
    assert!(dir.path().join("ftp-root").is_dir());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("root")).unwrap();
    let mut child = Command::new("prlimit")
        .args(["--nofile=1024:8192", "--"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--root", "root", "--user", "a:b"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("listening on"));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["8192", "8192"], "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
}
