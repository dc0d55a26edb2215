//! Listing parser tables: lines captured from real servers, and round trips through our formatter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;
use crate::listing::{format_list_line, format_mlsx_facts, Entry, Facts};

fn at(s: &str) -> SystemTime {
    parse_timeval(s).unwrap()
}

/// The clock the tables are read at: 23 November 2026, 13:00 UTC.
fn now() -> SystemTime {
    at("20261123130000")
}

fn file(name: &str, size: u64, t: &str, mode: u32) -> ParsedEntry {
    ParsedEntry { name: name.into(), kind: EntryKind::File, size: Some(size), modified: Some(at(t)), mode: Some(mode) }
}

fn dir(name: &str, size: u64, t: &str, mode: u32) -> ParsedEntry {
    ParsedEntry { kind: EntryKind::Dir, ..file(name, size, t, mode) }
}

fn link(name: &str, target: Option<&str>, size: u64, t: &str) -> ParsedEntry {
    ParsedEntry { kind: EntryKind::Symlink(target.map(str::to_string)), ..file(name, size, t, 0o777) }
}

fn check(table: &[(&str, ParsedEntry)]) {
    for (line, want) in table {
        assert_eq!(parse_list_line(line, now()).as_ref(), Some(want), "{line:?}");
    }
}

#[test]
fn vsftpd() {
    check(&[
        ("drwxr-xr-x    2 ftp      ftp          4096 Nov 23 12:04 pub", dir("pub", 4096, "20261123120400", 0o755)),
        (
            "-rw-r--r--    1 1000     1000      1048576 Jan 05  2020 big file.bin",
            file("big file.bin", 1048576, "20200105000000", 0o644),
        ),
        (
            "lrwxrwxrwx    1 0        0               7 Mar 14 09:26 bin -> usr/bin",
            link("bin", Some("usr/bin"), 7, "20260314092600"),
        ),
        (
            "-rw-------    1 ftp      ftp             0 Nov 22 23:59 .hidden\r\n",
            file(".hidden", 0, "20261122235900", 0o600),
        ),
    ]);
}

#[test]
fn proftpd_and_pure_ftpd() {
    check(&[
        (
            "-rw-r--r--   1 ftpuser  ftpgroup     1234 Nov 23 12:04 notes.txt",
            file("notes.txt", 1234, "20261123120400", 0o644),
        ),
        (
            "drwxr-xr-x   3 ftpuser  ftpgroup     4096 Oct  2  2025 archive",
            dir("archive", 4096, "20251002000000", 0o755),
        ),
        (
            "-rw-r--r--    1 1000       1000             12 Nov 23 12:04 a.txt",
            file("a.txt", 12, "20261123120400", 0o644),
        ),
        (
            "drwxr-xr-x    2 ftp        ftp            4096 Jun  1 08:00 ünïcödé dir",
            dir("ünïcödé dir", 4096, "20260601080000", 0o755),
        ),
        (
            "-rw-r--r--    1 ftp        ftp               5 Nov 23 12:04 日本語 ファイル.txt",
            file("日本語 ファイル.txt", 5, "20261123120400", 0o644),
        ),
    ]);
}

#[test]
fn unusual_unix_columns() {
    check(&[
        // No group column.
        ("-rw-r--r--   1 user     12345 Nov 23 12:04 nogroup.txt", file("nogroup.txt", 12345, "20261123120400", 0o644)),
        // No link count.
        ("-rw-r--r-- ftp ftp 1234 Nov 23 12:04 nolinks.txt", file("nolinks.txt", 1234, "20261123120400", 0o644)),
        // ACL and SELinux markers.
        ("-rw-r--r--+ 1 u g 5 Nov 23 12:04 acl", file("acl", 5, "20261123120400", 0o644)),
        ("-rw-r--r--. 1 u g 5 Nov 23 12:04 selinux", file("selinux", 5, "20261123120400", 0o644)),
        // Special bits.
        ("drwxrwxrwt  10 root root 4096 Nov 23 12:04 tmp", dir("tmp", 4096, "20261123120400", 0o1777)),
        ("-rwsr-xr-x   1 root root 12 Nov 23 12:04 su", file("su", 12, "20261123120400", 0o4755)),
        ("-rw-r-Sr-T   1 root root 12 Nov 23 12:04 odd", file("odd", 12, "20261123120400", 0o3644)),
        // Dates: long-iso, full-iso with a zone, BSD `ls -lT`, day before month.
        ("-rw-r--r-- 1 user group 1234 2020-11-23 12:04 iso.txt", file("iso.txt", 1234, "20201123120400", 0o644)),
        (
            "-rw-r--r-- 1 user group 1234 2020-11-23 12:04:05.123456789 +0100 full.txt",
            file("full.txt", 1234, "20201123110405", 0o644),
        ),
        (
            "-rw-r--r--  1 user  staff  1234 Nov 23 12:04:05 2020 bsd.txt",
            file("bsd.txt", 1234, "20201123120405", 0o644),
        ),
        ("-rw-r--r-- 1 user group 1234 23 Nov 12:04 eu.txt", file("eu.txt", 1234, "20261123120400", 0o644)),
        ("-rw-r--r-- 1 user group 1234 november 23 2019 long month", file("long month", 1234, "20191123000000", 0o644)),
        // Names: spaces kept, " -> " only splits links, a leading space after the date's one space.
        (
            "-rw-r--r-- 1 u g 1 Nov 23 12:04 my file with  double  spaces.txt",
            file("my file with  double  spaces.txt", 1, "20261123120400", 0o644),
        ),
        ("-rw-r--r-- 1 u g 1 Nov 23 12:04 a -> b", file("a -> b", 1, "20261123120400", 0o644)),
        ("-rw-r--r-- 1 u g 1 Nov 23 12:04  lead", file(" lead", 1, "20261123120400", 0o644)),
        ("-rw-r--r-- 1 u g 1 Nov 23 12:04 trail ", file("trail ", 1, "20261123120400", 0o644)),
        (
            "lrwxrwxrwx 1 u g 11 Nov 23 12:04 my link -> my target",
            link("my link", Some("my target"), 11, "20261123120400"),
        ),
        ("lrwxrwxrwx 1 u g 11 Nov 23 12:04 lnk", link("lnk", None, 11, "20261123120400")),
        // Owner named like a month does not fool the column search.
        ("-rw-r--r-- 1 may 12 1234 Nov 23 12:04 x", file("x", 1234, "20261123120400", 0o644)),
    ]);
}

#[test]
fn device_files_are_files_without_size() {
    let e = parse_list_line("crw-rw-rw-   1 root     root       1,   3 Nov 23 12:04 null", now()).unwrap();
    assert_eq!((e.name.as_str(), &e.kind, e.size, e.mode), ("null", &EntryKind::File, None, Some(0o666)));
    let e = parse_list_line("brw-rw----   1 root disk 8,0 Nov 23 12:04 sda", now()).unwrap();
    assert_eq!((e.name.as_str(), e.size), ("sda", None));
    let e = parse_list_line("prw-r--r--   1 root root 0 Nov 23 12:04 fifo", now()).unwrap();
    assert_eq!((e.kind, e.size), (EntryKind::File, Some(0)));
}

#[test]
fn netware() {
    let e = parse_list_line("d [R----F--] supervisor            512       Jan 16 18:53    login", now()).unwrap();
    assert_eq!(e, ParsedEntry { mode: None, ..dir("login", 512, "20260116185300", 0) });
}

#[test]
fn year_inference() {
    let line = |date: &str| format!("-rw-r--r-- 1 u g 1 {date} f");
    let year = |date: &str, now: &str| {
        let t = parse_list_line(&line(date), at(now)).unwrap().modified.unwrap();
        crate::listing::format_timeval(t)
    };
    // Up to a day ahead is this year (clock skew); further ahead is last year.
    assert_eq!(year("Nov 24 12:04", "20261123130000"), "20261124120400");
    assert_eq!(year("Nov 25 12:04", "20261123130000"), "20251125120400");
    assert_eq!(year("Jan  1 00:00", "20261123130000"), "20260101000000");
    // Around new year.
    assert_eq!(year("Dec 31 23:00", "20270101003000"), "20261231230000");
    assert_eq!(year("Jan  1 10:00", "20261231230000"), "20270101100000");
    // 29 February goes back to the last leap year.
    assert_eq!(year("Feb 29 12:00", "20290301000000"), "20280229120000");
    assert_eq!(year("Feb 29 12:00", "20280301000000"), "20280229120000");
    // An explicit year is taken as it is.
    assert_eq!(year("Nov 25  2030", "20261123130000"), "20301125000000");
}

#[test]
fn dos_and_iis() {
    let e = parse_list_line("11-23-26  12:04PM       <DIR>          name", now()).unwrap();
    assert_eq!(e, ParsedEntry { size: None, mode: None, ..dir("name", 0, "20261123120400", 0) });
    let e = parse_list_line("01-05-2020  09:15AM             1234 a b.txt\r\n", now()).unwrap();
    assert_eq!(e, ParsedEntry { mode: None, ..file("a b.txt", 1234, "20200105091500", 0) });
    let e = parse_list_line("11-23-26  12:04AM 12 midnight", now()).unwrap();
    assert_eq!(e.modified, Some(at("20261123000400")));
    let e = parse_list_line("01-05-99  09:15 PM        1,234 commas and ampm.txt", now()).unwrap();
    assert_eq!(e, ParsedEntry { mode: None, ..file("commas and ampm.txt", 1234, "19990105211500", 0) });
    let e = parse_list_line("2026-11-23  13:45    <DIR>          24 hour", now()).unwrap();
    assert_eq!((e.name.as_str(), e.kind, e.modified), ("24 hour", EntryKind::Dir, Some(at("20261123134500"))));
    let e = parse_list_line("11-23-2026  01:02PM    <SYMLINKD>     docs [C:\\Users\\x\\docs]", now()).unwrap();
    assert_eq!((e.name.as_str(), e.kind), ("docs", EntryKind::Symlink(Some("C:\\Users\\x\\docs".into()))));
    let e = parse_list_line("11-23-26  12:04PM 7 日本語.txt", now()).unwrap();
    assert_eq!(e.name, "日本語.txt");
}

#[test]
fn not_entries() {
    for line in [
        "",
        "\r\n",
        "total 123",
        "total 0",
        "garbage",
        "drwxr-xr-x",
        "-rw-r--r-- 1 u g 12 Nov 23 12:04",
        "-rw-r--r-- 1 u g 12 Nov 23 12:04 ",
        "-rw-r--r-- 1 u g 12 Foo 23 12:04 x",
        "-rw-r--r-- 1 u g 12 Nov 32 12:04 x",
        "-rw-r--r-- 1 u g 12 Nov 23 25:04 x",
        "-rw-r--r-- 1 u g 12x Nov 23 12:04 x",
        "-rwxrwxrwq 1 u g 12 Nov 23 12:04 x",
        "xrw-r--r-- 1 u g 12 Nov 23 12:04 x",
        "13-23-26  12:04PM  <DIR>  x",
        "11-23-26  13:04PM  <DIR>  x",
        "11-23-26  12:04PM  <DIR>",
        "11-23-26  12:04PM  12k  x",
        "226 Transfer complete.",
        "-rw-r--r-- 1 u g 12 Nov 23 12:04\u{e9}x",
    ] {
        assert_eq!(parse_list_line(line, now()), None, "{line:?}");
    }
}

fn entry(name: &str, kind: EntryKind, size: u64, t: SystemTime, mode: u32) -> Entry {
    Entry { name: name.into(), kind, size, modified: Some(t), mode, nlink: 3, unique: None }
}

/// What our own `LIST` line keeps of a time: the minute for recent entries, the day for others.
fn listed_time(t: SystemTime, now: SystemTime) -> SystemTime {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    };
    let recent = match now.duration_since(t) {
        Ok(age) => age < Duration::from_secs(182 * 24 * 3600),
        Err(ahead) => ahead.duration() < Duration::from_secs(3600),
    };
    let unit = if recent { 60 } else { 24 * 3600 };
    let floored = secs - secs.rem_euclid(unit);
    if floored >= 0 {
        UNIX_EPOCH + Duration::from_secs(floored as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(floored.unsigned_abs())
    }
}

fn round_trip(e: &Entry, now: SystemTime) -> Option<ParsedEntry> {
    let mut line = String::new();
    format_list_line(e, now, &mut line);
    parse_list_line(&line, now)
}

fn expected(e: &Entry, now: SystemTime) -> ParsedEntry {
    ParsedEntry {
        name: e.name.clone(),
        kind: e.kind.clone(),
        size: Some(e.size),
        modified: e.modified.map(|t| listed_time(t, now)),
        mode: Some(e.mode & 0o7777),
    }
}

#[test]
fn our_list_lines_round_trip() {
    let n = now();
    for e in [
        entry("notes.txt", EntryKind::File, 1234, at("20261123120405"), 0o644),
        entry("old dir", EntryKind::Dir, 4096, at("20200105101010"), 0o755),
        entry("l i n k", EntryKind::Symlink(Some("../t a r g e t".into())), 14, at("20261001000000"), 0o777),
        entry("dangling", EntryKind::Symlink(None), 0, at("20261001000000"), 0o777),
        entry("ünï cödé 日本", EntryKind::File, u64::MAX, at("20261123125959"), 0o7777),
        entry("  spaced out  ", EntryKind::File, 0, at("20261123133000"), 0),
        entry("future", EntryKind::File, 1, at("20270101000000"), 0o600),
        entry("pre-epoch", EntryKind::File, 1, at("19600101120000"), 0o600),
    ] {
        assert_eq!(round_trip(&e, n), Some(expected(&e, n)), "{e:?}");
    }
}

#[test]
fn mlsx_real_world() {
    let p = |l: &str| parse_mlsx_line(l).unwrap_or_else(|| panic!("{l:?}"));
    let (e, role) = p("type=file;size=12;modify=20261123120405;perm=r; name");
    assert_eq!(role, MlsxRole::Entry);
    assert_eq!(e, ParsedEntry { mode: None, ..file("name", 12, "20261123120405", 0) });

    // ProFTPD.
    let (e, _) = p("modify=20261123120405;perm=adfr;size=1234;type=file;unique=FD00U2A;UNIX.group=1000;UNIX.mode=0644;UNIX.owner=1000; report 2026.pdf\r\n");
    assert_eq!(e, file("report 2026.pdf", 1234, "20261123120405", 0o644));
    let (e, role) =
        p("modify=20261123120405;perm=flcdmpe;type=cdir;unique=FD00U2;UNIX.group=0;UNIX.mode=0755;UNIX.owner=0; .");
    assert_eq!((e.name.as_str(), e.kind, role), (".", EntryKind::Dir, MlsxRole::CurrentDir));
    let (e, role) = p("modify=20261123120405;perm=flcdmpe;type=pdir;unique=FD00U1;UNIX.mode=0755; ..");
    assert_eq!((e.name.as_str(), e.kind, role), ("..", EntryKind::Dir, MlsxRole::ParentDir));
    let (e, _) = p("modify=20261123120405;perm=adfr;size=7;type=OS.unix=symlink;unique=FD00U3; lnk");
    assert_eq!(e.kind, EntryKind::Symlink(None));
    let (e, _) = p("type=OS.unix=slink:/usr/Bin;size=7; bin");
    assert_eq!((e.name.as_str(), e.kind), ("bin", EntryKind::Symlink(Some("/usr/Bin".into()))));
    let (e, _) = p("type=OS.unix=chr-1/3;size=0; null");
    assert_eq!(e.kind, EntryKind::File);

    // Pure-FTPd: directories carry `sizd`.
    let (e, _) =
        p("type=dir;sizd=4096;modify=20261123120405;UNIX.mode=0755;UNIX.uid=1000;UNIX.gid=1000;unique=803g2; docs");
    assert_eq!(e, dir("docs", 4096, "20261123120405", 0o755));

    // Case, MLST's leading space, odd names, fractions, bad values.
    let (e, _) = p("Type=File;Size=3;Modify=20261123120405;unix.MODE=100644; UPPER.TXT");
    assert_eq!(e, file("UPPER.TXT", 3, "20261123120405", 0o644));
    let (e, _) = p(" type=file;size=3; /path/with space");
    assert_eq!((e.name.as_str(), e.size), ("/path/with space", Some(3)));
    let (e, _) = p("type=file; a; b");
    assert_eq!(e.name, "a; b");
    let (e, _) = p("type=file;size=1; ünï cödé.txt");
    assert_eq!(e.name, "ünï cödé.txt");
    let (e, _) = p("modify=20261123120405.25;type=file; f");
    assert_eq!(e.modified, Some(at("20261123120405.250")));
    let (e, _) = p("size=abc;modify=never;UNIX.mode=999;type=file; f");
    assert_eq!((e.size, e.modified, e.mode), (None, None, None));
    let (e, _) = p(" no facts at all");
    assert_eq!((e.name.as_str(), e.kind, e.size), ("no facts at all", EntryKind::File, None));
    let (e, _) = p("type=file;size=5 no-final-semicolon");
    assert_eq!((e.name.as_str(), e.size), ("no-final-semicolon", Some(5)));
}

#[test]
fn mlsx_not_entries() {
    for line in ["", "garbage", "type=file;size=1;", "type=file;size=1; ", "hello; world", "=x; name", "a b c"] {
        assert_eq!(parse_mlsx_line(line), None, "{line:?}");
    }
}

#[test]
fn our_mlsx_lines_round_trip() {
    let t = at("20261123120405.5");
    for (e, role) in [
        (entry("a b.txt", EntryKind::File, 12, t, 0o644), MlsxRole::Entry),
        (entry("sub dir", EntryKind::Dir, 4096, t, 0o755), MlsxRole::Entry),
        (entry(".", EntryKind::Dir, 4096, t, 0o755), MlsxRole::CurrentDir),
        (entry("..", EntryKind::Dir, 4096, t, 0o755), MlsxRole::ParentDir),
        (entry("lnk", EntryKind::Symlink(None), 3, t, 0o777), MlsxRole::Entry),
    ] {
        let mut line = String::new();
        format_mlsx_facts(&e, role, Facts::default(), "adfrw", &mut line);
        let (got, got_role) = parse_mlsx_line(&line).unwrap();
        assert_eq!(got_role, role);
        let size = (e.kind != EntryKind::Dir).then_some(e.size);
        let want =
            ParsedEntry { name: e.name.clone(), kind: e.kind.clone(), size, modified: Some(t), mode: Some(e.mode) };
        assert_eq!(got, want, "{line}");
    }
}

/// Lines made of listing-like words, to reach deeper than random text does.
fn listing_like() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("-rw-r--r--".to_string()),
        Just("drwxr-xr-x".to_string()),
        Just("lrwxrwxrwx".to_string()),
        Just("crw-rw-rw-".to_string()),
        Just("d".to_string()),
        Just("[RW]".to_string()),
        Just("Nov".to_string()),
        Just("Feb".to_string()),
        Just("29".to_string()),
        Just("12:04".to_string()),
        Just("12:04PM".to_string()),
        Just("PM".to_string()),
        Just("2020".to_string()),
        Just("2020-02-29".to_string()),
        Just("11-23-26".to_string()),
        Just("<DIR>".to_string()),
        Just("->".to_string()),
        Just("+0100".to_string()),
        Just("12:04:05.5".to_string()),
        Just("type=file;".to_string()),
        Just("type=OS.unix=slink:".to_string()),
        Just(";".to_string()),
        "[0-9]{1,21}",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(word, 0..12).prop_map(|w| w.join(" "))
}

fn any_time() -> impl Strategy<Value = SystemTime> {
    (-100_000_000_000i64..1_000_000_000_000).prop_map(|s| {
        if s >= 0 {
            UNIX_EPOCH + Duration::from_secs(s as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
        }
    })
}

proptest! {
    #[test]
    fn never_panics(line in prop_oneof![any::<String>(), listing_like()], now in any_time()) {
        let _ = parse_list_line(&line, now);
        let _ = parse_mlsx_line(&line);
    }

    #[test]
    fn list_line_round_trips(
        name in "[^\r\n]{1,24}",
        target in proptest::option::of("[^\r\n]{1,12}"),
        kind in 0..3u8,
        size in any::<u64>(),
        mode in 0u32..=0o7777,
        now_secs in 100_000_000u64..4_000_000_000,
        age in -3 * 24 * 3600i64..400 * 24 * 3600,
    ) {
        let kind = match kind {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            _ => EntryKind::Symlink(target),
        };
        // A link's name ends at the first " -> ", so it cannot hold one (nor end in " ->").
        prop_assume!(
            !matches!(kind, EntryKind::Symlink(Some(_))) || format!("{name} -> ").find(" -> ") == Some(name.len())
        );
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let t = UNIX_EPOCH + Duration::from_secs(now_secs.saturating_add_signed(-age));
        let e = entry(&name, kind, size, t, mode);
        prop_assert_eq!(round_trip(&e, now), Some(expected(&e, now)));
    }

    #[test]
    fn mlsx_round_trips(name in "[^\r\n]{1,24}", size in any::<u64>(), ms in 0u64..253_402_300_799_000) {
        let e = entry(&name, EntryKind::File, size, UNIX_EPOCH + Duration::from_millis(ms), 0o640);
        let mut line = String::new();
        format_mlsx_facts(&e, MlsxRole::Entry, Facts::default(), "r", &mut line);
        let want = ParsedEntry { name, kind: EntryKind::File, size: Some(size), modified: e.modified, mode: Some(0o640) };
        prop_assert_eq!(parse_mlsx_line(&line), Some((want, MlsxRole::Entry)));
    }
}
