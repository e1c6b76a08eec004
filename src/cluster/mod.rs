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
    /// Free-only: no free seat for the user (nothing changed).
    Full,
    /// No seat: the user waits in the shared queue at this 1-based
    /// position (queued now, or their poll recorded).
    Queued { position: usize },
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

/// The admission, as [`crate::pool::Pool::admit`] decides it, over the
/// shared holders and the shared queue:
/// 1. abandoned waiters (no poll for `abandon_after`) leave the queue;
/// 2. a holder gets `holding`;
/// 3. `ahead` = waiters before the user (all of them if not queued),
///    `free` = unheld seats;
/// 4. `ahead < free` → `granted` (the seats of those ahead stay free for
///    them), and the user leaves the queue;
/// 5. free-only → `full`, nothing changed;
/// 6. `ahead == free`, the pool not above capacity, and the longest-idle
///    holder idle at least `min_idle` → `evicted` (the swap);
/// 7. else the user queues — a new waiter draws the next ticket, so the
///    queue is first come, first served over every replica — or records
///    the poll, and gets `queued` with the 1-based position.
///
/// A store without its `built` marker (emptied, or a new Redis) grants
/// nothing until a replica has written the holders it knows back into it.
///
/// A new holder leaves `released`; an evicted one enters it with `now`
/// (see [`ADOPT`]).
///
/// KEYS seats, built, granted, queue, polled, qsince, ticket, released;
/// ARGV user, capacity, now, min_idle, mode, abandon_after.
const RESERVE: &str = r#"
local seats, queue, polled, qsince = KEYS[1], KEYS[4], KEYS[5], KEYS[6]
local user = ARGV[1]
local cap = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local min_idle = tonumber(ARGV[4])
local abandon = tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[2]) == 0 then return {'unbuilt'} end
local gone = redis.call('ZRANGEBYSCORE', polled, '-inf', now - abandon, 'LIMIT', 0, 1000)
for _, u in ipairs(gone) do
  redis.call('ZREM', queue, u)
  redis.call('ZREM', polled, u)
  redis.call('HDEL', qsince, u)
end
if redis.call('ZSCORE', seats, user) then return {'holding'} end
local n = redis.call('ZCARD', seats)
local rank = redis.call('ZRANK', queue, user)
local ahead = rank or redis.call('ZCARD', queue)
local free = cap - n
if free < 0 then free = 0 end
local function dequeue()
  redis.call('ZREM', queue, user)
  redis.call('ZREM', polled, user)
  redis.call('HDEL', qsince, user)
end
if ahead < free then
  dequeue()
  redis.call('ZADD', seats, now, user)
  redis.call('HSET', KEYS[3], user, now)
  redis.call('HDEL', KEYS[8], user)
  return {'granted'}
end
if ARGV[5] ~= 'evict' then return {'full'} end
if ahead == free and n <= cap then
  local v = redis.call('ZRANGE', seats, 0, 0, 'WITHSCORES')
  if v[1] and (now - tonumber(v[2])) >= min_idle then
    dequeue()
    redis.call('ZREM', seats, v[1])
    redis.call('HDEL', KEYS[3], v[1])
    redis.call('HSET', KEYS[8], v[1], now)
    redis.call('ZADD', seats, now, user)
    redis.call('HSET', KEYS[3], user, now)
    redis.call('HDEL', KEYS[8], user)
    return {'evicted', v[1], v[2]}
  end
end
if rank then
  redis.call('ZADD', polled, 'XX', 'GT', now, user)
else
  local ticket = redis.call('INCR', KEYS[7])
  redis.call('ZADD', queue, ticket, user)
  redis.call('ZADD', polled, now, user)
  redis.call('HSET', qsince, user, now)
end
return {'queued', tostring(ahead + 1)}
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
/// KEYS[1] seats, KEYS[2] granted, KEYS[3] released; ARGV user,
/// capacity, [victim, last_active].
const GIVE_BACK: &str = r#"
local seats = KEYS[1]
redis.call('ZREM', seats, ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[3] and redis.call('ZCARD', seats) < tonumber(ARGV[2]) then
  redis.call('ZADD', seats, 'NX', ARGV[4], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[3])
  return 1
end
return 0
"#;

/// Holders a replica read from the directory (reconcile) or kept in its
/// own view (a store found emptied) go into the set if missing — except,
/// with `since`, those released at or after `since`: a reconcile that read
/// the directory before another replica released (or evicted) a holder
/// must not put that holder back. The waiters among them leave the queue;
/// the store is marked built (in the same script: never without them).
/// KEYS seats, built, queue, polled, qsince, released; ARGV since (or
/// ''), then last_active and user pairs.
const ADOPT: &str = r#"
local since = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local t, user = ARGV[i], ARGV[i + 1]
  local gone = since and redis.call('HGET', KEYS[6], user)
  if not (gone and tonumber(gone) >= since) then
    redis.call('ZADD', KEYS[1], 'NX', t, user)
    redis.call('ZREM', KEYS[3], user)
    redis.call('ZREM', KEYS[4], user)
    redis.call('HDEL', KEYS[5], user)
  end
end
redis.call('SET', KEYS[2], 1)
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
    /// The shared queue: a sorted set of waiters by ticket (first come,
    /// first served over every replica), their last polls (a sorted set,
    /// so that abandoned ones are found without a scan), since when they
    /// wait, and the ticket counter.
    queue_key: String,
    polled_key: String,
    qsince_key: String,
    ticket_key: String,
    /// When each holder last lost their seat (released or evicted), for
    /// [`ADOPT`].
    released_key: String,
    prefix: String,
    node: String,
    reserve: redis::Script,
    give_back: redis::Script,
    adopt: redis::Script,
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
        Ok(ClusterStore::from_client(client, prefix, node))
    }

    /// A store on the same Redis under another prefix (a further seat pool,
    /// `[pools.*]`), with its own connection.
    pub fn with_prefix(&self, prefix: &str) -> ClusterStore {
        ClusterStore::from_client(self.client.clone(), prefix, &self.node)
    }

    fn from_client(client: redis::Client, prefix: &str, node: &str) -> ClusterStore {
        ClusterStore {
            client,
            conn: OnceCell::new(),
            seats_key: format!("{prefix}seats"),
            built_key: format!("{prefix}built"),
            granted_key: format!("{prefix}granted"),
            queue_key: format!("{prefix}queue"),
            polled_key: format!("{prefix}polled"),
            qsince_key: format!("{prefix}qsince"),
            ticket_key: format!("{prefix}ticket"),
            released_key: format!("{prefix}released"),
            prefix: prefix.to_string(),
            node: node.to_string(),
            reserve: redis::Script::new(RESERVE),
            give_back: redis::Script::new(GIVE_BACK),
            adopt: redis::Script::new(ADOPT),
            drop_stale: redis::Script::new(DROP_STALE),
            lease: redis::Script::new(LEASE),
            lease_ttl: Duration::from_secs(30),
        }
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

    /// The atomic admission (see [`RESERVE`]); `pool` gives the capacity,
    /// `min_idle` and `abandon_after`.
    pub async fn reserve(
        &self,
        user: &UserId,
        pool: crate::pool::PoolConfig,
        now: u64,
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
            .key(&self.queue_key)
            .key(&self.polled_key)
            .key(&self.qsince_key)
            .key(&self.ticket_key)
            .key(&self.released_key)
            .arg(user.as_str())
            .arg(pool.capacity)
            .arg(now)
            .arg(pool.min_idle_ms)
            .arg(mode)
            .arg(pool.abandon_after_ms);
        let v: Vec<String> = bounded(inv.invoke_async(&mut c)).await?;
        match v.first().map(String::as_str) {
            Some("holding") => Ok(Reserve::Holding),
            Some("granted") => Ok(Reserve::Granted),
            Some("full") => Ok(Reserve::Full),
            Some("unbuilt") => Ok(Reserve::Unbuilt),
            Some("queued") if v.len() == 2 => match v[1].parse::<usize>() {
                Ok(position) => Ok(Reserve::Queued { position }),
                Err(_) => Err(StoreError::Unexpected(format!("{v:?}"))),
            },
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
        inv.key(&self.granted_key)
            .key(&self.released_key)
            .arg(user.as_str())
            .arg(capacity);
        if let Some((v, t)) = victim {
            inv.arg(v.as_str()).arg(t);
        }
        let n: i64 = bounded(inv.invoke_async(&mut c)).await?;
        Ok(n == 1)
    }

    /// The user's seat goes at `now` (released: logout, cleanup, tier
    /// shrink, …).
    pub async fn release(&self, user: &UserId, now: u64) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrem(&self.seats_key, user.as_str())
            .ignore()
            .hdel(&self.granted_key, user.as_str())
            .ignore()
            .hset(&self.released_key, user.as_str(), now)
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

    /// The shared queue, head first (ticket order), with each waiter's
    /// since and last poll (ms). One atomic read.
    pub async fn queue(&self) -> Result<Vec<crate::pool::Waiter>, StoreError> {
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrange(&self.queue_key, 0, -1)
            .zrange_withscores(&self.polled_key, 0, -1)
            .hgetall(&self.qsince_key);
        type Read = (
            Vec<String>,
            Vec<(String, f64)>,
            std::collections::HashMap<String, u64>,
        );
        let (order, polled, since): Read = bounded(pipe.query_async(&mut c)).await?;
        let polled: std::collections::HashMap<String, f64> = polled.into_iter().collect();
        Ok(order
            .into_iter()
            .map(|u| {
                let last_poll = polled.get(&u).map_or(0, |t| t.max(0.0) as u64);
                let since = since.get(&u).copied().unwrap_or(last_poll);
                crate::pool::Waiter {
                    user: UserId::new(&u),
                    since,
                    last_poll,
                }
            })
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

    /// Holders a replica knows from the directory (reconcile, which passes
    /// the time it started as `since`) or its own view (a store found
    /// emptied: `None`); see [`ADOPT`]. Atomic: the `built` marker never
    /// stands without the holders.
    pub async fn adopt_many(
        &self,
        users: &[(UserId, u64)],
        since: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut inv = self.adopt.key(&self.seats_key);
        inv.key(&self.built_key)
            .key(&self.queue_key)
            .key(&self.polled_key)
            .key(&self.qsince_key)
            .key(&self.released_key)
            .arg(since.map_or_else(String::new, |t| t.to_string()));
        for (u, t) in users {
            inv.arg(*t).arg(u.as_str());
        }
        let _: i64 = bounded(inv.invoke_async(&mut c)).await?;
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
                .arg(&self.queue_key)
                .arg(&self.polled_key)
                .arg(&self.qsince_key)
                .arg(&self.ticket_key)
                .arg(&self.released_key)
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
