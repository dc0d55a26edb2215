//! Micro-benchmarks of the data-side formatting: LIST (`ls -l`) lines and MLSx facts for a
//! directory listing, and the streaming TYPE A line-ending converters.
//!
//! `cargo bench -p ferry-proto --bench formats`

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry_proto::ascii::{FromWire, ToWire};
use ferry_proto::listing::{format_list_line, format_mlsx_facts, Entry, EntryKind, Facts, MlsxRole};

/// A 10,000-entry directory like the end-to-end benchmark's (files of varied size and age, a few
/// directories and links).
fn entries(n: usize) -> Vec<Entry> {
    let now = SystemTime::now();
    (0..n)
        .map(|i| {
            let kind = match i % 50 {
                0 => EntryKind::Dir,
                1 => EntryKind::Symlink(Some(format!("target-{i}"))),
                _ => EntryKind::File,
            };
            let age = Duration::from_secs((i as u64 * 7919) % (400 * 24 * 3600));
            Entry {
                name: format!("entry-{i:05}.dat"),
                kind,
                size: (i as u64 * 2_654_435_761) % (1 << 32),
                modified: Some(now.checked_sub(age).unwrap_or(UNIX_EPOCH)),
                mode: 0o644,
                nlink: 1,
                unique: Some((64768, 1_000_000 + i as u64)),
            }
        })
        .collect()
}

fn listing(c: &mut Criterion) {
    let list = entries(10_000);
    let now = SystemTime::now();
    let mut g = c.benchmark_group("listing");
    g.throughput(Throughput::Elements(list.len() as u64));
    g.bench_function("list_lines_10k", |b| {
        let mut out = String::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for e in &list {
                format_list_line(black_box(e), now, &mut out);
            }
            black_box(out.len())
        })
    });
    g.bench_function("mlsd_lines_10k", |b| {
        let mut out = String::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for e in &list {
                format_mlsx_facts(black_box(e), MlsxRole::Entry, Facts::default(), "adfrw", &mut out);
                out.push_str("\r\n");
            }
            black_box(out.len())
        })
    });
    g.bench_function("nlst_lines_10k", |b| {
        let mut out = String::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for e in &list {
                out.push_str(&e.name);
                out.push_str("\r\n");
            }
            black_box(out.len())
        })
    });
    g.finish();
}

/// 1 MiB of text: lines of 0 to 99 bytes.
fn text() -> Vec<u8> {
    let mut v = Vec::with_capacity(1 << 20);
    let mut i = 0usize;
    while v.len() < 1 << 20 {
        let len = (i * 37) % 100;
        v.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
        v.push(b'\n');
        i += 1;
    }
    v.truncate(1 << 20);
    v
}

fn ascii(c: &mut Criterion) {
    let unix = text();
    let mut wire = Vec::new();
    ToWire::new().convert(&unix, &mut wire);
    let mut g = c.benchmark_group("ascii");
    g.throughput(Throughput::Bytes(unix.len() as u64));
    // The server's buffer is 256 KiB: convert in those chunks, as a transfer does.
    g.bench_function("to_wire_1mib", |b| {
        let mut out = Vec::with_capacity(600 << 10);
        b.iter(|| {
            let mut conv = ToWire::new();
            let mut n = 0;
            for chunk in unix.chunks(256 << 10) {
                out.clear();
                conv.convert(black_box(chunk), &mut out);
                n += out.len();
            }
            black_box(n)
        })
    });
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("from_wire_1mib", |b| {
        let mut out = Vec::with_capacity(300 << 10);
        b.iter(|| {
            let mut conv = FromWire::new();
            let mut n = 0;
            for chunk in wire.chunks(256 << 10) {
                out.clear();
                conv.convert(black_box(chunk), &mut out);
                n += out.len();
            }
            out.clear();
            conv.finish(&mut out);
            black_box(n + out.len())
        })
    });
    // Binary data has few LFs: the converter's best case.
    let binary: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x20).collect();
    g.throughput(Throughput::Bytes(binary.len() as u64));
    g.bench_function("to_wire_1mib_no_newlines", |b| {
        let mut out = Vec::with_capacity(1100 << 10);
        b.iter(|| {
            out.clear();
            ToWire::new().convert(black_box(&binary), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, listing, ascii);
criterion_main!(benches);
