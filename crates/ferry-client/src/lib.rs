//! The Ferry FTP client library, on the shared protocol crate (`ferry-proto`: no second parser).
//!
//! [`Client`] holds one control connection: it logs in, reads `FEAT`, and opens a data
//! connection per listing or transfer (EPSV first, PASV as the fallback it remembers; EPRT then PORT
//! in active mode). [`trace::Trace`] records both connections the way the seeds draw a session.

pub mod client;
pub mod digest;
pub mod netrc;
pub mod tls;
pub mod trace;
pub mod trace_html;
pub mod url;

pub use client::{Client, ClientError, ConnectOptions, DataMode, RemoteEntry};
pub use url::FtpUrl;
