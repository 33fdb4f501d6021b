-- ARGV: id, subscriber ('' = keep), ttl ('' = keep), has options (0/1), options.
-- Returns 'ok' | 'not_found' | 'conflict'.
local now = now_ms()
local id = ARGV[1]
local s = live_sub(id, now)
if not s then return 'not_found' end
local subscriber = ARGV[2]
if subscriber ~= '' and subscriber ~= s[S_SUBSCRIBER] then
  local other = redis.call('HGET', K_SUBU, subscriber)
  if other and other ~= id and live_sub(other, now) then return 'conflict' end
  if redis.call('HGET', K_SUBU, s[S_SUBSCRIBER]) == id then redis.call('HDEL', K_SUBU, s[S_SUBSCRIBER]) end
  redis.call('HSET', K_SUBU, subscriber, id)
  s[S_SUBSCRIBER] = subscriber
end
if ARGV[3] ~= '' then
  s[S_TTL] = tonumber(ARGV[3])
  s[S_EXPIRES] = now + s[S_TTL] * 1000
end
if ARGV[4] == '1' then s[S_OPTIONS] = ARGV[5] end
save_sub(id, s)
return 'ok'
