-- Raw-Redis ceiling for a claim of up to K messages (used by compare.sh
-- through redis-benchmark: EVALSHA <sha> 0 K). The core of
-- services/storage/src/backends/redis/claim_create.lua: ZRANGEBYSCORE the K
-- oldest free messages, then per message ZREM from the free set, ZADD to the
-- claimed set and HSET its updated info record; then HMGET their bodies
-- (a claim returns them). Not included: the expiry sweep, claim reaping,
-- dead-letter checks, the claim record itself.
-- compare.sh prefills 'ceil:c.free' / 'ceil:c.body' (see ceiling_fill.lua);
-- when every message is claimed, the claimed set becomes the free set again
-- (one RENAME per fill/K calls) so the benchmark never runs dry.
local k = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', 'ceil:c.free', '-inf', '+inf', 'LIMIT', 0, k)
if #ids == 0 then
  redis.call('RENAME', 'ceil:c.claimed', 'ceil:c.free')
  ids = redis.call('ZRANGEBYSCORE', 'ceil:c.free', '-inf', '+inf', 'LIMIT', 0, k)
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local cexp = now + 300000
for i, id in ipairs(ids) do
  redis.call('ZREM', 'ceil:c.free', id)
  redis.call('ZADD', 'ceil:c.claimed', cexp, id)
  redis.call('HSET', 'ceil:c.info', id,
    cmsgpack.pack({i, now, now + 3600000, 3600, now, '3381af92-2b9e-11e3-b191-71861300734c', 'claim-id', cexp, 1}))
end
return redis.call('HMGET', 'ceil:c.body', unpack(ids))
