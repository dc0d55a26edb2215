//! `glob_match` (the `*`/`?` patterns of `NLST *.txt`, `mget *.log`: client and server input)
//! never panics and agrees with the obvious cases: a pattern without wildcards matches only
//! itself, `*` matches anything, `*X*` matches every name containing `X`, and a name matches the
//! pattern made by turning any of its characters into `?`.
//! The input is the pattern, a newline, then the name (invalid UTF-8 is replaced).

#![no_main]

use ferry_proto::path::glob_match;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\n').unwrap_or((&text, ""));
    // Long inputs only slow the fuzzer down: the matcher is linear in practice.
    if pattern.len() > 256 || name.len() > 256 {
        return;
    }
    let matched = glob_match(pattern, name);
    if !pattern.contains(['*', '?']) {
        assert_eq!(matched, pattern == name, "{pattern:?} vs {name:?}");
        if !name.contains(['*', '?']) {
            assert_eq!(glob_match(&format!("*{pattern}*"), name), name.contains(pattern), "{pattern:?} in {name:?}");
        }
    }
    assert!(glob_match("*", name));
    if !name.contains(['*', '?']) {
        let every_other: String = name.chars().enumerate().map(|(i, c)| if i % 2 == 0 { '?' } else { c }).collect();
        assert!(glob_match(&every_other, name), "{every_other:?} vs {name:?}");
        assert!(glob_match(name, name));
    }
});
