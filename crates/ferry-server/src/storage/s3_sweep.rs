//! Aborting multipart uploads that nobody will complete.
//!
//! An upload that fails is aborted on S3 at once (`AbortMultipartUpload`), but a node that
//! crashes, is killed or loses the store while aborting leaves its multipart upload behind: no
//! object, but parts that keep their storage. Every node sweeps its bucket prefix at start and
//! then periodically: `ListMultipartUploads` below `storage.prefix`, and `AbortMultipartUpload`
//! for each upload initiated more than `storage.abandoned_upload_secs` ago. The bound must be
//! longer than the longest upload any node may still be sending (the default is a day); several
//! nodes sweeping at once is harmless (an upload already aborted answers 404, which counts as
//! done).
//!
//! OpenDAL has no call for listing multipart uploads, so these two requests are made here with
//! `reqwest`, signed (SigV4) by `reqsign`, the signer OpenDAL itself uses, with the same
//! credentials: the config's keys, else the environment or the AWS profile.

use std::io;
use std::time::Duration;

use jiff::Timestamp;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqsign_aws_v4::{Credential, DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::StorageConfig;

/// Characters S3 wants percent-encoded in a query value (everything but RFC 3986 unreserved).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same for a key in the path, where `/` separates segments and stays.
const PATH: &AsciiSet = &QUERY.remove(b'/');
/// SHA-256 of the empty body (the `x-amz-content-sha256` of a GET or DELETE).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How long one S3 request of the sweep may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What one sweep saw and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Multipart uploads in progress below the prefix.
    pub pending: usize,
    /// Of those, the ones aborted (older than the bound).
    pub aborted: usize,
}

/// Finds and aborts abandoned multipart uploads below one bucket prefix.
pub struct Sweeper {
    http: reqwest::Client,
    signer: Signer<Credential>,
    /// `endpoint/bucket`, path-style, as OpenDAL addresses the bucket.
    bucket_url: String,
    prefix: String,
    after: Duration,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper").field("bucket_url", &self.bucket_url).field("prefix", &self.prefix).finish()
    }
}

impl Sweeper {
    /// A sweeper for `config`'s bucket and prefix that aborts uploads older than `after`.
    pub fn new(config: &StorageConfig, after: Duration) -> io::Result<Self> {
        let region = config.region();
        let endpoint = match &config.endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        let bucket = config.bucket.as_deref().unwrap_or_default();
        let ctx = Context::new().with_file_read(reqsign_file_read_tokio::TokioFileRead).with_env(OsEnv);
        // As OpenDAL does: the config's keys first, then the environment and the profile; never
        // the instance metadata service for a non-AWS endpoint.
        let mut defaults = DefaultCredentialProvider::builder();
        if config.endpoint.is_some() {
            defaults = defaults.no_imds();
        }
        let mut chain = ProvideCredentialChain::new().push(defaults.build());
        if let (Some(ak), Some(sk)) = (&config.access_key_id, &config.secret_access_key) {
            chain = chain.push_front(StaticCredentialProvider::new(ak, sk));
        }
        let signer = Signer::new(ctx, chain, RequestSigner::new("s3", region));
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(io::Error::other)?;
        Ok(Self { http, signer, bucket_url: format!("{endpoint}/{bucket}"), prefix: config.prefix.clone(), after })
    }

    /// One sweep: lists every multipart upload below the prefix and aborts those initiated more
    /// than the bound before `now`.
    pub async fn sweep(&self, now: Timestamp) -> io::Result<Swept> {
        let mut swept = Swept::default();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut url = format!("{}?uploads=&prefix={}", self.bucket_url, utf8_percent_encode(&self.prefix, QUERY));
            if let Some((key, id)) = &markers {
                url.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    utf8_percent_encode(key, QUERY),
                    utf8_percent_encode(id, QUERY)
                ));
            }
            let page = parse_listing(&self.request(http::Method::GET, &url).await?)?;
            swept.pending += page.uploads.len();
            for upload in page.uploads.iter().filter(|u| abandoned(u, now, self.after)) {
                let url = format!(
                    "{}/{}?uploadId={}",
                    self.bucket_url,
                    utf8_percent_encode(&upload.key, PATH),
                    utf8_percent_encode(&upload.upload_id, QUERY)
                );
                match self.request(http::Method::DELETE, &url).await {
                    Ok(_) => swept.aborted += 1,
                    // Another node aborted or completed it in between.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            match (page.is_truncated, page.next_key_marker, page.next_upload_id_marker) {
                (true, Some(k), Some(id)) if Some((&k, &id)) != markers.as_ref().map(|(a, b)| (a, b)) => {
                    markers = Some((k, id));
                }
                _ => return Ok(swept),
            }
        }
    }

    /// Sweeps now and then every `every`, until `shutdown`; failures are logged and retried at
    /// the next round.
    pub fn spawn(self, every: Duration, shutdown: CancellationToken) {
        tokio::spawn(async move {
            loop {
                match self.sweep(Timestamp::now()).await {
                    Ok(s) if s.aborted > 0 => tracing::info!(
                        pending = s.pending,
                        aborted = s.aborted,
                        older_than_secs = self.after.as_secs(),
                        "s3: aborted abandoned multipart uploads"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "s3: sweep of abandoned multipart uploads failed"),
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    /// One signed request with an empty body; its body on 2xx, an error naming the S3 error
    /// otherwise (404 as `NotFound`).
    async fn request(&self, method: http::Method, url: &str) -> io::Result<String> {
        let req = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-amz-content-sha256", EMPTY_SHA256)
            .body(())
            .map_err(io::Error::other)?;
        let (mut parts, ()) = req.into_parts();
        self.signer.sign(&mut parts, None).await.map_err(io::Error::other)?;
        let req = reqwest::Request::try_from(http::Request::from_parts(parts, reqwest::Body::from(Vec::new())))
            .map_err(io::Error::other)?;
        let resp = self.http.execute(req).await.map_err(io::Error::other)?;
        let status = resp.status();
        let body = resp.text().await.map_err(io::Error::other)?;
        if status.is_success() {
            return Ok(body);
        }
        let kind = if status == http::StatusCode::NOT_FOUND { io::ErrorKind::NotFound } else { io::ErrorKind::Other };
        let code = s3_error_code(&body).unwrap_or_default();
        Err(io::Error::new(kind, format!("S3 answered {status} {code}")))
    }
}

/// The sweep interval for a bound: half of it, between 1 s and an hour.
pub fn interval(after: Duration) -> Duration {
    (after / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// One page of `ListMultipartUploads`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<Pending>,
}

/// One multipart upload in progress.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Pending {
    key: String,
    upload_id: String,
    /// RFC 3339, `2026-12-07T10:00:00.000Z`.
    initiated: String,
}

fn parse_listing(xml: &str) -> io::Result<Listing> {
    quick_xml::de::from_str(xml)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("ListMultipartUploads: {e}")))
}

/// Whether `upload` began more than `after` before `now`. An unreadable date is never abandoned.
fn abandoned(upload: &Pending, now: Timestamp, after: Duration) -> bool {
    let Ok(initiated) = upload.initiated.parse::<Timestamp>() else {
        return false;
    };
    now.duration_since(initiated).as_secs_f64() > after.as_secs_f64()
}

/// The `<Code>` of an S3 error document.
fn s3_error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    Some(&body[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>ftp/b.bin</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>ftp/a b.bin</Key><UploadId>id1</UploadId>
    <Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass>
    <Initiated>2026-12-07T10:00:00.000Z</Initiated></Upload>
  <Upload><Key>ftp/b.bin</Key><UploadId>id2</UploadId><Initiated>2026-12-07T11:59:00Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;

    #[test]
    fn parses_a_page_and_picks_the_old_uploads() {
        let page = parse_listing(PAGE).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("ftp/b.bin"));
        assert_eq!(page.next_upload_id_marker.as_deref(), Some("id2"));
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "ftp/a b.bin");
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let hour = Duration::from_secs(3600);
        let old: Vec<_> = page.uploads.iter().filter(|u| abandoned(u, now, hour)).map(|u| &u.upload_id).collect();
        assert_eq!(old, ["id1"]);
        assert!(!abandoned(
            &Pending { key: "k".into(), upload_id: "i".into(), initiated: "yesterday".into() },
            now,
            hour
        ));
    }

    #[test]
    fn an_empty_listing_has_no_uploads() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        let page = parse_listing(xml).unwrap();
        assert!(!page.is_truncated && page.uploads.is_empty());
        assert!(parse_listing("not xml <").is_err());
    }

    #[test]
    fn error_codes_and_intervals() {
        assert_eq!(s3_error_code("<Error><Code>NoSuchUpload</Code></Error>"), Some("NoSuchUpload"));
        assert_eq!(s3_error_code("plain"), None);
        assert_eq!(interval(Duration::from_secs(86400)), Duration::from_secs(3600));
        assert_eq!(interval(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_secs(10)), Duration::from_secs(5));
    }

    #[test]
    fn keys_are_encoded_for_the_path_and_the_query() {
        assert_eq!(utf8_percent_encode("ftp/a b+é", PATH).to_string(), "ftp/a%20b%2B%C3%A9");
        assert_eq!(utf8_percent_encode("ftp/x", QUERY).to_string(), "ftp%2Fx");
    }
}
