//! The configuration file (`ferry.toml`): parsing and validating any text never panics, and an
//! error always names something (a field, a line) rather than being empty.

#![no_main]

use ferry_server::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::from_toml(text) {
        Ok(config) => {
            if let Err(e) = config.validate() {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
