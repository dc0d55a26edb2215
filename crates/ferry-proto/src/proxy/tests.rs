//! Byte-exact vectors from `proxy-protocol.txt` (and one captured from HAProxy), invalid forms,
//! and the properties: `parse(encode(h))` gives `h` back, and reading `needed` bytes at a time
//! never reads past a header.

use super::*;
use proptest::prelude::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxied(source: &str, destination: &str) -> Addresses {
    Addresses::Proxied { source: sa(source), destination: sa(destination) }
}

fn parsed(version: Version, len: usize, addresses: Addresses) -> Parse {
    Parse::Parsed(Header { version, len, addresses })
}

/// The v2 fixed part: signature, version/command, family, length.
fn v2(ver_cmd: u8, family: u8, len: u16) -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.extend_from_slice(&[ver_cmd, family]);
    v.extend_from_slice(&len.to_be_bytes());
    v
}

/// Reads `wire` the way a server does: `needed` bytes at a time (or fewer, `chunk` at most).
/// Returns the last result and how many bytes were taken.
fn read_incrementally(wire: &[u8], chunk: usize) -> (Parse, usize) {
    let mut taken = 0;
    loop {
        match parse(&wire[..taken]) {
            Parse::Incomplete { needed } => {
                assert!(needed >= 1);
                let n = needed.min(chunk).min(wire.len() - taken);
                if n == 0 {
                    return (Parse::Incomplete { needed }, taken);
                }
                taken += n;
            }
            other => return (other, taken),
        }
    }
}

#[test]
fn v1_examples_from_the_specification() {
    // Section 2.1: the example line before an HTTP request.
    let wire = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
    assert_eq!(parse(wire), parsed(Version::V1, 47, proxied("192.168.0.1:56324", "192.168.0.11:443")));
    // The longest lines the receiver must support: 56, 104 and 107 bytes; and the shortest, 15.
    let tcp4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    assert_eq!(tcp4.len(), 56);
    assert_eq!(parse(tcp4), parsed(Version::V1, 56, proxied("255.255.255.255:65535", "255.255.255.255:65535")));
    let ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let tcp6 = format!("PROXY TCP6 {ffff} {ffff} 65535 65535\r\n");
    assert_eq!(tcp6.len(), 104);
    let max6 = format!("[{ffff}]:65535");
    assert_eq!(parse(tcp6.as_bytes()), parsed(Version::V1, 104, proxied(&max6, &max6)));
    assert_eq!(parse(b"PROXY UNKNOWN\r\n"), parsed(Version::V1, 15, Addresses::Unknown));
    let worst = format!("PROXY UNKNOWN {ffff} {ffff} 65535 65535\r\n");
    assert_eq!(worst.len(), V1_MAX_LEN);
    assert_eq!(parse(worst.as_bytes()), parsed(Version::V1, 107, Addresses::Unknown));
    // UNKNOWN: anything before the CRLF is ignored.
    assert_eq!(parse(b"PROXY UNKNOWN whatever \xff\r\nX"), parsed(Version::V1, 26, Addresses::Unknown));
    assert_eq!(
        parse(b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 0\r\n"),
        parsed(Version::V1, 44, proxied("[2001:db8::1]:1", "[::ffff:10.0.0.1]:0"))
    );
}

#[test]
fn v1_invalid_forms() {
    for bad in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],  // lone LF
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",      // lone CR
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",    // two spaces
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",    // trailing space
        b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",   // leading zero in a port
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n",   // sign
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", // port out of range
        b"PROXY TCP4 010.2.3.4 5.6.7.8 1 2\r\n",   // leading zero (octal?) in an address
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",       // three numbers
        b"PROXY TCP4 ::1 ::1 1 2\r\n",             // family mismatch
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",     // family mismatch
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       // missing field
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   // extra field
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",     // unknown protocol
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",     // case matters
        b"PROXY UNKNOWNX\r\n",
        b"PROXY \r\n",
    ] {
        assert_eq!(parse(bad), Parse::Invalid(Invalid::V1Malformed), "{}", String::from_utf8_lossy(bad));
    }
    for bad in [&b"proxy TCP4"[..], b"GET / HTTP/1.1\r\n", b"USER alice\r\n", b"\x16\x03\x01"] {
        assert_eq!(parse(bad), Parse::Invalid(Invalid::NotProxy), "{}", String::from_utf8_lossy(bad));
    }
    // No CRLF within 107 bytes.
    let long = format!("PROXY UNKNOWN {}", "x".repeat(100));
    assert_eq!(parse(long.as_bytes()), Parse::Invalid(Invalid::V1TooLong));
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(92)); // 108 bytes
    assert_eq!(parse(long.as_bytes()), Parse::Invalid(Invalid::V1TooLong));
}

#[test]
fn v1_is_refused_as_soon_as_it_cannot_be_valid() {
    assert_eq!(parse(b"PROXY FOO"), Parse::Invalid(Invalid::V1Malformed));
    assert_eq!(parse(b"PROXY TCP4\r"), Parse::Invalid(Invalid::V1Malformed));
    assert_eq!(parse(b"PROXI"), Parse::Invalid(Invalid::NotProxy));
    assert_eq!(parse(b"PROXY TC"), Parse::Incomplete { needed: 7 });
}

#[test]
fn incomplete_says_how_much_is_missing_at_least() {
    assert_eq!(parse(b""), Parse::Incomplete { needed: 15 });
    assert_eq!(parse(b"PROXY"), Parse::Incomplete { needed: 10 });
    assert_eq!(parse(b"PROXY UNKNOWN"), Parse::Incomplete { needed: 2 });
    assert_eq!(parse(b"PROXY UNKNOWN\r"), Parse::Incomplete { needed: 1 });
    // The shortest TCP4 line is 32 bytes, the shortest TCP6 line 22.
    assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Parse::Incomplete { needed: 14 });
    assert_eq!(parse(b"PROXY TCP6 ::1"), Parse::Incomplete { needed: 8 });
    assert_eq!(parse(b"\r\n\r\n"), Parse::Incomplete { needed: 12 });
    assert_eq!(parse(&V2_SIGNATURE), Parse::Incomplete { needed: 4 });
    assert_eq!(parse(&v2(0x21, 0x11, 12)), Parse::Incomplete { needed: 12 });
}

#[test]
fn v2_tcp4_as_haproxy_sends_it() {
    // Captured from HAProxy (`send-proxy-v2`) relaying 172.19.0.1:42578 -> 172.19.0.3:80, with the
    // request behind it.
    let wire = [
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c, 0xac, 0x13,
        0x00, 0x01, 0xac, 0x13, 0x00, 0x03, 0xa6, 0x52, 0x00, 0x50, b'G', b'E', b'T', b' ',
    ];
    assert_eq!(parse(&wire), parsed(Version::V2, 28, proxied("172.19.0.1:42578", "172.19.0.3:80")));
    assert_eq!(encode(Version::V2, &proxied("172.19.0.1:42578", "172.19.0.3:80")), &wire[..28]);
    assert_eq!(detect(&wire), Detect::Header(Version::V2));
}

#[test]
fn v2_tcp6_local_and_unknown_families() {
    let mut wire = v2(0x21, 0x21, 36);
    wire.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    wire.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    wire.extend_from_slice(&[0x30, 0x39, 0x00, 0x15]);
    assert_eq!(parse(&wire), parsed(Version::V2, 52, proxied("[2001:db8::1]:12345", "[2001:db8::2]:21")));
    assert_eq!(encode(Version::V2, &proxied("[2001:db8::1]:12345", "[2001:db8::2]:21")), wire);

    // LOCAL (health checks): no address; the block is skipped whatever its family says.
    let local = v2(0x20, 0x00, 0);
    assert_eq!(parse(&local), parsed(Version::V2, 16, Addresses::Local));
    assert_eq!(encode(Version::V2, &Addresses::Local), local);
    let mut local = v2(0x20, 0xff, 3);
    local.extend_from_slice(b"abcUSER");
    assert_eq!(parse(&local), parsed(Version::V2, 19, Addresses::Local));

    // AF_UNSPEC, UDP and AF_UNIX: valid, but no address to use.
    assert_eq!(parse(&v2(0x21, 0x00, 0)), parsed(Version::V2, 16, Addresses::Unknown));
    let mut udp = v2(0x21, 0x12, 12);
    udp.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 2, 0, 80, 0, 81]);
    assert_eq!(parse(&udp), parsed(Version::V2, 28, Addresses::Unknown));
    let mut unix = v2(0x21, 0x31, 216);
    unix.extend_from_slice(&[0u8; 216]);
    assert_eq!(parse(&unix), parsed(Version::V2, 232, Addresses::Unknown));
}

#[test]
fn v2_tlvs_are_skipped() {
    let mut wire = v2(0x21, 0x11, 12 + 5 + 4);
    wire.extend_from_slice(&[10, 0, 0, 7, 10, 0, 0, 1, 0x04, 0x00, 0x00, 0x15]);
    wire.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // PP2_TYPE_ALPN "h2"
    wire.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]); // PP2_TYPE_NOOP
    wire.extend_from_slice(b"220 ");
    assert_eq!(parse(&wire), parsed(Version::V2, 37, proxied("10.0.0.7:1024", "10.0.0.1:21")));
}

#[test]
fn v2_invalid_forms() {
    assert_eq!(parse(&v2(0x11, 0x11, 12)), Parse::Invalid(Invalid::V2Version(1)));
    assert_eq!(parse(&v2(0x31, 0x11, 12)), Parse::Invalid(Invalid::V2Version(3)));
    assert_eq!(parse(&v2(0x22, 0x11, 12)), Parse::Invalid(Invalid::V2Command(2)));
    assert_eq!(parse(&v2(0x21, 0x41, 12)), Parse::Invalid(Invalid::V2Family(0x41)));
    assert_eq!(parse(&v2(0x21, 0x13, 12)), Parse::Invalid(Invalid::V2Family(0x13)));
    assert_eq!(parse(&v2(0x21, 0x11, 8)), Parse::Invalid(Invalid::V2AddressTooShort { family: 0x11, len: 8 }));
    assert_eq!(parse(&v2(0x21, 0x21, 12)), Parse::Invalid(Invalid::V2AddressTooShort { family: 0x21, len: 12 }));
    // Decided on the 13th byte, without waiting for the rest.
    let mut early = V2_SIGNATURE.to_vec();
    early.push(0x11);
    assert_eq!(parse(&early), Parse::Invalid(Invalid::V2Version(1)));
    assert_eq!(parse(b"\r\n\r\n\0\r\nQUIX"), Parse::Invalid(Invalid::NotProxy));
}

#[test]
fn encode_v1_and_mixed_families() {
    assert_eq!(
        encode(Version::V1, &proxied("192.168.0.1:56324", "192.168.0.11:443")),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    );
    assert_eq!(encode(Version::V1, &Addresses::Local), b"PROXY UNKNOWN\r\n");
    assert_eq!(encode(Version::V1, &Addresses::Unknown), b"PROXY UNKNOWN\r\n");
    assert_eq!(encode(Version::V2, &Addresses::Unknown), v2(0x21, 0x00, 0));
    // An IPv4 client of an IPv6 address: both written as IPv6.
    let mixed = proxied("10.0.0.1:5000", "[2001:db8::1]:21");
    assert_eq!(encode(Version::V1, &mixed), b"PROXY TCP6 ::ffff:10.0.0.1 2001:db8::1 5000 21\r\n");
    assert_eq!(
        parse(&encode(Version::V2, &mixed)),
        parsed(Version::V2, 52, proxied("[::ffff:10.0.0.1]:5000", "[2001:db8::1]:21"))
    );
}

#[test]
fn detect_prefixes() {
    assert_eq!(detect(b""), Detect::NeedMore);
    assert_eq!(detect(b"PRO"), Detect::NeedMore);
    assert_eq!(detect(b"PROXY"), Detect::NeedMore);
    assert_eq!(detect(b"PROXY "), Detect::Header(Version::V1));
    assert_eq!(detect(b"PROXY TCP4 1.2.3.4"), Detect::Header(Version::V1));
    assert_eq!(detect(b"PROXY\r\n"), Detect::NotHeader);
    assert_eq!(detect(b"\r\n"), Detect::NeedMore);
    assert_eq!(detect(&V2_SIGNATURE[..11]), Detect::NeedMore);
    assert_eq!(detect(&V2_SIGNATURE), Detect::Header(Version::V2));
    assert_eq!(detect(b"\r\nUSER a\r\n"), Detect::NotHeader);
    assert_eq!(detect(b"USER alice\r\n"), Detect::NotHeader);
    assert_eq!(detect(b"P"), Detect::NeedMore);
}

#[test]
fn reading_needed_bytes_stops_exactly_at_the_end_of_the_header() {
    for wire in [
        &b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nUSER a\r\n"[..],
        b"PROXY UNKNOWN\r\n\x16\x03\x01",
        b"PROXY TCP6 :: :: 0 0\r\nX",
        b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\nX",
    ] {
        let (result, taken) = read_incrementally(wire, usize::MAX);
        let Parse::Parsed(h) = result else { panic!("{result:?}") };
        assert_eq!(taken, h.len);
    }
}

fn ip_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(a, b)| (IpAddr::from(a), IpAddr::from(b))),
    ]
}

fn addresses() -> impl Strategy<Value = Addresses> {
    prop_oneof![
        (ip_pair(), any::<u16>(), any::<u16>()).prop_map(|((s, d), sp, dp)| Addresses::Proxied {
            source: SocketAddr::new(s, sp),
            destination: SocketAddr::new(d, dp),
        }),
        Just(Addresses::Local),
        Just(Addresses::Unknown),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V1), Just(Version::V2)]
}

proptest! {
    #[test]
    fn encode_then_parse_is_identity(
        a in addresses(),
        v in version(),
        rest in proptest::collection::vec(any::<u8>(), 0..40),
        chunk in 1usize..20,
    ) {
        let header = encode(v, &a);
        let mut wire = header.clone();
        wire.extend_from_slice(&rest);
        // v1 has no LOCAL: it is sent as UNKNOWN.
        let expected = match (v, a) {
            (Version::V1, Addresses::Local) => Addresses::Unknown,
            _ => a,
        };
        let want = parsed(v, header.len(), expected);
        prop_assert_eq!(parse(&wire), want);
        prop_assert_eq!(detect(&wire), Detect::Header(v));
        // Read as a server does: never past the header, whatever the chunking.
        prop_assert_eq!(read_incrementally(&wire, chunk), (want, header.len()));
    }

    #[test]
    fn any_bytes_parse_without_panic_and_consistently(
        prefix in prop_oneof![Just(Vec::new()), Just(b"PROXY ".to_vec()), Just(V2_SIGNATURE.to_vec())],
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        chunk in 1usize..20,
    ) {
        let mut wire = prefix;
        wire.extend_from_slice(&bytes);
        match parse(&wire) {
            Parse::Parsed(h) => {
                prop_assert!(h.len <= wire.len());
                prop_assert_eq!(parse(&wire[..h.len]), Parse::Parsed(h));
                prop_assert_eq!(read_incrementally(&wire, chunk), (Parse::Parsed(h), h.len));
            }
            Parse::Incomplete { needed } => prop_assert!(needed >= 1),
            Parse::Invalid(_) => {}
        }
    }
}
