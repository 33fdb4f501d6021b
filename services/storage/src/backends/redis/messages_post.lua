-- ARGV: client, request size, default ttl, max delay, global max post size,
-- notify ('' = nobody, 'all', 'confirmed'),
-- then per message: id, body, ttl ('' = default), delay ('' = default).
-- Creates the queue if missing (also when the post is then rejected).
-- Queues one delivery record per notified subscription, due now.
-- Returns {'ok', created (0/1), deliveries queued, now}
--       | {'too_large', effective, global, queue} | {'bad_delay'}.
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
local client, size = ARGV[1], tonumber(ARGV[2])
local default_ttl, max_delay, global_max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local notify = ARGV[6]
local HEAD = 6
local queue_max = setting(q[2])
if queue_max then
  local effective = math.min(queue_max, global_max)
  if size > effective then return {'too_large', effective, global_max, queue_max} end
end
local ttl_default = setting(q[3]) or default_ttl
local delay_default = setting(q[4])
local n = (#ARGV - HEAD) / 4
local delays = {}
for i = 1, n do
  local base = HEAD + (i - 1) * 4
  local delay = 0
  if delay_default then
    if ARGV[base + 4] ~= '' then delay = tonumber(ARGV[base + 4]) else delay = delay_default end
    if delay < 0 or delay > max_delay then return {'bad_delay'} end
  end
  delays[i] = delay
end
local last = redis.call('HINCRBY', K_Q, 'seq', n)
-- Clean up a little on every eighth position crossed (the sweeper does the
-- rest), instead of looking on every post.
if math.floor(last / 8) > math.floor((last - n) / 8) then sweep(now, 20) end
for i = 1, n do
  local base = HEAD + (i - 1) * 4
  local id, body = ARGV[base + 1], ARGV[base + 2]
  local ttl = ttl_default
  if ARGV[base + 3] ~= '' then ttl = tonumber(ARGV[base + 3]) end
  local pos = last - n + i
  local expires = now + ttl * 1000
  save_info(id, {pos, now, expires, ttl, now + delays[i] * 1000, client, '', 0, 0})
  redis.call('HSET', K_BODY, id, body)
  redis.call('ZADD', K_MSGS, pos, id)
  redis.call('ZADD', K_FREE, pos, id)
  redis.call('ZADD', K_EXP, expires, id)
end
local queued = 0
if notify ~= '' and redis.call('EXISTS', K_SUBS) == 1 then
  local msgs = {}
  for i = 1, n do
    local base = HEAD + (i - 1) * 4
    local ttl = ttl_default
    if ARGV[base + 3] ~= '' then ttl = tonumber(ARGV[base + 3]) end
    local delay = -1
    if delay_default then delay = delays[i] end
    msgs[i] = {ttl, delay, ARGV[base + 2]}
  end
  local first = ARGV[HEAD + 1]
  local subs = redis.call('HGETALL', K_SUBS)
  for j = 1, #subs, 2 do
    local sid, s = subs[j], cmsgpack.unpack(subs[j + 1])
    if s[S_EXPIRES] > now and (notify == 'all' or s[S_CONFIRMED] == 1) then
      local did = first .. '.' .. sid
      redis.call('HSET', K_NREC, did, cjson.encode({sub = sid, msgs = msgs}))
      redis.call('ZADD', K_NDUE, now, did)
      queued = queued + 1
    end
  end
end
return {'ok', created, queued, now}
