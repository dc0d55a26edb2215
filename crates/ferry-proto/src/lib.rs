//! The FTP protocol, without I/O.
//!
//! `ferry-proto` holds everything both sides of an FTP conversation agree on: how the control
//! connection is split into lines ([`line`]), what a command is ([`command`]), what a reply is
//! ([`reply`]), how data-connection addresses are written ([`addr`]), how paths are resolved inside a
//! virtual root ([`path`]), how directory listings look ([`listing`]) and how `TYPE A` converts line
//! endings ([`ascii`]); it also reads the PROXY protocol header a load balancer puts before a
//! connection ([`proxy`]). Nothing here opens a socket or a file; the server and the client drive
//! these types from their own I/O loops, and every parser is fuzzed.

pub mod addr;
pub mod ascii;
pub mod command;
pub mod line;
pub mod listing;
pub mod path;
pub mod proxy;
pub mod reply;

pub use command::{Command, ParseError};
pub use path::VirtualPath;
pub use reply::{Reply, ReplyCode};
