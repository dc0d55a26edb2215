//! Client-side parsing of directory listings: `LIST` lines as real servers write them, and MLSx
//! fact lines (RFC 3659 section 7).
//!
//! RFC 959 section 4.1.3 leaves the `LIST` format to the server ("the information on a file may vary
//! widely from system to system"), so [`parse_list_line`] is tolerant: it reads the Unix `ls -l` form
//! that vsftpd, ProFTPD, Pure-FTPd and Ferry send (with or without the link count or the group
//! column, numeric or named owners, `HH:MM` or year, `ls --time-style=long-iso` dates) and the DOS
//! form of IIS and Windows servers. MLSx lines have a real grammar (RFC 3659 section 7.2), which
//! [`parse_mlsx_line`] follows while ignoring facts it does not know. Neither ever panics, whatever
//! the server sends; a line that is not an entry (`total 12`, a banner, garbage) gives `None`.

use std::time::{Duration, SystemTime};

use time::{Date, Month, PrimitiveDateTime, Time};

use super::{civil, parse_timeval, EntryKind, MlsxRole};

/// One entry read from a listing line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEntry {
    /// The name exactly as listed (a `LIST` of one file may give a path). For a symbolic link in
    /// `ls -l` form, the part before ` -> `.
    pub name: String,
    /// File, directory or symbolic link (with its target when the listing shows it). Device files,
    /// pipes and sockets are reported as [`EntryKind::File`].
    pub kind: EntryKind,
    /// The size in bytes, when the line gives one (DOS `<DIR>` lines and device files do not).
    pub size: Option<u64>,
    /// The modification time, read as UTC. `ls -l` lines give it to the minute (recent entries) or
    /// to the day (older ones); MLSx `modify=` to the second or better.
    pub modified: Option<SystemTime>,
    /// Unix permission bits (`0o7777` at most), when the line gives them.
    pub mode: Option<u32>,
}

/// Parses one line of `LIST` output (without or with its line ending).
///
/// Understands the Unix `ls -l` form, e.g. `drwxr-xr-x 2 ftp ftp 4096 Nov 23 12:04 name` or
/// `-rw-r--r-- 1 1000 1000 12 Jan  5  2020 a b.txt`, and the DOS/IIS form, e.g.
/// `11-23-26  12:04PM       <DIR>          name`. Names keep their spaces (and their non-ASCII
/// characters); a symbolic link `name -> target` becomes [`EntryKind::Symlink`] with its target.
///
/// An `ls -l` time without a year (`Nov 23 12:04`) is given the year that makes it the most recent
/// such date not more than a day after `now`, as lftp and curl do; `now` is normally the current
/// time. Times are read as UTC, since the listing does not name a zone.
///
/// `.` and `..` are returned like any other entry; callers usually skip them. Lines that are not
/// entries, such as `total 123`, give `None`.
pub fn parse_list_line(line: &str, now: SystemTime) -> Option<ParsedEntry> {
    let line = line.trim_end_matches(['\r', '\n']);
    parse_unix(line, now).or_else(|| parse_dos(line))
}

/// Parses one MLSx entry line (RFC 3659 section 7.2): `fact=value;fact=value; name`.
///
/// Fact names are case-insensitive. `type=file`, `dir`, `cdir` and `pdir` are understood (the last
/// two are reported through the [`MlsxRole`] and as [`EntryKind::Dir`]), as are the Unix forms
/// `type=OS.unix=symlink` and `type=OS.unix=slink:target`; other `OS.` types count as files. `size`
/// (or `sizd` for directories), `modify` and `UNIX.mode` fill in the entry; other facts are
/// ignored. An entry without a `type` fact counts as a file.
///
/// The single space that starts each entry line of an `MLST` reply may be left on. A line whose
/// facts are malformed (a fact without `=`) or which has no name gives `None`.
pub fn parse_mlsx_line(line: &str) -> Option<(ParsedEntry, MlsxRole)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (facts, name) = split_mlsx(line)?;
    if name.is_empty() {
        return None;
    }
    let mut entry =
        ParsedEntry { name: name.to_string(), kind: EntryKind::File, size: None, modified: None, mode: None };
    let mut role = MlsxRole::Entry;
    let mut sizd = None;
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (key, value) = fact.split_once('=')?;
        if key.is_empty() {
            return None;
        }
        if key.eq_ignore_ascii_case("type") {
            (entry.kind, role) = mlsx_type(value);
        } else if key.eq_ignore_ascii_case("size") {
            entry.size = parse_digits(value);
        } else if key.eq_ignore_ascii_case("sizd") {
            sizd = parse_digits(value);
        } else if key.eq_ignore_ascii_case("modify") {
            entry.modified = parse_timeval(value);
        } else if key.eq_ignore_ascii_case("unix.mode") {
            entry.mode = (!value.is_empty() && value.len() <= 11)
                .then(|| u32::from_str_radix(value, 8).ok())
                .flatten()
                .map(|m| m & 0o7777);
        }
    }
    if entry.size.is_none() {
        entry.size = sizd;
    }
    Some((entry, role))
}

/// Splits an MLSx line into its facts (each `;`-terminated) and the name after the one space.
fn split_mlsx(line: &str) -> Option<(&str, &str)> {
    // An MLST reply line starts with one space before its facts; an entry without facts does too.
    let (leading_space, body) = match line.strip_prefix(' ') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    // Values never contain "; " (RFC 3659 section 7.2), so the first one ends the facts.
    let split = match body.find("; ") {
        Some(i) => Some((&body[..=i], &body[i + 2..])),
        // Tolerate a server that forgets the last ';'.
        None => body.split_once(' ').filter(|(facts, _)| looks_like_facts(facts)),
    };
    match split {
        Some((facts, name)) if !leading_space || looks_like_facts(facts) => Some((facts, name)),
        _ if leading_space => Some(("", body)),
        _ => None,
    }
}

/// Whether every `;`-separated part has the form `name=value`.
fn looks_like_facts(s: &str) -> bool {
    s.split(';').filter(|f| !f.is_empty()).all(|f| f.split_once('=').is_some_and(|(k, _)| !k.is_empty()))
        && s.contains('=')
}

fn mlsx_type(value: &str) -> (EntryKind, MlsxRole) {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "dir" => (EntryKind::Dir, MlsxRole::Entry),
        "cdir" => (EntryKind::Dir, MlsxRole::CurrentDir),
        "pdir" => (EntryKind::Dir, MlsxRole::ParentDir),
        "os.unix=symlink" | "os.unix=slink" | "symlink" | "link" => (EntryKind::Symlink(None), MlsxRole::Entry),
        _ => match lower.strip_prefix("os.unix=slink:") {
            // The prefix is ASCII, so its length is the same in `value`.
            Some(_) => {
                let target = value.get("os.unix=slink:".len()..).unwrap_or("");
                (EntryKind::Symlink((!target.is_empty()).then(|| target.to_string())), MlsxRole::Entry)
            }
            None => (EntryKind::File, MlsxRole::Entry),
        },
    }
}

/// A whitespace-separated token and where it ends in the line.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    end: usize,
}

/// The first `max` tokens of `line`, separated by spaces and tabs.
fn tokens(line: &str, max: usize) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, b) in line.bytes().enumerate() {
        let sep = b == b' ' || b == b'\t';
        match (start, sep) {
            (None, false) => start = Some(i),
            (Some(s), true) => {
                out.push(Token { text: &line[s..i], end: i });
                start = None;
                if out.len() == max {
                    return out;
                }
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Token { text: &line[s..], end: line.len() });
    }
    out
}

/// Where the date may start, in token positions after the permissions, most likely first:
/// `perms links owner group size DATE` (5), without the group or the link count (4), an owner or
/// group with a space in it (6, 7), only one of links/owner/group (3), and so on.
const DATE_POSITIONS: [usize; 7] = [5, 4, 6, 3, 7, 8, 2];

fn parse_unix(line: &str, now: SystemTime) -> Option<ParsedEntry> {
    let toks = tokens(line, 14);
    let (type_char, mode, skip) = parse_perms(&toks)?;
    // Device files list "major, minor" where the size would be.
    let device = matches!(type_char, b'c' | b'b');
    for pos in DATE_POSITIONS {
        let at = skip - 1 + pos;
        let Some(size_tok) = toks.get(at - 1) else { continue };
        let size = parse_digits(size_tok.text);
        if size.is_none() && !device {
            continue;
        }
        let Some((modified, used)) = toks.get(at..).and_then(|t| parse_unix_date(t, now)) else {
            continue;
        };
        // The name is everything after the one space that follows the date (NetWare pads more).
        let mut name = line.get(toks[at + used - 1].end + 1..).unwrap_or("");
        if skip == 2 {
            name = name.trim_start_matches([' ', '\t']);
        }
        if name.is_empty() {
            return None;
        }
        let (name, kind) = match type_char {
            b'd' => (name, EntryKind::Dir),
            b'l' => match name.split_once(" -> ") {
                Some((n, target)) if !n.is_empty() => (n, EntryKind::Symlink(Some(target.to_string()))),
                _ => (name, EntryKind::Symlink(None)),
            },
            _ => (name, EntryKind::File),
        };
        return Some(ParsedEntry {
            name: name.to_string(),
            kind,
            size: if device { None } else { size },
            modified: Some(modified),
            mode,
        });
    }
    None
}

/// Reads the `-rwxr-xr-x` column: the type character, the mode bits and how many tokens it took
/// (two for the NetWare form `d [RWCEAFMS]`).
fn parse_perms(toks: &[Token<'_>]) -> Option<(u8, Option<u32>, usize)> {
    let first = toks.first()?.text.as_bytes();
    if first.len() == 1 && matches!(first[0], b'd' | b'-') {
        let second = toks.get(1)?.text;
        if second.len() >= 2 && second.starts_with('[') && second.ends_with(']') {
            return Some((first[0], None, 2));
        }
        return None;
    }
    // Ten characters, sometimes followed by an ACL or security-context marker.
    match first.len() {
        10 => {}
        11 if matches!(first[10], b'+' | b'.' | b'@') => {}
        _ => return None,
    }
    let t = first[0];
    if !matches!(t, b'-' | b'd' | b'l' | b'c' | b'b' | b'p' | b's' | b'D' | b'n') {
        return None;
    }
    let mut mode = 0u32;
    for (i, &c) in first[1..10].iter().enumerate() {
        let bit = 0o400 >> i;
        let special = match i {
            2 => 0o4000,
            5 => 0o2000,
            _ => 0o1000,
        };
        mode |= match (i % 3, c) {
            (_, b'-') => 0,
            (0, b'r') | (1, b'w') | (2, b'x') => bit,
            (2, b's') if i < 8 => bit | special,
            (2, b'S') if i < 8 => special,
            (2, b'l' | b'L') if i == 5 => special,
            (2, b't') if i == 8 => bit | special,
            (2, b'T') if i == 8 => special,
            _ => return None,
        };
    }
    Some((t, Some(mode), 1))
}

/// Reads a date at the start of `toks`: `Nov 23 12:04`, `Nov 23 2020`, `Nov 23 12:04:05 2020`,
/// `23 Nov 12:04` or `2020-11-23 12:04[:05]`. Returns the time and how many tokens it took.
fn parse_unix_date(toks: &[Token<'_>], now: SystemTime) -> Option<(SystemTime, usize)> {
    let t = |i: usize| toks.get(i).map(|t| t.text);
    if let Some(date) = t(0).and_then(parse_iso_date) {
        // `--time-style=long-iso` (`12:04`) or `full-iso` (`12:04:05.123456789 +0100`).
        let clock = t(1)?;
        let (clock, full) = match clock.split_once('.') {
            Some((c, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => (c, true),
            Some(_) => return None,
            None => (clock, false),
        };
        let (h, m, s) = parse_clock(clock)?;
        let local = at(date, h, m, s)?;
        return match t(2).filter(|_| full).and_then(parse_utc_offset) {
            Some(offset) if offset >= 0 => Some((local.checked_sub(Duration::from_secs(offset as u64))?, 3)),
            Some(offset) => Some((local.checked_add(Duration::from_secs(offset.unsigned_abs()))?, 3)),
            None => Some((local, 2)),
        };
    }
    let (month, day) = match (t(0).and_then(parse_month), t(1).and_then(parse_month)) {
        (Some(m), _) => (m, parse_day(t(1)?)?),
        (None, Some(m)) => (m, parse_day(t(0)?)?),
        (None, None) => return None,
    };
    let third = t(2)?;
    if let Some(year) = parse_year(third) {
        return Some((at(Date::from_calendar_date(year, month, day).ok()?, 0, 0, 0)?, 3));
    }
    let (h, m, s) = parse_clock(third)?;
    // BSD `ls -lT`: `Nov 23 12:04:05 2020`.
    if let Some(year) = t(3).and_then(parse_year) {
        return Some((at(Date::from_calendar_date(year, month, day).ok()?, h, m, s)?, 4));
    }
    Some((infer_year(month, day, h, m, now)?, 3))
}

/// The most recent `month day hh:mm` (UTC) that is not more than a day after `now`.
fn infer_year(month: Month, day: u8, h: u8, m: u8, now: SystemTime) -> Option<SystemTime> {
    let limit = now.checked_add(Duration::from_secs(24 * 3600)).unwrap_or(now);
    let this_year = civil(now).year as i32;
    // Eight years back reaches a 29 February from any year.
    (this_year - 8..=this_year + 1)
        .rev()
        .filter_map(|y| Date::from_calendar_date(y, month, day).ok())
        .filter_map(|d| at(d, h, m, 0))
        .find(|t| *t <= limit)
}

fn at(date: Date, h: u8, m: u8, s: u8) -> Option<SystemTime> {
    let time = Time::from_hms(h, m, s).ok()?;
    Some(SystemTime::from(PrimitiveDateTime::new(date, time).assume_utc()))
}

fn parse_month(s: &str) -> Option<Month> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if s.len() < 3 || !s.is_ascii() {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let i = NAMES.iter().position(|n| n.starts_with(&lower))?;
    Month::try_from(i as u8 + 1).ok()
}

fn parse_day(s: &str) -> Option<u8> {
    small(s, 1, 2).filter(|d| (1..=31).contains(d)).map(|d| d as u8)
}

fn parse_year(s: &str) -> Option<i32> {
    (s.len() == 4).then(|| small(s, 4, 4)).flatten().map(|y| y as i32)
}

/// `HH:MM` or `HH:MM:SS`.
fn parse_clock(s: &str) -> Option<(u8, u8, u8)> {
    let mut parts = s.split(':');
    let h = small(parts.next()?, 1, 2)?;
    let m = small(parts.next()?, 2, 2)?;
    let sec = match parts.next() {
        Some(p) => small(p, 2, 2)?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h as u8, m as u8, sec.min(59) as u8))
}

/// `+HHMM` or `-HHMM`, in seconds east of UTC.
fn parse_utc_offset(s: &str) -> Option<i64> {
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let n = i64::from(small(digits, 4, 4)?);
    let (h, m) = (n / 100, n % 100);
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// `YYYY-MM-DD`.
fn parse_iso_date(s: &str) -> Option<Date> {
    let mut parts = s.split('-');
    let y = small(parts.next()?, 4, 4)?;
    let m = small(parts.next()?, 2, 2)?;
    let d = small(parts.next()?, 2, 2)?;
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(y as i32, Month::try_from(m as u8).ok()?, d as u8).ok()
}

/// A number of `min..=max` ASCII digits.
fn small(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A byte count: ASCII digits only, no sign.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The DOS/IIS form: `MM-DD-YY  HH:MMAM  <DIR>|size  name`.
fn parse_dos(line: &str) -> Option<ParsedEntry> {
    let toks = tokens(line, 4);
    let date = parse_dos_date(toks.first()?.text)?;
    let t1 = toks.get(1)?.text;
    // `12:04PM`, `12:04 PM` or a 24-hour `12:04`.
    let (clock, ampm, size_at) = match toks.get(2).map(|t| t.text).filter(|t| is_ampm(t)) {
        Some(ampm) => (t1, Some(ampm), 3),
        None => match t1.len().checked_sub(2).and_then(|i| Some((t1.get(..i)?, t1.get(i..)?))) {
            Some((clock, ampm)) if is_ampm(ampm) => (clock, Some(ampm), 2),
            _ => (t1, None, 2),
        },
    };
    let (mut h, m, s) = parse_clock(clock)?;
    if let Some(ampm) = ampm {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = match (h, ampm.eq_ignore_ascii_case("PM")) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    let size_tok = toks.get(size_at)?;
    let name = line.get(size_tok.end..).unwrap_or("").trim_start_matches([' ', '\t']);
    if name.is_empty() {
        return None;
    }
    let modified = at(date, h, m, s);
    let upper = size_tok.text.to_ascii_uppercase();
    let (kind, size, name) = match upper.as_str() {
        "<DIR>" => (EntryKind::Dir, None, name),
        "<JUNCTION>" | "<SYMLINK>" | "<SYMLINKD>" => match name.strip_suffix(']').and_then(|n| n.rsplit_once(" [")) {
            Some((n, target)) if !n.is_empty() => (EntryKind::Symlink(Some(target.to_string())), None, n),
            _ => (EntryKind::Symlink(None), None, name),
        },
        _ => {
            let digits: String = size_tok.text.chars().filter(|c| *c != ',' && *c != '.').collect();
            (EntryKind::File, Some(parse_digits(&digits)?), name)
        }
    };
    Some(ParsedEntry { name: name.to_string(), kind, size, modified, mode: None })
}

fn is_ampm(s: &str) -> bool {
    s.eq_ignore_ascii_case("AM") || s.eq_ignore_ascii_case("PM")
}

/// `MM-DD-YY`, `MM-DD-YYYY` (also with `/`), or `YYYY-MM-DD`. Two-digit years below 70 are 20xx.
fn parse_dos_date(s: &str) -> Option<Date> {
    let sep = if s.contains('/') { '/' } else { '-' };
    let parts: Vec<&str> = s.split(sep).collect();
    let [a, b, c] = parts[..] else { return None };
    let (y, m, d) = if a.len() == 4 {
        (small(a, 4, 4)? as i32, small(b, 1, 2)?, small(c, 1, 2)?)
    } else {
        let y = match c.len() {
            2 => {
                let y = small(c, 2, 2)? as i32;
                if y < 70 {
                    2000 + y
                } else {
                    1900 + y
                }
            }
            4 => small(c, 4, 4)? as i32,
            _ => return None,
        };
        (y, small(a, 1, 2)?, small(b, 1, 2)?)
    };
    Date::from_calendar_date(y, Month::try_from(u8::try_from(m).ok()?).ok()?, u8::try_from(d).ok()?).ok()
}

#[cfg(test)]
mod tests;
