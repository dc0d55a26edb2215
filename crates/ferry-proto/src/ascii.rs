//! Streaming `TYPE A` conversion (RFC 959 section 3.1.1.1): the wire carries CRLF line endings.
//!
//! Sending, a LF not already preceded by CR becomes CRLF. Receiving, a CRLF becomes LF and a lone CR
//! is kept. Both converters keep the one byte of state they need across buffer boundaries, so the
//! result does not depend on how the stream is cut.

/// Converts local text (LF line endings) to the wire form (CRLF).
#[derive(Debug, Default, Clone)]
pub struct ToWire {
    last_was_cr: bool,
}

impl ToWire {
    /// A converter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts `input`, appending to `out` (which grows by at most `2 * input.len()`).
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        let mut start = 0;
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                let prev_cr = if i == 0 { self.last_was_cr } else { input[i - 1] == b'\r' };
                if !prev_cr {
                    out.extend_from_slice(&input[start..i]);
                    out.push(b'\r');
                    start = i;
                }
            }
        }
        out.extend_from_slice(&input[start..]);
        if let Some(&last) = input.last() {
            self.last_was_cr = last == b'\r';
        }
    }
}

/// Converts the wire form (CRLF) to local text (LF).
#[derive(Debug, Default, Clone)]
pub struct FromWire {
    pending_cr: bool,
}

impl FromWire {
    /// A converter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Converts `input`, appending to `out`. A CR at the end of `input` is held back until the
    /// next byte shows whether it starts a CRLF.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 1);
        let rest = input;
        if self.pending_cr {
            self.pending_cr = false;
            match rest.first() {
                Some(b'\n') => {}
                Some(_) => out.push(b'\r'),
                None => {
                    self.pending_cr = true;
                    return;
                }
            }
        }
        let mut start = 0;
        let mut i = 0;
        while i < rest.len() {
            if rest[i] == b'\r' {
                if i + 1 == rest.len() {
                    out.extend_from_slice(&rest[start..i]);
                    self.pending_cr = true;
                    return;
                }
                if rest[i + 1] == b'\n' {
                    out.extend_from_slice(&rest[start..i]);
                    start = i + 1;
                    i += 1;
                }
            }
            i += 1;
        }
        out.extend_from_slice(&rest[start..]);
    }

    /// Ends the stream: a held-back CR is written out.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_wire_chunks(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut c = ToWire::new();
        let mut out = Vec::new();
        let mut prev = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let cut = cut.clamp(prev, input.len());
            c.convert(&input[prev..cut], &mut out);
            prev = cut;
        }
        out
    }

    fn from_wire_chunks(input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut c = FromWire::new();
        let mut out = Vec::new();
        let mut prev = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let cut = cut.clamp(prev, input.len());
            c.convert(&input[prev..cut], &mut out);
            prev = cut;
        }
        c.finish(&mut out);
        out
    }

    #[test]
    fn basics() {
        assert_eq!(to_wire_chunks(b"a\nb\r\nc\n", &[]), b"a\r\nb\r\nc\r\n");
        assert_eq!(from_wire_chunks(b"a\r\nb\rc\r\n\r", &[]), b"a\nb\rc\n\r");
        assert_eq!(from_wire_chunks(b"a\r\nb", &[2]), b"a\nb");
        assert_eq!(to_wire_chunks(b"a\r\nb", &[2]), b"a\r\nb");
    }

    proptest! {
        #[test]
        fn split_invariant(data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..200),
                           mut cuts in proptest::collection::vec(0usize..200, 0..6)) {
            cuts.sort_unstable();
            prop_assert_eq!(to_wire_chunks(&data, &cuts), to_wire_chunks(&data, &[]));
            prop_assert_eq!(from_wire_chunks(&data, &cuts), from_wire_chunks(&data, &[]));
        }

        #[test]
        fn text_round_trips(lines in proptest::collection::vec("[a-z \t]{0,20}", 0..20)) {
            let text = lines.join("\n").into_bytes();
            let wire = to_wire_chunks(&text, &[]);
            prop_assert!(!wire.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
            prop_assert_eq!(from_wire_chunks(&wire, &[]), text);
        }
    }
}
