//! `ferry copy`: server-to-server (FXP) when both servers allow it, else streamed through the client.
//!
//! The source is checked first (SIZE, answered 550 when it is missing): a copy of a missing file
//! fails with exit 5 before the target is told anything, so no empty file is left there. A copy
//! that fails after the target was told to store removes what it left, unless the target file
//! existed before (a replaced file is the server's to keep or restore).

use anyhow::Result;
use ferry_client::client::StoreHow;
use ferry_client::digest::Algorithm;
use ferry_client::{Client, ClientError, FtpUrl};
use ferry_proto::Command;

use super::verify::Verify;
use super::Ctx;

fn target_path(from: &FtpUrl, to: &FtpUrl) -> String {
    if to.is_dir() {
        let name = from.path.rsplit('/').next().unwrap_or("file");
        format!("{}{name}", to.path)
    } else {
        to.path.clone()
    }
}

/// Runs the copy and says which way it went.
pub async fn run(ctx: &Ctx, from: &FtpUrl, to: &FtpUrl, verify: Verify) -> Result<()> {
    let dest = target_path(from, to);
    // Trace lines say which server they come from: A the source, B the target.
    let (a, b) = (ctx.party("A"), ctx.party("B"));
    let mut src = a.connect(from).await?;
    let size = src.file_size(&from.path).await?;
    let mut dst = b.connect(to).await?;
    let existed = dst.exists(&dest).await?;
    let result = match fxp(&mut src, &mut dst, &from.path, &dest, size).await {
        Ok(n) => Ok(format!("copied {} -> {dest} server-to-server (FXP), {n} bytes", from.path)),
        Err(Fxp::Failed(e)) => Err(e),
        Err(Fxp::Refused(why)) => {
            ctx.say(format!("server-to-server transfer not possible ({why}); streaming through this client"));
            src.quit().await;
            dst.quit().await;
            src = a.connect(from).await?;
            dst = b.connect(to).await?;
            streamed(&mut src, &mut dst, &from.path, &dest)
                .await
                .map(|n| format!("copied {} -> {dest} through this client, {n} bytes", from.path))
        }
    };
    match result {
        Ok(said) => {
            ctx.say(said);
            if verify == Verify::Digest {
                compare_digests(ctx, &mut src, &mut dst, &from.path, &dest).await?;
            }
            src.quit().await;
            dst.quit().await;
            Ok(())
        }
        Err(e) => {
            if !existed {
                // Best effort: the error that matters is the copy's.
                let _ = dst.delete(&dest).await;
            }
            Err(e)
        }
    }
}

/// `copy --verify`: both servers' digests of the file, with the first algorithm both compute.
async fn compare_digests(ctx: &Ctx, src: &mut Client, dst: &mut Client, from: &str, dest: &str) -> Result<()> {
    for algorithm in Algorithm::ALL {
        let Some(a) = src.remote_digest(from, &[algorithm]).await? else { continue };
        let Some(b) = dst.remote_digest(dest, &[algorithm]).await? else { continue };
        let name = algorithm.name();
        if a.hex != b.hex {
            return Err(ClientError::Verify(format!(
                "{dest}: {name} differs: {} on the source, {} on the target (the file is kept)",
                a.hex, b.hex
            ))
            .into());
        }
        ctx.say(format!("{dest}: verified ({name} {} on both servers)", a.hex));
        return Ok(());
    }
    Err(ClientError::Verify(format!("{dest}: cannot verify: the two servers compute no digest in common")).into())
}

/// RETR on the source, its bytes into STOR on the target.
async fn streamed(src: &mut Client, dst: &mut Client, from: &str, dest: &str) -> Result<u64> {
    // RETR first: a source that cannot be read never starts a STOR.
    let (mut data, _) = src.open_transfer(Command::Retr(from.into()), from).await?;
    let n = dst.stor(dest, StoreHow::Replace, &mut data, &mut |_| {}).await?;
    drop(data);
    src.finish_transfer("RETR", from).await?;
    Ok(n)
}

/// ABOR on a connection in a transfer, and its replies (426 then 226, or 225/226 alone); best
/// effort, the error that matters is the caller's.
async fn abort(c: &mut Client) {
    if c.send_command(&Command::Abor).await.is_ok() {
        if let Ok(r) = c.next_reply().await {
            if r.code.0 == 426 || r.code.0 == 451 {
                let _ = c.next_reply().await;
            }
        }
    }
}

enum Fxp {
    /// A server refused its part: fall back to streaming.
    Refused(String),
    /// The copy itself failed.
    Failed(anyhow::Error),
}

async fn fxp(src: &mut Client, dst: &mut Client, from: &str, dest: &str, size: Option<u64>) -> Result<u64, Fxp> {
    let failed = |e: ClientError| Fxp::Failed(e.into());
    // The source listens; the destination is told to connect there.
    let addr = src.passive_target().await.map_err(|e| Fxp::Refused(format!("source: {e}")))?;
    if let Err(e) = dst.announce_active(addr).await {
        return Err(Fxp::Refused(format!("destination refused to connect to {addr}: {e}")));
    }
    if let Some(t) = dst.trace() {
        t.fxp_open("A", "B", addr);
    }
    let started = std::time::Instant::now();
    // The target first, and RETR only once it answered 150: a server that connects as soon as
    // it gets EPRT/PORT (pyftpdlib does) holds a data connection that is not yet receiving, and
    // a source that got RETR first could send everything and close before the target read its
    // STOR; pyftpdlib then never answers that STOR (or cuts the connection: 426).
    dst.send_command(&Command::Stor(dest.to_string())).await.map_err(failed)?;
    let d1 = dst.next_reply().await.map_err(failed)?;
    if !d1.code.is_preliminary() {
        return Err(Fxp::Refused(format!("destination: {} {}", d1.code, d1.text())));
    }
    src.send_command(&Command::Retr(from.into())).await.map_err(failed)?;
    let s1 = src.next_reply().await.map_err(failed)?;
    if !s1.code.is_preliminary() {
        // The target waits for bytes that will not come: stop it.
        abort(dst).await;
        return Err(Fxp::Failed(anyhow::anyhow!("source: {} {}", s1.code, s1.text())));
    }
    src.finish_transfer("RETR", from).await.map_err(failed)?;
    dst.finish_transfer("STOR", dest).await.map_err(failed)?;
    if let Some(t) = dst.trace() {
        // The bytes the source announced; the target's SIZE below checks them.
        t.fxp_close("A", "B", size.unwrap_or(0), started.elapsed());
    }
    let got = dst.size(dest).await.map_err(failed)?;
    match (size, got) {
        (Some(a), Some(b)) if a != b => {
            Err(Fxp::Failed(ClientError::Verify(format!("{dest}: {b} bytes, the source has {a}")).into()))
        }
        (_, b) => Ok(b.unwrap_or(0)),
    }
}
