//! A deliberately planted bug, compiled into debug builds only and reachable only when the server
//! was started with `FERRY_TEST_PLANTED_BUG=1`: `SITE TESTBUG READ|WRITE|CONNECT|EXEC ARG` does
//! what a real bug might, bypassing the users' roots and every check (an absolute path opened
//! with `std::fs` instead of the root's `cap-std` handle; a connection to any port; a program
//! run). `crates/ferry/tests/sandbox.rs` shows that each succeeds with `--no-sandbox` and is
//! refused by the sandbox otherwise. Release builds have no such command.

use ferry_proto::Reply;

use crate::replies;

/// The environment variable that arms the bug.
pub const ARM: &str = "FERRY_TEST_PLANTED_BUG";

/// Runs `SITE TESTBUG ...`, or `None` when the bug is not armed or this is not it.
pub async fn site(arg: &str) -> Option<Reply> {
    std::env::var_os(ARM)?;
    let rest = arg.strip_prefix("TESTBUG ")?;
    let (what, target) = rest.split_once(' ')?;
    let (what, target) = (what.to_ascii_uppercase(), target.to_owned());
    // On a blocking-pool thread, where real file I/O runs.
    let outcome = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        match what.as_str() {
            "READ" => std::fs::read(&target).map(|b| format!("read {} bytes of {target}", b.len())),
            "WRITE" => std::fs::write(&target, b"planted\n").map(|()| format!("wrote {target}")),
            "CONNECT" => {
                let addr: std::net::SocketAddr = target.parse().map_err(std::io::Error::other)?;
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
                    .map(|_| format!("connected to {target}"))
            }
            "EXEC" => std::process::Command::new(&target).status().map(|s| format!("ran {target}: {s}")),
            _ => Err(std::io::Error::other("unknown TESTBUG action")),
        }
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    Some(replies::planted_bug(outcome))
}
