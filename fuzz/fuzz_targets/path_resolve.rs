//! `VirtualPath::parse(a).join(b)` always gives an absolute, normalized path: it starts with `/`,
//! has no `.`, `..` or empty component and no NUL, and parsing it again changes nothing.
//! The input is `a`, a newline, then `b` (invalid UTF-8 is replaced).

#![no_main]

use ferry_proto::VirtualPath;
use libfuzzer_sys::fuzz_target;

fn check(p: &VirtualPath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "{s:?}");
    assert!(!s.contains('\0'), "{s:?}");
    assert!(p.components().all(|c| !c.is_empty() && c != "." && c != ".."), "{s:?}");
    assert!(p.is_root() || (!s.ends_with('/') && !s.contains("//")), "{s:?}");
    assert!(!p.relative().starts_with('/'), "{s:?}");
    assert_eq!(VirtualPath::parse(s).as_ref(), Ok(p));
    assert!(s.starts_with(p.parent().as_str()));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(base) = VirtualPath::parse(a) else { return };
    check(&base);
    if let Ok(joined) = base.join(b) {
        check(&joined);
        // An absolute argument does not depend on where it is resolved from.
        if b.starts_with('/') {
            assert_eq!(VirtualPath::root().join(b).as_ref(), Ok(&joined));
        }
    }
});
