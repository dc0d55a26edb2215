//! `LineSplitter` never holds more than `max + 1` bytes of an unfinished line (the extra byte is
//! room for a CR), never returns a line longer than `max`, and splits the same however the input
//! is chunked. The first two bytes choose `max` (0 to 255) and the chunk size (1 to 16).

#![no_main]

use ferry_proto::line::{LineEvent, LineSplitter};
use libfuzzer_sys::fuzz_target;

fn drain(s: &mut LineSplitter, max: usize, out: &mut Vec<LineEvent>) {
    while let Some(e) = s.next_event() {
        if let LineEvent::Line(l) = &e {
            assert!(l.len() <= max, "line of {} bytes, max {max}", l.len());
        }
        out.push(e);
    }
}

fuzz_target!(|data: &[u8]| {
    let [max, chunk, stream @ ..] = data else { return };
    let max = usize::from(*max);
    let chunk = usize::from(chunk % 16) + 1;

    let mut whole = LineSplitter::new(max);
    whole.feed(stream);
    assert!(whole.pending() <= max + 1);
    let mut expected = Vec::new();
    drain(&mut whole, max, &mut expected);

    let mut split = LineSplitter::new(max);
    let mut got = Vec::new();
    for part in stream.chunks(chunk) {
        split.feed(part);
        assert!(split.pending() <= max + 1, "pending {} with max {max}", split.pending());
        drain(&mut split, max, &mut got);
    }
    assert_eq!(got, expected);
    assert_eq!(split.pending(), whole.pending());
});
