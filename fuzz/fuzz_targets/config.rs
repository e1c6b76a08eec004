//! The config file parser: `Config::parse` must answer every text with a
//! config or a list of errors, never a panic.
#![no_main]

use iumgate::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(errors) = Config::parse(text) {
            // Rendering the errors (what check-config prints) must not panic either.
            let _ = errors.to_string();
        }
    }
});
