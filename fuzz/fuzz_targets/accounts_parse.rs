//! What the accounts back-ends read from a database row, a directory entry or the configuration
//! (permission lists, allowed-address lists, roots, store URLs) never panics on any text; an
//! accepted permission list formats to a list that parses back to the same set; a resolved root
//! never leaves the server's root.

#![no_main]

use std::path::Path;

use ferry_server::auth::model::{
    format_permissions, parse_networks, parse_permissions, resolve_root, AccountsConfig, AccountsKind,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(p) = parse_permissions(text) {
        let shown = format_permissions(p);
        assert_eq!(parse_permissions(&shown), Some(p), "{text:?} -> {shown:?}");
    }
    if let Ok(nets) = parse_networks(text) {
        for net in nets {
            assert_eq!(net.to_string().parse(), Ok(net));
        }
    }
    let base = Path::new("/srv/ftp");
    if let Some(root) = resolve_root(base, Some(text)) {
        assert!(root.starts_with(base), "{text:?} -> {}", root.display());
        assert!(!root.components().any(|c| matches!(c, std::path::Component::ParentDir)), "{text:?}");
    }
    for kind in [AccountsKind::Postgres, AccountsKind::Ldap, AccountsKind::Http] {
        let config = AccountsConfig { kind, url: Some(text.to_string()), ..AccountsConfig::default() };
        let _ = config.validate();
        let _ = config.port();
    }
});
