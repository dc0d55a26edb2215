//! Micro-benchmarks of the control-connection hot paths: splitting lines, parsing commands,
//! encoding replies (server side) and parsing them (client side).
//!
//! `cargo bench -p ferry-proto --bench protocol`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_proto::line::{LineEvent, LineSplitter, DEFAULT_MAX_LINE};
use ferry_proto::reply::ReplyParser;
use ferry_proto::{Command, Reply, ReplyCode};

/// What a client session typically sends, once each.
const LINES: &[&str] = &[
    "USER alice",
    "PASS correct horse battery staple",
    "TYPE I",
    "EPSV",
    "PASV",
    "PORT 127,0,0,1,195,80",
    "EPRT |2|::1|50000|",
    "CWD /pub/releases/2026",
    "REST 1073741824",
    "RETR /pub/releases/2026/ferry-0.1.0-x86_64-unknown-linux-gnu.tar.gz",
    "STOR upload with spaces in its name.bin",
    "MLSD /pub",
    "LIST -la /pub",
    "OPTS MLST type;size;modify;perm;",
    "MFMT 20261123120400 /pub/a.txt",
    "SIZE /pub/big.iso",
    "NOOP",
    "QUIT",
];

fn commands(c: &mut Criterion) {
    let mut g = c.benchmark_group("command");
    g.throughput(Throughput::Elements(LINES.len() as u64));
    g.bench_function("parse_session_mix", |b| {
        b.iter(|| {
            for l in LINES {
                let _ = black_box(Command::parse(black_box(l.as_bytes())));
            }
        })
    });
    g.bench_function("parse_retr", |b| {
        let line = b"RETR /pub/releases/2026/ferry-0.1.0-x86_64-unknown-linux-gnu.tar.gz";
        b.iter(|| black_box(Command::parse(black_box(line))))
    });
    let parsed: Vec<Command> = LINES.iter().filter_map(|l| Command::parse(l.as_bytes()).ok()).collect();
    g.throughput(Throughput::Elements(parsed.len() as u64));
    g.bench_function("display_session_mix", |b| {
        let mut out = String::with_capacity(256);
        b.iter(|| {
            for cmd in &parsed {
                use std::fmt::Write;
                out.clear();
                let _ = write!(out, "{cmd}");
                black_box(&out);
            }
        })
    });
    g.finish();

    let mut wire = Vec::new();
    for l in LINES {
        wire.extend_from_slice(l.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    let mut g = c.benchmark_group("line");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("split_session_mix", |b| {
        b.iter(|| {
            let mut s = LineSplitter::new(DEFAULT_MAX_LINE);
            s.feed(black_box(&wire));
            let mut n = 0;
            while let Some(LineEvent::Line(l)) = s.next_event() {
                n += l.len();
            }
            black_box(n)
        })
    });
    g.finish();
}

#[allow(clippy::disallowed_methods, reason = "the benchmark encodes and parses replies it builds")]
fn replies(c: &mut Criterion) {
    let one = Reply::new(ReplyCode(226), "Transfer complete.");
    let epsv = Reply::new(ReplyCode(229), "Entering Extended Passive Mode (|||50123|).");
    let feat = Reply::multi(
        ReplyCode(211),
        "Features:",
        [
            "EPRT",
            "EPSV",
            "MDTM",
            "MFMT",
            "MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "End",
    );
    let mut g = c.benchmark_group("reply");
    for (name, r) in [("encode_226", &one), ("encode_229", &epsv), ("encode_feat", &feat)] {
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(512);
            b.iter(|| {
                out.clear();
                black_box(r).encode_into(&mut out);
                black_box(out.len())
            })
        });
    }
    // What a client parses for one small-file download: 229, 150, 226.
    let mut wire = Vec::new();
    for r in [&epsv, &Reply::new(ReplyCode(150), "Opening BINARY mode data connection for f (4096 bytes)."), &one] {
        r.encode_into(&mut wire);
    }
    let mut feat_wire = Vec::new();
    feat.encode_into(&mut feat_wire);
    g.bench_function("parse_transfer_replies", |b| {
        b.iter(|| {
            let mut p = ReplyParser::new();
            p.feed(black_box(&wire));
            let mut n = 0;
            while let Ok(Some(r)) = p.next_reply() {
                n += r.code.0 as usize;
            }
            black_box(n)
        })
    });
    g.bench_function("parse_feat", |b| {
        b.iter(|| {
            let mut p = ReplyParser::new();
            p.feed(black_box(&feat_wire));
            black_box(p.next_reply())
        })
    });
    g.finish();
}

criterion_group!(benches, commands, replies);
criterion_main!(benches);
