//! Session cookie → user, as keyed hashes. Concurrent (dashmap); a look-up
//! never waits for an admission.
//!
//! Bounded ([`Limits`]): a user has at most `per_user` bindings (binding one
//! more drops their least recently seen), and the map at most `total` (a new
//! binding is then refused, see [`Limits::total`]). A look-up costs what it
//! did: the bounds are kept by `bind_key`, through an index user → keys that
//! only binding, forgetting and pruning touch.

use crate::user::UserId;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// 128 bits of a keyed BLAKE3 hash of the cookie or token value.
pub type SessionKey = [u8; 16];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// `JSESSIONID` and friends.
    Session,
    /// `seraph.rememberme.cookie` and friends: long-lived.
    RememberMe,
    /// A bearer token (PAT), learned from the upstream's `X-AUSERNAME`.
    Token,
    /// iumgate's own waiting-room cookie.
    Wait,
}

#[derive(Debug)]
struct Entry<M> {
    user: UserId,
    kind: Kind,
    last_seen: AtomicU64,
    /// What the owner remembers about the session's user (the gate: class
    /// and seat), read with the look-up; never persisted.
    memo: M,
}

/// A binding as stored in the snapshot (hashes only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    #[serde(with = "hex16")]
    pub key: SessionKey,
    pub user: UserId,
    pub kind: Kind,
    pub last_seen: u64,
}

mod hex16 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(k: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(32);
        for b in k {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let s = String::deserialize(d)?;
        let mut k = [0u8; 16];
        if s.len() != 32 {
            return Err(serde::de::Error::custom(
                "session key: 32 hex digits expected",
            ));
        }
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let t = std::str::from_utf8(chunk).map_err(serde::de::Error::custom)?;
            k[i] = u8::from_str_radix(t, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(k)
    }
}

/// Hashes a [`SessionKey`] by folding in its bytes as they are. The keys are
/// keyed BLAKE3 outputs: already uniform, and unpredictable to anyone without
/// the installation's key, so SipHash over them again (dashmap's default)
/// bought no protection against flooding, only time on every request.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as a length prefix, then the bytes in one write.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
}

type KeyMap<V> = DashMap<SessionKey, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// How many bindings the map keeps (`[identity] max_sessions_per_user` and
/// `max_sessions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bindings of one user. Binding a new key for a user already at the
    /// limit drops that user's least recently seen binding: their live
    /// session is seen on every request, so what goes is what they (or
    /// someone flooding in their name) stopped using.
    pub per_user: usize,
    /// Bindings in all. When full, a new binding is refused, never an old
    /// one dropped: whoever floods cannot push anyone else's session out,
    /// refusing costs no search for the oldest, and the app names the user
    /// of an unbound session again on its next answer. Filling the map needs
    /// `total / per_user` distinct users the app confirmed; the prune job
    /// makes room as bindings expire.
    pub total: usize,
}

impl Limits {
    /// No limit (what [`Sessions::new`] and [`Sessions::with_memos`] keep).
    pub const NONE: Limits = Limits {
        per_user: usize::MAX,
        total: usize::MAX,
    };
}

impl Default for Limits {
    /// The configuration's defaults: 64 a user, a million in all.
    fn default() -> Limits {
        Limits {
            per_user: 64,
            total: 1_000_000,
        }
    }
}

/// Bindings dropped or refused because of [`Limits`], since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// A user's least recently seen binding dropped for a new one (or a
    /// restored one refused as older than all the user's others).
    pub per_user: u64,
    /// A new binding refused because the map was full.
    pub total: u64,
}

/// A binding made or dropped (told to an [`Observer`]: a replica that
/// shares its bindings, `[cluster]`). Refreshes and expiries are not told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    Bound {
        key: SessionKey,
        kind: Kind,
        user: UserId,
    },
    Forgotten(SessionKey),
}

/// Told every [`BindingChange`]; must not block (it runs under no lock, on
/// the request path).
pub struct Observer(pub Box<dyn Fn(BindingChange) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// `M`: a memo kept with each binding for its owner (see [`Sessions::lookup_memo`]);
/// a new binding starts with `M::default()`.
#[derive(Debug)]
pub struct Sessions<M = ()> {
    /// Told of new and dropped bindings, once set.
    observer: std::sync::OnceLock<Observer>,
    key: [u8; 32],
    map: KeyMap<Entry<M>>,
    /// user → the keys bound to them. Every binding's key is in its user's
    /// list (it is added under the list's lock, with the binding); a list
    /// may briefly hold a key since bound elsewhere, dropped when seen.
    /// Lock order: a list, then the map; never the other way round.
    by_user: DashMap<UserId, Vec<SessionKey>, rustc_hash::FxBuildHasher>,
    /// Bindings counted against `Limits::total` (the map's size, kept here
    /// so that a check costs no walk over the shards).
    count: AtomicUsize,
    per_user_max: AtomicUsize,
    total_max: AtomicUsize,
    dropped_per_user: AtomicU64,
    dropped_total: AtomicU64,
    /// Whether "full" has been logged since the map last had room.
    full_logged: AtomicBool,
}

impl Sessions {
    /// `key`: the installation's hashing key (random, kept in the snapshot).
    /// Unbounded ([`Limits::NONE`]); the gate uses [`Sessions::with_limits`].
    pub fn new(key: [u8; 32]) -> Sessions {
        Sessions::with_memos(key)
    }
}

impl<M: Default> Sessions<M> {
    /// As [`Sessions::new`], each binding with a memo of type `M`.
    pub fn with_memos(key: [u8; 32]) -> Sessions<M> {
        Sessions::with_limits(key, Limits::NONE)
    }

    /// As [`Sessions::with_memos`], bounded by `limits`.
    pub fn with_limits(key: [u8; 32], limits: Limits) -> Sessions<M> {
        Sessions {
            observer: std::sync::OnceLock::new(),
            key,
            map: KeyMap::default(),
            by_user: DashMap::default(),
            count: AtomicUsize::new(0),
            per_user_max: AtomicUsize::new(limits.per_user.max(1)),
            total_max: AtomicUsize::new(limits.total),
            dropped_per_user: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            full_logged: AtomicBool::new(false),
        }
    }

    /// From now on, `observer` is told every new and dropped binding. Set
    /// once; a second call is ignored.
    pub fn set_observer(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    fn tell(&self, change: BindingChange) {
        if let Some(o) = self.observer.get() {
            (o.0)(change);
        }
    }

    /// Changes the limits. Bindings already over them stay until the next
    /// binding of their user (per user) or until they expire (in total).
    pub fn set_limits(&self, limits: Limits) {
        self.per_user_max
            .store(limits.per_user.max(1), Ordering::Relaxed);
        self.total_max.store(limits.total, Ordering::Relaxed);
    }

    pub fn limits(&self) -> Limits {
        Limits {
            per_user: self.per_user_max.load(Ordering::Relaxed),
            total: self.total_max.load(Ordering::Relaxed),
        }
    }

    /// Bindings dropped or refused because of the limits, since the start.
    pub fn dropped(&self) -> Dropped {
        Dropped {
            per_user: self.dropped_per_user.load(Ordering::Relaxed),
            total: self.dropped_total.load(Ordering::Relaxed),
        }
    }

    pub fn hash_key(&self) -> [u8; 32] {
        self.key
    }

    /// The keyed hash of a cookie value or token; the kind is mixed in so a
    /// value cannot be replayed as another kind of credential.
    pub fn hash(&self, kind: Kind, value: &str) -> SessionKey {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&[kind as u8]);
        h.update(value.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }

    pub fn bind(&self, kind: Kind, value: &str, user: &UserId, now: u64) {
        self.bind_key(self.hash(kind, value), kind, user, now);
    }

    /// Binds an already hashed cookie or token, within the [`Limits`]:
    /// a new key for a user at `per_user` drops that user's least recently
    /// seen binding; a new key when the map is full is refused (counted in
    /// [`Sessions::dropped`]). Rebinding a key already bound to `user`
    /// refreshes it.
    pub fn bind_key(&self, key: SessionKey, kind: Kind, user: &UserId, now: u64) {
        if let Some(e) = self.map.get(&key) {
            if e.user == *user {
                e.last_seen.store(now, Ordering::Relaxed);
                return;
            }
        }
        self.insert(key, user, kind, now);
    }

    /// Adds (or moves to `user`) the binding of `key`, within the limits;
    /// `seen`: its last-seen time (now, or a restored one). Whether it was
    /// kept.
    fn insert(&self, key: SessionKey, user: &UserId, kind: Kind, seen: u64) -> bool {
        let per_user = self.per_user_max.load(Ordering::Relaxed);
        let moved_from = {
            // The user's list stays locked until the binding is in the map
            // and in the list.
            let mut keys = self.by_user.entry(user.clone()).or_default();
            let held = self
                .map
                .get(&key)
                .map(|e| (e.user == *user, e.last_seen.load(Ordering::Relaxed)));
            if let Some((true, last)) = held {
                // Bound to `user` meanwhile: a refresh.
                if let Some(e) = self.map.get(&key) {
                    e.last_seen.store(last.max(seen), Ordering::Relaxed);
                }
                return true;
            }
            if keys.len() >= per_user {
                self.tidy(user, &mut keys);
            }
            // The user at the limit: make room among their own bindings (the
            // map does not grow). Otherwise a new key needs room in the map.
            while keys.len() >= per_user {
                match self.drop_least_recent(user, &mut keys, seen) {
                    Some(true) => {
                        self.dropped_per_user.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(false) => {}
                    None => {
                        self.dropped_per_user.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                }
            }
            let reserved = held.is_none();
            if reserved && !self.reserve() {
                // No empty list is left behind for a user refused.
                let empty = keys.is_empty();
                drop(keys);
                if empty {
                    self.by_user.remove_if(user, |_, keys| keys.is_empty());
                }
                self.refused_full();
                return false;
            }
            let old = self.map.insert(
                key,
                Entry {
                    user: user.clone(),
                    kind,
                    last_seen: AtomicU64::new(seen),
                    memo: M::default(),
                },
            );
            if keys.len() < 16 {
                // Most users have a few bindings: no spare capacity.
                keys.reserve_exact(1);
            }
            keys.push(key);
            match (&old, reserved) {
                (Some(_), true) => {
                    // Someone bound the key between the look and the insert.
                    self.uncount(1);
                }
                (None, false) => {
                    self.count.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            old.map(|e| e.user).filter(|u| u != user)
        };
        if let Some(other) = moved_from {
            self.unindex(&other, &key);
        }
        self.tell(BindingChange::Bound {
            key,
            kind,
            user: user.clone(),
        });
        true
    }

    /// Takes one place against `Limits::total`, if there is one.
    fn reserve(&self) -> bool {
        let total = self.total_max.load(Ordering::Relaxed);
        self.count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < total).then_some(n + 1)
            })
            .is_ok()
    }

    fn refused_full(&self) {
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
        if !self.full_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_sessions = self.total_max.load(Ordering::Relaxed),
                "the session map is full: new sessions are not bound until old ones expire \
                 (raise [identity] max_sessions if this is real use)"
            );
        }
    }

    /// Drops from `keys` (the list of `user`, locked) what is not bound to
    /// `user` any more, and repeats.
    fn tidy(&self, user: &UserId, keys: &mut Vec<SessionKey>) {
        keys.sort_unstable();
        keys.dedup();
        keys.retain(|k| self.map.get(k).is_some_and(|e| e.user == *user));
    }

    /// Drops `user`'s least recently seen binding to make room for one seen
    /// at `seen`: `Some(true)` when one went, `Some(false)` when the list
    /// held nothing bound any more (now cleared), `None` when the new one
    /// would be the least recent itself (a restored binding older than all
    /// of the user's): it is refused.
    fn drop_least_recent(
        &self,
        user: &UserId,
        keys: &mut Vec<SessionKey>,
        seen: u64,
    ) -> Option<bool> {
        let oldest = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                let last = self.map.get(k)?.last_seen.load(Ordering::Relaxed);
                Some((last, i))
            })
            .min();
        let Some((last, i)) = oldest else {
            // Nothing of the list is bound any more.
            keys.clear();
            return Some(false);
        };
        if last > seen {
            return None;
        }
        let k = keys.swap_remove(i);
        let gone = self.map.remove_if(&k, |_, e| e.user == *user).is_some();
        if gone {
            self.uncount(1);
        }
        Some(gone)
    }

    /// Counts `n` bindings fewer (never below zero).
    fn uncount(&self, n: usize) {
        let _ = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
    }

    /// Takes `key` out of `user`'s list, unless it is bound to them again.
    fn unindex(&self, user: &UserId, key: &SessionKey) {
        let Some(mut keys) = self.by_user.get_mut(user) else {
            return;
        };
        if self.map.get(key).is_some_and(|e| e.user == *user) {
            return;
        }
        keys.retain(|k| k != key);
        let empty = keys.is_empty();
        drop(keys);
        if empty {
            self.by_user.remove_if(user, |_, keys| keys.is_empty());
        }
    }

    /// Removes the binding of `key`, keeping the count and the index.
    fn remove(&self, key: &SessionKey) -> Option<UserId> {
        let (_, e) = self.map.remove(key)?;
        self.uncount(1);
        self.unindex(&e.user, key);
        self.tell(BindingChange::Forgotten(*key));
        Some(e.user)
    }

    /// Looks an already hashed cookie or token up; refreshes its last-seen time.
    pub fn lookup_key(&self, key: &SessionKey, now: u64) -> Option<UserId> {
        self.lookup_memo(key, now, |_| ()).map(|(u, ())| u)
    }

    /// As [`Sessions::lookup_key`], and reads the binding's memo in the same
    /// look-up.
    pub fn lookup_memo<R>(
        &self,
        key: &SessionKey,
        now: u64,
        read: impl FnOnce(&M) -> R,
    ) -> Option<(UserId, R)> {
        let e = self.map.get(key)?;
        if e.last_seen.load(Ordering::Relaxed) < now {
            e.last_seen.store(now, Ordering::Relaxed);
        }
        Some((e.user.clone(), read(&e.memo)))
    }

    /// Replaces the memo of `key`'s binding, if it is still bound to `user`.
    pub fn set_memo(&self, key: &SessionKey, user: &UserId, memo: M) {
        if let Some(mut e) = self.map.get_mut(key) {
            if e.user == *user {
                e.memo = memo;
            }
        }
    }

    pub fn forget_key(&self, key: &SessionKey) -> Option<UserId> {
        self.remove(key)
    }

    /// The user a cookie or token belongs to; refreshes its last-seen time.
    pub fn lookup(&self, kind: Kind, value: &str, now: u64) -> Option<UserId> {
        self.lookup_key(&self.hash(kind, value), now)
    }

    pub fn forget(&self, kind: Kind, value: &str) -> Option<UserId> {
        self.remove(&self.hash(kind, value))
    }

    /// Forgets every binding of `user` (logout); returns how many. Reads
    /// the user's list, not the whole map.
    pub fn forget_user(&self, user: &UserId) -> usize {
        let Some((_, mut keys)) = self.by_user.remove(user) else {
            return 0;
        };
        keys.sort_unstable();
        keys.dedup();
        let mut n = 0;
        for k in keys {
            if self.map.remove_if(&k, |_, e| e.user == *user).is_some() {
                self.uncount(1);
                self.tell(BindingChange::Forgotten(k));
                n += 1;
            }
        }
        n
    }

    /// Forgets bindings not seen for their kind's time to live (the prune
    /// job; a walk over the whole map).
    pub fn prune(&self, now: u64, session_ttl_ms: u64, remember_ttl_ms: u64) -> usize {
        let mut gone: Vec<(SessionKey, UserId)> = Vec::new();
        self.map.retain(|k, e| {
            let ttl = match e.kind {
                Kind::Session | Kind::Wait => session_ttl_ms,
                Kind::RememberMe | Kind::Token => remember_ttl_ms,
            };
            let keep = now.saturating_sub(e.last_seen.load(Ordering::Relaxed)) < ttl;
            if !keep {
                gone.push((*k, e.user.clone()));
            }
            keep
        });
        // The map's locks are released: the lists may be taken now.
        for (k, u) in &gone {
            self.unindex(u, k);
        }
        // Counted anew from the map (any drift heals here).
        self.count.store(self.map.len(), Ordering::Relaxed);
        if self.count.load(Ordering::Relaxed) < self.total_max.load(Ordering::Relaxed) {
            self.full_logged.store(false, Ordering::Relaxed);
        }
        gone.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Distinct users with at least one binding.
    pub fn users(&self) -> usize {
        self.by_user.len()
    }

    /// How many bindings `user` has.
    pub fn user_bindings(&self, user: &UserId) -> usize {
        self.by_user.get(user).map_or(0, |keys| {
            keys.iter()
                .filter(|k| self.map.get(*k).is_some_and(|e| e.user == *user))
                .count()
        })
    }

    pub fn export(&self) -> Vec<SessionRecord> {
        self.map
            .iter()
            .map(|e| SessionRecord {
                key: *e.key(),
                user: e.user.clone(),
                kind: e.kind,
                last_seen: e.last_seen.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Restores bindings (a snapshot), within the limits: the most recently
    /// seen first, so a user over `per_user` keeps their latest and a map
    /// over `total` the latest overall (what is left out is counted as
    /// dropped). A restored binding replaces one of the same key.
    pub fn import(&self, mut records: Vec<SessionRecord>) {
        records.sort_unstable_by_key(|r| std::cmp::Reverse(r.last_seen));
        for r in records {
            if let Some(e) = self.map.get(&r.key) {
                if e.user == r.user {
                    e.last_seen.store(r.last_seen, Ordering::Relaxed);
                    continue;
                }
            }
            self.insert(r.key, &r.user, r.kind, r.last_seen);
        }
    }
}
