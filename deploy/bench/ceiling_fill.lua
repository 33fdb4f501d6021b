-- Prefills the messages that ceiling_claim.lua claims: ARGV: count, body.
redis.call('DEL', 'ceil:c.free', 'ceil:c.claimed', 'ceil:c.info', 'ceil:c.body')
local n, body = tonumber(ARGV[1]), ARGV[2]
for i = 1, n do
  local id = 'c' .. i
  redis.call('HSET', 'ceil:c.body', id, body)
  redis.call('HSET', 'ceil:c.info', id, cmsgpack.pack({i, 0, 3600000, 3600, 0, '3381af92-2b9e-11e3-b191-71861300734c', '', 0, 0}))
  redis.call('ZADD', 'ceil:c.free', i, id)
end
return n
