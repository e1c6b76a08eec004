//! The trail's writer: the handle the gate logs through (a bounded channel,
//! never waited on) and the thread that writes, flushes, rotates and prunes.

use super::{day_name, day_of, Event, Line};
use crate::alerts::{AlertKey, Alerts};
use crate::clock::Clock;
use crate::config::AuditConfig;
use prometheus::IntCounter;
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// The writer's counters, made by the metrics (one event counter per
/// [`Kind::ALL`], in that order).
#[derive(Clone, Debug)]
pub struct Counters {
    pub events: Vec<IntCounter>,
    pub dropped: IntCounter,
    pub errors: IntCounter,
}

/// Why the trail could not start.
#[derive(Debug, thiserror::Error)]
#[error("audit.path {}: cannot open for appending", path.display())]
pub struct OpenError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The handle the gate writes the trail through (cheap to share).
pub struct Audit {
    tx: SyncSender<Event>,
    path: PathBuf,
    node: String,
    dropped: IntCounter,
    /// `audit_dropping` is raised: the first drop of an episode raises it
    /// (once, even while the writer is stuck); the writer resolves it.
    alerting: Arc<AtomicBool>,
    alerts: Arc<Alerts>,
    clock: Arc<dyn Clock>,
    thread: crate::line_writer::Thread,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const BUF: usize = 64 * 1024;
/// An `audit_dropping` alert resolves after this long without a drop.
const QUIET_MS: u64 = 5 * 60 * 1000;

/// The file a replica writes: `path` itself, or in a cluster
/// `audit.<node>.jsonl` beside it, so replicas sharing a volume never
/// write one file.
pub fn file_for(path: &Path, node: Option<&str>) -> PathBuf {
    let Some(node) = node else {
        return path.to_owned();
    };
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audit.jsonl".into());
    let name = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{node}.{ext}"),
        _ => format!("{name}.{node}"),
    };
    path.with_file_name(name)
}

impl Audit {
    /// Opens the trail (a file that cannot be opened is an error now, not a
    /// silent loss later), prunes old rotations and starts the writer
    /// thread. None when `[audit] path` is not set. `node` goes into every
    /// line; in a cluster (`node_in_name`) into the file's name too.
    pub fn start(
        cfg: &AuditConfig,
        node: &str,
        node_in_name: bool,
        clock: Arc<dyn Clock>,
        alerts: Arc<Alerts>,
        counters: Counters,
    ) -> Result<Option<Arc<Audit>>, OpenError> {
        let Some(path) = &cfg.path else {
            return Ok(None);
        };
        let path = file_for(path, node_in_name.then_some(node));
        let fail = |source| OpenError {
            path: path.clone(),
            source,
        };
        let file = Current::open(&path, clock.now_ms()).map_err(fail)?;
        let (tx, rx) = mpsc::sync_channel(cfg.buffer.max(1));
        let alerting = Arc::new(AtomicBool::new(false));
        let mut w = Writer {
            path: path.clone(),
            file: Some(file),
            max_bytes: cfg.max_bytes,
            retain_days: cfg.retain,
            compress: cfg.compress,
            node: node.to_string(),
            clock: clock.clone(),
            alerts: alerts.clone(),
            counters: counters.clone(),
            line: Vec::with_capacity(512),
            failing: false,
            alerting: alerting.clone(),
            pruned_day: 0,
            dropped_seen: counters.dropped.get(),
            last_drop_ms: 0,
        };
        w.prune_old();
        let thread = crate::line_writer::Thread::spawn("iumgate-audit", rx, w).map_err(fail)?;
        Ok(Some(Arc::new(Audit {
            tx,
            path,
            node: node.to_string(),
            dropped: counters.dropped,
            alerting,
            alerts,
            clock,
            thread,
        })))
    }

    /// The file this process writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node its lines name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Hands an event to the writer; never waits. A full buffer drops it:
    /// counted, and the first drop of an episode raises `audit_dropping`.
    pub fn log(&self, e: Event) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
                if !self.alerting.swap(true, Ordering::AcqRel) {
                    self.alerts.raise(
                        AlertKey::AuditDropping.as_str(),
                        "The audit trail is dropping seat events: its writer cannot keep up.",
                        "Check the disk of [audit] path (full, slow, stuck?), or raise [audit] buffer.",
                        self.clock.now_ms(),
                    );
                }
            }
        }
    }

    /// Writes out what is queued, flushes and fsyncs, and stops the writer
    /// (at the end of a drain); waits for it at most `limit`.
    pub fn close(&self, limit: Duration) {
        self.thread.close(limit);
    }
}

/// The open file.
struct Current {
    w: io::BufWriter<std::fs::File>,
    len: u64,
    /// The UTC day of its lines (None: empty yet).
    day: Option<u64>,
}

impl Current {
    fn open(path: &Path, now_ms: u64) -> io::Result<Current> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        // Made by someone else, or under an older umask: the service user's only.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let len = f.metadata()?.len();
        let day = (len > 0).then(|| first_day(path).unwrap_or(day_of(now_ms)));
        Ok(Current {
            w: io::BufWriter::with_capacity(BUF, f),
            len,
            day,
        })
    }
}

/// The day of a file's first line (a file found at start).
fn first_day(path: &Path) -> Option<u64> {
    let f = std::fs::File::open(path).ok()?;
    let mut first = String::new();
    io::BufReader::new(f)
        .take(64 * 1024)
        .read_line(&mut first)
        .ok()?;
    let line: Line = serde_json::from_str(first.trim_end()).ok()?;
    u64::try_from(line.at_ms()?).ok().map(day_of)
}

struct Writer {
    path: PathBuf,
    /// None only while a rotation failed to open the next file.
    file: Option<Current>,
    max_bytes: u64,
    retain_days: u32,
    compress: bool,
    node: String,
    clock: Arc<dyn Clock>,
    alerts: Arc<Alerts>,
    counters: Counters,
    line: Vec<u8>,
    /// Writing failed: said once in the log until a write succeeds again.
    failing: bool,
    alerting: Arc<AtomicBool>,
    /// The day rotations were last pruned.
    pruned_day: u64,
    dropped_seen: u64,
    /// When the writer last saw the drop count move.
    last_drop_ms: u64,
}

impl Writer {
    /// Once a second: a new day rotates yesterday's file even when nothing
    /// happens today; five quiet minutes after the last drop resolve
    /// `audit_dropping`.
    fn tick(&mut self) {
        let now = self.clock.now_ms();
        let stale = self
            .file
            .as_ref()
            .is_some_and(|f| f.len > 0 && f.day.is_some_and(|d| d != day_of(now)));
        if stale || self.file.is_none() {
            self.rotate();
        }
        // A new day: rotations may have passed `retain`, events or not.
        if day_of(now) != self.pruned_day {
            self.prune_old();
        }
        let dropped = self.counters.dropped.get();
        if dropped > self.dropped_seen {
            self.dropped_seen = dropped;
            self.last_drop_ms = now;
        } else if self.alerting.load(Ordering::Acquire)
            && now.saturating_sub(self.last_drop_ms) >= QUIET_MS
        {
            self.alerts.resolve(AlertKey::AuditDropping.as_str());
            self.alerting.store(false, Ordering::Release);
        }
    }

    fn write(&mut self, e: &Event) {
        let day = day_of(e.at_ms);
        self.line.clear();
        if let Err(err) = serde_json::to_writer(&mut self.line, &Line::of(e, &self.node)) {
            self.failed(&io::Error::other(err));
            return;
        }
        self.line.push(b'\n');
        let n = self.line.len() as u64;
        let rotate = match &self.file {
            Some(f) => f.len > 0 && (f.day.is_some_and(|d| d != day) || f.len + n > self.max_bytes),
            None => true,
        };
        if rotate {
            self.rotate();
        } else if day != self.pruned_day {
            // The first event of a day: rotations may have passed `retain`.
            self.prune_old();
        }
        let Some(f) = self.file.as_mut() else {
            self.counters.errors.inc();
            return;
        };
        match f.w.write_all(&self.line) {
            Ok(()) => {
                f.len += n;
                f.day.get_or_insert(day);
                if let Some(c) = self.counters.events.get(e.kind.index()) {
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
            tracing::warn!(path = %self.path.display(), error = %err, "audit trail: cannot write (events are lost until it works again)");
        }
    }

    fn flush(&mut self) {
        let r = match self.file.as_mut() {
            Some(f) => f.w.flush(),
            None => Ok(()),
        };
        match r {
            Ok(()) => self.failing = false,
            Err(err) => self.failed(&err),
        }
    }

    /// Flush and fsync: what was handed over is on the disk.
    fn sync(&mut self) {
        let r = match self.file.as_mut() {
            Some(f) => f.w.flush().and_then(|()| f.w.get_ref().sync_all()),
            None => Ok(()),
        };
        if let Err(err) = r {
            self.failed(&err);
        }
    }

    /// The file (synced) goes to `<name>.<day>.<n>`, a new one is opened at
    /// the path at once, then the rotated one is gzipped (when `compress`:
    /// written under a hidden name, synced, renamed to `….gz`, the plain one
    /// removed — a reader sees one complete copy or the other), and
    /// rotations older than `retain` days go.
    fn rotate(&mut self) {
        let now = self.clock.now_ms();
        let mut moved = None;
        if let Some(f) = &self.file {
            if f.len > 0 {
                let day = f.day.unwrap_or(day_of(now));
                self.sync();
                self.file = None;
                match self.move_aside(day) {
                    Ok(to) => moved = Some(to),
                    Err(err) => self.failed(&err),
                }
            }
        }
        if self.file.is_none() {
            match Current::open(&self.path, now) {
                Ok(f) => self.file = Some(f),
                Err(err) => {
                    let err = io::Error::new(err.kind(), format!("{}: {err}", self.path.display()));
                    self.failed(&err);
                }
            }
        }
        if let Some(to) = moved {
            let done = if self.compress {
                match gzip(&to).and_then(|gz| std::fs::remove_file(&to).map(|()| gz)) {
                    Ok(gz) => gz,
                    Err(err) => {
                        // The plain rotation stays: nothing is lost.
                        self.failed(&err);
                        to
                    }
                }
            } else {
                to
            };
            // The renames themselves reach the disk.
            if let Ok(d) = std::fs::File::open(self.path.parent().unwrap_or(Path::new("."))) {
                let _ = d.sync_all();
            }
            tracing::info!(path = %self.path.display(), to = %done.display(), "audit trail rotated");
        }
        self.prune_old();
    }

    /// Renames the (synced) file to the first free `<name>.<day>.<n>`.
    fn move_aside(&self, day: u64) -> io::Result<PathBuf> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = file_name(&self.path);
        let day = day_name(day);
        for n in 1..100_000u32 {
            let t = dir.join(format!("{name}.{day}.{n}"));
            let gz = dir.join(format!("{name}.{day}.{n}.gz"));
            if !t.exists() && !gz.exists() {
                std::fs::rename(&self.path, &t)?;
                return Ok(t);
            }
        }
        Err(io::Error::other("no free rotation name"))
    }

    /// Deletes rotations whose day is more than `retain` days before today.
    fn prune_old(&mut self) {
        let today = day_of(self.clock.now_ms());
        self.pruned_day = today;
        if self.retain_days == 0 {
            return;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let prefix = format!("{}.", file_name(&self.path));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten().take(100_000) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(day) = name.strip_prefix(&prefix).and_then(parse_day) else {
                continue;
            };
            if today.saturating_sub(day) > u64::from(self.retain_days) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), "audit trail: rotation past [audit] retain deleted")
                    }
                    Err(e) => {
                        tracing::warn!(file = %entry.path().display(), error = %e, "audit trail: cannot delete an old rotation")
                    }
                }
            }
        }
    }
}

impl crate::line_writer::Sink<Event> for Writer {
    fn write(&mut self, e: &Event) {
        Writer::write(self, e);
    }
    fn flush(&mut self) {
        Writer::flush(self);
    }
    fn tick(&mut self) {
        Writer::tick(self);
    }
    /// Flushed and fsynced: what was handed over is on the disk.
    fn finish(&mut self) {
        self.sync();
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The day of a rotation's name tail (`2026-11-03.1.gz`).
pub(crate) fn parse_day(tail: &str) -> Option<u64> {
    let date: jiff::civil::Date = tail.get(..10)?.parse().ok()?;
    let ts = date
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    u64::try_from(ts.as_millisecond()).ok().map(day_of)
}

/// `file` → `file.gz` (mode 0600, synced; written as a hidden `.…gz.part`
/// first, which no reader takes for a trail file).
fn gzip(file: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = file_name(file);
    let gz_path = file.with_file_name(format!("{name}.gz"));
    let part = file.with_file_name(format!(".{name}.gz.part"));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&part)?;
    let mut enc =
        flate2::write::GzEncoder::new(io::BufWriter::new(out), flate2::Compression::default());
    io::copy(&mut std::fs::File::open(file)?, &mut enc)?;
    let out = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
    out.sync_all()?;
    std::fs::rename(&part, &gz_path)?;
    Ok(gz_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_in_a_cluster_writes_a_file_named_after_its_node() {
        let p = Path::new("/var/lib/iumgate/audit.jsonl");
        assert_eq!(file_for(p, None), p);
        assert_eq!(
            file_for(p, Some("iumgate-7f9c/1")),
            Path::new("/var/lib/iumgate/audit.iumgate-7f9c_1.jsonl")
        );
        assert_eq!(
            file_for(Path::new("/x/trail"), Some("a")),
            Path::new("/x/trail.a")
        );
        assert_eq!(parse_day("2026-11-03.1.gz"), Some(20_760));
        assert_eq!(parse_day("junk"), None);
    }
}
