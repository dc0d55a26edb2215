//! End-to-end: the log files that existing tools read, read by those tools.
//!
//! - The transfer log (`[log] xferlog`) in the wu-ftpd format, parsed by AWStats (`LogType=F`,
//!   the log format string AWStats documents for xferlog), in both flavours.
//! - The vsftpd-format log (`[log] vsftpd_log`), read by `fail2ban-regex` with fail2ban's stock
//!   `vsftpd` filter, unchanged.
//! - `SIGUSR1` reopens the files after a rotation (through the sandbox, which allows writing
//!   beneath the log files' directory).
//!
//! AWStats and fail2ban are installed by `scripts/install-test-deps.sh` (`make deps`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{wait_for_lines as lines, Ctrl, Ferry};

const AWSTATS: &str = "/usr/lib/cgi-bin/awstats.pl";
const FAIL2BAN_VSFTPD: &str = "/etc/fail2ban/filter.d/vsftpd.conf";

/// A server writing its logs into `dir` (`flavor`: the xferlog dialect).
fn start(dir: &Path, flavor: &str) -> Ferry {
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nxferlog = {:?}\nxferlog_flavor = {flavor:?}\nvsftpd_log = {:?}\n\n[limits]\nfailed_login_delay_ms = 10\n",
            dir.join("xferlog"),
            dir.join("vsftpd.log")
        ),
    )
    .unwrap();
    Ferry::start(&["--config", config.to_str().unwrap()])
}

/// Uploads `body` as `name`, then downloads it: one line each in the transfer log.
fn upload_and_download(c: &mut Ctrl, name: &str, body: &[u8]) {
    assert_eq!(c.upload(&format!("STOR {name}"), body).code.0, 226);
    assert_eq!(c.download(&format!("RETR {name}")), body);
}

/// A wrong password on a fresh connection.
fn wrong_password(f: &Ferry, user: &str) {
    let mut c = Ctrl::greeted(f.addr);
    c.ok(&format!("USER {user}"), 331);
    c.ok("PASS not-the-password", 530);
}

/// Runs AWStats over `log` in `dir` (its own config and data directory); its report.
fn awstats(dir: &Path, log: &Path) -> String {
    assert!(Path::new(AWSTATS).exists(), "AWStats is not installed: run scripts/install-test-deps.sh");
    let conf = dir.join("awstats.ferry.conf");
    let data = dir.join("awstats-data");
    std::fs::create_dir_all(&data).unwrap();
    // The xferlog set-up AWStats documents (LogType=F): the 18 fields, the date as %time3.
    std::fs::write(
        &conf,
        format!(
            "LogFile=\"{}\"\nLogType=F\nLogFormat=\"%time3 %other %host %bytesd %url %other %other %method %other %logname %other %code %other %other\"\nLogSeparator=\"\\s\"\nSiteDomain=\"ferry.test\"\nHostAliases=\"localhost 127.0.0.1\"\nDirData=\"{}\"\nDNSLookup=0\n",
            log.display(),
            data.display()
        ),
    )
    .unwrap();
    let out = Command::new("perl")
        .arg(AWSTATS)
        .args(["-config=ferry", "-update", "-showcorrupted", "-showdropped"])
        .arg(format!("-configdir={}", dir.display()))
        .output()
        .expect("perl runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "awstats failed:\n{text}");
    text
}

/// The number AWStats gives after `label` ("Found 2 new qualified records.").
fn found(report: &str, label: &str) -> usize {
    report
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("Found ")?.trim_end_matches([',', '.']);
            rest.strip_suffix(&format!(" {label}"))
        })
        .unwrap_or_else(|| panic!("no 'Found N {label}' in the AWStats report:\n{report}"))
        .parse()
        .unwrap()
}

#[test]
fn the_transfer_log_is_read_by_awstats_and_failed_logins_by_fail2ban() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path(), "wuftpd");
    let body = common::random_bytes(70_001, 3);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    upload_and_download(&mut c, "report 2026.bin", &body);
    wrong_password(&f, "mallory");
    wrong_password(&f, "alice");

    let xferlog = dir.path().join("xferlog");
    let xfer = lines(&xferlog, 2);
    assert_eq!(xfer.len(), 2, "{xfer:#?}");
    for (line, direction) in xfer.iter().zip(["i", "o"]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 18, "{line}");
        // date (5), seconds, host, bytes, path, type, action, direction, mode, user, service,
        // method, ident, status.
        assert_eq!(
            &fields[6..],
            ["127.0.0.1", "70001", "/report_2026.bin", "b", "_", direction, "r", "alice", "ftp", "0", "*", "c"],
            "{line}"
        );
        assert!(fields[5].parse::<u64>().unwrap() >= 1, "whole seconds, at least 1: {line}");
        // ctime's form with a space-padded day: "Sun Dec  6 18:38:20 2026".
        assert_eq!(line.as_bytes()[10], b' ', "{line}");
        assert!(line[8..10].trim_start().parse::<u8>().is_ok(), "{line}");
    }
    let report = awstats(dir.path(), &xferlog);
    assert_eq!(found(&report, "new qualified records"), 2, "{report}");
    assert_eq!(found(&report, "corrupted records"), 0, "{report}");
    assert_eq!(found(&report, "dropped records"), 0, "{report}");

    // fail2ban's stock vsftpd filter, unchanged, over the vsftpd-format log.
    let vsftpd_log = dir.path().join("vsftpd.log");
    let log = lines(&vsftpd_log, 9);
    let text = log.join("\n");
    assert!(text.contains("[alice] OK LOGIN: Client \"127.0.0.1\""), "{text}");
    assert!(text.contains("[alice] OK UPLOAD: Client \"127.0.0.1\", \"/report 2026.bin\", 70001 bytes, "), "{text}");
    assert!(text.contains("[alice] OK DOWNLOAD: Client \"127.0.0.1\""), "{text}");
    assert!(text.contains("[mallory] FAIL LOGIN: Client \"127.0.0.1\""), "{text}");
    assert!(Path::new(FAIL2BAN_VSFTPD).exists(), "fail2ban is not installed: run scripts/install-test-deps.sh");
    let out =
        Command::new("fail2ban-regex").arg(&vsftpd_log).arg(FAIL2BAN_VSFTPD).output().expect("fail2ban-regex runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fail2ban-regex: {report}{}", String::from_utf8_lossy(&out.stderr));
    let matched = report
        .lines()
        .find(|l| l.starts_with("Lines:"))
        .and_then(|l| l.split(',').find(|p| p.trim().ends_with("matched")))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok());
    assert_eq!(matched, Some(2), "two failed logins, two matches:\n{report}");
    assert!(report.contains("127.0.0.1"), "the banned address is the client's:\n{report}");
}

#[test]
fn the_proftpd_flavour_marks_protected_data_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path(), "proftpd");
    let mut c = f.login();
    c.ok("TYPE I", 200);
    upload_and_download(&mut c, "notes.txt", b"one\ntwo\n");
    c.ok("DELE notes.txt", 250);
    let xfer = lines(&dir.path().join("xferlog"), 3);
    assert_eq!(xfer.len(), 3, "{xfer:#?}");
    let fields: Vec<Vec<&str>> = xfer.iter().map(|l| l.split_whitespace().collect()).collect();
    assert!(fields.iter().all(|f| f.len() == 18), "{xfer:#?}");
    // ProFTPD zero-pads the day.
    assert!(xfer[0].as_bytes()[8].is_ascii_digit(), "{}", xfer[0]);
    assert_eq!(fields[0][9..12], ["b", "_", "i"], "an upload");
    assert_eq!(fields[1][11], "o");
    assert_eq!(
        &fields[2][5..],
        ["0", "127.0.0.1", "8", "/notes.txt", "b", "_", "d", "r", "alice", "ftp", "0", "*", "c"]
    );
    // AWStats counts the two transfers and drops the deletion, as it does with ProFTPD's own logs.
    let report = awstats(dir.path(), &dir.path().join("xferlog"));
    assert_eq!(found(&report, "new qualified records"), 2, "{report}");
    assert_eq!(found(&report, "corrupted records"), 0, "{report}");
    assert_eq!(found(&report, "dropped records"), 1, "{report}");
    assert!(report.contains("method/protocol 'd' not qualified"), "{report}");
}

#[test]
fn sigusr1_reopens_the_log_files_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let f = start(dir.path(), "wuftpd");
    let mut c = f.login();
    c.ok("TYPE I", 200);
    upload_and_download(&mut c, "a.bin", b"first");
    let xferlog = dir.path().join("xferlog");
    assert_eq!(lines(&xferlog, 2).len(), 2);
    // logrotate: move the file away, signal.
    let rotated: PathBuf = dir.path().join("xferlog.1");
    std::fs::rename(&xferlog, &rotated).unwrap();
    assert!(Command::new("kill").args(["-USR1", &f.pid().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !xferlog.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(xferlog.exists(), "SIGUSR1 created a new file: {}", f.stderr());
    upload_and_download(&mut c, "b.bin", b"second");
    let new = lines(&xferlog, 2);
    assert_eq!(new.len(), 2, "{new:#?}");
    assert!(new.iter().all(|l| l.contains("/b.bin")), "{new:#?}");
    assert_eq!(lines(&rotated, 2).len(), 2, "the rotated file keeps its lines, and gets no more");
    assert!(f.stderr().contains("SIGUSR1: log files reopened"));
}

#[test]
fn the_json_log_names_each_event_with_fixed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ferry.log");
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!("[log]\nformat = \"json\"\nfile = {log:?}\n\n[limits]\nfailed_login_delay_ms = 10\n"),
    )
    .unwrap();
    let f = Ferry::start(&["--config", config.to_str().unwrap()]);
    let mut c = f.login();
    c.ok("TYPE I", 200);
    upload_and_download(&mut c, "j.bin", &[9u8; 2048]);
    c.ok("MKD dir", 257);
    c.ok("QUIT", 221);
    wrong_password(&f, "mallory");
    let lines = lines(&log, 1);
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait for both sessions to close.
    let all = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.matches("\"event\":\"session.close\"").count() >= 2 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!lines.is_empty());
    for line in all.lines() {
        // Every line is JSON, the server's own messages too.
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(event) = v.get("event").and_then(|e| e.as_str()) {
            // Fixed keys first, in this order.
            assert!(line.starts_with("{\"ts\":\""), "{line}");
            let order = ["\"ts\":", "\"event\":", "\"session\":", "\"ip\":"].map(|k| line.find(k).unwrap());
            assert!(order.windows(2).all(|w| w[0] < w[1]), "{line}");
            assert!(v["ts"].as_str().unwrap().ends_with('Z') && v["ts"].as_str().unwrap().len() == 24, "{line}");
            events.push((event.to_owned(), v));
        }
    }
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    for wanted in
        ["session.open", "login.ok", "transfer.start", "transfer.end", "fs.mkdir", "login.fail", "session.close"]
    {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    let by = |name: &'static str| events.iter().filter(move |(e, _)| e == name).map(|(_, v)| v);
    let upload = by("transfer.end").find(|v| v["direction"] == "upload").unwrap();
    assert_eq!(
        (upload["user"].as_str(), upload["bytes"].as_u64(), upload["path"].as_str()),
        (Some("alice"), Some(2048), Some("/j.bin"))
    );
    let fail = by("login.fail").next().unwrap();
    assert_eq!(fail["user"], "mallory");
    let quit = by("session.close").find(|v| v["user"] == "alice").unwrap();
    assert!(quit["reason"].as_str().unwrap().starts_with("221"), "{quit}");
    assert_eq!((quit["bytes_in"].as_u64(), quit["bytes_out"].as_u64()), (Some(2048), Some(2048)));
    // No text lines and no password anywhere.
    assert!(!all.contains("secret"));
}
