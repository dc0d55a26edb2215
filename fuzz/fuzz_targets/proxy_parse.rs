//! The PROXY protocol parser never panics; a header it accepts parses the same on its own and
//! when read `needed` bytes at a time (never past its end, however the reads are chunked); what it
//! accepts encodes back to a header with the same addresses. The first byte chooses the chunk
//! size (1 to 32).

#![no_main]

use ferry_proto::proxy::{detect, encode, parse, Addresses, Detect, Parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [chunk, wire @ ..] = data else { return };
    let chunk = usize::from(chunk % 32) + 1;
    let whole = parse(wire);
    if let Parse::Incomplete { needed } = whole {
        assert!(needed >= 1);
    }

    // Read as the server does: at most `needed` bytes at a time.
    let mut taken = 0;
    let stepwise = loop {
        match parse(&wire[..taken]) {
            Parse::Incomplete { needed } => {
                assert!(needed >= 1);
                let n = needed.min(chunk).min(wire.len() - taken);
                if n == 0 {
                    break Parse::Incomplete { needed };
                }
                taken += n;
            }
            other => break other,
        }
    };

    if let Parse::Parsed(h) = whole {
        assert!(h.len <= wire.len());
        assert_eq!(parse(&wire[..h.len]), whole);
        assert_eq!(stepwise, whole, "read stepwise");
        assert_eq!(taken, h.len, "read past the header");
        assert_eq!(detect(wire), Detect::Header(h.version));
        if let Addresses::Proxied { .. } = h.addresses {
            let again = encode(h.version, &h.addresses);
            assert!(matches!(parse(&again), Parse::Parsed(h2) if h2.addresses == h.addresses && h2.len == again.len()));
        }
    } else if let Parse::Parsed(h) = stepwise {
        panic!("parsed stepwise ({h:?}) but not whole ({whole:?})");
    }
});
