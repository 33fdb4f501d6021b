-- ARGV: delivery id. Removes a finished delivery.
-- Returns the queue's next due time (-1 = none left).
redis.call('HDEL', K_NREC, ARGV[1])
redis.call('ZREM', K_NDUE, ARGV[1])
return next_due()
