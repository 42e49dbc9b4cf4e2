//! The Lua scripts that make multi-step changes atomic. Each touches keys of one
//! hash slot only: the queue's scripts the queue key, the others one request's keys.
//!
//! Fenced scripts take the lease generation as `ARGV[1]` and change nothing (answer
//! 0) unless the request still exists and still carries that generation.

/// Milliseconds since the epoch by Redis's own clock, so that workers on hosts with
/// skewed clocks agree on when a lease ends.
macro_rules! now_ms {
    () => {
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

macro_rules! fence {
    () => {
        "if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end\n"
    };
}

/// KEYS: queue. ARGV: request id, request expiry (ms). Queues the job unless it is
/// queued already, and keeps the queue alive as long as its longest-lived request.
pub const ENQUEUE: &str = concat!(
    now_ms!(),
    "redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1])
local expires = tonumber(ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 or now + ttl < expires then
  redis.call('PEXPIREAT', KEYS[1], expires)
end
return 1"
);

/// KEYS: queue. ARGV: lease (ms). Takes the job due first, and pushes its score to
/// the end of the lease: another worker takes it again only once that passes.
pub const CLAIM: &str = concat!(
    now_ms!(),
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), due[1])
return due[1]"
);

/// KEYS: queue. ARGV: request id, delay (ms). Moves a queued job's next turn to
/// `delay` from now; answers 0 when the job is no longer queued.
pub const RESCHEDULE: &str = concat!(
    now_ms!(),
    "if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1"
);

/// KEYS: request. ARGV: field/value pairs..., expiry (ms, last). Creates a request.
pub const CREATE_REQUEST: &str = "local n = #ARGV
for i = 1, n - 1, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[n]))
return 1";

/// KEYS: owner. ARGV: expected request id ('' for none), new id, expiry (ms).
/// Points the owner at the new request if it still points at the expected one;
/// answers the id it points at afterwards.
pub const CLAIM_OWNER: &str = "local current = redis.call('GET', KEYS[1]) or ''
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', tonumber(ARGV[3]))
  return ARGV[2]
end
return current";

/// KEYS: owner. ARGV: request id. Removes the owner pointer if it is that request's.
pub const RELEASE_OWNER: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// KEYS: request. ARGV: max attempts. Starts an attempt at a pending request:
/// answers {'gone'} when there is nothing to do, {'exhausted', attempts} when the
/// attempts are used up (the request is then failed), or {'started', gen, attempts}.
pub const BEGIN_ATTEMPT: &str = "if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  return {'gone'}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[1]) then
  local reason = redis.call('HGET', KEYS[1], 'error') or 'the worker stopped during every attempt'
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', 'gave up after ' .. (attempts - 1) .. ' attempts: ' .. reason)
  return {'exhausted', attempts - 1}
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
return {'started', tostring(gen), attempts}";

/// KEYS: request, device. ARGV: gen. Empties a device's chunks before a (re)try.
pub const RESET_DEVICE: &str = concat!(fence!(), "redis.call('DEL', KEYS[2])\nreturn 1");

/// KEYS: request, device. ARGV: gen, chunk index, bytes, expiry (ms).
pub const STORE_CHUNK: &str = concat!(
    fence!(),
    "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[4]))
return 1"
);

/// KEYS: request, entries. ARGV: gen, device index, entry JSON, expiry (ms).
/// Makes a finished device visible and counts it once.
pub const RECORD_ENTRY: &str = concat!(
    fence!(),
    "if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'completed', 1)
end
redis.call('PEXPIREAT', KEYS[2], tonumber(ARGV[4]))
return 1"
);

/// KEYS: request. ARGV: gen, ready time (ms). Marks the request ready, but only
/// when every device is recorded (answers -1 otherwise).
pub const MARK_READY: &str = concat!(
    fence!(),
    "local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
local completed = tonumber(redis.call('HGET', KEYS[1], 'completed') or '0')
if completed ~= total then return -1 end
redis.call('HSET', KEYS[1], 'status', 'ready', 'ready_at', ARGV[2])
return 1"
);

/// KEYS: request. ARGV: gen, reason. Keeps the reason of a failed attempt.
pub const RECORD_ERROR: &str = concat!(
    fence!(),
    "redis.call('HSET', KEYS[1], 'error', ARGV[2])\nreturn 1"
);

/// KEYS: request. ARGV: gen, reason. Fails the request for good.
pub const MARK_FAILED: &str = concat!(
    fence!(),
    "redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2])\nreturn 1"
);

/// KEYS: request. ARGV: gen. Gives an attempt back without counting it, when the
/// worker stops for a shutdown rather than a failure.
pub const HAND_BACK: &str = concat!(
    fence!(),
    "redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HINCRBY', KEYS[1], 'gen', 1)
return 1"
);
