//! `parse_list_line` and `parse_mlsx_line` never panic on what a server sends, and what they return
//! is sane. The first eight bytes are the "now" that years are inferred from (seconds since the
//! epoch, any i64, so far-off clocks are covered too); the rest is the line.

#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_proto::listing::{parse_list_line, parse_mlsx_line, ParsedEntry};
use libfuzzer_sys::fuzz_target;

fn check(e: &ParsedEntry) {
    assert!(!e.name.is_empty());
    assert!(e.mode.is_none_or(|m| m <= 0o7777));
}

fuzz_target!(|data: &[u8]| {
    let (now, line) = match data.split_first_chunk::<8>() {
        Some((secs, rest)) => {
            let secs = i64::from_le_bytes(*secs) % 400_000_000_000;
            let now = if secs >= 0 {
                UNIX_EPOCH + Duration::from_secs(secs as u64)
            } else {
                UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            };
            (now, rest)
        }
        None => (SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000), data),
    };
    let line = String::from_utf8_lossy(line);
    if let Some(e) = parse_list_line(&line, now) {
        check(&e);
    }
    if let Some((e, _)) = parse_mlsx_line(&line) {
        check(&e);
    }
});
