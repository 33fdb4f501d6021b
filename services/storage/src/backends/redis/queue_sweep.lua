-- ARGV: budget. Removes expired messages, claims and subscriptions.
-- Returns {messages removed, claims reaped, subscriptions removed, pending dead letters}.
local now = now_ms()
local budget = tonumber(ARGV[1])
local removed, reaped = sweep(now, budget)
local subs = 0
local ids = redis.call('ZRANGE', K_SUBZ, 0, budget - 1)
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', K_SUBS, id)
  if not raw then
    redis.call('ZREM', K_SUBZ, id)
  else
    local s = cmsgpack.unpack(raw)
    if s[6] <= now then
      redis.call('HDEL', K_SUBS, id)
      redis.call('ZREM', K_SUBZ, id)
      if redis.call('HGET', K_SUBU, s[1]) == id then redis.call('HDEL', K_SUBU, s[1]) end
      subs = subs + 1
    end
  end
end
return {removed, reaped, subs, redis.call('HLEN', K_DEAD)}
