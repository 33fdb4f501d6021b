-- Raw-Redis ceiling for a post of N messages (used by compare.sh through
-- redis-benchmark: EVALSHA <sha> 0 N BODY). It does the Redis work that
-- services/storage/src/backends/redis/messages_post.lua does per post, without
-- its extras (queue existence and settings lookups, the 20-message expiry
-- sweep, subscription fan-out): one HINCRBY for the queue's sequence, then per
-- message one HSET of the msgpack'd info record, one HSET of the body and
-- three ZADDs (all messages, free messages, expiry index).
local n, body = tonumber(ARGV[1]), ARGV[2]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local last = redis.call('HINCRBY', 'ceil:q', 'seq', n)
for i = 1, n do
  local pos = last - n + i
  local id = 'm' .. pos
  local expires = now + 3600000
  redis.call('HSET', 'ceil:q.info', id,
    cmsgpack.pack({pos, now, expires, 3600, now, '3381af92-2b9e-11e3-b191-71861300734c', '', 0, 0}))
  redis.call('HSET', 'ceil:q.body', id, body)
  redis.call('ZADD', 'ceil:q.msgs', pos, id)
  redis.call('ZADD', 'ceil:q.free', pos, id)
  redis.call('ZADD', 'ceil:q.exp', expires, id)
end
return n
