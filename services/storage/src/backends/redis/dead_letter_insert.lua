-- Runs on the dead-letter queue's keys. ARGV: id, body, client, created,
-- ttl, expires, claim count. Files a moved message at the tail of the queue,
-- creating the queue if missing. Idempotent per id. Returns {filed (0/1),
-- queue created (0/1)}.
local now = now_ms()
local created = 0
if ensure_queue(now, nil) then created = 1 end
local id, expires = ARGV[1], tonumber(ARGV[6])
if expires <= now or redis.call('HEXISTS', K_INFO, id) == 1 then return {0, created} end
local pos = redis.call('HINCRBY', K_Q, 'seq', 1)
save_info(id, {0, tonumber(ARGV[4]), expires, tonumber(ARGV[5]), now, ARGV[3], '', 0, tonumber(ARGV[7])}, ARGV[2])
redis.call('ZADD', K_FREE, pos, id)
redis.call('ZADD', K_EXP, expires, id)
return {1, created}
