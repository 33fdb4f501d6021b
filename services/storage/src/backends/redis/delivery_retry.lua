-- ARGV: delivery id, record, delay (ms).
-- Stores a delivery's progress and makes it due after the delay (a delivery
-- removed meanwhile stays removed). Returns the queue's next due time.
if redis.call('HEXISTS', K_NREC, ARGV[1]) == 1 then
  redis.call('HSET', K_NREC, ARGV[1], ARGV[2])
  redis.call('ZADD', K_NDUE, now_ms() + tonumber(ARGV[3]), ARGV[1])
end
return next_due()
