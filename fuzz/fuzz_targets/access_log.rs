//! The access-log parsers of `iumgate analyze`: every built-in format, the
//! format detection, and the time parsers, on arbitrary lines. A malformed
//! line must come back as `Line::Malformed`, never as a panic.
#![no_main]

use iumgate::analyze::parse::{self, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let formats = [Format::Jira, Format::Confluence, Format::Bitbucket, Format::Iumgate];
    for line in text.lines() {
        for f in &formats {
            let _ = f.parse(line);
        }
        let _ = parse::parse_any_time(line);
        let _ = parse::parse_clf_time(line);
        let _ = parse::parse_iso_time(line);
    }
    let sample: Vec<String> = text.lines().take(50).map(str::to_owned).collect();
    let _ = parse::detect(&sample);
});
