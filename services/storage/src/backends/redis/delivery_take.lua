-- ARGV: limit, lease (ms).
-- Leases up to `limit` due deliveries until now + lease.
-- Returns {queue metadata ('' when the queue is gone), next due (-1 = none),
--   then per delivery: id, record, subscription found (0/1), subscriber, options}.
local now = now_ms()
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {redis.call('HGET', K_Q, 'meta') or '', -1}
local ids = redis.call('ZRANGEBYSCORE', K_NDUE, '-inf', now, 'LIMIT', 0, limit)
for _, did in ipairs(ids) do
  local record = redis.call('HGET', K_NREC, did)
  if not record then
    redis.call('ZREM', K_NDUE, did)
  else
    redis.call('ZADD', K_NDUE, now + lease, did)
    local sid = string.match(did, '%.(.*)$') or ''
    local s = live_sub(sid, now)
    out[#out + 1] = did
    out[#out + 1] = record
    if s then
      out[#out + 1] = 1
      out[#out + 1] = s[S_SUBSCRIBER]
      out[#out + 1] = s[S_OPTIONS]
    else
      out[#out + 1] = 0
      out[#out + 1] = ''
      out[#out + 1] = ''
    end
  end
end
out[2] = next_due()
return out
