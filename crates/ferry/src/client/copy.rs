//! `ferry copy`: server-to-server (FXP) when both servers allow it, else streamed through the client.

use anyhow::Result;
use ferry_client::client::StoreHow;
use ferry_client::{ClientError, FtpUrl};
use ferry_proto::Command;

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
pub async fn run(ctx: &Ctx, from: &FtpUrl, to: &FtpUrl) -> Result<()> {
    let dest = target_path(from, to);
    match fxp(ctx, from, to, &dest).await {
        Ok(n) => {
            ctx.say(format!("copied {} -> {dest} server-to-server (FXP), {n} bytes", from.path));
            return Ok(());
        }
        Err(Fxp::Refused(why)) => {
            ctx.say(format!("server-to-server transfer not possible ({why}); streaming through this client"))
        }
        Err(Fxp::Failed(e)) => return Err(e),
    }
    let mut src = ctx.connect(from).await?;
    let mut dst = ctx.connect(to).await?;
    let (mut data, _) = src.open_transfer(Command::Retr(from.path.clone()), &from.path).await?;
    let n = dst.stor(&dest, StoreHow::Replace, &mut data, &mut |_| {}).await?;
    drop(data);
    src.finish_transfer("RETR", &from.path).await?;
    src.quit().await;
    dst.quit().await;
    ctx.say(format!("copied {} -> {dest} through this client, {n} bytes", from.path));
    Ok(())
}

enum Fxp {
    /// A server refused its part: fall back to streaming.
    Refused(String),
    /// The copy itself failed.
    Failed(anyhow::Error),
}

async fn fxp(ctx: &Ctx, from: &FtpUrl, to: &FtpUrl, dest: &str) -> std::result::Result<u64, Fxp> {
    let failed = |e: ClientError| Fxp::Failed(e.into());
    let mut src = ctx.connect(from).await.map_err(Fxp::Failed)?;
    let mut dst = ctx.connect(to).await.map_err(Fxp::Failed)?;
    let size = src.size(&from.path).await.map_err(failed)?;
    // The source listens; the destination is told to connect there.
    let addr = src.passive_target().await.map_err(|e| Fxp::Refused(format!("source: {e}")))?;
    if let Err(e) = dst.announce_active(addr).await {
        return Err(Fxp::Refused(format!("destination refused to connect to {addr}: {e}")));
    }
    src.send_command(&Command::Retr(from.path.clone())).await.map_err(failed)?;
    dst.send_command(&Command::Stor(dest.to_string())).await.map_err(failed)?;
    let d1 = dst.next_reply().await.map_err(failed)?;
    if !d1.code.is_preliminary() {
        return Err(Fxp::Refused(format!("destination: {} {}", d1.code, d1.text())));
    }
    let s1 = src.next_reply().await.map_err(failed)?;
    if !s1.code.is_preliminary() {
        return Err(Fxp::Failed(anyhow::anyhow!("source: {} {}", s1.code, s1.text())));
    }
    src.finish_transfer("RETR", &from.path).await.map_err(failed)?;
    dst.finish_transfer("STOR", dest).await.map_err(failed)?;
    let got = dst.size(dest).await.map_err(failed)?;
    src.quit().await;
    dst.quit().await;
    match (size, got) {
        (Some(a), Some(b)) if a != b => Err(Fxp::Failed(anyhow::anyhow!("{dest}: {b} bytes, the source has {a}"))),
        (_, b) => Ok(b.unwrap_or(0)),
    }
}
