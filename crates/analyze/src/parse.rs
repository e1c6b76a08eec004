//! Access-log line parsers: Jira, Confluence, Bitbucket, iumgate's own JSON lines, and a custom
//! regex. Pure functions over one line; a line that does not fit is `Malformed`, never an error.
//!
//! Hand-written splitters rather than one regex per format: parsing is most of the cost of an
//! analysis (a 1 GB log is ~4 million lines), and the built-in layouts are fixed.

use regex::Regex;
use std::sync::Arc;

/// One request as the analysis needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// The log's UTC offset in seconds (local days and hours are computed with it). Zero for
    /// formats without a zone, whose times are then taken as local.
    pub offset_s: i32,
    /// None for anonymous requests (`-`, `anonymous`).
    pub user: Option<&'a str>,
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
}

/// What one line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Request(Record<'a>),
    /// A well-formed line that is not a request of interest (Bitbucket's "incoming" half of a
    /// request, SSH operations the proxy never sees).
    Skip,
    /// An iumgate JSON line whose strings carry escapes (a user name with a backslash or a
    /// quote): read again with [`iumgate_owned`], which unescapes into owned text.
    Escaped,
    Malformed,
}

/// An iumgate JSON line read into owned text (its strings had escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub ts_ms: i64,
    pub offset_s: i32,
    pub user: Option<String>,
    pub method: String,
    pub path: String,
}

impl OwnedRecord {
    pub fn record(&self) -> Option<Record<'_>> {
        Some(Record {
            ts_ms: self.ts_ms,
            offset_s: self.offset_s,
            user: self.user.as_deref().and_then(user_of),
            method: &self.method,
            path: strip_uri(&self.path)?,
        })
    }
}

#[derive(serde::Deserialize)]
struct OwnedJsonLine {
    ts: OwnedJsonTime,
    #[serde(default)]
    user: Option<String>,
    method: String,
    path: String,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OwnedJsonTime {
    Ms(i64),
    Text(String),
}

/// An iumgate JSON line, its strings unescaped (see [`Line::Escaped`]).
pub fn iumgate_owned(line: &str) -> Option<OwnedRecord> {
    let line = line.trim_end_matches(['\r', '\n']);
    if !line.starts_with('{') {
        return None;
    }
    let j: OwnedJsonLine = serde_json::from_str(line).ok()?;
    let (ts_ms, offset_s) = match &j.ts {
        OwnedJsonTime::Ms(ms) => (*ms, 0),
        OwnedJsonTime::Text(t) => parse_any_time(t)?,
    };
    let r = OwnedRecord {
        ts_ms,
        offset_s,
        user: j.user,
        method: j.method,
        path: j.path,
    };
    // Its path must be one.
    r.record()?;
    Some(r)
}

/// A custom layout: a regex with named groups `time`, `user` and either `request`
/// (`"METHOD /path HTTP/1.1"`) or `method` and `path`.
#[derive(Debug)]
pub struct CustomPattern {
    re: Regex,
    has_request: bool,
}

impl CustomPattern {
    pub fn new(pattern: &str) -> Result<CustomPattern, String> {
        let re = Regex::new(pattern).map_err(|e| format!("--pattern: {e}"))?;
        let names: Vec<&str> = re.capture_names().flatten().collect();
        let has = |n: &str| names.contains(&n);
        if !has("time") || !has("user") {
            return Err("--pattern: needs the named groups (?P<time>…) and (?P<user>…)".into());
        }
        let has_request = has("request");
        if !(has_request || (has("method") && has("path"))) {
            return Err(
                "--pattern: needs a (?P<request>…) group or both (?P<method>…) and (?P<path>…)"
                    .into(),
            );
        }
        Ok(CustomPattern { re, has_request })
    }
}

#[derive(Debug, Clone)]
pub enum Format {
    /// Jira's default `server.xml` access log.
    Jira,
    /// Confluence's default access log.
    Confluence,
    /// `atlassian-bitbucket-access.log` (pipe-separated).
    Bitbucket,
    /// JSON lines `{"ts": …, "user": …, "method": …, "path": …}` (iumgate's activity log).
    Iumgate,
    Custom(Arc<CustomPattern>),
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::Jira => "jira",
            Format::Confluence => "confluence",
            Format::Bitbucket => "bitbucket",
            Format::Iumgate => "iumgate",
            Format::Custom(_) => "custom",
        }
    }

    /// The built-in format of that name.
    pub fn builtin(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "jira" => Some(Format::Jira),
            "confluence" => Some(Format::Confluence),
            "bitbucket" => Some(Format::Bitbucket),
            "iumgate" | "json" => Some(Format::Iumgate),
            _ => None,
        }
    }

    /// The product whose activity rules fit this log, if the format says.
    pub fn product(&self) -> Option<iumgate_core::product::Product> {
        use iumgate_core::product::Product;
        match self {
            Format::Jira => Some(Product::Jira),
            Format::Confluence => Some(Product::Confluence),
            Format::Bitbucket => Some(Product::Bitbucket),
            _ => None,
        }
    }

    pub fn parse<'a>(&self, line: &'a str) -> Line<'a> {
        let line = line.trim_end_matches(['\r', '\n']);
        let parsed = match self {
            Format::Jira => parse_jira(line),
            Format::Confluence => parse_confluence(line),
            Format::Bitbucket => parse_bitbucket(line),
            Format::Iumgate => parse_iumgate(line),
            Format::Custom(p) => parse_custom(p, line),
        };
        parsed.unwrap_or(Line::Malformed)
    }
}

/// Picks the built-in format that reads most of `sample` (the first lines of a file).
/// None if none reads at least half of the non-empty lines.
pub fn detect(sample: &[String]) -> Option<Format> {
    let lines: Vec<&str> = sample
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let candidates = [
        Format::Jira,
        Format::Confluence,
        Format::Bitbucket,
        Format::Iumgate,
    ];
    let (best, score) = candidates
        .into_iter()
        .map(|f| {
            let ok = lines
                .iter()
                .filter(|l| f.parse(l) != Line::Malformed)
                .count();
            (f, ok)
        })
        // First wins a tie (max_by_key keeps the last, so compare reversed).
        .rev()
        .max_by_key(|(_, ok)| *ok)?;
    (score * 2 >= lines.len() && score > 0).then_some(best)
}

fn is_anonymous(user: &str) -> bool {
    user.is_empty() || user == "-" || user.eq_ignore_ascii_case("anonymous")
}

fn user_of(user: &str) -> Option<&str> {
    (!is_anonymous(user)).then_some(user)
}

/// `GET /path?q HTTP/1.1` → (method, path without query).
fn split_request(req: &str) -> Option<(&str, &str)> {
    let mut parts = req.split(' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some((method, strip_uri(uri)?))
}

/// The path of a request target: no query, no scheme and host.
fn strip_uri(uri: &str) -> Option<&str> {
    let uri = match uri.find("://") {
        Some(i) => {
            let rest = &uri[i + 3..];
            &rest[rest.find('/').unwrap_or(rest.len())..]
        }
        None => uri,
    };
    let path = &uri[..uri.find('?').unwrap_or(uri.len())];
    if path.is_empty() {
        return Some("/");
    }
    path.starts_with('/').then_some(path)
}

/// `%a %{jira.request.id}r %{jira.request.username}r %t "%m %U%q %H" %s %b %D …`
fn parse_jira(line: &str) -> Option<Line<'_>> {
    let mut it = line.splitn(4, ' ');
    let _ip = it.next()?;
    let _id = it.next()?;
    let user = it.next()?;
    let rest = it.next()?.strip_prefix('[')?;
    let close = rest.find(']')?;
    let (ts_ms, offset_s) = parse_clf_time(&rest[..close])?;
    let rest = rest[close + 1..].strip_prefix(" \"")?;
    let req = &rest[..rest.find('"')?];
    let (method, path) = split_request(req)?;
    Some(Line::Request(Record {
        ts_ms,
        offset_s,
        user: user_of(user),
        method,
        path,
    }))
}

/// `%t %{X-AUSERNAME}o %I %h %r %s %Dms %b %{Referer}i %{User-Agent}i`
fn parse_confluence(line: &str) -> Option<Line<'_>> {
    let rest = line.strip_prefix('[')?;
    let close = rest.find(']')?;
    let (ts_ms, offset_s) = parse_clf_time(&rest[..close])?;
    let mut it = rest[close + 1..].trim_start().split(' ');
    let user = it.next()?;
    let _thread = it.next()?;
    let _host = it.next()?;
    let method = it.next()?;
    let uri = it.next()?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(Line::Request(Record {
        ts_ms,
        offset_s,
        user: user_of(user),
        method,
        path: strip_uri(uri)?,
    }))
}

/// `ip | protocol | i/o request id | user | 2015-09-09 15:21:08,431 | "GET /x HTTP/1.1" | …`.
/// Each request is logged twice ("i" when it arrives, "o" when it completes); only the "o"
/// half is counted. SSH operations are skipped: they never pass through the proxy.
fn parse_bitbucket(line: &str) -> Option<Line<'_>> {
    let mut it = line.split(" | ");
    let _ip = it.next()?;
    let protocol = it.next()?.trim();
    let id = it.next()?.trim();
    let user = it.next()?.trim();
    let (ts_ms, offset_s) = parse_iso_time(it.next()?.trim())?;
    let action = it.next()?.trim();
    if id.starts_with('i') {
        return Some(Line::Skip);
    }
    if !id.starts_with('o') && !id.is_empty() && id != "-" {
        return None;
    }
    if protocol.eq_ignore_ascii_case("ssh") {
        return Some(Line::Skip);
    }
    let req = action.strip_prefix('"')?.strip_suffix('"')?;
    let (method, path) = split_request(req)?;
    Some(Line::Request(Record {
        ts_ms,
        offset_s,
        user: user_of(user),
        method,
        path,
    }))
}

#[derive(serde::Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow)]
    ts: JsonTime<'a>,
    #[serde(borrow, default)]
    user: Option<&'a str>,
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow)]
    path: &'a str,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonTime<'a> {
    Ms(i64),
    Text(&'a str),
}

fn parse_iumgate(line: &str) -> Option<Line<'_>> {
    if !line.starts_with('{') {
        return None;
    }
    let j: JsonLine<'_> = match serde_json::from_str(line) {
        Ok(j) => j,
        // Strings with escapes cannot be borrowed from the line.
        Err(_) => return iumgate_owned(line).map(|_| Line::Escaped),
    };
    let (ts_ms, offset_s) = match j.ts {
        JsonTime::Ms(ms) => (ms, 0),
        JsonTime::Text(t) => parse_any_time(t)?,
    };
    Some(Line::Request(Record {
        ts_ms,
        offset_s,
        user: j.user.and_then(user_of),
        method: j.method,
        path: strip_uri(j.path)?,
    }))
}

fn parse_custom<'a>(p: &CustomPattern, line: &'a str) -> Option<Line<'a>> {
    let caps = p.re.captures(line)?;
    let (ts_ms, offset_s) = parse_any_time(caps.name("time")?.as_str())?;
    let user = caps.name("user")?.as_str();
    let (method, path) = if p.has_request {
        split_request(caps.name("request")?.as_str())?
    } else {
        (
            caps.name("method")?.as_str(),
            strip_uri(caps.name("path")?.as_str())?,
        )
    };
    Some(Line::Request(Record {
        ts_ms,
        offset_s,
        user: user_of(user),
        method,
        path,
    }))
}

/// Any of the supported time shapes: `25/Mar/2024:09:15:02 +0100` (with or without the
/// brackets), ISO 8601 / `2024-03-25 09:15:02,431`, or epoch seconds / milliseconds.
pub fn parse_any_time(s: &str) -> Option<(i64, i32)> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        let n: i64 = s.parse().ok()?;
        // Ten digits are seconds until the year 2286; more are milliseconds.
        return Some((if s.len() <= 10 { n * 1000 } else { n }, 0));
    }
    if s.len() > 2 && s.as_bytes()[2] == b'/' {
        return parse_clf_time(s);
    }
    parse_iso_time(s)
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as i64 + 1)
}

/// `+0100`, `-05:30`, `Z`.
fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.is_empty() || s == "Z" || s == "z" {
        return Some(0);
    }
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    // Byte slicing below: only four ASCII digits may get there.
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h = num(&digits[..2])?;
    let m = num(&digits[2..])?;
    Some(sign * (h * 3600 + m * 60) as i32)
}

fn hms(s: &str) -> Option<(i64, i64, i64)> {
    let mut it = s.split(':');
    let h = num(it.next()?)?;
    let m = num(it.next()?)?;
    let sec = num(it.next()?)?;
    if it.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h, m, sec))
}

fn to_ms(
    y: i64,
    mo: i64,
    d: i64,
    (h, mi, s): (i64, i64, i64),
    frac_ms: i64,
    off: i32,
) -> Option<i64> {
    // Years outside 1..=9999 are malformed (and would overflow the sums below).
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + s - off as i64) * 1000 + frac_ms)
}

/// `25/Mar/2024:09:15:02 +0100` (Tomcat's `%t` without the brackets).
pub fn parse_clf_time(s: &str) -> Option<(i64, i32)> {
    let (dt, off) = match s.split_once(' ') {
        Some((dt, off)) => (dt, parse_offset(off)?),
        None => (s, 0),
    };
    let mut it = dt.splitn(4, [':', '/']);
    let d = num(it.next()?)?;
    let mo = month(it.next()?)?;
    let y = num(it.next()?)?;
    let time = it.next()?;
    let (time, frac) = split_frac(time);
    Some((to_ms(y, mo, d, hms(time)?, frac, off)?, off))
}

/// `2024-03-25T09:15:02.123+01:00`, `2024-03-25 09:15:02,431` (no zone: offset 0).
pub fn parse_iso_time(s: &str) -> Option<(i64, i32)> {
    if s.len() < 19 {
        return None;
    }
    let b = s.as_bytes();
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let y = num(&s[..4])?;
    let mo = num(&s[5..7])?;
    let d = num(&s[8..10])?;
    let rest = &s[11..];
    // The time runs up to the zone (Z, + or -), if any.
    let zone_at = rest
        .char_indices()
        .skip(8)
        .find(|(_, c)| matches!(c, 'Z' | 'z' | '+' | '-' | ' '))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let off = parse_offset(zone)?;
    let (time, frac) = split_frac(time);
    Some((to_ms(y, mo, d, hms(time)?, frac, off)?, off))
}

/// `09:15:02.123` or `09:15:02,123` → ("09:15:02", 123).
fn split_frac(time: &str) -> (&str, i64) {
    match time.find(['.', ',']) {
        Some(i) => {
            let digits = &time[i + 1..];
            let mut ms = 0;
            let mut scale = 100;
            for b in digits.bytes().take(3) {
                if !b.is_ascii_digit() {
                    break;
                }
                ms += (b - b'0') as i64 * scale;
                scale /= 10;
            }
            (&time[..i], ms)
        }
        None => (time, 0),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-03-25 09:15` for a local time in ms.
pub fn format_local(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000) / 1000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        in_day / 3600,
        (in_day / 60) % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: Line<'_>) -> Record<'_> {
        match line {
            Line::Request(r) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn jira_default_line() {
        let l = r#"10.0.0.1 555x1234x1 Alice [25/Mar/2024:09:15:02 +0100] "GET /browse/ABC-1?focus=x HTTP/1.1" 200 1234 56 "http://jira/x" "Mozilla/5.0 (X11)" "1abc2de""#;
        let r = req(Format::Jira.parse(l));
        assert_eq!(r.user, Some("Alice"));
        assert_eq!((r.method, r.path), ("GET", "/browse/ABC-1"));
        assert_eq!(r.offset_s, 3600);
        // 2024-03-25 08:15:02 UTC
        assert_eq!(r.ts_ms, 1_711_354_502_000);
    }

    #[test]
    fn confluence_default_line() {
        let l = "[25/Mar/2024:09:15:02 +0000] bob http-nio-8090-exec-5 10.0.0.2 GET /display/DOC/Home HTTP/1.1 200 45ms 1234 http://c/x Mozilla/5.0 (X11)";
        let r = req(Format::Confluence.parse(l));
        assert_eq!(r.user, Some("bob"));
        assert_eq!(r.path, "/display/DOC/Home");
        assert_eq!(r.ts_ms, 1_711_358_102_000);
    }

    #[test]
    fn bitbucket_halves_and_ssh() {
        let o = r#"172.24.12.153 | https | o@PZQFBCx921x19253x0 | carol | 2015-09-09 15:21:08,431 | "GET /projects/P/repos/r HTTP/1.1" | "" "" | 200 | 0 | 19 | - | 6 | 1irez8i |"#;
        let r = req(Format::Bitbucket.parse(o));
        assert_eq!(r.user, Some("carol"));
        assert_eq!(r.path, "/projects/P/repos/r");
        assert_eq!(r.ts_ms % 1000, 431);
        let i = o.replace("o@PZ", "i@PZ");
        assert_eq!(Format::Bitbucket.parse(&i), Line::Skip);
        let ssh = r#"172.24.36.105 | ssh | o*N65BDNx354x326903x0 | dave | 2015-03-02 05:54:25,425 | SSH - git-upload-pack '/foo/bar.git' | - | 0 | 123 | 1024 | cache:miss | 1cl58rd |"#;
        assert_eq!(Format::Bitbucket.parse(ssh), Line::Skip);
    }

    #[test]
    fn anonymous_users_have_no_name() {
        let l = r#"10.0.0.1 555x1x1 - [25/Mar/2024:09:15:02 +0100] "GET /login.jsp HTTP/1.1" 200 1 2 "-" "-" "-""#;
        assert_eq!(req(Format::Jira.parse(l)).user, None);
    }

    #[test]
    fn garbage_is_malformed_for_every_format() {
        for f in [
            Format::Jira,
            Format::Confluence,
            Format::Bitbucket,
            Format::Iumgate,
        ] {
            assert_eq!(f.parse("hello world"), Line::Malformed, "{}", f.name());
            assert_eq!(f.parse(""), Line::Malformed, "{}", f.name());
        }
    }

    #[test]
    fn iumgate_lines_with_escapes_are_read_unescaped() {
        let l = r#"{"ts":"2024-03-25T09:15:02.123+01:00","method":"GET","path":"/browse/X-1","user":"ACME\\bob \"b\""}"#;
        assert_eq!(Format::Iumgate.parse(l), Line::Escaped);
        let o = iumgate_owned(l).unwrap();
        let r = o.record().unwrap();
        assert_eq!(r.user, Some("ACME\\bob \"b\""));
        assert_eq!((r.method, r.path), ("GET", "/browse/X-1"));
        assert_eq!(r.offset_s, 3600);
        // Without escapes: borrowed, as before.
        let plain = r#"{"ts":1711354502000,"method":"GET","path":"/x?q=1","user":null}"#;
        let r = req(Format::Iumgate.parse(plain));
        assert_eq!((r.user, r.path), (None, "/x"));
        assert_eq!(
            Format::Iumgate.parse(r#"{"ts":1,"method":"GET","path":"\u0041"}"#),
            Line::Malformed
        );
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(parse_any_time("1711354502"), Some((1_711_354_502_000, 0)));
        assert_eq!(
            parse_any_time("2024-03-25T09:15:02.5+01:00"),
            Some((1_711_354_502_500, 3600))
        );
        assert_eq!(format_local(1_711_354_502_000), "2024-03-25 08:15");
    }

    #[test]
    fn custom_pattern_needs_its_groups() {
        assert!(CustomPattern::new(r"(?P<time>\S+) (?P<user>\S+)").is_err());
        let p =
            CustomPattern::new(r"^(?P<time>\S+) (?P<user>\S+) (?P<method>[A-Z]+) (?P<path>\S+)$")
                .unwrap();
        let f = Format::Custom(Arc::new(p));
        let r = req(f.parse("2024-03-25T09:15:02Z eve GET /browse/X-1"));
        assert_eq!((r.user, r.path), (Some("eve"), "/browse/X-1"));
    }
}
