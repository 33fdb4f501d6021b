-- ARGV: meta, then the six settings (dttl, ddelay, mps, mcc, dlq, dlqttl; '' = unset).
-- Returns 1 when created, 0 when the queue already existed (left unchanged).
local now = now_ms()
if not ensure_queue(now, ARGV[1]) then return 0 end
local fields = {'dttl', 'ddelay', 'mps', 'mcc', 'dlq', 'dlqttl'}
for i, field in ipairs(fields) do
  if ARGV[i + 1] ~= '' then redis.call('HSET', K_Q, field, ARGV[i + 1]) end
end
return 1
