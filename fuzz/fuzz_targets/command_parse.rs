//! `Command::parse` never panics, and whatever it accepts displays in a form that parses back to
//! the same command (the client sends `Display`, the server parses it).
//!
//! The input itself need not come back byte for byte: the verb's case, aliases (`XPWD`), spaces
//! around some arguments and the spelling of numbers and addresses are normalized. So the property
//! is on the parsed command `c`: `parse(display(c)) == c`, and displaying that again is a fixed point.
//! The one deliberate normalization inside a command is `EPRT` with an IPv4-mapped IPv6 address,
//! which is sent as the IPv4 address (protocol 1) it stands for.

#![no_main]

use ferry_proto::Command;
use libfuzzer_sys::fuzz_target;

fn canonical(c: Command) -> Command {
    match c {
        Command::Eprt(a) => Command::Eprt(std::net::SocketAddr::new(a.ip().to_canonical(), a.port())),
        c => c,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Command::parse(data) else { return };
    let wire = c.to_string();
    let again = match Command::parse(wire.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!("{c:?} displays as {wire:?}, which does not parse: {e}"),
    };
    assert_eq!(again, canonical(c), "display: {wire:?}");
    assert_eq!(again.to_string(), wire);
});
