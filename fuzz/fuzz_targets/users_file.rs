//! The users file: parsing any text never panics, and a file it accepts is written out
//! (`ferry user add` saves it so) as text that parses back to the same users.

#![no_main]

use std::path::Path;

use ferry_server::auth::users_file::UsersFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("users.toml");
    let Ok(file) = UsersFile::parse(text, path) else { return };
    let saved = file.to_text(path).expect("an accepted file can be written");
    let again = UsersFile::parse(&saved, path).expect("a written file parses");
    assert_eq!(again, file, "{saved}");
});
