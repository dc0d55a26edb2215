//! The address parsers never panic, and what they accept formats in a form that parses back to the
//! same address: `PORT` and `227` (RFC 959), `EPRT`, `EPSV` and `229` (RFC 2428).

#![no_main]

use std::net::SocketAddr;

use ferry_proto::addr::{
    format_eprt, format_epsv, format_port, parse_eprt, parse_epsv_reply, parse_pasv_reply, parse_port, EpsvArg,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;

    if let Ok(a) = parse_port(s) {
        assert_eq!(parse_port(&format_port(a)), Ok(a));
    }
    if let Ok(a) = parse_pasv_reply(s) {
        let reply = format!("Entering Passive Mode ({}).", format_port(a));
        assert_eq!(parse_pasv_reply(&reply), Ok(a));
    }
    if let Ok(a) = parse_eprt(s) {
        // An IPv4-mapped IPv6 address is sent as the IPv4 address it stands for.
        let canonical = SocketAddr::new(a.ip().to_canonical(), a.port());
        assert_eq!(parse_eprt(&format_eprt(a)), Ok(canonical));
    }
    if let Ok(port) = parse_epsv_reply(s) {
        let reply = format!("Entering Extended Passive Mode {}", format_epsv(port));
        assert_eq!(parse_epsv_reply(&reply), Ok(port));
    }
    if let Ok(arg) = EpsvArg::parse(Some(s)) {
        assert_eq!(EpsvArg::parse(Some(&arg.to_string())), Ok(arg));
    }
});
