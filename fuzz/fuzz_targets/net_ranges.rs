//! The configuration's address ranges (`proxy_protocol.trusted = ["10.0.0.0/8"]`) and port
//! ranges (`passive.ports = "40000-40100"`) never panic on any text; an accepted range contains its
//! own address and displays in a form that parses back to itself; a port range is ordered.

#![no_main]

use ferry_server::config::PortRange;
use ferry_server::proxy::IpNet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(net) = text.parse::<IpNet>() {
        let shown = net.to_string();
        assert_eq!(shown.parse::<IpNet>(), Ok(net), "{text:?} -> {shown:?}");
        let addr = shown.split('/').next().unwrap_or_default();
        if let Ok(ip) = addr.parse() {
            assert!(net.contains(ip), "{shown} contains {ip}");
        }
    }
    if let Ok(r) = text.parse::<PortRange>() {
        assert!(r.low >= 1 && r.low <= r.high, "{text:?} -> {r:?}");
    }
});
