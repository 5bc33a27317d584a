"""The Lua scripts behind ``state.redis``: each decision is one atomic script on the server.

Time is the server's (``TIME``), so hosts with skewed clocks agree. A bucket is a hash
(``t`` tokens, ``ts`` milliseconds) refilled at ``capacity`` per minute; an absent key is a
full bucket, so every key expires once it would have refilled. Concurrency is a sorted set
of slot ids scored by lease expiry: a holder that dies stops renewing and its slot lapses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Script:
    """Lua source and its SHA-1, the name ``EVALSHA`` knows it by."""

    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, cap)
  local v = redis.call('HMGET', key, 't', 'ts')
  local tokens, ts = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or ts == nil then return cap end
  if now > ts then tokens = math.min(cap, tokens + (now - ts) * cap / 60000) end
  return tokens
end
local function store(key, cap, tokens)
  redis.call('HSET', key, 't', string.format('%.17g', tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil((cap - tokens) * 60000 / cap) + 1000)
end
local function wait(cap, tokens, cost)
  if cost > cap then return -1 end
  if cost <= tokens then return 0 end
  return math.ceil((cost - tokens) * 60000 / cap)
end
local function worst(a, b)
  if a < 0 or b < 0 then return -1 end
  return math.max(a, b)
end
"""

ACQUIRE = Script(_COMMON + """
-- KEYS: rpm hash, tpm hash, slots zset. ARGV: rpm, tpm, max_concurrent (0 = none),
-- cost (tokens), slot id, lease ms. Returns {bucket wait ms (-1: never, over capacity),
-- 1 if every slot is taken, rpm left, tpm left}; granted when both are 0, else nothing
-- is taken.
local rpm, tpm, mc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, lease = tonumber(ARGV[4]), tonumber(ARGV[6])
local w, full, r, k = 0, 0, -1, -1
if rpm > 0 then r = level(KEYS[1], rpm); w = worst(w, wait(rpm, r, 1)) end
if tpm > 0 then k = level(KEYS[2], tpm); w = worst(w, wait(tpm, k, cost)) end
if mc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= mc then full = 1 end
end
if w == 0 and full == 0 then
  if rpm > 0 then r = r - 1; store(KEYS[1], rpm, r) end
  if tpm > 0 then k = k - cost; store(KEYS[2], tpm, k) end
  if mc > 0 then
    redis.call('ZADD', KEYS[3], now + lease, ARGV[5])
    redis.call('PEXPIRE', KEYS[3], lease * 2)
  end
end
return {w, full, string.format('%.17g', r), string.format('%.17g', k)}
""")

SETTLE = Script(_COMMON + """
-- KEYS: tpm hash, slots zset. ARGV: tpm (0 = none), used - reserved tokens, slot id ('' none).
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm > 0 and delta ~= 0 then
  store(KEYS[1], tpm, math.min(tpm, level(KEYS[1], tpm) - delta))
end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
""")

RENEW = Script("""
-- KEYS: slots zset. ARGV: lease ms, then the slot ids this process still holds.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local kept = 0
for i = 2, #ARGV do
  kept = kept + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease * 2)
return kept
""")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

OPEN = Script(_NOW + """
-- KEYS: the open-circuits hash. ARGV: deployment id, ms open. Keeps the later end; the
-- hash expires a second after its last opening ends.
local dur = tonumber(ARGV[2])
local ends = now + dur
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if ends > current then redis.call('HSET', KEYS[1], ARGV[1], ends) end
if redis.call('PTTL', KEYS[1]) < dur + 1000 then redis.call('PEXPIRE', KEYS[1], dur + 1000) end
return 1
""")

OPENED = Script(_NOW + """
-- KEYS: the open-circuits hash. Returns {id, ms left, ...} of the circuits still open and
-- forgets the others.
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local left = tonumber(all[i + 1]) - now
  if left > 0 then
    out[#out + 1] = all[i]
    out[#out + 1] = left
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
""")
