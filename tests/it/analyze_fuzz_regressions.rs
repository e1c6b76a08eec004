//! Inputs the fuzzer found (`fuzz/fuzz_targets/access_log.rs`): each must be
//! read as a malformed line, never a panic.

use iumgate::analyze::parse::{self, Format};

fn all_parsers(text: &str) {
    for line in text.lines() {
        for f in [
            Format::Jira,
            Format::Confluence,
            Format::Bitbucket,
            Format::Iumgate,
        ] {
            let _ = f.parse(line);
        }
        let _ = parse::parse_any_time(line);
        let _ = parse::parse_clf_time(line);
        let _ = parse::parse_iso_time(line);
    }
    let sample: Vec<String> = text.lines().map(str::to_owned).collect();
    let _ = parse::detect(&sample);
}

#[test]
fn a_multibyte_character_where_a_time_offset_is_expected_is_malformed_not_a_panic() {
    all_parsers("s +p\u{8c4}\n\u{6}\u{8c4} ");
}

#[test]
fn a_year_with_sixteen_digits_is_malformed_not_an_overflow() {
    all_parsers(
        &std::fs::read_to_string("fuzz/corpus/access_log/regression-year-overflow").unwrap(),
    );
    all_parsers("[28/Nov/2026555555555555:10:00:00 +0100] bob 2 10a\n");
    assert!(parse::parse_clf_time("28/Nov/2026555555555555:10:00:00 +0100").is_none());
}
