"""The Lua scripts of the Redis hub: each one a single atomic step on the shared rooms.

Redis runs a script without interleaving any other command (EVAL, "Atomicity
of scripts"), so a capacity check and the add that follows it cannot race with
another process's join, and a removal cannot race with a resume.

Keys, under a prefix ``P`` (``confide:`` by default)::

    P m:<peer>      hash   room, name, token, proc (holder), conn (attachment), away ("0"/"1")
    P r:<room>      zset   peer ids scored by join order (P seq)
    P t:<token>     string the peer id a resume token reclaims
    P p:<peer>      list   frames kept while the peer is away (bounded)
    P pm:<proc>     set    peers a server process holds
    P alive:<proc>  string the process's presence, with a TTL it keeps refreshing
    P procs         set    processes that have held peers
    P conns:<proc>  hash   client address -> WebSockets that process has open
    P join:<addr>   hash   the address's join token bucket (tokens, stamp)
    P rooms, peers  sets   for /healthz
    P gone:<room>   hash   peer -> peer-left frame, for a while after Redis came back empty
    channel P ch:<proc>    "<conn>\\n<frame>" for a peer that process holds;
                           "<conn>\\n" alone: that attachment was replaced by a resume

Every script that sends frames returns the ones for this process's own peers
as a flat list (conn, frame, conn, frame, …) for the caller to deliver
directly, and publishes the others once per addressee: a relay is one publish.

The scripts touch keys they compute, so they need a single Redis (not Redis
Cluster, where every key must be declared).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "ALLOW_JOIN",
    "CLOSE_CONNECTION",
    "FORGET_PROC",
    "HEARTBEAT",
    "JOIN",
    "KEEP",
    "OPEN_CONNECTION",
    "SAFE_NAME",
    "relay_script",
    "REMOVE",
    "RESTORE",
    "SET_AWAY",
    "SET_CONNECTIONS",
]

#: Shared helpers, prepended to the scripts that deliver frames.
_DELIVER: Final = """
local P, me = ARGV[1], ARGV[2]
local function deliver(peer, frame, limit, out)
  local m = redis.call('HMGET', P .. 'm:' .. peer, 'proc', 'conn', 'away')
  if not m[1] then return end
  if m[3] == '1' then
    local key = P .. 'p:' .. peer
    redis.call('RPUSH', key, frame)
    redis.call('LTRIM', key, -limit, -1)
  elseif m[1] == me then
    out[#out + 1] = m[2]
    out[#out + 1] = frame
  else
    redis.call('PUBLISH', P .. 'ch:' .. m[1], m[2] .. '\\n' .. frame)
  end
end
local function add_member(peer, room, name, token, conn, away)
  redis.call('HSET', P .. 'm:' .. peer, 'room', room, 'name', name, 'token', token,
    'proc', me, 'conn', conn, 'away', away)
  redis.call('ZADD', P .. 'r:' .. room, redis.call('INCR', P .. 'seq'), peer)
  redis.call('SET', P .. 't:' .. token, peer)
  redis.call('SADD', P .. 'rooms', room)
  redis.call('SADD', P .. 'peers', peer)
  redis.call('SADD', P .. 'pm:' .. me, peer)
  redis.call('SADD', P .. 'procs', me)
end
local function others_of(room, peer)
  local list = {}
  for _, other in ipairs(redis.call('ZRANGE', P .. 'r:' .. room, 0, -1)) do
    if other ~= peer then
      list[#list + 1] = other
      list[#list + 1] = redis.call('HGET', P .. 'm:' .. other, 'name')
    end
  end
  return list
end
"""

#: ARGV: P, me, room, name, capacity, new id, new token (also a resumed peer's
#: next one), conn, peer-joined frame, resume token or "", pending limit.
#: -> {"resumed", {id, name, token}, others, pending, old local conn or ""}
#:  | {"joined", others, local deliveries} | {"full"} | {"retry"} (id or token taken)
JOIN: Final = (
    _DELIVER
    + """
local room, name, capacity = ARGV[3], ARGV[4], tonumber(ARGV[5])
local peer, token, conn, frame = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local resume, limit = ARGV[10], tonumber(ARGV[11])
if resume ~= '' then
  local old = redis.call('GET', P .. 't:' .. resume)
  if old then
    local key = P .. 'm:' .. old
    local m = redis.call('HMGET', key, 'room', 'name', 'proc', 'conn', 'away')
    if m[1] == room then
      -- A new token on every resume: the one just used stops working.
      redis.call('DEL', P .. 't:' .. resume)
      redis.call('SET', P .. 't:' .. token, old)
      redis.call('HSET', key, 'proc', me, 'conn', conn, 'away', '0', 'token', token)
      redis.call('SREM', P .. 'pm:' .. m[3], old)
      redis.call('SADD', P .. 'pm:' .. me, old)
      redis.call('SADD', P .. 'procs', me)
      local pending = redis.call('LRANGE', P .. 'p:' .. old, 0, -1)
      redis.call('DEL', P .. 'p:' .. old)
      local replaced = ''
      if m[5] == '0' then
        if m[3] == me then
          replaced = m[4]
        else
          redis.call('PUBLISH', P .. 'ch:' .. m[3], m[4] .. '\\n')
        end
      end
      return {'resumed', {old, m[2], token}, others_of(room, old), pending, replaced}
    end
  end
end
if redis.call('ZCARD', P .. 'r:' .. room) >= capacity then return {'full'} end
local taken = redis.call('EXISTS', P .. 'm:' .. peer) + redis.call('EXISTS', P .. 't:' .. token)
if taken > 0 then return {'retry'} end
local others = others_of(room, peer)
local out = {}
for i = 1, #others, 2 do deliver(others[i], frame, limit, out) end
add_member(peer, room, name, token, conn, '0')
return {'joined', others, out}
"""
)

#: Names safe to write into a script as Lua string literals (prefixes, process ids).
SAFE_NAME: Final = re.compile(r"[A-Za-z0-9:_.-]{1,64}")


def relay_script(prefix: str, proc: str, limit: int) -> str:
    """The RELAY script of one process, its constants written in.

    ARGV: room, to, frame -> 0 (no such peer) | {1, local deliveries}. Every
    relay that crosses processes runs it, and redis-py spends more time
    encoding a command's arguments than anything else on that path
    (bench/bench_scaleout.py, profiled): three arguments rather than six.
    """
    for name in (prefix, proc):
        if not SAFE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} cannot be written into a script")
    head = f"local P, me = '{prefix}', '{proc}'\n"
    body = _DELIVER.split("\n", 2)[2]  # the helpers, without their ARGV line
    return (
        head
        + body
        + f"""
local room, to, frame = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', P .. 'm:' .. to, 'room') ~= room then return 0 end
local out = {{}}
deliver(to, frame, {int(limit)}, out)
return {{1, out}}
"""
    )


#: ARGV: P, peer, conn -> 1 if that attachment was still the peer's (now away), else 0.
SET_AWAY: Final = """
local key = ARGV[1] .. 'm:' .. ARGV[2]
if redis.call('HGET', key, 'conn') ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'away', '1')
return 1
"""

#: ARGV: P, me, peer, conn or "" (any), "1" if it must be away, holder or "" (any: else
#: only while the holder's presence has lapsed), peer-left frame, pending limit,
#: room, tombstone ms ("0": none).
#: A tombstone is for a peer that left while Redis was away and came back
#: empty: its room's peers, restored by their processes before or after this,
#: are each told it left.
#: -> {removed 0/1, local deliveries}
REMOVE: Final = (
    _DELIVER
    + """
local peer, conn, must_be_away, holder = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local frame, limit, tomb_room, tomb_ms = ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]
local key = P .. 'm:' .. peer
local m = redis.call('HMGET', key, 'room', 'token', 'proc', 'conn', 'away')
if not m[1] then
  if tomb_ms == '0' then return {0, {}} end
  local gone = P .. 'gone:' .. tomb_room
  redis.call('HSET', gone, peer, frame)
  redis.call('PEXPIRE', gone, tomb_ms)
  local out = {}
  for _, other in ipairs(redis.call('ZRANGE', P .. 'r:' .. tomb_room, 0, -1)) do
    deliver(other, frame, limit, out)
  end
  return {0, out}
end
if conn ~= '' and m[4] ~= conn then return {0, {}} end
if must_be_away == '1' and m[5] ~= '1' then return {0, {}} end
if holder ~= '' then
  if m[3] ~= holder or redis.call('EXISTS', P .. 'alive:' .. holder) == 1 then return {0, {}} end
end
local room = m[1]
redis.call('ZREM', P .. 'r:' .. room, peer)
redis.call('DEL', key, P .. 'p:' .. peer, P .. 't:' .. m[2])
redis.call('SREM', P .. 'peers', peer)
redis.call('SREM', P .. 'pm:' .. m[3], peer)
local out = {}
local rest = redis.call('ZRANGE', P .. 'r:' .. room, 0, -1)
if #rest == 0 then
  redis.call('SREM', P .. 'rooms', room)
else
  for _, other in ipairs(rest) do deliver(other, frame, limit, out) end
end
return {1, out}
"""
)

#: After Redis came back or this process's presence lapsed: put one of its
#: peers back. ARGV: P, me, peer, room, name, token, conn, away, announce ("1":
#: the others were told it left), peer-joined frame, pending limit.
#: -> {"kept" | "restored" | "moved" (resumed elsewhere meanwhile), local deliveries}
RESTORE: Final = (
    _DELIVER
    + """
local peer, room, name, token, conn = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local away, announce, frame, limit = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
local key = P .. 'm:' .. peer
local current = redis.call('HGET', key, 'conn')
if current then
  if current ~= conn then return {'moved', {}} end
  redis.call('HSET', key, 'proc', me, 'away', away)
  redis.call('SADD', P .. 'pm:' .. me, peer)
  redis.call('SADD', P .. 'procs', me)
  return {'kept', {}}
end
local out = {}
if announce == '1' then
  local others = others_of(room, peer)
  for i = 1, #others, 2 do deliver(others[i], frame, limit, out) end
end
add_member(peer, room, name, token, conn, away)
-- Peers of this room that left while Redis was away (REMOVE's tombstones).
local gone = redis.call('HGETALL', P .. 'gone:' .. room)
for i = 2, #gone, 2 do deliver(peer, gone[i], limit, out) end
return {'restored', out}
"""
)

#: A frame that reached a process for an attachment that has just dropped:
#: kept for the peer's resume, wherever that happens, unless it has resumed
#: already. ARGV: P, peer, conn, frame, pending limit -> 1 (kept) | 0
KEEP: Final = """
local P, peer, conn = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', P .. 'm:' .. peer, 'conn') ~= conn then return 0 end
redis.call('RPUSH', P .. 'p:' .. peer, ARGV[4])
redis.call('LTRIM', P .. 'p:' .. peer, -tonumber(ARGV[5]), -1)
return 1
"""

#: ARGV: P, me, ttl in ms -> 1 if the presence was still there, 0 if it had lapsed.
HEARTBEAT: Final = """
local key = ARGV[1] .. 'alive:' .. ARGV[2]
local had = redis.call('EXISTS', key)
redis.call('SET', key, '1', 'PX', ARGV[3])
redis.call('SADD', ARGV[1] .. 'procs', ARGV[2])
return had
"""

#: ARGV: P, proc -> forget a lapsed process (and its connection counts) once it holds no peer.
FORGET_PROC: Final = """
if redis.call('EXISTS', ARGV[1] .. 'alive:' .. ARGV[2]) == 1 then return 0 end
redis.call('DEL', ARGV[1] .. 'conns:' .. ARGV[2])
if redis.call('SCARD', ARGV[1] .. 'pm:' .. ARGV[2]) > 0 then return 0 end
redis.call('SREM', ARGV[1] .. 'procs', ARGV[2])
return 1
"""

#: One more WebSocket from an address, if all processes together have fewer
#: than the limit open. Each process keeps its own count (a crashed one's go
#: with its presence). ARGV: P, me, address, limit -> 1 (counted) | 0 (refused)
OPEN_CONNECTION: Final = """
local P, me, address, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local total = 0
redis.call('SADD', P .. 'procs', me)
for _, proc in ipairs(redis.call('SMEMBERS', P .. 'procs')) do
  total = total + tonumber(redis.call('HGET', P .. 'conns:' .. proc, address) or '0')
end
if total >= limit then return 0 end
redis.call('HINCRBY', P .. 'conns:' .. me, address, 1)
return 1
"""

#: ARGV: P, me, address: one of this process's WebSockets from it ended.
CLOSE_CONNECTION: Final = """
local key = ARGV[1] .. 'conns:' .. ARGV[2]
if redis.call('HINCRBY', key, ARGV[3], -1) <= 0 then redis.call('HDEL', key, ARGV[3]) end
return 1
"""

#: This process's counts, written whole after Redis came back.
#: ARGV: P, me, then address, count pairs.
SET_CONNECTIONS: Final = """
local key = ARGV[1] .. 'conns:' .. ARGV[2]
redis.call('DEL', key)
for i = 3, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
return 1
"""

#: A token bucket per address, shared by every process (Redis's clock: TIME).
#: ARGV: P, address, rate per second, burst -> 1 (a token spent) | 0
ALLOW_JOIN: Final = """
local key = ARGV[1] .. 'join:' .. ARGV[2]
local rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
if now > stamp then tokens = math.min(burst, tokens + (now - stamp) * rate) end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'stamp', tostring(now))
-- A full bucket carries no state: let the key go once it would have refilled.
redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
return allowed
"""
