//! `ListArgs::parse` (the `-la path` argument of `LIST`/`NLST`/`STAT`) never panics; its options
//! hold no space, and its path is the unparsed rest of the argument: a suffix of it that
//! neither starts with a space nor is empty.

#![no_main]

use ferry_proto::command::ListArgs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(arg) = std::str::from_utf8(data) else { return };
    let parsed = ListArgs::parse(Some(arg));
    assert!(!parsed.flags.contains(" "), "{arg:?} -> {parsed:?}");
    if let Some(path) = parsed.path {
        assert!(arg.ends_with(path) && !path.is_empty() && !path.starts_with(' ') && !path.starts_with('-'), "{arg:?}");
    }
    assert_eq!(ListArgs::parse(None), ListArgs::default());
});
