//! The sync journal: one JSON object per line, appended and flushed to disk
//! before the change it describes is made. Reading it back tells which run
//! was interrupted, what it added, and what an undo must remove.

use super::SyncError;
use crate::user::UserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Entry {
    /// A run starts.
    Run {
        run: String,
        at_ms: u64,
        group: String,
        planned: usize,
    },
    /// An interrupted run is taken up again.
    Resume {
        run: String,
        at_ms: u64,
        planned: usize,
    },
    /// About to add `user` (written before the call).
    Add {
        run: String,
        user: UserId,
        group: String,
    },
    Done {
        run: String,
        user: UserId,
        group: String,
    },
    Failed {
        run: String,
        user: UserId,
        group: String,
        error: String,
    },
    /// The run finished (nothing to resume).
    End {
        run: String,
        added: usize,
        failed: usize,
    },
    /// About to remove `user` again (undo).
    Undo {
        run: String,
        user: UserId,
        group: String,
    },
    Undone {
        run: String,
        user: UserId,
        group: String,
    },
}

impl Entry {
    fn run(&self) -> &str {
        match self {
            Entry::Run { run, .. }
            | Entry::Resume { run, .. }
            | Entry::Add { run, .. }
            | Entry::Done { run, .. }
            | Entry::Failed { run, .. }
            | Entry::End { run, .. }
            | Entry::Undo { run, .. }
            | Entry::Undone { run, .. } => run,
        }
    }
}

pub struct Journal {
    path: PathBuf,
    file: File,
    entries: Vec<Entry>,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn new_run_id() -> String {
    format!("{}-{:04x}", now_ms(), rand::random::<u16>())
}

impl Journal {
    /// Opens (creating) the journal and reads what it holds. A torn last
    /// line (the process killed mid-write) is cut off; any other bad line
    /// is an error, since guessing could undo the wrong thing.
    pub fn open(path: &Path) -> Result<Journal, SyncError> {
        let io = |source| SyncError::Journal {
            path: path.to_owned(),
            source,
        };
        let mut entries = Vec::new();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        // Bytes up to the end of the last whole entry.
        let mut good_len = 0usize;
        let pieces: Vec<&str> = text.split_inclusive('\n').collect();
        for (i, piece) in pieces.iter().enumerate() {
            let line = piece.trim();
            if !line.is_empty() {
                match serde_json::from_str::<Entry>(line) {
                    Ok(e) if piece.ends_with('\n') || i + 1 == pieces.len() => entries.push(e),
                    Ok(_) | Err(_) if i + 1 == pieces.len() => break,
                    Ok(_) => {}
                    Err(e) => {
                        return Err(SyncError::BadJournal {
                            path: path.to_owned(),
                            detail: format!("line {}: {e}", i + 1),
                        })
                    }
                }
            }
            good_len += piece.len();
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if good_len < text.len() {
            // The process was killed mid-write: drop the torn line.
            file.set_len(good_len as u64).map_err(io)?;
        }
        if good_len > 0 && !text[..good_len].ends_with('\n') {
            file.write_all(b"\n").map_err(io)?;
        }
        Ok(Journal {
            path: path.to_owned(),
            file,
            entries,
        })
    }

    /// Appends `e` and flushes it to disk before returning.
    pub fn write(&mut self, e: &Entry) -> Result<(), SyncError> {
        let io = |source| SyncError::Journal {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(e).map_err(|e| SyncError::BadJournal {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.entries.push(e.clone());
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The last run started (undo reverts this one).
    pub fn last_run(&self) -> Option<String> {
        self.entries.iter().rev().find_map(|e| match e {
            Entry::Run { run, .. } => Some(run.clone()),
            _ => None,
        })
    }

    /// The last run, if it never ended.
    pub fn unfinished_run(&self) -> Option<String> {
        let run = self.last_run()?;
        let ended = self
            .entries
            .iter()
            .any(|e| matches!(e, Entry::End { run: r, .. } if *r == run));
        (!ended).then_some(run)
    }

    /// Users whose add in `run` was confirmed.
    pub fn done_adds(&self, run: &str) -> Vec<UserId> {
        let set: BTreeSet<UserId> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Done { run: r, user, .. } if r == run => Some(user.clone()),
                _ => None,
            })
            .collect();
        set.into_iter().collect()
    }

    /// (user, group) pairs `run` meant to add and no undo has removed yet.
    pub fn to_undo(&self, run: &str) -> Vec<(UserId, String)> {
        let mut out: Vec<(UserId, String)> = Vec::new();
        let mut undone: BTreeSet<(UserId, String)> = BTreeSet::new();
        for e in self.entries.iter().filter(|e| e.run() == run) {
            match e {
                Entry::Add { user, group, .. } => {
                    let k = (user.clone(), group.clone());
                    if !out.contains(&k) {
                        out.push(k);
                    }
                }
                Entry::Undone { user, group, .. } => {
                    undone.insert((user.clone(), group.clone()));
                }
                _ => {}
            }
        }
        out.retain(|k| !undone.contains(k));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_ignored_and_the_run_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        {
            let mut j = Journal::open(&p).unwrap();
            j.write(&Entry::Run {
                run: "r1".into(),
                at_ms: 1,
                group: "g".into(),
                planned: 2,
            })
            .unwrap();
            j.write(&Entry::Add {
                run: "r1".into(),
                user: "a".into(),
                group: "g".into(),
            })
            .unwrap();
            j.write(&Entry::Done {
                run: "r1".into(),
                user: "a".into(),
                group: "g".into(),
            })
            .unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"t\":\"add\",\"ru")
            .unwrap();
        let mut j = Journal::open(&p).unwrap();
        assert_eq!(j.unfinished_run().as_deref(), Some("r1"));
        assert_eq!(j.done_adds("r1"), vec![UserId::new("a")]);
        j.write(&Entry::End {
            run: "r1".into(),
            added: 1,
            failed: 0,
        })
        .unwrap();
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.unfinished_run(), None);
        assert_eq!(j.to_undo("r1"), vec![(UserId::new("a"), "g".to_string())]);
    }
}
