-- ARGV: notice id, subscription id, record.
-- Queues a notice for a live subscription, due now.
-- Returns {'ok', now} | {'not_found'}.
local now = now_ms()
if not live_sub(ARGV[2], now) then return {'not_found'} end
local did = ARGV[1] .. '.' .. ARGV[2]
redis.call('HSET', K_NREC, did, ARGV[3])
redis.call('ZADD', K_NDUE, now, did)
return {'ok', now}
