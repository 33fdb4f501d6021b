-- ARGV: client, request size, default ttl, max delay, global max post size,
-- then per message: id, body, ttl ('' = default), delay ('' = default).
-- Creates the queue if missing (also when the post is then rejected).
-- Returns {'ok', created (0/1)} | {'too_large', effective, global, queue} | {'bad_delay'}.
local now = now_ms()
local created = 0
if ensure_queue(now, nil) then created = 1 end
sweep(now, 20)
local client, size = ARGV[1], tonumber(ARGV[2])
local default_ttl, max_delay, global_max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local queue_max = num_setting('mps')
if queue_max then
  local effective = math.min(queue_max, global_max)
  if size > effective then return {'too_large', effective, global_max, queue_max} end
end
local ttl_default = num_setting('dttl') or default_ttl
local delay_default = num_setting('ddelay')
local n = (#ARGV - 5) / 4
local delays = {}
for i = 1, n do
  local base = 5 + (i - 1) * 4
  local delay = 0
  if delay_default then
    if ARGV[base + 4] ~= '' then delay = tonumber(ARGV[base + 4]) else delay = delay_default end
    if delay < 0 or delay > max_delay then return {'bad_delay'} end
  end
  delays[i] = delay
end
local last = redis.call('HINCRBY', K_Q, 'seq', n)
for i = 1, n do
  local base = 5 + (i - 1) * 4
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
return {'ok', created}
