-- ARGV: meta, expected revision ('' = any), then the six settings as in queue_create.
-- Returns {'ok', revision} or {'not_found'} or {'conflict'}.
if not queue_exists() then return {'not_found'} end
local rev = tonumber(redis.call('HGET', K_Q, 'rev') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= rev then return {'conflict'} end
rev = rev + 1
redis.call('HSET', K_Q, 'meta', ARGV[1], 'rev', rev)
local fields = {'dttl', 'ddelay', 'mps', 'mcc', 'dlq', 'dlqttl'}
for i, field in ipairs(fields) do
  if ARGV[i + 2] ~= '' then
    redis.call('HSET', K_Q, field, ARGV[i + 2])
  else
    redis.call('HDEL', K_Q, field)
  end
end
return {'ok', rev}
