//! `ferry`: the Ferry FTP server and client in one binary.

mod serve;
mod user;

use clap::{Parser, Subcommand};

/// Ferry: an FTP server and client.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the FTP server.
    Serve(serve::ServeArgs),
    /// Manage a users file (argon2id password hashes).
    #[command(subcommand)]
    User(user::UserCmd),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Serve(args) => serve::run(args),
        Cmd::User(cmd) => user::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
