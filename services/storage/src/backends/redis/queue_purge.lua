-- ARGV: purge messages (0/1), purge subscriptions (0/1), batch size.
-- Deletes up to `batch` unclaimed messages per call; returns how many it
-- deleted so the caller repeats until 0. Claimed messages are kept.
local now = now_ms()
local deleted = 0
if ARGV[1] == '1' and queue_exists() then
  local cids = redis.call('ZRANGEBYSCORE', K_CEXP, '-inf', now)
  for _, cid in ipairs(cids) do drop_claim(cid) end
  local ids = redis.call('ZRANGE', K_FREE, 0, tonumber(ARGV[3]) - 1)
  remove_messages(ids)
  deleted = #ids
end
if ARGV[2] == '1' then
  redis.call('UNLINK', K_SUBS, K_SUBZ, K_SUBU)
end
return deleted
