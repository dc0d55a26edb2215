//! Directory listings: `LIST` lines in the `ls -l` form clients parse, `MLSx` facts (RFC 3659
//! section 7), and the `YYYYMMDDHHMMSS[.sss]` time values of `MDTM`, `MFMT` and `modify=`.
//!
//! This module formats (the server's side); [`parse`] reads what other servers send (the client's).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod parse;

pub use parse::{parse_list_line, parse_mlsx_line, ParsedEntry};

/// What kind of directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, with its target when known.
    Symlink(Option<String>),
}

/// What a listing says about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name (one path component, or the path given for a single-file listing).
    pub name: String,
    /// File, directory or link.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: Option<SystemTime>,
    /// Unix permission bits (`0o7777` at most).
    pub mode: u32,
    /// Number of hard links.
    pub nlink: u64,
    /// A value unique to the file on the server (device and inode), for MLSx `unique=`.
    pub unique: Option<(u64, u64)>,
}

/// MLSx facts (RFC 3659 section 7.5), as selected by `OPTS MLST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// `type=`.
    pub kind: bool,
    /// `size=`.
    pub size: bool,
    /// `modify=`.
    pub modify: bool,
    /// `perm=`.
    pub perm: bool,
    /// `unique=`.
    pub unique: bool,
    /// `UNIX.mode=`.
    pub unix_mode: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Self { kind: true, size: true, modify: true, perm: true, unique: true, unix_mode: true }
    }
}

impl Facts {
    /// The names of all facts this implementation offers, in `FEAT` order.
    pub const ALL: [&'static str; 6] = ["type", "size", "modify", "perm", "unique", "UNIX.mode"];

    /// Selects facts by name (case-insensitive); unknown names are ignored, as RFC 3659 section 7.9 says.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let has = |n: &str| names.iter().any(|x| x.as_ref().eq_ignore_ascii_case(n));
        Self {
            kind: has("type"),
            size: has("size"),
            modify: has("modify"),
            perm: has("perm"),
            unique: has("unique"),
            unix_mode: has("unix.mode"),
        }
    }

    /// The `FEAT` line: `MLST type*;size*;...` with a `*` on each enabled fact.
    pub fn feat_line(&self) -> String {
        let mut s = String::from("MLST ");
        for (name, on) in Self::ALL.iter().zip(self.flags()) {
            s.push_str(name);
            if on {
                s.push('*');
            }
            s.push(';');
        }
        s
    }

    /// The enabled facts' names, `;`-terminated, for the `OPTS MLST` reply.
    pub fn enabled_names(&self) -> String {
        let mut s = String::new();
        for (name, on) in Self::ALL.iter().zip(self.flags()) {
            if on {
                s.push_str(name);
                s.push(';');
            }
        }
        s
    }

    fn flags(&self) -> [bool; 6] {
        [self.kind, self.size, self.modify, self.perm, self.unique, self.unix_mode]
    }
}

/// How an MLSx `type=` fact names an entry relative to the listed directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlsxRole {
    /// An ordinary entry.
    Entry,
    /// The listed directory itself (`type=cdir`).
    CurrentDir,
    /// Its parent (`type=pdir`).
    ParentDir,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Whole seconds since the epoch, rounded down (so 0.5 s before the epoch is second -1), and the
/// milliseconds after that second.
fn epoch_secs_millis(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(e) => {
            let d = e.duration();
            let secs = -(d.as_secs() as i64);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, (1_000_000_000 - n) / 1_000_000),
            }
        }
    }
}

/// A UTC calendar time, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Years a listing can show (`time`'s default range); other times show as the epoch.
const YEARS: std::ops::RangeInclusive<i64> = -9999..=9999;

/// The UTC calendar time of `t`, computed directly (days to civil date, as in H. Hinnant's
/// `civil_from_days`): a listing formats one per entry.
fn civil(t: SystemTime) -> Civil {
    let (secs, _) = epoch_secs_millis(t);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !YEARS.contains(&year) {
        return Civil { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
    }
    Civil { year, month, day, hour: sod / 3600, minute: sod / 60 % 60, second: sod % 60 }
}

/// Appends `n` in decimal, right-aligned in `width` columns (padded with `pad`).
fn push_num(out: &mut String, n: u64, width: usize, pad: char) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in (buf.len() - i)..width {
        out.push(pad);
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Appends `n` in base 8 or 16 (lower-case), no prefix.
fn push_radix(out: &mut String, n: u64, radix: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 22];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Appends a year as `{:0w$}` (`zero`) or `{:>w$}` would.
fn push_year(out: &mut String, year: i64, width: usize, zero: bool) {
    if year >= 0 {
        push_num(out, year as u64, width, if zero { '0' } else { ' ' });
    } else if zero {
        let _ = write!(out, "{year:0width$}");
    } else {
        let _ = write!(out, "{year:>width$}");
    }
}

/// Appends one `LIST` line, in the `ls -l` format that curl, lftp, FileZilla and WinSCP parse:
/// `drwxr-xr-x 1 ftp ftp 4096 Nov 23 12:04 name`, with the year instead of the time for entries
/// more than six months from `now` (as `ls` does). Ends with CRLF.
pub fn format_list_line(e: &Entry, now: SystemTime, out: &mut String) {
    let type_char = match e.kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink(_) => 'l',
    };
    out.push(type_char);
    let m = e.mode;
    for (i, c) in ['r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x'].iter().enumerate() {
        let bit = 0o400 >> i;
        let mut ch = if m & bit != 0 { *c } else { '-' };
        // setuid, setgid, sticky
        if i == 2 && m & 0o4000 != 0 {
            ch = if ch == 'x' { 's' } else { 'S' };
        }
        if i == 5 && m & 0o2000 != 0 {
            ch = if ch == 'x' { 's' } else { 'S' };
        }
        if i == 8 && m & 0o1000 != 0 {
            ch = if ch == 'x' { 't' } else { 'T' };
        }
        out.push(ch);
    }
    out.push(' ');
    push_num(out, e.nlink.max(1), 3, ' ');
    out.push_str(" ftp      ftp      ");
    push_num(out, e.size, 12, ' ');
    out.push(' ');
    let t = e.modified.unwrap_or(UNIX_EPOCH);
    let c = civil(t);
    out.push_str(MONTHS[c.month as usize - 1]);
    out.push(' ');
    push_num(out, c.day.into(), 2, ' ');
    out.push(' ');
    let half_year = Duration::from_secs(182 * 24 * 3600);
    let recent = match now.duration_since(t) {
        Ok(age) => age < half_year,
        Err(ahead) => ahead.duration() < Duration::from_secs(3600),
    };
    if recent {
        push_num(out, c.hour.into(), 2, '0');
        out.push(':');
        push_num(out, c.minute.into(), 2, '0');
    } else {
        out.push(' ');
        push_year(out, c.year, 4, false);
    }
    out.push(' ');
    out.push_str(&e.name);
    if let EntryKind::Symlink(Some(target)) = &e.kind {
        out.push_str(" -> ");
        out.push_str(target);
    }
    out.push_str("\r\n");
}

/// Appends the facts of one MLSx entry: `type=file;size=12;modify=20261123120400;perm=r; name`.
/// `perm` is the RFC 3659 section 7.5.5 permission string computed by the caller. No line ending.
pub fn format_mlsx_facts(e: &Entry, role: MlsxRole, facts: Facts, perm: &str, out: &mut String) {
    if facts.kind {
        let t = match (role, &e.kind) {
            (MlsxRole::CurrentDir, _) => "cdir",
            (MlsxRole::ParentDir, _) => "pdir",
            (_, EntryKind::Dir) => "dir",
            (_, EntryKind::File) => "file",
            (_, EntryKind::Symlink(_)) => "OS.unix=symlink",
        };
        out.push_str("type=");
        out.push_str(t);
        out.push(';');
    }
    if facts.size && e.kind != EntryKind::Dir {
        out.push_str("size=");
        push_num(out, e.size, 0, ' ');
        out.push(';');
    }
    if facts.modify {
        if let Some(m) = e.modified {
            out.push_str("modify=");
            push_timeval(m, out);
            out.push(';');
        }
    }
    if facts.perm {
        out.push_str("perm=");
        out.push_str(perm);
        out.push(';');
    }
    if facts.unique {
        if let Some((dev, ino)) = e.unique {
            out.push_str("unique=");
            push_radix(out, dev, 16);
            out.push('U');
            push_radix(out, ino, 16);
            out.push(';');
        }
    }
    if facts.unix_mode {
        out.push_str("UNIX.mode=0");
        push_radix(out, (e.mode & 0o7777).into(), 8);
        out.push(';');
    }
    out.push(' ');
    out.push_str(&e.name);
}

/// Formats a time as `YYYYMMDDHHMMSS` in UTC (RFC 3659 section 2.3), with `.sss` when the time
/// has a non-zero millisecond part.
pub fn format_timeval(t: SystemTime) -> String {
    let mut s = String::with_capacity(18);
    push_timeval(t, &mut s);
    s
}

/// Appends [`format_timeval`]'s text to `out`.
pub fn push_timeval(t: SystemTime, out: &mut String) {
    let c = civil(t);
    let (_, ms) = epoch_secs_millis(t);
    push_year(out, c.year, 4, true);
    for v in [c.month, c.day, c.hour, c.minute, c.second] {
        push_num(out, v.into(), 2, '0');
    }
    if ms != 0 {
        out.push('.');
        push_num(out, ms.into(), 3, '0');
    }
}

/// Parses `YYYYMMDDHHMMSS[.s+]` (UTC) as sent by `MFMT` and returned by `MDTM`. Fractions are kept
/// to the millisecond.
pub fn parse_timeval(s: &str) -> Option<SystemTime> {
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| main[r].parse::<u32>().ok();
    let year = n(0..4)? as i32;
    let month = time::Month::try_from(n(4..6)? as u8).ok()?;
    let date = time::Date::from_calendar_date(year, month, n(6..8)? as u8).ok()?;
    let tod = time::Time::from_hms(n(8..10)? as u8, n(10..12)? as u8, n(12..14)? as u8).ok()?;
    let secs = date.with_time(tod).assume_utc().unix_timestamp();
    let millis = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut digits = f.to_string();
            digits.truncate(3);
            while digits.len() < 3 {
                digits.push('0');
            }
            digits.parse::<u64>().ok()?
        }
        Some(_) => return None,
    };
    let base = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Some(base + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        parse_timeval(s).unwrap()
    }

    fn entry(name: &str, kind: EntryKind, size: u64, t: &str, mode: u32) -> Entry {
        Entry { name: name.into(), kind, size, modified: Some(at(t)), mode, nlink: 1, unique: Some((0x801, 0x1f)) }
    }

    #[test]
    fn timeval_round_trip() {
        assert_eq!(format_timeval(at("20261123120405")), "20261123120405");
        assert_eq!(format_timeval(at("19991231235959.5")), "19991231235959.500");
        assert_eq!(format_timeval(at("19700101000000")), "19700101000000");
        assert_eq!(format_timeval(at("19600101000000")), "19600101000000");
        // Before the epoch a fraction must not move the whole second (it used to print ...51).
        assert_eq!(format_timeval(at("19691231235950.500")), "19691231235950.500");
        assert_eq!(format_timeval(at("19691231235959.001")), "19691231235959.001");
        for bad in [
            "2026112312040",
            "20261323120405",
            "20260230120405",
            "20261123250405",
            "2026112312040x",
            "20261123120405.",
            "20261123120405.x",
        ] {
            assert!(parse_timeval(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn list_line_recent_and_old() {
        let now = at("20261123130000");
        let mut s = String::new();
        format_list_line(&entry("notes.txt", EntryKind::File, 1234, "20261123120405", 0o644), now, &mut s);
        assert_eq!(s, "-rw-r--r--   1 ftp      ftp              1234 Nov 23 12:04 notes.txt\r\n");
        s.clear();
        format_list_line(&entry("old dir", EntryKind::Dir, 4096, "20200105000000", 0o755), now, &mut s);
        assert_eq!(s, "drwxr-xr-x   1 ftp      ftp              4096 Jan  5  2020 old dir\r\n");
        s.clear();
        format_list_line(&entry("l", EntryKind::Symlink(Some("t".into())), 1, "20261123120405", 0o777), now, &mut s);
        assert!(s.starts_with("lrwxrwxrwx") && s.ends_with(" l -> t\r\n"), "{s}");
        s.clear();
        format_list_line(&entry("s", EntryKind::Dir, 1, "20261123120405", 0o1777), now, &mut s);
        assert!(s.starts_with("drwxrwxrwt"), "{s}");
    }

    #[test]
    fn mlsx_facts() {
        let mut s = String::new();
        let e = entry("a b.txt", EntryKind::File, 12, "20261123120405", 0o644);
        format_mlsx_facts(&e, MlsxRole::Entry, Facts::default(), "adfrw", &mut s);
        assert_eq!(s, "type=file;size=12;modify=20261123120405;perm=adfrw;unique=801U1f;UNIX.mode=0644; a b.txt");
        s.clear();
        let only = Facts::from_names(&["type", "SIZE", "bogus"]);
        format_mlsx_facts(&e, MlsxRole::Entry, only, "r", &mut s);
        assert_eq!(s, "type=file;size=12; a b.txt");
        assert_eq!(only.feat_line(), "MLST type*;size*;modify;perm;unique;UNIX.mode;");
        assert_eq!(only.enabled_names(), "type;size;");
        s.clear();
        let d = entry("x", EntryKind::Dir, 4096, "20261123120405", 0o755);
        format_mlsx_facts(&d, MlsxRole::CurrentDir, only, "el", &mut s);
        assert_eq!(s, "type=cdir; x");
    }

    /// What the listing's calendar arithmetic replaced: the `time` crate's conversion, formatted
    /// with `format!`.
    fn reference(t: SystemTime) -> (String, String) {
        let (secs, ms) = epoch_secs_millis(t);
        let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut timeval = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        if ms != 0 {
            timeval.push_str(&format!(".{ms:03}"));
        }
        let month = MONTHS[usize::from(u8::from(dt.month())) - 1];
        let old = format!("{month} {:>2}  {:>4} ", dt.day(), dt.year());
        (timeval, old)
    }

    fn at_secs(secs: i64, millis: u32) -> SystemTime {
        let base = if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        base + Duration::from_millis(millis.into())
    }

    #[test]
    fn calendar_matches_the_time_crate_at_the_edges() {
        // Leap days, century rules, the epoch, before it, and the ends of the supported range.
        for secs in [
            0i64,
            -1,
            951_782_400,
            951_868_799,
            4_107_542_400,
            -2_208_988_800,
            253_402_300_799,
            253_402_300_800,
            -377_705_116_800,
            -377_705_116_801,
            i64::from(i32::MAX),
        ] {
            let t = at_secs(secs, 0);
            let (timeval, old) = reference(t);
            assert_eq!(format_timeval(t), timeval, "{secs}");
            let e = Entry { modified: Some(t), ..entry("n", EntryKind::File, 1, "20200101000000", 0o644) };
            let mut line = String::new();
            format_list_line(&e, at_secs(secs, 0) + Duration::from_secs(400 * 24 * 3600), &mut line);
            assert!(line.contains(&old), "{secs}: {line:?} lacks {old:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn calendar_matches_the_time_crate(secs in -400_000_000_000i64..400_000_000_000, millis in 0u32..1000) {
            let t = at_secs(secs, millis);
            let (timeval, old) = reference(t);
            proptest::prop_assert_eq!(format_timeval(t), timeval);
            let e = Entry { modified: Some(t), ..entry("n", EntryKind::File, 1, "20200101000000", 0o644) };
            let mut line = String::new();
            format_list_line(&e, t + Duration::from_secs(400 * 24 * 3600), &mut line);
            proptest::prop_assert!(line.contains(&old), "{:?} lacks {:?}", line, old);
        }
    }
}
