//! `ReplyParser` never panics on any bytes, and replies decode the same however the bytes are
//! split into reads. The first input byte seeds the chunk sizes; the rest is the stream.

#![no_main]

use ferry_proto::reply::{Reply, ReplyError, ReplyParser};
use libfuzzer_sys::fuzz_target;

fn drain(p: &mut ReplyParser, out: &mut Vec<Result<Reply, ReplyError>>) {
    loop {
        match p.next_reply() {
            Ok(Some(r)) => {
                assert!(!r.lines.is_empty());
                out.push(Ok(r));
            }
            Ok(None) => return,
            // Over-long input stays over-long until more arrives: stop asking.
            Err(ReplyError::TooLong) => {
                out.push(Err(ReplyError::TooLong));
                return;
            }
            Err(e) => out.push(Err(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else { return };

    let mut whole = ReplyParser::new();
    let mut expected = Vec::new();
    whole.feed(stream);
    drain(&mut whole, &mut expected);

    let mut chunked = ReplyParser::new();
    let mut got = Vec::new();
    let mut state = u32::from(seed) | 1;
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: chunk sizes from 1 to 16 bytes.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 16 + 1) as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        chunked.feed(chunk);
        drain(&mut chunked, &mut got);
        rest = tail;
    }
    assert_eq!(got, expected);
});
