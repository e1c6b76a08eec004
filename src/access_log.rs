//! The access log: one line per request, in iumgate's JSON lines (the shape
//! `iumgate analyze` reads) or Apache's combined format.
//!
//! Off the request path: a request hands a small [`Entry`] (no text made,
//! nothing formatted) to a bounded channel with `try_send`; a full channel
//! drops the entry and counts it (`iumgate_access_log_dropped_total`), so a
//! slow disk never holds a request up. One writer thread formats the lines
//! into a buffer, flushes it at least once a second, and reopens the file on
//! SIGHUP ([`AccessLog::reopen`]) and by itself when the file was rotated
//! away: logrotate's `create` (the path names another file, or none) and
//! `copytruncate` (the file shrank; lines go on at its new end, as the file
//! is opened for appending).

use crate::clock::Clock;
use crate::config::{AccessLogConfig, AccessLogFormat};
use crate::user::UserId;
use http::{HeaderValue, Method, Uri, Version};
use prometheus::IntCounter;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// The gate's decision for a request, as the access log and the metric
/// `iumgate_access_log_lines_total{decision}` name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded as it came: a known user who may pass (unmanaged, power
    /// user, a casual user holding a seat), or any request without the gate.
    #[default]
    Pass,
    /// Forwarded without a known user (the login page, static resources, an
    /// anonymous visitor).
    Anonymous,
    /// The user got a free seat for this request (a login's seat lent for the
    /// exchange included).
    Admitted,
    /// The user got a seat by taking it from the longest-idle holder.
    EvictedFor,
    /// No seat: sent to the waiting room (queued).
    Waited,
    /// No seat and not queued: an API or git client told to retry, or the
    /// directory failed (nothing granted).
    Refused,
    /// iumgate's own pages (`/iumgate/…`: the waiting room, sign-in callbacks).
    Own,
}

impl Verdict {
    pub const ALL: [Verdict; 7] = [
        Verdict::Pass,
        Verdict::Anonymous,
        Verdict::Admitted,
        Verdict::EvictedFor,
        Verdict::Waited,
        Verdict::Refused,
        Verdict::Own,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Anonymous => "anonymous",
            Verdict::Admitted => "admitted",
            Verdict::EvictedFor => "evicted-for",
            Verdict::Waited => "waited",
            Verdict::Refused => "refused",
            Verdict::Own => "own",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the hooks tell the access log about a request: who it was for (when
/// known) and what the gate decided. An answer the hooks made themselves
/// (a waiting page) carries its own in its extensions, which wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Note {
    pub user: Option<UserId>,
    pub verdict: Verdict,
}

impl Note {
    pub fn new(user: Option<UserId>, verdict: Verdict) -> Note {
        Note { user, verdict }
    }

    /// This note (an answer's own) over what was known before: its
    /// decision, and its user unless it names none.
    pub fn over(self, before: Note) -> Note {
        Note {
            user: self.user.or(before.user),
            verdict: self.verdict,
        }
    }
}

/// One request, as the writer needs it: values shared with the request
/// (the target's bytes, the user's name), never text made for the log.
#[derive(Debug)]
pub struct Entry {
    /// When the request came (ms since the epoch, the app's clock).
    pub at_ms: u64,
    /// The client: the peer, or behind trusted proxies the address they name.
    pub client: IpAddr,
    pub method: Method,
    /// The target as the client sent it.
    pub target: Uri,
    pub version: Version,
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
    /// Until the upstream's answer head (None: not forwarded).
    pub upstream: Option<Duration>,
    /// Until the answer's last byte went out.
    pub total: Duration,
    pub note: Note,
    /// `Referer` and `User-Agent` (only kept for the combined format).
    pub referer: Option<HeaderValue>,
    pub agent: Option<HeaderValue>,
}

/// The writer's counters, made by the metrics (one line counter per
/// [`Verdict::ALL`], in that order).
#[derive(Clone, Debug)]
pub struct Counters {
    pub lines: Vec<IntCounter>,
    pub dropped: IntCounter,
    pub errors: IntCounter,
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
#[error("access_log.path {}: cannot open for appending", path.display())]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The handle the proxy logs through (cheap to share).
pub struct AccessLog {
    tx: SyncSender<Entry>,
    clock: Arc<dyn Clock>,
    /// Keep `Referer` and `User-Agent` (the combined format prints them).
    pub wants_headers: bool,
    dropped: IntCounter,
    reopen: Arc<AtomicBool>,
    thread: crate::line_writer::Thread,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

/// Where lines go.
enum Sink {
    Stdout(io::BufWriter<io::Stdout>),
    File(OpenFile),
}

/// The writer thread's loop is [`crate::line_writer::drive`]: once a tick
/// it looks for a rotation, at every wake-up for a SIGHUP.
impl crate::line_writer::Sink<Entry> for Writer {
    fn write(&mut self, e: &Entry) {
        Writer::write(self, e);
    }
    fn flush(&mut self) {
        Writer::flush(self);
    }
    fn tick(&mut self) {
        self.check_rotation();
    }
    fn poll(&mut self) -> bool {
        if !self.reopen.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.flush();
        self.reopen_file("SIGHUP");
        true
    }
    fn finish(&mut self) {
        self.flush();
    }
}

struct OpenFile {
    path: PathBuf,
    w: io::BufWriter<std::fs::File>,
    /// (device, inode) of the open file: another at the path means it was
    /// rotated away (`create`).
    id: (u64, u64),
    /// Its length after our last flush: shorter later means it was
    /// truncated (`copytruncate`).
    len: u64,
}

const BUF: usize = 64 * 1024;

fn open_file(path: &Path) -> io::Result<OpenFile> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    let m = f.metadata()?;
    Ok(OpenFile {
        path: path.to_owned(),
        id: (m.dev(), m.ino()),
        len: m.len(),
        w: io::BufWriter::with_capacity(BUF, f),
    })
}

impl AccessLog {
    /// Opens the log (a file that cannot be opened is an error now, not a
    /// silent loss later) and starts its writer thread. None when
    /// `[access_log] path` is not set.
    pub fn start(
        cfg: &AccessLogConfig,
        clock: Arc<dyn Clock>,
        counters: Counters,
    ) -> Result<Option<Arc<AccessLog>>, OpenError> {
        let Some(path) = &cfg.path else {
            return Ok(None);
        };
        let sink = if path.as_os_str() == "-" {
            Sink::Stdout(io::BufWriter::with_capacity(BUF, io::stdout()))
        } else {
            Sink::File(open_file(path).map_err(|source| OpenError {
                path: path.clone(),
                source,
            })?)
        };
        let (tx, rx) = mpsc::sync_channel(cfg.buffer.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let w = Writer {
            sink,
            format: cfg.format,
            include_query: cfg.include_query,
            tz: jiff::tz::TimeZone::system(),
            counters: counters.clone(),
            reopen: reopen.clone(),
            line: String::with_capacity(512),
            failing: false,
        };
        let thread =
            crate::line_writer::Thread::spawn("iumgate-access-log", rx, w).map_err(|source| {
                OpenError {
                    path: path.clone(),
                    source,
                }
            })?;
        Ok(Some(Arc::new(AccessLog {
            tx,
            clock,
            wants_headers: cfg.format == AccessLogFormat::Combined,
            dropped: counters.dropped,
            reopen,
            thread,
        })))
    }

    /// The time a request's entry is stamped with.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Hands an entry to the writer; never waits. A full buffer drops it
    /// (counted).
    pub fn log(&self, e: Entry) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// SIGHUP: the writer reopens the file within a second (flushing what it
    /// holds to the old one first).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Writes out what is queued and stops the writer (at the end of a
    /// drain); waits for it at most `limit`.
    pub fn close(&self, limit: Duration) {
        self.thread.close(limit);
    }
}

struct Writer {
    sink: Sink,
    format: AccessLogFormat,
    include_query: bool,
    tz: jiff::tz::TimeZone,
    counters: Counters,
    reopen: Arc<AtomicBool>,
    line: String,
    /// Writing failed: said once in the log until a write succeeds again.
    failing: bool,
}

impl Writer {
    fn write(&mut self, e: &Entry) {
        self.line.clear();
        match self.format {
            AccessLogFormat::Json => format_json(&mut self.line, e, self.include_query, &self.tz),
            AccessLogFormat::Combined => {
                format_combined(&mut self.line, e, self.include_query, &self.tz)
            }
        }
        self.line.push('\n');
        let r = match &mut self.sink {
            Sink::Stdout(w) => w.write_all(self.line.as_bytes()),
            Sink::File(f) => f.w.write_all(self.line.as_bytes()),
        };
        match r {
            Ok(()) => {
                if let Some(c) = self.counters.lines.get(e.note.verdict.index()) {
                    c.inc();
                }
            }
            Err(err) => self.failed(&err),
        }
    }

    fn failed(&mut self, err: &io::Error) {
        self.counters.errors.inc();
        if !self.failing {
            self.failing = true;
            tracing::warn!(error = %err, "access log: cannot write (lines are lost until it works again)");
        }
    }

    fn flush(&mut self) {
        let r = match &mut self.sink {
            Sink::Stdout(w) => w.flush(),
            Sink::File(f) => f.w.flush().and_then(|()| {
                f.len = f.w.get_ref().metadata()?.len();
                Ok(())
            }),
        };
        match r {
            Ok(()) => self.failing = false,
            Err(err) => self.failed(&err),
        }
    }

    /// logrotate `create`: the path is another file or none (reopen, which
    /// creates it); `copytruncate`: the file is shorter than we left it
    /// (lines go on at its new end; said in the log).
    fn check_rotation(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let Sink::File(f) = &mut self.sink else {
            return;
        };
        let moved = match std::fs::metadata(&f.path) {
            Ok(m) => (m.dev(), m.ino()) != f.id,
            Err(_) => true,
        };
        if moved {
            self.reopen_file("rotated");
            return;
        }
        if let Ok(m) = f.w.get_ref().metadata() {
            if m.len() < f.len {
                tracing::info!(path = %f.path.display(), "access log truncated (copytruncate); writing on at its start");
                self.reopen_file("truncated");
            }
        }
    }

    fn reopen_file(&mut self, why: &str) {
        let Sink::File(f) = &mut self.sink else {
            return;
        };
        let _ = f.w.flush();
        match open_file(&f.path) {
            Ok(new) => {
                tracing::info!(path = %new.path.display(), reason = why, "access log reopened");
                *f = new;
            }
            Err(err) => {
                let err = io::Error::new(err.kind(), format!("{}: {err}", f.path.display()));
                self.failed(&err);
            }
        }
    }
}

/// A request's trace through the proxy, for its access log line: filled
/// only while an access log is on (`on`), so the request path does nothing
/// more without one.
#[derive(Debug, Default)]
pub struct Trace {
    pub on: bool,
    pub note: Note,
    pub upstream: Option<Duration>,
}

impl Trace {
    pub fn new(on: bool) -> Trace {
        Trace {
            on,
            ..Trace::default()
        }
    }
}

/// An answer's body on the hyper lane, counting the bytes that go out; the
/// entry is logged when the body ends or is dropped (the client left).
pub struct Logged {
    inner: crate::wire::body::Body,
    entry: Option<Entry>,
    log: Arc<AccessLog>,
    start: std::time::Instant,
}

impl Logged {
    pub fn new(
        inner: crate::wire::body::Body,
        entry: Entry,
        log: Arc<AccessLog>,
        start: std::time::Instant,
    ) -> Logged {
        Logged {
            inner,
            entry: Some(entry),
            log,
            start,
        }
    }

    fn finish(&mut self) {
        if let Some(mut e) = self.entry.take() {
            e.total = self.start.elapsed();
            self.log.log(e);
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

impl http_body::Body for Logged {
    type Data = bytes::Bytes;
    type Error = crate::wire::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            std::task::Poll::Ready(Some(Ok(f))) => {
                let n = f.data_ref().map_or(0, |d| d.len() as u64);
                if let Some(e) = self.entry.as_mut() {
                    e.bytes += n;
                }
            }
            std::task::Poll::Ready(None) => self.finish(),
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `2026-03-25T09:15:02.123+01:00` in `tz`.
fn write_iso(out: &mut String, at_ms: u64, tz: &jiff::tz::TimeZone) {
    let Ok(ts) = jiff::Timestamp::from_millisecond(at_ms as i64) else {
        out.push_str("1970-01-01T00:00:00.000Z");
        return;
    };
    let z = ts.to_zoned_datetime(tz.clone());
    let d = z.datetime();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.subsec_nanosecond() / 1_000_000
    );
    let off = z.offset().seconds();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    let _ = write!(out, "{sign}{:02}:{:02}", off / 3600, off % 3600 / 60);
}

/// `25/Mar/2026:09:15:02 +0100` (Apache's `%t` without the brackets).
fn write_clf_time(out: &mut String, at_ms: u64, tz: &jiff::tz::TimeZone) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Ok(ts) = jiff::Timestamp::from_millisecond(at_ms as i64) else {
        out.push_str("01/Jan/1970:00:00:00 +0000");
        return;
    };
    let z = ts.to_zoned_datetime(tz.clone());
    let d = z.datetime();
    let month = MONTHS
        .get(usize::try_from(d.month() - 1).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    let off = z.offset().seconds();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    let _ = write!(
        out,
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        d.day(),
        d.year(),
        d.hour(),
        d.minute(),
        d.second(),
        off / 3600,
        off % 3600 / 60
    );
}

/// The path as logged: the query only when asked for, and never on
/// iumgate's own pages. `"` and `\` (which a lenient client may send) are
/// percent-encoded, so the path never needs a JSON escape.
fn write_path(out: &mut String, target: &Uri, include_query: bool) {
    let path = target.path();
    let path = if path.is_empty() { "/" } else { path };
    let own = path.starts_with(crate::proxy::OWN_PREFIX);
    let query = target.query().filter(|_| include_query && !own);
    encode_path(out, path);
    if let Some(q) = query {
        out.push('?');
        encode_path(out, q);
    }
}

fn encode_path(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\\' => out.push_str("%5C"),
            c if c.is_control() || c == ' ' => {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

/// A JSON string (quotes included).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// `{"ts":…,"client":…,"method":…,"path":…,"status":…,"bytes":…,
/// "upstream_ms":…,"total_ms":…,"user":…,"pool":"default","decision":…}`:
/// `ts`, `user`, `method` and `path` are what `iumgate analyze` reads.
pub fn format_json(out: &mut String, e: &Entry, include_query: bool, tz: &jiff::tz::TimeZone) {
    out.push_str("{\"ts\":\"");
    write_iso(out, e.at_ms, tz);
    let _ = write!(out, "\",\"client\":\"{}\",\"method\":", e.client);
    json_str(out, e.method.as_str());
    out.push_str(",\"path\":\"");
    write_path(out, &e.target, include_query);
    let _ = write!(out, "\",\"status\":{},\"bytes\":{}", e.status, e.bytes);
    match e.upstream {
        Some(d) => {
            let _ = write!(out, ",\"upstream_ms\":{}", ms(d));
        }
        None => out.push_str(",\"upstream_ms\":null"),
    }
    let _ = write!(out, ",\"total_ms\":{},\"user\":", ms(e.total));
    match &e.note.user {
        Some(u) => json_str(out, u.as_str()),
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"pool\":\"default\",\"decision\":\"{}\"}}",
        e.note.verdict.label()
    );
}

/// Apache's combined format, then iumgate's fields:
/// `client - user [time] "METHOD path HTTP/1.1" status bytes "referer" "agent" upstream_s total_s decision pool`
/// (`-` for what is not known; bytes `-` for none, as Apache's `%b`).
pub fn format_combined(out: &mut String, e: &Entry, include_query: bool, tz: &jiff::tz::TimeZone) {
    let _ = write!(out, "{} - ", e.client);
    match &e.note.user {
        // No spaces or quotes inside a field: percent-encoded.
        Some(u) => push_token(out, u.as_str()),
        None => out.push('-'),
    }
    out.push_str(" [");
    write_clf_time(out, e.at_ms, tz);
    let _ = write!(out, "] \"{} ", e.method);
    write_path(out, &e.target, include_query);
    let version = match e.version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        Version::HTTP_09 => "HTTP/0.9",
        _ => "HTTP/1.1",
    };
    let _ = write!(out, " {version}\" {} ", e.status);
    if e.bytes == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{}", e.bytes);
    }
    for h in [&e.referer, &e.agent] {
        out.push_str(" \"");
        match h.as_ref().and_then(|v| v.to_str().ok()) {
            Some(v) => {
                for c in v.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
            }
            None => out.push('-'),
        }
        out.push('"');
    }
    match e.upstream {
        Some(d) => {
            let _ = write!(out, " {:.3}", d.as_secs_f64());
        }
        None => out.push_str(" -"),
    }
    let _ = write!(
        out,
        " {:.3} {} default",
        e.total.as_secs_f64(),
        e.note.verdict.label()
    );
}

fn push_token(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ' ' | '"' | '\\' => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "%{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The client's address: the peer, or when the peer is a trusted proxy the
/// last address in its `X-Forwarded-For` chain that is not a trusted proxy
/// itself (all trusted: the first; one that does not parse: the peer).
pub fn client_addr(
    peer: IpAddr,
    trusted: bool,
    proxies: &[ipnet::IpNet],
    headers: &impl crate::wire::HeaderView,
) -> IpAddr {
    static XFF: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
    let peer = peer.to_canonical();
    if !trusted {
        return peer;
    }
    let mut first: Option<IpAddr> = None;
    // The last entry that is not a trusted proxy, or Err for one that does
    // not parse.
    let mut last_untrusted: Option<Result<IpAddr, ()>> = None;
    for value in headers.values(&XFF) {
        let Ok(value) = std::str::from_utf8(value) else {
            last_untrusted = Some(Err(()));
            continue;
        };
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match item.parse::<IpAddr>() {
                Ok(ip) => {
                    let ip = ip.to_canonical();
                    first.get_or_insert(ip);
                    if !proxies.iter().any(|n| n.contains(&ip)) {
                        last_untrusted = Some(Ok(ip));
                    }
                }
                Err(_) => last_untrusted = Some(Err(())),
            }
        }
    }
    match last_untrusted {
        Some(Ok(ip)) => ip,
        Some(Err(())) => peer,
        None => first.unwrap_or(peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            at_ms: 1_774_430_102_123,
            client: "10.0.0.5".parse().unwrap(),
            method: Method::GET,
            target: Uri::from_static("/browse/DEMO-1?filter=a%20b"),
            version: Version::HTTP_11,
            status: 200,
            bytes: 1234,
            upstream: Some(Duration::from_micros(12_345)),
            total: Duration::from_micros(13_001),
            note: Note::new(Some(UserId::new("casual01")), Verdict::EvictedFor),
            referer: None,
            agent: Some(HeaderValue::from_static("Mozilla/5.0 \"x\"")),
        }
    }

    #[test]
    fn a_json_line_has_every_field_and_reads_as_iumgate_json() {
        let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(1));
        let mut s = String::new();
        format_json(&mut s, &entry(), false, &tz);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["ts"], "2026-03-25T10:15:02.123+01:00", "{s}");
        assert_eq!(v["client"], "10.0.0.5");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/browse/DEMO-1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["upstream_ms"], 12.345);
        assert_eq!(v["total_ms"], 13.001);
        assert_eq!(v["user"], "casual01");
        assert_eq!(v["pool"], "default");
        assert_eq!(v["decision"], "evicted-for");
        // The analysis reads it: its time (with the offset), user and path.
        let parse = iumgate_analyze::parse::Format::Iumgate;
        match parse.parse(&s) {
            iumgate_analyze::parse::Line::Request(r) => {
                assert_eq!(r.ts_ms, 1_774_430_102_123);
                assert_eq!(r.offset_s, 3600);
                assert_eq!(r.user, Some("casual01"));
                assert_eq!(r.path, "/browse/DEMO-1");
            }
            other => panic!("{other:?}: {s}"),
        }
        s.clear();
        format_json(&mut s, &entry(), true, &tz);
        assert!(
            s.contains("\"path\":\"/browse/DEMO-1?filter=a%20b\""),
            "{s}"
        );
    }

    #[test]
    fn the_combined_line_is_apaches_with_iumgates_fields_after() {
        let mut s = String::new();
        format_combined(&mut s, &entry(), false, &jiff::tz::TimeZone::UTC);
        assert_eq!(
            s,
            "10.0.0.5 - casual01 [25/Mar/2026:09:15:02 +0000] \"GET /browse/DEMO-1 HTTP/1.1\" 200 1234 \"-\" \"Mozilla/5.0 \\\"x\\\"\" 0.012 0.013 evicted-for default"
        );
    }

    #[test]
    fn own_pages_never_log_their_query_and_odd_bytes_are_encoded() {
        let mut s = String::new();
        write_path(&mut s, &Uri::from_static("/iumgate/wait?to=/x"), true);
        assert_eq!(s, "/iumgate/wait");
        s.clear();
        let odd = Uri::from_maybe_shared(bytes::Bytes::from_static(b"/a\"b\\c")).unwrap();
        write_path(&mut s, &odd, false);
        assert_eq!(s, "/a%22b%5Cc");
    }

    #[test]
    fn the_client_behind_trusted_proxies_is_the_last_untrusted_hop() {
        let proxies: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            m
        };
        let c = |t, m: &http::HeaderMap| client_addr(peer, t, &proxies, m).to_string();
        assert_eq!(c(true, &h("1.2.3.4, 10.0.0.7")), "1.2.3.4");
        assert_eq!(c(true, &h("6.6.6.6, 1.2.3.4, 10.0.0.7")), "1.2.3.4");
        assert_eq!(c(true, &h("10.0.0.9, 10.0.0.7")), "10.0.0.9");
        assert_eq!(c(true, &h("garbage, 10.0.0.7")), "10.0.0.1");
        assert_eq!(c(true, &http::HeaderMap::new()), "10.0.0.1");
        // An untrusted peer's header names nobody.
        assert_eq!(c(false, &h("1.2.3.4")), "10.0.0.1");
    }
}

#[cfg(test)]
mod start_tests {
    use super::*;

    fn counters() -> Counters {
        let c = || IntCounter::new("x_total", "x").unwrap();
        Counters {
            lines: Verdict::ALL.iter().map(|_| c()).collect(),
            dropped: c(),
            errors: c(),
        }
    }

    /// A file that cannot be opened stops the start, naming the key and the
    /// file, with the IO error as the cause; no path: no log.
    #[test]
    fn a_path_that_cannot_be_opened_is_a_start_error_naming_it() {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let off = AccessLogConfig::default();
        assert!(AccessLog::start(&off, clock.clone(), counters())
            .unwrap()
            .is_none());
        let cfg = AccessLogConfig {
            path: Some("/nonexistent-iumgate-dir/access.log".into()),
            ..AccessLogConfig::default()
        };
        let Err(e) = AccessLog::start(&cfg, clock, counters()) else {
            panic!("opened a file in a directory that does not exist")
        };
        let chain = crate::proxy::error_chain(&e);
        assert!(
            chain.starts_with(
                "access_log.path /nonexistent-iumgate-dir/access.log: cannot open for appending: "
            ),
            "{chain}"
        );
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
    }
}

#[cfg(test)]
mod size_tests {
    /// What a waiting line costs (the channel holds up to `buffer` of them).
    #[test]
    fn an_entry_stays_small() {
        let n = std::mem::size_of::<super::Entry>();
        assert!(n <= 320, "{n} bytes");
        eprintln!("Entry: {n} bytes");
    }
}
