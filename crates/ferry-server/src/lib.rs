//! The Ferry FTP server library.
//!
//! [`Server::bind`] binds the listeners of a [`Config`]; [`Server::run`] serves until told to
//! stop. Users come from an [`auth::Authenticator`]; files from [`storage::Storage`].
//! [`Server::prepare`] binds without a runtime, so that the process can give up root and confine
//! itself ([`sandbox`]) before its threads start.

pub mod admin;
pub mod auth;
pub mod bans;
pub mod config;
pub mod datachan;
pub mod digest;
pub mod events;
mod fds;
mod handlers;
pub mod hooks;
pub mod hosts;
pub mod limits;
#[cfg(debug_assertions)]
pub mod planted;
pub mod proxy;
pub mod reload;
pub mod replies;
pub mod sandbox;
pub mod segments;
mod server;
mod session;
pub mod storage;
pub mod tls;
pub mod transfer;

pub use config::Config;
pub use reload::{ReloadReport, Reloader};
pub use server::{Bound, Server, ServerHandle};
