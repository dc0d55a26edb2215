//! The control connection's byte stream: reads that cost nothing while idle, reads that keep
//! going past a TCP urgent mark, and the poll of a running transfer beside them.

use std::future::Future;

use tokio::net::TcpStream;

use super::state::Running;
use crate::tls::Io;
use crate::transfer::TransferEvent;

/// Reads what the control connection has, without holding a buffer while it waits: the bytes go
/// into a buffer on the stack of `poll` and come out as a `Vec` of their length. An idle session
/// (thousands of them wait here) so costs no read buffer. `AsyncRead` writes to the buffer only when
/// it returns `Ready`, so nothing is lost when `poll` returns `Pending`, TLS included.
pub(super) struct ReadChunk<'a>(pub(super) &'a mut Box<dyn Io>);

impl Future for ReadChunk<'_> {
    type Output = std::io::Result<Vec<u8>>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let mut stack = [0u8; 1024];
        let mut buf = tokio::io::ReadBuf::new(&mut stack);
        std::task::ready!(std::pin::Pin::new(&mut **self.0).poll_read(cx, &mut buf))?;
        std::task::Poll::Ready(Ok(buf.filled().to_vec()))
    }
}

/// The control connection's TCP stream.
///
/// Reads go through `try_read`, which keeps the socket's readiness after a short read. tokio's own
/// `read` drops readiness whenever it gets fewer bytes than asked for, on the assumption that the
/// socket is empty. A read that stops at a TCP urgent mark breaks that assumption: clients send
/// the Telnet "Synch" before ABOR as urgent data (RFC 959 section 4.1.3), and the kernel returns
/// the bytes before the mark on their own. With tokio's assumption, the `ABOR` after the mark
/// would wait, unread, until the client sent something else.
pub(super) struct ControlStream(pub(super) TcpStream);

impl tokio::io::AsyncRead for ControlStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                // Readiness is cleared now; the next poll_read_ready registers the waker.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for ControlStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Drives the running transfer and returns its next event.
pub(super) async fn recv_event(transfer: &mut Option<Running>) -> Option<TransferEvent> {
    let Some(t) = transfer else { return std::future::pending().await };
    std::future::poll_fn(|cx| {
        if let Some(task) = t.task.as_mut() {
            let task = task.get_mut().unwrap_or_else(|p| p.into_inner());
            if task.as_mut().poll(cx).is_ready() {
                t.task = None;
            }
        }
        t.events.poll_recv(cx)
    })
    .await
}
