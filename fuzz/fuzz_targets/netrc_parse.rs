//! `~/.netrc`: looking a host up in any text never panics, and what is found for a host that is
//! not in the text (in any case) is the `default` entry's, if any.
//! The input is the host, a newline, then the file's text.

#![no_main]

use ferry_client::netrc::lookup_in;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (host, netrc) = text.split_once('\n').unwrap_or(("", text));
    let found = lookup_in(netrc, host);
    // Host names match without regard to case, as in curl (a `machine EXAMPLE.org` entry is
    // example.org's).
    if !netrc.contains("default") && !netrc.split_whitespace().any(|t| t.eq_ignore_ascii_case(host)) {
        assert_eq!(found, None, "{host:?} in {netrc:?}");
    }
});
