-- ARGV: most records. Returns the messages waiting in the dead-letter outbox:
-- id, body, client, created, ttl, expires, claim count, DLQ key prefix.
local out = {}
local all = redis.call('HGETALL', K_DEAD)
local limit = tonumber(ARGV[1])
for i = 1, #all, 2 do
  if #out >= limit * 8 then break end
  local r = cmsgpack.unpack(all[i + 1])
  out[#out + 1] = all[i]
  for j = 1, 7 do out[#out + 1] = r[j] end
end
return out
