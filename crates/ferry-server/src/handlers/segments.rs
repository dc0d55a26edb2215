//! SITE SEGMENT BEGIN|END|ABORT: segmented uploads ([`crate::segments`], docs/segmented-upload.md).
//! The segments themselves are `REST offset` + `STOR path` ([`super::transfer::store`]).

use std::sync::Arc;

use ferry_proto::command::SegmentOp;

use super::Answer;
use crate::auth::Permission;
use crate::replies;
use crate::session::state::{Account, Cx};
use crate::storage::{StorageError, WriteMode};

pub(crate) async fn segment(a: &Account, cx: &Cx<'_>, op: SegmentOp) -> Answer {
    a.require(Permission::Write)?;
    if cx.config.storage.kind != crate::config::StorageKind::Local {
        // Segments are written at offsets into one file, which an object store cannot do.
        return Err(replies::unsupported_by_storage("SITE SEGMENT"));
    }
    expire_abandoned(cx).await;
    match op {
        SegmentOp::Begin { size, path: arg } => begin(a, cx, size, &arg).await,
        SegmentOp::End(arg) => end(a, cx, &arg).await,
        SegmentOp::Abort(arg) => {
            let path = a.resolve(&arg)?;
            let seg = cx
                .shared
                .limit_state
                .segments
                .remove(&a.user.name, &path)
                .ok_or_else(|| replies::no_segmented_upload(&arg))?;
            let _ = seg.storage.remove_file(&seg.temp).await;
            seg.release().await;
            Ok(replies::segmented_abandoned(&arg))
        }
    }
}

/// Removes the segmented uploads that received nothing for an idle timeout, and gives their
/// quota reservations back. Run by every `SITE SEGMENT` and every upload.
pub(crate) async fn expire_abandoned(cx: &Cx<'_>) {
    for stale in cx.shared.limit_state.segments.expired(cx.config.limits.idle_timeout()) {
        tracing::info!(temp = %stale.temp, "segmented upload abandoned: removed");
        let _ = stale.storage.remove_file(&stale.temp).await;
        stale.release().await;
    }
}

async fn begin(a: &Account, cx: &Cx<'_>, size: u64, arg: &str) -> Answer {
    if cx.shared.events.hooks.get().and_then(crate::hooks::Hooks::verifiers).is_some() {
        // A segmented upload is published by END, which no verify hook would see.
        return Err(replies::segments_with_verify());
    }
    let path = a.resolve(arg)?;
    let old_len = match a.storage.metadata(&path).await {
        Ok(m) if m.is_dir() => return Err(replies::not_a_regular_file(arg)),
        Ok(m) => Some(m.size),
        Err(StorageError::NotFound) => None,
        Err(e) => return Err(replies::storage_error(&e, arg)),
    };
    let name = path.file_name().unwrap_or("upload").to_string();
    let temp = path.parent().join(&crate::storage::temp_file_name(&name)).map_err(|_| replies::bad_path())?;
    // The whole growth is reserved now (the size is known): uploads running meanwhile cannot
    // take the room, and END cannot find it gone.
    let quota = match &a.usage {
        None => None,
        Some(ledger) => {
            super::transfer::check_file_quota(a, ledger, old_len).await?;
            let growth = size.saturating_sub(old_len.unwrap_or(0));
            match crate::segments::SegmentQuota::reserve(ledger, growth).await {
                Some(q) => Some(q),
                None => return Err(replies::storage_error(&StorageError::NoSpace, arg)),
            }
        }
    };
    let upload = crate::segments::Segmented::new(Arc::clone(&a.storage), temp.clone(), size, quota);
    let seg = match cx.shared.limit_state.segments.begin(&a.user.name, &path, upload) {
        Ok(seg) => seg,
        Err(upload) => {
            upload.release().await;
            return Err(replies::segmented_in_progress(arg));
        }
    };
    // The temporary exists from now on: the segments write into it, at their offsets.
    let created = match a.storage.write(&temp, WriteMode::CreateNew).await {
        Ok(up) => up.commit(false).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = created {
        cx.shared.limit_state.segments.remove(&a.user.name, &path);
        seg.release().await;
        return Err(replies::storage_error(&e, arg));
    }
    drop(seg);
    Ok(replies::segmented_begun(size, arg))
}

async fn end(a: &Account, cx: &Cx<'_>, arg: &str) -> Answer {
    let path = a.resolve(arg)?;
    let segments = &cx.shared.limit_state.segments;
    let seg = segments.get(&a.user.name, &path).ok_or_else(|| replies::no_segmented_upload(arg))?;
    let missing = seg.missing();
    if !missing.is_empty() {
        return Err(replies::segments_missing(arg, &missing));
    }
    // Whole: it replaces the file (the old one stays until this rename).
    let old_len = a.storage.metadata(&path).await.ok().filter(|m| !m.is_dir()).map(|m| m.size);
    segments.remove(&a.user.name, &path);
    let revoked = match &seg.quota {
        Some(q) => !q.confirm().await,
        None => false,
    };
    if revoked {
        // An older upload of the account took the room: undone, the old file stays.
        let _ = a.storage.remove_file(&seg.temp).await;
        seg.release().await;
        return Err(replies::storage_error(&StorageError::NoSpace, arg));
    }
    if let Err(e) = a.storage.rename(&seg.temp, &path).await {
        let _ = a.storage.remove_file(&seg.temp).await;
        seg.release().await;
        return Err(replies::storage_error(&e, arg));
    }
    if let Some(q) = &seg.quota {
        q.settle(seg.size as i64 - old_len.unwrap_or(0) as i64, i64::from(old_len.is_none())).await;
    }
    tracing::info!(user = %a.user.name, path = %path, bytes = seg.size, "segmented upload complete");
    Ok(replies::segmented_complete(arg, seg.size))
}
