//! Sessions the app's whoami found anonymous, until when: so that an
//! anonymous visitor does not cost an upstream call per request (Confluence).
//!
//! Fixed capacity: when full, a session not already here is not remembered
//! (counted in [`AnonymousCache::refused`]; its next request asks the app
//! again). A request never walks the map: expired entries are dropped by the
//! prune job ([`AnonymousCache::prune`]), and until then they only take room.

use super::sessions::KeyHasher;
use super::SessionKey;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

type KeyMap = DashMap<SessionKey, u64, std::hash::BuildHasherDefault<KeyHasher>>;

#[derive(Debug)]
pub struct AnonymousCache {
    map: KeyMap,
    capacity: usize,
    /// Entries in `map`, counted against `capacity` (taken before an insert,
    /// under the entry's shard lock, so the map never exceeds it).
    len: AtomicUsize,
    refused: AtomicU64,
    /// Prune passes run (the job's; a request runs none).
    prunes: AtomicU64,
}

impl Default for AnonymousCache {
    fn default() -> AnonymousCache {
        AnonymousCache::new(AnonymousCache::DEFAULT_CAPACITY)
    }
}

impl AnonymousCache {
    /// The gate's: 100k sessions, about 5 MB.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    pub fn new(capacity: usize) -> AnonymousCache {
        AnonymousCache {
            map: KeyMap::default(),
            capacity,
            len: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            prunes: AtomicU64::new(0),
        }
    }

    /// Whether `key` is known anonymous at `now`. One look-up.
    pub fn is_anonymous(&self, key: &SessionKey, now: u64) -> bool {
        self.map.get(key).is_some_and(|until| *until > now)
    }

    /// Remembers `key` as anonymous until `until`. One look-up and insert,
    /// never a walk: when the cache is full, a key not already in it is not
    /// remembered (counted); an expired entry of the same key is reused.
    pub fn remember(&self, key: SessionKey, until: u64) {
        match self.map.entry(key) {
            dashmap::Entry::Occupied(mut e) => {
                *e.get_mut() = until;
            }
            dashmap::Entry::Vacant(v) => {
                let room = self
                    .len
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < self.capacity).then_some(n + 1)
                    })
                    .is_ok();
                if room {
                    v.insert(until);
                } else {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Drops the entries expired at `now` (the prune job: a walk over the
    /// map); returns how many.
    pub fn prune(&self, now: u64) -> usize {
        self.prunes.fetch_add(1, Ordering::Relaxed);
        let mut gone = 0;
        self.map.retain(|_, until| {
            let keep = *until > now;
            gone += usize::from(!keep);
            keep
        });
        let _ = self
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(gone))
            });
        gone
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sessions not remembered because the cache was full, since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Prune passes run so far.
    pub fn prunes(&self) -> u64 {
        self.prunes.load(Ordering::Relaxed)
    }
}
