//! Session cookie → user, as keyed hashes. Concurrent (dashmap); a look-up
//! never waits for an admission.

use crate::user::UserId;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// `M`: a memo kept with each binding for its owner (see [`Sessions::lookup_memo`]);
/// a new binding starts with `M::default()`.
#[derive(Debug)]
pub struct Sessions<M = ()> {
    key: [u8; 32],
    map: KeyMap<Entry<M>>,
}

impl Sessions {
    /// `key`: the installation's hashing key (random, kept in the snapshot).
    pub fn new(key: [u8; 32]) -> Sessions {
        Sessions::with_memos(key)
    }
}

impl<M: Default> Sessions<M> {
    /// As [`Sessions::new`], each binding with a memo of type `M`.
    pub fn with_memos(key: [u8; 32]) -> Sessions<M> {
        Sessions {
            key,
            map: KeyMap::default(),
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

    /// Binds an already hashed cookie or token.
    pub fn bind_key(&self, key: SessionKey, kind: Kind, user: &UserId, now: u64) {
        if let Some(e) = self.map.get(&key) {
            if e.user == *user {
                e.last_seen.store(now, Ordering::Relaxed);
                return;
            }
        }
        self.map.insert(
            key,
            Entry {
                user: user.clone(),
                kind,
                last_seen: AtomicU64::new(now),
                memo: M::default(),
            },
        );
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
        self.map.remove(key).map(|(_, e)| e.user)
    }

    /// The user a cookie or token belongs to; refreshes its last-seen time.
    pub fn lookup(&self, kind: Kind, value: &str, now: u64) -> Option<UserId> {
        self.lookup_key(&self.hash(kind, value), now)
    }

    pub fn forget(&self, kind: Kind, value: &str) -> Option<UserId> {
        self.map
            .remove(&self.hash(kind, value))
            .map(|(_, e)| e.user)
    }

    /// Forgets every binding of `user` (logout); returns how many.
    pub fn forget_user(&self, user: &UserId) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| e.user != *user);
        before - self.map.len()
    }

    /// Forgets bindings not seen for their kind's time to live.
    pub fn prune(&self, now: u64, session_ttl_ms: u64, remember_ttl_ms: u64) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| {
            let ttl = match e.kind {
                Kind::Session | Kind::Wait => session_ttl_ms,
                Kind::RememberMe | Kind::Token => remember_ttl_ms,
            };
            now.saturating_sub(e.last_seen.load(Ordering::Relaxed)) < ttl
        });
        before - self.map.len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Distinct users with at least one binding.
    pub fn users(&self) -> usize {
        let mut s: Vec<UserId> = self.map.iter().map(|e| e.user.clone()).collect();
        s.sort();
        s.dedup();
        s.len()
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

    pub fn import(&self, records: Vec<SessionRecord>) {
        for r in records {
            self.map.insert(
                r.key,
                Entry {
                    user: r.user,
                    kind: r.kind,
                    last_seen: AtomicU64::new(r.last_seen),
                    memo: M::default(),
                },
            );
        }
    }
}
