//! Ferry's development tasks.
//!
//! `cargo run -p xtask --release -- bench [--quick] [--runs N] [--only W,...] [--servers S,...]
//! [--json PATH]` builds Ferry in release mode, starts it and (where installed) vsftpd, Pure-FTPd
//! and ProFTPD as plain foreground processes on loopback high ports, runs the same workloads
//! against each with a load generator in this process, and prints one table of medians and
//! ratios (see `docs/performance.md`).

mod bench;
mod cleanup;
mod clients;
mod dataset;
mod floor;
mod ftp;
mod ftps;
mod procstat;
mod report;
mod servers;
mod soak;
mod tls;
mod uploadfs;
mod workloads;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Ferry development tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// End-to-end benchmark: Ferry against vsftpd, Pure-FTPd, ProFTPD and the raw TCP limit.
    Bench {
        /// Tiny sizes and one run (a smoke test that finishes in seconds).
        #[arg(long)]
        quick: bool,
        /// Runs (the server order rotates from run to run); medians are over runs.
        /// Default 3, or 1 with --quick.
        #[arg(long)]
        runs: Option<usize>,
        /// Only these workloads (comma-separated): raw, retr, stor, small, list, connect,
        /// concurrent, idle, hold (10,000 sessions, Ferry only), logins (Ferry only), busy (2,000 sessions
        /// of small RETR+STOR for 60 s), hash (Ferry only), clients (curl, lftp, wget), get, mirror; small-retr and small-stor
        /// run one half of small.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Only these servers (comma-separated): ferry, vsftpd, pureftpd, proftpd.
        /// Default: every one that is installed.
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// Where to write the JSON results (default: target/bench/results.json).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Do not run scripts/install-bench-deps.sh.
        #[arg(long)]
        no_install: bool,
        /// Do not run `cargo build --release -p ferry` (use the binary already in target/release).
        #[arg(long)]
        no_build: bool,
        /// Upload to the data directory's own filesystem instead of a fresh ext4 made for this
        /// run (the default when root; see uploadfs.rs).
        #[arg(long)]
        shared_upload_fs: bool,
    },
    /// The soak test: many concurrent clients from one address mixing every kind of step against
    /// one `ferry serve`; every byte checked, no error allowed, memory read after each round.
    Soak {
        /// Concurrent clients.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Seconds per round.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Rounds; the server's RSS is read after each.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The `ferry` binary (default: target/release/ferry, built first).
        #[arg(long)]
        ferry: Option<PathBuf>,
        /// Where to write the JSON results.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The small-file floor server the benchmark starts (see `floor.rs`); not for direct use.
    #[command(hide = true)]
    FloorServer {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        root: PathBuf,
        /// First and last passive port, `FIRST-LAST`.
        #[arg(long)]
        passive: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Bench { quick, runs, only, servers, json, no_install, no_build, shared_upload_fs } => {
            for s in &servers {
                if !["ferry", "vsftpd", "pureftpd", "proftpd"].contains(&s.as_str()) {
                    eprintln!("xtask: unknown server {s:?}; servers: ferry, vsftpd, pureftpd, proftpd");
                    return std::process::ExitCode::from(2);
                }
            }
            let runs = runs.unwrap_or(if quick { 1 } else { 3 }).max(1);
            cleanup::watch_signals().and_then(|()| {
                bench::run(bench::Options { quick, runs, only, servers, json, no_install, no_build, shared_upload_fs })
            })
        }
        Cmd::Soak { clients, secs, rounds, ferry, json } => cleanup::watch_signals().and_then(|()| {
            let ferry = match ferry {
                Some(f) => f,
                None => bench::build_release_ferry()?,
            };
            soak::run(soak::Options { clients, secs, rounds, ferry, json })
        }),
        Cmd::FloorServer { listen, root, passive } => {
            match passive.split_once('-').map(|(a, b)| (a.parse(), b.parse())) {
                Some((Ok(a), Ok(b))) if a <= b => floor::serve(listen, root, (a, b)),
                _ => Err(anyhow::anyhow!("--passive wants FIRST-LAST, got {passive:?}")),
            }
        }
    };
    // Whatever happened, nothing we started outlives us.
    cleanup::kill_all();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
