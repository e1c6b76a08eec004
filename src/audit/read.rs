//! Reading the trail back: files plain or gzipped (told by their first
//! bytes), directories, a config's `[audit] path` with its rotations and
//! its replicas' files; filtering by time, user and pool; CSV out.

use super::Line;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Why the trail could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot read", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> ReadError + '_ {
    move |source| ReadError {
        path: path.to_owned(),
        source,
    }
}

/// Which lines to keep (all `None`: every line).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// From this time on (ms since the epoch, inclusive).
    pub since_ms: Option<i64>,
    /// Before this time (exclusive).
    pub until_ms: Option<i64>,
    pub user: Option<String>,
    pub pool: Option<String>,
}

impl Filter {
    pub fn keeps(&self, line: &Line, at_ms: i64) -> bool {
        self.since_ms.is_none_or(|s| at_ms >= s)
            && self.until_ms.is_none_or(|u| at_ms < u)
            && self.user.as_deref().is_none_or(|u| line.user == u)
            && self.pool.as_deref().is_none_or(|p| line.pool == p)
    }
}

/// What one file held.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Input {
    pub file: String,
    pub lines: u64,
    pub malformed: u64,
    pub gzip: bool,
}

/// The files a trail is made of, for the config's `[audit] path`: the file,
/// its rotations (`audit.jsonl.<day>.<n>[.gz]`) and, in a cluster, every
/// replica's (`audit.<node>.jsonl`) with theirs.
pub fn files_of_config_path(path: &Path) -> Vec<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (format!("{s}."), format!(".{e}")),
        _ => (format!("{name}."), String::new()),
    };
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().take(100_000) {
            let n = e.file_name().to_string_lossy().into_owned();
            let ours = n == name
                || n.starts_with(&format!("{name}."))
                || (n.starts_with(&stem) && (ext.is_empty() || n.contains(&ext)));
            if ours && e.path().is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Files given on the command line: a file as it is, a directory as the
/// trail files in it (names containing `.jsonl`).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(read_err(p))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && f.file_name()
                            .is_some_and(|n| n.to_string_lossy().contains(".jsonl"))
                })
                .take(100_000)
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Calls `each` with every well-formed line of `path` (and its time).
pub fn read_file(path: &Path, each: impl FnMut(Line, i64)) -> Result<Input, ReadError> {
    read_file_within(path, u64::MAX, each)
}

/// As [`read_file`], reading at most `cap` bytes (after decompression).
fn read_file_within(
    path: &Path,
    cap: u64,
    mut each: impl FnMut(Line, i64),
) -> Result<Input, ReadError> {
    let mut f = std::fs::File::open(path).map_err(read_err(path))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(read_err(path))?;
    f.seek(SeekFrom::Start(0)).map_err(read_err(path))?;
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    let reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(
            flate2::read::MultiGzDecoder::new(BufReader::new(f)).take(cap),
        ))
    } else {
        Box::new(BufReader::new(f.take(cap)))
    };
    let mut input = Input {
        file: path.display().to_string(),
        gzip,
        ..Input::default()
    };
    for line in reader.lines() {
        let line = line.map_err(read_err(path))?;
        if line.trim().is_empty() {
            continue;
        }
        input.lines += 1;
        match serde_json::from_str::<Line>(&line)
            .ok()
            .and_then(|l| l.at_ms().map(|t| (l, t)))
        {
            Some((l, t)) => each(l, t),
            None => input.malformed += 1,
        }
    }
    Ok(input)
}

/// The newest rotation of this process's file `path` (by its name's day and
/// number), plain or gzipped.
pub fn newest_rotation(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let prefix = format!("{name}.");
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .take(100_000)
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let tail = n.strip_prefix(&prefix)?;
            // `<day>.<n>[.gz]`
            let day = tail.get(..10)?.to_string();
            let seq: u32 = tail.get(11..)?.trim_end_matches(".gz").parse().ok()?;
            Some(((day, seq), e.path()))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, p)| p)
}

/// The last `limit` lines of a whole (rotated) file naming `user`, reading
/// at most `cap` bytes of it; newest first.
pub fn user_lines_of_file(
    path: &Path,
    user: &str,
    cap: u64,
    limit: usize,
) -> Result<Vec<Line>, ReadError> {
    let mut out = std::collections::VecDeque::with_capacity(limit.min(1024));
    let mut keep = |l: Line, _| {
        if names(&l, user) {
            if out.len() == limit {
                out.pop_front();
            }
            out.push_back(l);
        }
    };
    match read_file_within(path, cap, &mut keep) {
        Ok(_) => {}
        // Gzipped away meanwhile: the same lines, whole, in `….gz`.
        Err(e) if e.source.kind() == io::ErrorKind::NotFound => {
            let mut gz = path.as_os_str().to_owned();
            gz.push(".gz");
            read_file_within(Path::new(&gz), cap, &mut keep)?;
        }
        Err(e) => return Err(e),
    }
    Ok(out.into_iter().rev().collect())
}

fn names(l: &Line, user: &str) -> bool {
    l.user == user || l.victim.as_deref() == Some(user) || l.for_user.as_deref() == Some(user)
}

/// A rotation being gzipped exists twice for a moment, complete both
/// times (`X` and `X.gz`, the latter renamed into place only when whole):
/// one is read.
fn one_copy_each(files: &[PathBuf]) -> Vec<PathBuf> {
    let set: std::collections::HashSet<&PathBuf> = files.iter().collect();
    files
        .iter()
        .filter(|f| {
            let mut gz = f.as_os_str().to_owned();
            gz.push(".gz");
            !set.contains(&PathBuf::from(gz))
        })
        .cloned()
        .collect()
}

/// The kept lines with their times (ms), and what each file held.
pub type Collected = (Vec<(i64, Line)>, Vec<Input>);

/// The kept lines of every file, merged in time order (stable: lines of
/// one time keep their file order). A plain rotation gzipped away between
/// the listing and its reading is read as its `.gz`.
pub fn collect(files: &[PathBuf], filter: &Filter) -> Result<Collected, ReadError> {
    let mut lines = Vec::new();
    let mut inputs = Vec::new();
    for f in one_copy_each(files) {
        let mut keep = |l: Line, t: i64| {
            if filter.keeps(&l, t) {
                lines.push((t, l));
            }
        };
        match read_file(&f, &mut keep) {
            Ok(i) => inputs.push(i),
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => {
                let mut gz = f.as_os_str().to_owned();
                gz.push(".gz");
                inputs.push(read_file(Path::new(&gz), &mut keep)?);
            }
            Err(e) => return Err(e),
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    Ok((lines, inputs))
}

/// `2026-11-03` (UTC midnight), `2026-11-03T09:00:00` (UTC) or a full
/// RFC 3339 time → ms since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        if let Ok(z) = dt.to_zoned_datetime(jiff::tz::TimeZone::UTC) {
            return Ok(z.timestamp().as_millisecond());
        }
    }
    Err(format!(
        "`{s}`: expected a date (2026-11-03), a UTC time (2026-11-03T09:00) or an RFC 3339 time"
    ))
}

pub const CSV_HEADER: &str =
    "ts,kind,pool,user,reason,victim,for,waited_ms,position,operation,in_use,capacity,node";

/// One CSV row (RFC 4180 quoting where needed).
pub fn csv_row(l: &Line) -> String {
    fn q(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let opt = |o: &Option<String>| o.as_deref().map(q).unwrap_or_default();
    let num = |o: Option<u64>| o.map(|n| n.to_string()).unwrap_or_default();
    [
        q(&l.ts),
        l.kind.label().to_string(),
        q(&l.pool),
        q(&l.user),
        q(&l.reason),
        opt(&l.victim),
        opt(&l.for_user),
        num(l.waited_ms),
        num(l.position.map(u64::from)),
        opt(&l.operation),
        l.in_use.to_string(),
        l.capacity.to_string(),
        q(&l.node),
    ]
    .join(",")
}

/// The last `limit` lines naming `user` among the last `max_bytes` of
/// `path` (the admin page's bounded read: the current file only), newest
/// first.
pub fn recent_for_user(
    path: &Path,
    user: &str,
    max_bytes: u64,
    limit: usize,
) -> Result<Vec<Line>, ReadError> {
    let mut f = std::fs::File::open(path).map_err(read_err(path))?;
    let len = f.metadata().map_err(read_err(path))?.len();
    let start = len.saturating_sub(max_bytes);
    f.seek(SeekFrom::Start(start)).map_err(read_err(path))?;
    let mut r = BufReader::new(f.take(max_bytes));
    if start > 0 {
        // The first line is cut: skip it.
        let mut skip = Vec::new();
        r.read_until(b'\n', &mut skip).map_err(read_err(path))?;
    }
    let mut out = std::collections::VecDeque::with_capacity(limit.min(1024));
    for line in r.lines() {
        let Ok(line) = line else { break };
        let Ok(l) = serde_json::from_str::<Line>(&line) else {
            continue;
        };
        if names(&l, user) {
            if out.len() == limit {
                out.pop_front();
            }
            out.push_back(l);
        }
    }
    Ok(out.into_iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_dates_utc_times_or_rfc3339() {
        assert_eq!(parse_time("2026-11-04"), Ok(1_793_750_400_000));
        assert_eq!(parse_time("2026-11-04T00:00:01"), Ok(1_793_750_401_000));
        assert_eq!(
            parse_time("2026-11-04T01:00:00+01:00"),
            Ok(1_793_750_400_000)
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn a_csv_row_quotes_what_needs_it() {
        let l = Line {
            ts: "2026-11-04T00:00:00.000Z".into(),
            kind: super::super::Kind::Refused,
            pool: "default".into(),
            user: "a,\"b\"".into(),
            reason: "directory_failure".into(),
            victim: None,
            for_user: None,
            waited_ms: None,
            position: None,
            operation: Some("grant".into()),
            in_use: 3,
            capacity: 7,
            node: "n".into(),
        };
        assert_eq!(
            csv_row(&l),
            "2026-11-04T00:00:00.000Z,refused,default,\"a,\"\"b\"\"\",directory_failure,,,,,grant,3,7,n"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 13);
    }
}
