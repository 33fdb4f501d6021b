-- Posts one or more independent batches (concurrent posts to the queue,
-- coalesced by the caller), each accepted or rejected on its own.
-- ARGV: default ttl, max delay, global max post size, then per batch:
--   client, request size, notify ('' = nobody, 'all', 'confirmed'), count n,
--   ttl and delay of every message ('' = default; '*' for both when they
--   differ between messages), then per message: id, body, and with '*' its
--   own ttl and delay ('' = default).
-- Creates the queue if missing (also when every batch is then rejected).
-- Accepted batches get consecutive positions in ARGV order; each queues one
-- delivery record per notified subscription, due now.
-- Returns {created (0/1), deliveries queued, now, effective max post size
-- (0 = none), the queue's own max (0 = none), then per batch 'ok' |
-- 'too_large' | 'bad_delay'}.
local now = now_ms()
local created = 0
-- One read for the queue's existence and the settings a post needs.
local q = redis.call('HMGET', K_Q, 'rev', 'mps', 'dttl', 'ddelay')
if not q[1] then
  ensure_queue(now, nil)
  created = 1
end
local function setting(v)
  if not v or v == '' then return nil end
  return tonumber(v)
end
local default_ttl, max_delay, global_max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local queue_max = setting(q[2])
local effective = nil
if queue_max then effective = math.min(queue_max, global_max) end
local ttl_default = setting(q[3]) or default_ttl
local delay_default = setting(q[4])

-- Check every batch first; only accepted ones are stored.
local accepted = {}
local reply = {created, 0, now, effective or 0, queue_max or 0}
local total = 0
local at = 4
while at <= #ARGV do
  local start = at
  local size, n = tonumber(ARGV[start + 1]), tonumber(ARGV[start + 3])
  local ttl_arg, delay_arg = ARGV[start + 4], ARGV[start + 5]
  local stride = 2
  if ttl_arg == '*' then stride = 4 end
  local first = start + 6
  at = first + n * stride
  local status = 'ok'
  if effective and size > effective then status = 'too_large' end
  -- Delays count only on a delay queue; `delays[k]` (or `delay_all`) is the
  -- k-th message's.
  local delays, delay_all = {}, 0
  if status == 'ok' and delay_default then
    for k = 1, n do
      local given = delay_arg
      if stride == 4 then given = ARGV[first + (k - 1) * 4 + 3] end
      local delay = delay_default
      if given ~= '' then delay = tonumber(given) end
      if delay < 0 or delay > max_delay then
        status = 'bad_delay'
        break
      end
      if stride == 2 then
        delay_all = delay
        break
      end
      delays[k] = delay
    end
  end
  reply[#reply + 1] = status
  if status == 'ok' then
    local ttl_all = ttl_default
    if stride == 2 and ttl_arg ~= '' then ttl_all = tonumber(ttl_arg) end
    accepted[#accepted + 1] = {first, n, ARGV[start], ARGV[start + 2], delays, stride, ttl_all, delay_all}
    total = total + n
  end
end
if total == 0 then return reply end

local last = redis.call('HINCRBY', K_Q, 'seq', total)
-- Clean up a little on every eighth position crossed (the sweeper does the
-- rest), instead of looking on every post.
if math.floor(last / 8) > math.floor((last - total) / 8) then sweep(now, 20) end

-- Writes go out in bulk commands of at most CHUNK messages.
local CHUNK = 500
local infos, free = {}, {}
local function flush()
  if #infos == 0 then return end
  redis.call('HSET', K_INFO, unpack(infos))
  redis.call('ZADD', K_FREE, unpack(free))
  infos, free = {}, {}
end
-- Expiry is filed per run of consecutive positions sharing one expiry.
local groups, group_lo, group_exp = {}, nil, nil
local function close_group(hi)
  if group_lo then
    groups[#groups + 1] = group_exp
    groups[#groups + 1] = '~' .. group_lo .. '-' .. hi
  end
end
-- An info record (see common.lua) holds nothing particular to one message,
-- so it is packed once per distinct (client, ttl, delay); each message's
-- value is that record followed by its body.
local record_client, record_ttl, record_delay, record = nil, nil, nil, nil
local pos = last - total
local subs = nil
local queued = 0
for _, batch in ipairs(accepted) do
  local first, n, client, notify, delays = batch[1], batch[2], batch[3], batch[4], batch[5]
  local stride, ttl_all, delay_all = batch[6], batch[7], batch[8]
  local notified = nil
  if notify ~= '' then notified = {} end
  for k = 1, n do
    local base = first + (k - 1) * stride
    local id, body = ARGV[base], ARGV[base + 1]
    local ttl, delay = ttl_all, delay_all
    if stride == 4 then
      ttl = ttl_default
      if ARGV[base + 2] ~= '' then ttl = tonumber(ARGV[base + 2]) end
      delay = delays[k] or 0
    end
    pos = pos + 1
    local expires = now + ttl * 1000
    if record_client ~= client or record_ttl ~= ttl or record_delay ~= delay then
      record_client, record_ttl, record_delay = client, ttl, delay
      record = cmsgpack.pack({0, now, expires, ttl, now + delay * 1000, client, '', 0, 0})
    end
    local m = #infos
    infos[m + 1] = id
    infos[m + 2] = record .. body
    free[m + 1] = pos
    free[m + 2] = id
    if expires ~= group_exp then
      close_group(pos - 1)
      group_lo, group_exp = pos, expires
    end
    if #infos >= CHUNK * 2 then flush() end
    if notified then
      if delay_default then notified[k] = {ttl, delay, body} else notified[k] = {ttl, -1, body} end
    end
  end
  if notify ~= '' then
    if subs == nil then
      subs = {}
      if redis.call('EXISTS', K_SUBS) == 1 then subs = redis.call('HGETALL', K_SUBS) end
    end
    for j = 1, #subs, 2 do
      local sid, s = subs[j], cmsgpack.unpack(subs[j + 1])
      if s[S_EXPIRES] > now and (notify == 'all' or s[S_CONFIRMED] == 1) then
        local did = ARGV[first] .. '.' .. sid
        redis.call('HSET', K_NREC, did, cjson.encode({sub = sid, msgs = notified}))
        redis.call('ZADD', K_NDUE, now, did)
        queued = queued + 1
      end
    end
  end
end
flush()
close_group(pos)
for first = 1, #groups, 1000 do
  redis.call('ZADD', K_EXP, unpack(groups, first, math.min(first + 999, #groups)))
end
reply[2] = queued
return reply
