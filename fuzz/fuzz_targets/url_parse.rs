//! The client's `ftp://` and `ftps://` URLs: parsing never panics, and an accepted URL has a
//! host, an absolute path and an authority that names its port.

#![no_main]

use ferry_client::url::FtpUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(url) = FtpUrl::parse(text) else { return };
    assert!(!url.host.is_empty(), "{text:?}");
    assert!(url.authority().ends_with(&format!(":{}", url.port)), "{text:?}");
    assert_eq!(url.with_path("/x").path, "/x");
});
