//! Command handlers, grouped by area: one function per command. The session's `dispatch` (in
//! `session/mod.rs`) is the one `match` from command to handler; it runs after
//! [`crate::session::policy::check`], so a handler of a command that needs a login is handed the
//! [`crate::session::state::Account`] itself.

pub(crate) mod auth;
pub(crate) mod dirs;
pub(crate) mod files;
pub(crate) mod misc;
pub(crate) mod segments;
pub(crate) mod transfer;

use ferry_proto::Reply;

use crate::session::state::Running;

/// What a command does besides replying at once.
pub(crate) enum Act {
    /// Reply and go on.
    Reply(Reply),
    /// A transfer started; the session replies as it runs (150, then 226 or why not).
    Transfer(Box<Running>),
    /// Nothing now: the reply comes when the running transfer ends (`ABOR`, `QUIT` during one).
    Later,
    /// Reply and close the control connection.
    Close(Vec<Reply>),
    /// Reply (234), then run the TLS handshake on the control connection; data connections are
    /// protected from the start when `private_data` (`AUTH SSL`).
    StartTls {
        /// The 234.
        reply: Reply,
        /// `PROT P` from the start.
        private_data: bool,
    },
}

impl From<Reply> for Act {
    fn from(r: Reply) -> Self {
        Self::Reply(r)
    }
}

impl From<Running> for Act {
    fn from(r: Running) -> Self {
        Self::Transfer(Box::new(r))
    }
}

/// A handler's result: what to do, or the reply that says why not.
pub(crate) type Handled = Result<Act, Reply>;

/// A reply either way (`Err` for the early returns of `?`).
pub(crate) type Answer = Result<Reply, Reply>;
