//! `parse_timeval` (the time of `MFMT`, the answer to `MDTM`) never panics, and a time it accepts
//! formats to text that parses back to the same time, which formats the same again.

#![no_main]

use ferry_proto::listing::{format_timeval, parse_timeval};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(t) = parse_timeval(text) else { return };
    let shown = format_timeval(t);
    assert_eq!(parse_timeval(&shown), Some(t), "{text:?} -> {shown:?}");
    assert_eq!(format_timeval(t), shown);
});
