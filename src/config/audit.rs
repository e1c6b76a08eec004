//! `[audit]`: the seat audit trail (src/audit). Off unless `path` is set.

use serde::Deserialize;
use std::path::PathBuf;

/// `[audit]`: one JSON line per seat event, written off the request path.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AuditConfig {
    /// The trail's file (e.g. `/var/lib/iumgate/audit.jsonl`). None: off.
    /// With `[cluster]`, the node id goes into the name
    /// (`audit.<node>.jsonl`), so replicas sharing a volume never share a file.
    pub path: Option<PathBuf>,
    /// A file reaching this size is rotated (bytes; at least 4096).
    pub max_bytes: u64,
    /// Rotated files older than this many days are deleted (0: kept forever).
    pub retain: u32,
    /// Rotated files are gzipped.
    pub compress: bool,
    /// Events waiting for the writer at most; more are dropped and counted
    /// (`iumgate_audit_dropped_total`), never waited for.
    pub buffer: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: None,
            max_bytes: 64 * 1024 * 1024,
            retain: 400,
            compress: true,
            buffer: 8192,
        }
    }
}

impl AuditConfig {
    /// Problems serde cannot see: (key, what is wrong).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if let Some(p) = &self.path {
            if p.as_os_str().is_empty() || p.file_name().is_none() {
                errs.push(("audit.path".into(), "must name a file".into()));
            }
        }
        if self.max_bytes < 4096 {
            errs.push((
                "audit.max_bytes".into(),
                format!("{} is too small: at least 4096", self.max_bytes),
            ));
        }
        if !(1..=1_000_000).contains(&self.buffer) {
            errs.push((
                "audit.buffer".into(),
                format!("{} is out of range: 1 to 1000000", self.buffer),
            ));
        }
        errs
    }
}
