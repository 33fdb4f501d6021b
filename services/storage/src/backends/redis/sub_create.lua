-- ARGV: new id, subscriber, ttl, options.
-- Returns {'created', id} | {'exists', id} (unconfirmed duplicate) | {'conflict'}.
local now = now_ms()
local id, subscriber, ttl, options = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local existing = redis.call('HGET', K_SUBU, subscriber)
if existing then
  local s = live_sub(existing, now)
  if s then
    if s[S_CONFIRMED] == 1 then return {'conflict'} end
    return {'exists', existing}
  end
  redis.call('HDEL', K_SUBU, subscriber)
end
save_sub(id, {subscriber, ttl, options, 0, now, now + ttl * 1000})
redis.call('ZADD', K_SUBZ, 0, id)
redis.call('HSET', K_SUBU, subscriber, id)
return {'created', id}
