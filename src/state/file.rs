//! The file operations: an atomic replace and setting a bad file aside.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn with_path(path: &Path, op: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("state {}: {op}: {e}", path.display()))
}

/// Replaces `path` with `bytes` so that a crash at any moment leaves either
/// the old or the new content: write a temp file beside it, fsync it, rename
/// it over `path`, fsync the directory (so the rename itself is durable).
/// The file is private to the owner: it holds the sessions' hashing key.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("state {}: not a file path", path.display()),
        )
    })?;
    fs::create_dir_all(&dir).map_err(|e| with_path(&dir, "create the directory", e))?;
    // One fixed temp name: saves are serialised within the process, and a
    // temp file left by a crash is simply overwritten by the next save.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| with_path(&tmp, "create", e))?;
        f.write_all(bytes)
            .map_err(|e| with_path(&tmp, "write", e))?;
        f.sync_all().map_err(|e| with_path(&tmp, "fsync", e))?;
    }
    fs::rename(&tmp, path).map_err(|e| with_path(path, "rename the temp file over it", e))?;
    sync_dir(&dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| with_path(dir, "fsync the directory", e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for fsync here; the rename is still atomic.
    Ok(())
}

/// Renames `path` to `<path>.corrupt-<now_ms>` (or `…-<now_ms>-<n>` if taken)
/// and returns the new name. The file is kept for a bug report, never deleted.
pub fn set_aside(path: &Path, now_ms: u64) -> io::Result<PathBuf> {
    let base = path.as_os_str().to_owned();
    for n in 0u32..1000 {
        let mut name = base.clone();
        name.push(format!(".corrupt-{now_ms}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let to = PathBuf::from(name);
        if to.exists() {
            continue;
        }
        fs::rename(path, &to)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Best effort: the rename is what matters, durability is a bonus.
            let _ = sync_dir(dir);
        }
        return Ok(to);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many files already set aside with this time stamp",
    ))
}
