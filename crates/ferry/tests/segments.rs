//! End-to-end: segmented uploads (`SITE SEGMENT`, docs/segmented-upload.md). Four connections
//! write disjoint ranges of one file at once; the old file stays whole until `END`, which
//! refuses while bytes are missing; a segment may not reach past the announced size; `ABORT`
//! leaves nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

mod common;

use common::{names, random_bytes, Ctrl, Ferry};

/// Sends `data[start..end]` as one segment on a new connection.
fn segment(f: &Ferry, name: &str, data: &[u8], start: usize, end: usize) -> u16 {
    let mut c = f.login();
    c.ok("TYPE I", 200);
    c.ok(&format!("REST {start}"), 350);
    c.upload(&format!("STOR {name}"), &data[start..end]).code.0
}

#[test]
fn four_connections_write_one_file() {
    let f = Ferry::start(&[]);
    let data = random_bytes(10_000_003, 4);
    let old = b"the old version".to_vec();
    std::fs::write(f.root.join("big.bin"), &old).unwrap();
    let mut c = f.login();
    let feat = c.ok("FEAT", 211).lines.join("\n");
    assert!(feat.contains("\nSITE SEGMENT\n"), "{feat}");
    c.ok(&format!("SITE SEGMENT BEGIN {} big.bin", data.len()), 200);
    c.ok(&format!("SITE SEGMENT BEGIN {} big.bin", data.len()), 450);
    // Four segments at once, in parallel, the last one held back.
    let quarter = data.len() / 4;
    let bounds: Vec<(usize, usize)> =
        (0..4).map(|i| (i * quarter, if i == 3 { data.len() } else { (i + 1) * quarter })).collect();
    let (fr, dr) = (&f, &data);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            bounds[..3].iter().map(|&(a, b)| s.spawn(move || segment(fr, "big.bin", dr, a, b))).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 226);
        }
    });
    // Not whole yet: END names what is missing; the old file is untouched, no temporary shows.
    let r = c.ok("SITE SEGMENT END big.bin", 451);
    assert!(r.lines[0].contains(&format!("missing {}-{}", bounds[3].0, data.len() - 1)), "{r:?}");
    assert_eq!(std::fs::read(f.root.join("big.bin")).unwrap(), old);
    c.ok("TYPE I", 200);
    let listing = String::from_utf8(c.download("NLST")).unwrap();
    assert_eq!(listing.trim(), "big.bin", "the temporary is never listed");
    // Other writers are kept off the file meanwhile.
    c.ok("PASV", 227);
    c.ok("APPE big.bin", 450);
    // The last segment, then END publishes the exact bytes.
    assert_eq!(segment(&f, "big.bin", &data, bounds[3].0, bounds[3].1), 226);
    let r = c.ok("SITE SEGMENT END big.bin", 250);
    assert!(r.lines[0].contains(&format!("({} bytes)", data.len())), "{r:?}");
    assert_eq!(std::fs::read(f.root.join("big.bin")).unwrap(), data);
    assert_eq!(names(&f.root), ["big.bin"], "no temporary left");
    c.ok("SITE SEGMENT END big.bin", 550);
    // HASH of the result.
    c.ok("HASH big.bin", 213);
}

#[test]
fn segments_stay_inside_the_announced_size_and_abort_cleans_up() {
    let f = Ferry::start(&[]);
    let mut c = f.login();
    c.ok("SITE SEGMENT BEGIN 100 s.bin", 200);
    let data = random_bytes(200, 1);
    // 150 bytes from offset 0: more than announced.
    assert_eq!(segment(&f, "s.bin", &data, 0, 150), 552);
    // In ASCII mode offsets would not mean bytes stored.
    c.ok("TYPE A", 200);
    c.ok("PASV", 227);
    c.ok("STOR s.bin", 504);
    c.ok("REST 101", 350);
    c.ok("TYPE I", 200);
    c.ok("PASV", 227);
    c.ok("STOR s.bin", 554);
    assert_eq!(names(&f.root).len(), 1, "the temporary exists: {:?}", names(&f.root));
    c.ok("SITE SEGMENT ABORT s.bin", 250);
    assert!(names(&f.root).is_empty(), "{:?}", names(&f.root));
    assert!(!f.root.join("s.bin").exists());
    c.ok("SITE SEGMENT ABORT s.bin", 550);
    c.ok("SITE SEGMENT BEGIN x s.bin", 501);
    c.ok("SITE SEGMENT", 501);
    // An empty file is whole at once.
    c.ok("SITE SEGMENT BEGIN 0 empty.bin", 200);
    c.ok("SITE SEGMENT END empty.bin", 250);
    assert_eq!(std::fs::read(f.root.join("empty.bin")).unwrap(), b"");
    // Without the write permission: refused.
    drop(c);
    let ro = Ferry::start(&["--anonymous"]);
    let mut c = Ctrl::greeted(ro.addr);
    c.ok("USER anonymous", 331);
    c.ok("PASS x@", 230);
    c.ok("SITE SEGMENT BEGIN 10 a.bin", 550);
}
