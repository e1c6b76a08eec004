//! `[cluster]`: several replicas share one licence pool on Redis.
//!
//! Each replica keeps its own pool (the request path reads only that), and
//! Redis is the arbiter of who holds a seat:
//!
//! - `{prefix}seats` is a sorted set: member the user, score the holder's
//!   last activity (ms). A grant, the choice of the longest-idle victim and
//!   the swap happen in one Lua script ([`ClusterStore::reserve`]), so two
//!   logins at two replicas at the same moment can never both take the last
//!   seat: the script sees one after the other.
//! - A replica reserves in Redis *before* it writes the directory, and gives
//!   the reservation back when the directory write fails.
//! - The sync loop (`gate::cluster`) brings each replica's pool to Redis'
//!   holders every [`SYNC_EVERY`] and flushes the replica's activity times
//!   there (`ZADD XX GT`: a time only moves forward), so a replica learns
//!   another's grants and evictions within that delay and the longest-idle
//!   choice sees every replica's activity.
//! - Jobs that write (tier check, cleanup, sync) run under a lease
//!   ([`ClusterStore::lease`]): one replica at a time, taken over within
//!   the lease time when its holder dies.
//!
//! Every call is bounded by [`OP_TIMEOUT`]; an unreachable Redis is an
//! error, never a wait on the request path. The connection is
//! redis-rs' `ConnectionManager` (it reconnects by itself), made lazily so
//! that a replica starts while Redis is down.

use crate::identity::{Kind, SessionKey};
use crate::user::UserId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The longest any Redis call may take.
pub const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a replica syncs its pool with Redis (and flushes activity).
pub const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Why a call to the shared store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis")]
    Redis(#[from] redis::RedisError),
    #[error("Redis answered something unexpected: {0}")]
    Unexpected(String),
}

/// What [`ClusterStore::reserve`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// The user held a seat already.
    Holding,
    /// A free seat, now the user's.
    Granted,
    /// The longest-idle holder's seat, now the user's; the victim's last
    /// activity (ms), to give the seat back if the directory fails.
    Evicted { victim: UserId, last_active: u64 },
    /// No seat for the user (nothing changed).
    Full,
    /// The store lost its holders (emptied or replaced) and no replica has
    /// written them back yet: nothing is granted meanwhile.
    Unbuilt,
}

/// How the admission may get a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveMode {
    FreeOnly,
    MayEvict,
}

/// Grant, or swap with the longest-idle holder idle at least `min_idle`,
/// never above `capacity` (a pool already over it swaps nobody). A store
/// without its `built` marker (emptied, or a new Redis) grants nothing
/// until a replica has written the holders it knows back into it.
/// KEYS[1] seats, KEYS[2] built, KEYS[3] granted; ARGV user, capacity,
/// now, min_idle, mode.
const RESERVE: &str = r#"
local seats = KEYS[1]
local user = ARGV[1]
local cap = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local min_idle = tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 0 then return {'unbuilt'} end
if redis.call('ZSCORE', seats, user) then return {'holding'} end
local n = redis.call('ZCARD', seats)
if n < cap then
  redis.call('ZADD', seats, now, user)
  redis.call('HSET', KEYS[3], user, now)
  return {'granted'}
end
if ARGV[5] == 'evict' and n == cap then
  local v = redis.call('ZRANGE', seats, 0, 0, 'WITHSCORES')
  if v[1] and (now - tonumber(v[2])) >= min_idle then
    redis.call('ZREM', seats, v[1])
    redis.call('HDEL', KEYS[3], v[1])
    redis.call('ZADD', seats, now, user)
    redis.call('HSET', KEYS[3], user, now)
    return {'evicted', v[1], v[2]}
  end
end
return {'full'}
"#;

/// Drops holders the directory no longer lists (reconcile), except those
/// granted at or after `before` (their directory write may not have shown
/// yet in the list that was read). KEYS[1] seats, KEYS[2] granted; ARGV
/// before, users….
const DROP_STALE: &str = r#"
local before = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  local g = redis.call('HGET', KEYS[2], ARGV[i])
  if not g or tonumber(g) < before then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return n
"#;

/// Undo a reservation: the user's seat goes; the victim's comes back with
/// its old time, if that keeps the set within capacity.
/// KEYS[1] seats, KEYS[2] granted; ARGV user, capacity, [victim,
/// last_active].
const GIVE_BACK: &str = r#"
local seats = KEYS[1]
redis.call('ZREM', seats, ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[3] and redis.call('ZCARD', seats) < tonumber(ARGV[2]) then
  redis.call('ZADD', seats, 'NX', ARGV[4], ARGV[3])
  return 1
end
return 0
"#;

/// Take or renew a lease: free, or already this node's.
/// KEYS[1] lease; ARGV node, ttl_ms.
const LEASE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// The shared pool on Redis.
pub struct ClusterStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    seats_key: String,
    built_key: String,
    granted_key: String,
    prefix: String,
    node: String,
    reserve: redis::Script,
    give_back: redis::Script,
    drop_stale: redis::Script,
    lease: redis::Script,
    /// `[cluster] lease`: how long the jobs' lease lasts unrenewed.
    lease_ttl: Duration,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("ClusterStore")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(StoreError::Timeout(OP_TIMEOUT)),
    }
}

impl ClusterStore {
    /// A store for `url` (`redis://` or `rediss://`, with a password if
    /// any); nothing is connected until the first call.
    pub fn new(url: &str, prefix: &str, node: &str) -> Result<ClusterStore, StoreError> {
        let client = redis::Client::open(url)?;
        Ok(ClusterStore {
            client,
            conn: OnceCell::new(),
            seats_key: format!("{prefix}seats"),
            built_key: format!("{prefix}built"),
            granted_key: format!("{prefix}granted"),
            prefix: prefix.to_string(),
            node: node.to_string(),
            reserve: redis::Script::new(RESERVE),
            give_back: redis::Script::new(GIVE_BACK),
            drop_stale: redis::Script::new(DROP_STALE),
            lease: redis::Script::new(LEASE),
            lease_ttl: Duration::from_secs(30),
        })
    }

    /// The jobs' lease lasts `ttl` unrenewed (`[cluster] lease`).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> ClusterStore {
        self.lease_ttl = ttl;
        self
    }

    /// Takes or renews the lease under which the jobs that write run (the
    /// tier check, cleanup, sync, and a reconcile's tier shrink).
    pub async fn jobs_lease(&self) -> Result<bool, StoreError> {
        self.lease("jobs", self.lease_ttl).await
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let c = bounded(
            self.conn
                .get_or_try_init(|| self.client.get_connection_manager_with_config(cfg)),
        )
        .await?;
        Ok(c.clone())
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let pong: String = bounded(redis::cmd("PING").query_async(&mut c)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unexpected(pong))
        }
    }

    /// The atomic admission (see [`RESERVE`]).
    pub async fn reserve(
        &self,
        user: &UserId,
        capacity: usize,
        now: u64,
        min_idle_ms: u64,
        mode: ReserveMode,
    ) -> Result<Reserve, StoreError> {
        let mut c = self.conn().await?;
        let mode = match mode {
            ReserveMode::FreeOnly => "free",
            ReserveMode::MayEvict => "evict",
        };
        let mut inv = self.reserve.key(&self.seats_key);
        inv.key(&self.built_key)
            .key(&self.granted_key)
            .arg(user.as_str())
            .arg(capacity)
            .arg(now)
            .arg(min_idle_ms)
            .arg(mode);
        let v: Vec<String> = bounded(inv.invoke_async(&mut c)).await?;
        match v.first().map(String::as_str) {
            Some("holding") => Ok(Reserve::Holding),
            Some("granted") => Ok(Reserve::Granted),
            Some("full") => Ok(Reserve::Full),
            Some("unbuilt") => Ok(Reserve::Unbuilt),
            Some("evicted") if v.len() == 3 => Ok(Reserve::Evicted {
                victim: UserId::new(&v[1]),
                last_active: v[2].parse::<f64>().map(|f| f as u64).unwrap_or(0),
            }),
            _ => Err(StoreError::Unexpected(format!("{v:?}"))),
        }
    }

    /// Undoes a reservation whose directory write failed; the victim (if
    /// any) gets its seat back when that keeps the set within capacity.
    /// Whether the victim was restored.
    pub async fn give_back(
        &self,
        user: &UserId,
        capacity: usize,
        victim: Option<(&UserId, u64)>,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let mut inv = self.give_back.key(&self.seats_key);
        inv.key(&self.granted_key).arg(user.as_str()).arg(capacity);
        if let Some((v, t)) = victim {
            inv.arg(v.as_str()).arg(t);
        }
        let n: i64 = bounded(inv.invoke_async(&mut c)).await?;
        Ok(n == 1)
    }

    /// The user's seat goes (released: logout, cleanup, tier shrink, …).
    pub async fn release(&self, user: &UserId) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrem(&self.seats_key, user.as_str())
            .ignore()
            .hdel(&self.granted_key, user.as_str())
            .ignore();
        let _: () = bounded(pipe.query_async(&mut c)).await?;
        Ok(())
    }

    /// Reconcile: `users` are not in the access group any more; each goes
    /// unless granted at or after `before` (ms). How many went.
    pub async fn drop_stale(&self, users: &[UserId], before: u64) -> Result<usize, StoreError> {
        if users.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn().await?;
        let mut inv = self.drop_stale.key(&self.seats_key);
        inv.key(&self.granted_key).arg(before);
        for u in users {
            inv.arg(u.as_str());
        }
        let n: i64 = bounded(inv.invoke_async(&mut c)).await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether the store has its holders (its `built` marker).
    pub async fn is_built(&self) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let n: i64 = bounded(
            redis::cmd("EXISTS")
                .arg(&self.built_key)
                .query_async(&mut c),
        )
        .await?;
        Ok(n == 1)
    }

    /// Every holder with their last activity (ms).
    pub async fn holders(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
        let mut c = self.conn().await?;
        let v: Vec<(String, f64)> = bounded(
            redis::cmd("ZRANGE")
                .arg(&self.seats_key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut c),
        )
        .await?;
        Ok(v.into_iter()
            .map(|(u, s)| (UserId::new(&u), s.max(0.0) as u64))
            .collect())
    }

    /// Moves holders' activity times forward (never back; users who hold
    /// no seat are not added).
    pub async fn touch_many(&self, times: &[(UserId, u64)]) -> Result<(), StoreError> {
        if times.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(&self.seats_key).arg("XX").arg("GT");
        for (u, t) in times {
            cmd.arg(*t).arg(u.as_str());
        }
        let _: i64 = bounded(cmd.query_async(&mut c)).await?;
        Ok(())
    }

    /// Holders a replica knows from the directory (reconcile) or its own
    /// view (a store found emptied): each is put in the set if missing, and
    /// the store is marked built. Atomic: the marker never stands without
    /// the holders.
    pub async fn adopt_many(&self, users: &[(UserId, u64)]) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !users.is_empty() {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&self.seats_key).arg("NX");
            for (u, t) in users {
                cmd.arg(*t).arg(u.as_str());
            }
            pipe.add_command(cmd).ignore();
        }
        pipe.set(&self.built_key, 1).ignore();
        let _: () = bounded(pipe.query_async(&mut c)).await?;
        Ok(())
    }

    /// Takes or renews the lease on `job` for `ttl`; whether this node
    /// holds it now.
    pub async fn lease(&self, job: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let mut inv = self.lease.key(format!("{}lease:{job}", self.prefix));
        inv.arg(&self.node)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let n: i64 = bounded(inv.invoke_async(&mut c)).await?;
        Ok(n == 1)
    }

    /// Removes every key of this prefix's pool (tests, `iumgate cluster
    /// reset`-like repairs): the next reconcile rebuilds it.
    pub async fn clear(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let _: i64 = bounded(
            redis::cmd("DEL")
                .arg(&self.seats_key)
                .arg(&self.built_key)
                .arg(&self.granted_key)
                .query_async(&mut c),
        )
        .await?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn kind_code(k: Kind) -> char {
    match k {
        Kind::Session => 's',
        Kind::RememberMe => 'r',
        Kind::Token => 't',
        Kind::Wait => 'w',
    }
}

fn kind_of(c: char) -> Option<Kind> {
    Some(match c {
        's' => Kind::Session,
        'r' => Kind::RememberMe,
        't' => Kind::Token,
        'w' => Kind::Wait,
        _ => return None,
    })
}

/// A binding to write: its key, kind, user, and how long it lives (ms).
pub type SharedBinding = (SessionKey, Kind, UserId, u64);

impl ClusterStore {
    fn binding_key(&self, key: &SessionKey) -> String {
        format!("{}b:{}", self.prefix, hex(key))
    }

    /// The key every replica hashes session cookies with: the first
    /// replica's `candidate`, kept in Redis; later replicas read it.
    pub async fn shared_hash_key(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        let mut c = self.conn().await?;
        let k = format!("{}hash_key", self.prefix);
        let _: Option<String> = bounded(
            redis::cmd("SET")
                .arg(&k)
                .arg(hex(&candidate))
                .arg("NX")
                .query_async(&mut c),
        )
        .await?;
        let v: String = bounded(redis::cmd("GET").arg(&k).query_async(&mut c)).await?;
        unhex::<32>(&v)
            .ok_or_else(|| StoreError::Unexpected("hash_key is not 64 hex digits".into()))
    }

    /// Writes bindings (each expires after its time to live).
    pub async fn bind_many(&self, bindings: &[SharedBinding]) -> Result<(), StoreError> {
        if bindings.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        for (key, kind, user, ttl) in bindings {
            pipe.cmd("SET")
                .arg(self.binding_key(key))
                .arg(format!("{}:{}", kind_code(*kind), user.as_str()))
                .arg("PX")
                .arg((*ttl).max(1))
                .ignore();
        }
        let _: () = bounded(pipe.query_async(&mut c)).await?;
        Ok(())
    }

    /// Drops bindings (a logout, a session the app ended).
    pub async fn forget_many(&self, keys: &[SessionKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("DEL");
        for k in keys {
            cmd.arg(self.binding_key(k));
        }
        let _: i64 = bounded(cmd.query_async(&mut c)).await?;
        Ok(())
    }

    /// The bindings another replica wrote for `keys`, in order.
    pub async fn lookup(
        &self,
        keys: &[SessionKey],
    ) -> Result<Vec<Option<(Kind, UserId)>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.binding_key(k));
        }
        let v: Vec<Option<String>> = bounded(cmd.query_async(&mut c)).await?;
        Ok(v.into_iter()
            .map(|o| {
                let s = o?;
                let (k, u) = s.split_once(':')?;
                let kind = kind_of(k.chars().next()?)?;
                crate::identity::valid_username(u).then(|| (kind, UserId::new(u)))
            })
            .collect())
    }
}

/// What a replica shows the others' status pages: its alerts and job runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerState {
    pub node: String,
    pub alerts: Vec<crate::alerts::Alert>,
    pub jobs: Vec<(String, crate::jobs::JobRun)>,
}

/// How long a replica's published state lasts unrefreshed (a dead
/// replica's disappears).
pub const PEER_TTL: Duration = Duration::from_secs(5);

impl ClusterStore {
    /// Publishes this replica's state (expires after [`PEER_TTL`]) and
    /// reads every other replica's.
    pub async fn exchange_peers(&self, mine: &PeerState) -> Result<Vec<PeerState>, StoreError> {
        let mut c = self.conn().await?;
        let json = serde_json::to_string(mine)
            .map_err(|e| StoreError::Unexpected(format!("peer state: {e}")))?;
        let _: () = bounded(
            redis::cmd("SET")
                .arg(format!("{}node:{}", self.prefix, self.node))
                .arg(json)
                .arg("PX")
                .arg(u64::try_from(PEER_TTL.as_millis()).unwrap_or(5_000))
                .query_async(&mut c),
        )
        .await?;
        let pattern = format!("{}node:*", self.prefix);
        let (_, keys): (u64, Vec<String>) = bounded(
            redis::cmd("SCAN")
                .arg(0)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c),
        )
        .await?;
        let mine_key = format!("{}node:{}", self.prefix, self.node);
        let others: Vec<&String> = keys.iter().filter(|k| **k != mine_key).take(64).collect();
        if others.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in &others {
            cmd.arg(k.as_str());
        }
        let v: Vec<Option<String>> = bounded(cmd.query_async(&mut c)).await?;
        let mut peers: Vec<PeerState> = v
            .into_iter()
            .flatten()
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect();
        peers.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(peers)
    }
}

/// The default node id: host name and process id.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "iumgate".to_string());
    format!("{host}-{}", std::process::id())
}
