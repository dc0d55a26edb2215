//! The Ferry FTP server library.
//!
//! [`Server::bind`] binds the listeners of a [`Config`]; [`Server::run`] serves until told to
//! stop. Users come from an [`auth::Authenticator`]; files from [`storage::Storage`].

pub mod auth;
pub mod config;
pub mod datachan;
mod fds;
mod handlers;
pub mod limits;
pub mod proxy;
pub mod replies;
mod server;
mod session;
pub mod storage;
pub mod tls;
pub mod transfer;

pub use config::Config;
pub use server::{Server, ServerHandle};
