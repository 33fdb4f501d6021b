-- Shared prelude of every queue script (concatenated before each script body).
--
-- KEYS, all in one Redis Cluster hash slot (the `{...}` tag of the queue):
--   1 q        HASH  queue record: meta, rev, seq, ct and the parsed settings
--                    dttl, ddelay, mps, mcc, dlq (key prefix), dlqttl
--   2 msgs     ZSET  not written (an older layout kept every message here);
--                    removed with the queue
--   3 free     ZSET  message id -> position (messages not held by a claim record)
--   4 exp      ZSET  expiry (ms) of messages: a member `~lo-hi` stands for the
--                    messages at positions lo..hi stored by one post with one
--                    expiry; a member that is a message id is that message's
--                    own expiry (set when a claim extended it, or when it was
--                    filed as a dead letter), which then wins over its group
--   5 claimed  ZSET  message id -> position (messages held by a claim record);
--                    every stored message is in exactly one of free / claimed
--   6 info     HASH  message id -> msgpack {0, created, expires, ttl, visible,
--                    client, claim, claim_expires, claim_count} followed by
--                    the body JSON text (times in ms; the first field is
--                    unused: records of older versions hold the position
--                    there, which the free / claimed score now carries
--                    alone)
--   7 body     HASH  message id -> body JSON text, for records written by
--                    older versions only (they hold no body after the
--                    msgpack); nothing writes it now
--   8 claims   HASH  claim id -> msgpack {renewed, expires, ttl, grace, {ids}}
--   9 cexp     ZSET  claim id -> expiry (ms)
--  10 dead     HASH  message id -> msgpack record waiting to enter the DLQ
--  11 subs     HASH  subscription id -> msgpack {subscriber, ttl, options,
--                    confirmed, created, expires}
--  12 subz     ZSET  subscription id (score 0, ordered by id)
--  13 subu     HASH  subscriber URI -> subscription id
--  14 nrec     HASH  delivery id -> JSON delivery record (see delivery.rs)
--  15 ndue     ZSET  delivery id -> when it is next due (ms); leased
--                    deliveries sit at their lease's end
local K_Q, K_MSGS, K_FREE, K_EXP, K_CLAIMED, K_INFO, K_BODY = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local K_CLAIMS, K_CEXP, K_DEAD, K_SUBS, K_SUBZ, K_SUBU = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local K_NREC, K_NDUE = KEYS[14], KEYS[15]

-- The earliest due time of the queue's deliveries, or -1 when it has none.
local function next_due()
  local first = redis.call('ZRANGE', K_NDUE, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return -1
end

-- Field positions of a message info record.
local POS, CREATED, EXPIRES, TTL, VISIBLE, CLIENT, CLAIM, CLAIM_EXP, COUNT = 1, 2, 3, 4, 5, 6, 7, 8, 9

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Splits a stored info value into its record and the body after it ('' when
-- an older version wrote it: that body is in the `body` hash). Bodies are
-- JSON text, never empty.
local function split_info(raw)
  -- `unpack_one` gives the bytes read, or -1 when nothing follows.
  local used, m = cmsgpack.unpack_one(raw)
  if used < 0 then return m, '' end
  return m, string.sub(raw, used + 1)
end

-- The record and inline body ('' = in the `body` hash) of a message, or nil.
local function load_info(id)
  local raw = redis.call('HGET', K_INFO, id)
  if not raw then return nil end
  return split_info(raw)
end

-- Stores a message's record with its inline body `tail` (as `load_info` or
-- `split_info` returned it, so an older record keeps its body where it is).
local function save_info(id, m, tail)
  redis.call('HSET', K_INFO, id, cmsgpack.pack(m) .. tail)
end

-- A message's body: its inline `tail`, else the `body` hash's entry.
local function body_of(id, tail)
  if tail ~= '' then return tail end
  return redis.call('HGET', K_BODY, id)
end

-- The bodies of `ids` (tails[i] as `split_info` returned for ids[i]), with
-- one read of the `body` hash for the records older versions wrote.
local function bodies_of(ids, tails)
  local out, old = {}, {}
  for i, tail in ipairs(tails) do
    if tail ~= '' then out[i] = tail else old[#old + 1] = i end
  end
  if #old > 0 then
    local keys = {}
    for k, i in ipairs(old) do keys[k] = ids[i] end
    local found = redis.call('HMGET', K_BODY, unpack(keys))
    for k, i in ipairs(old) do out[i] = found[k] end
  end
  return out
end

-- Whether bodies written by older versions remain (only then do removals
-- touch the `body` hash).
local function old_bodies()
  return redis.call('EXISTS', K_BODY) == 1
end

-- Removes many messages with one command per structure (in chunks, so no
-- command gets more arguments than Lua can unpack).
local function remove_messages(ids)
  local old = old_bodies()
  for first = 1, #ids, 1000 do
    local chunk = {}
    for i = first, math.min(first + 999, #ids) do chunk[#chunk + 1] = ids[i] end
    redis.call('ZREM', K_FREE, unpack(chunk))
    redis.call('ZREM', K_EXP, unpack(chunk))
    redis.call('ZREM', K_CLAIMED, unpack(chunk))
    redis.call('HDEL', K_INFO, unpack(chunk))
    if old then redis.call('HDEL', K_BODY, unpack(chunk)) end
  end
end

local function remove_message(id)
  remove_messages({id})
end

-- Up to `count` stored messages in position order (the union of the free
-- and claimed sets): from position `min` (a ZRANGEBYSCORE bound) upwards, or
-- from the newest downwards when `reverse`. Returns a flat {id, position, ...}.
local function positions(min, count, reverse)
  local a, b
  if reverse then
    a = redis.call('ZREVRANGEBYSCORE', K_FREE, '+inf', min, 'WITHSCORES', 'LIMIT', 0, count)
    b = redis.call('ZREVRANGEBYSCORE', K_CLAIMED, '+inf', min, 'WITHSCORES', 'LIMIT', 0, count)
  else
    a = redis.call('ZRANGEBYSCORE', K_FREE, min, '+inf', 'WITHSCORES', 'LIMIT', 0, count)
    b = redis.call('ZRANGEBYSCORE', K_CLAIMED, min, '+inf', 'WITHSCORES', 'LIMIT', 0, count)
  end
  if #b == 0 then return a end
  if #a == 0 then return b end
  local out, i, j = {}, 1, 1
  while #out < count * 2 and (i <= #a or j <= #b) do
    local take_a
    if i > #a then
      take_a = false
    elseif j > #b then
      take_a = true
    else
      local pa, pb = tonumber(a[i + 1]), tonumber(b[j + 1])
      if reverse then take_a = pa > pb else take_a = pa < pb end
    end
    if take_a then
      out[#out + 1], out[#out + 2] = a[i], a[i + 1]
      i = i + 2
    else
      out[#out + 1], out[#out + 2] = b[j], b[j + 1]
      j = j + 2
    end
  end
  return out
end

local function claim_active(m, now)
  return m[CLAIM] ~= '' and m[CLAIM_EXP] > now
end

-- Drops a claim record, returning the messages it still holds to the free set
-- at their positions (a record of an older version knows its own).
local function drop_claim(cid)
  local raw = redis.call('HGET', K_CLAIMS, cid)
  if raw then
    local c = cmsgpack.unpack(raw)
    for _, id in ipairs(c[5]) do
      local m, tail = load_info(id)
      if m and m[CLAIM] == cid then
        local pos = m[POS]
        if pos == 0 then pos = redis.call('ZSCORE', K_CLAIMED, id) end
        m[CLAIM] = ''
        m[CLAIM_EXP] = 0
        save_info(id, m, tail)
        redis.call('ZREM', K_CLAIMED, id)
        if pos then redis.call('ZADD', K_FREE, pos, id) end
      end
    end
    redis.call('HDEL', K_CLAIMS, cid)
  end
  redis.call('ZREM', K_CEXP, cid)
end

-- Expires the messages of the group `member` (score `score`) at positions
-- lo .. up to lo + budget - 1, keeping those whose own expiry is later;
-- whatever part of the group is left is filed again under the same score.
-- Returns {messages removed, positions looked at}.
local function sweep_group(member, score, now, budget)
  local lo, hi = string.match(member, '^~(%d+)-(%d+)$')
  redis.call('ZREM', K_EXP, member)
  if not lo then return 0, 1 end
  lo, hi = tonumber(lo), tonumber(hi)
  local top = math.min(hi, lo + budget - 1)
  if top < hi then redis.call('ZADD', K_EXP, score, '~' .. (top + 1) .. '-' .. hi) end
  local ids = redis.call('ZRANGEBYSCORE', K_FREE, lo, top)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_CLAIMED, lo, top)) do ids[#ids + 1] = id end
  local expired = {}
  for first = 1, #ids, 1000 do
    local chunk = {}
    for i = first, math.min(first + 999, #ids) do chunk[#chunk + 1] = ids[i] end
    local raws = redis.call('HMGET', K_INFO, unpack(chunk))
    for i, id in ipairs(chunk) do
      if not raws[i] or split_info(raws[i])[EXPIRES] <= now then expired[#expired + 1] = id end
    end
  end
  remove_messages(expired)
  return #expired, top - lo + 1
end

-- Removes expired messages, looking at up to about `budget` of them.
-- Returns how many it removed.
local function sweep_messages(now, budget)
  local due = redis.call('ZRANGEBYSCORE', K_EXP, '-inf', now, 'WITHSCORES', 'LIMIT', 0, budget)
  local removed, left = 0, budget
  for i = 1, #due, 2 do
    if left <= 0 then break end
    local member = due[i]
    if string.byte(member, 1) == 126 then
      local gone, looked = sweep_group(member, due[i + 1], now, left)
      removed, left = removed + gone, left - looked
    else
      remove_message(member)
      removed, left = removed + 1, left - 1
    end
  end
  return removed
end

-- Reaps up to `budget` expired claims; returns how many.
local function reap(now, budget)
  local cids = redis.call('ZRANGEBYSCORE', K_CEXP, '-inf', now, 'LIMIT', 0, budget)
  for _, cid in ipairs(cids) do drop_claim(cid) end
  return #cids
end

-- Removes expired messages (looking at up to about `budget` of them) and
-- reaps up to `budget` expired claims. Returns how many of each were handled.
local function sweep(now, budget)
  return sweep_messages(now, budget), reap(now, budget)
end

-- Whether expired messages are still waiting for the sweep.
local function expiry_due(now)
  return #redis.call('ZRANGEBYSCORE', K_EXP, '-inf', now, 'LIMIT', 0, 1) > 0
end

-- Appends the client representation of a message to `out`:
-- id, ttl, age (s), body, active claim id or '', claim count, created (s),
-- position. Only listings read the position (as their next marker); the
-- callers that do not walk the sorted sets pass 0.
local function push_message(out, id, m, body, now, pos)
  out[#out + 1] = id
  out[#out + 1] = m[TTL]
  out[#out + 1] = math.floor((now - m[CREATED]) / 1000)
  out[#out + 1] = body or 'null'
  if claim_active(m, now) then out[#out + 1] = m[CLAIM] else out[#out + 1] = '' end
  out[#out + 1] = m[COUNT]
  out[#out + 1] = math.floor(m[CREATED] / 1000)
  out[#out + 1] = pos
end

local function queue_exists()
  return redis.call('EXISTS', K_Q) == 1
end

-- Creates the queue record if missing; returns true when it was created.
local function ensure_queue(now, meta)
  if queue_exists() then return false end
  redis.call('HSET', K_Q, 'meta', meta or '{}', 'rev', 1, 'seq', 0, 'ct', now)
  return true
end

local function num_setting(field)
  local v = redis.call('HGET', K_Q, field)
  if not v or v == '' then return nil end
  return tonumber(v)
end
