-- ARGV: marker ('' = from the start), limit. Returns subscription fields of
-- the live subscriptions after the marker, in id order.
local now = now_ms()
local limit = tonumber(ARGV[2])
local min = '-'
if ARGV[1] ~= '' then min = '(' .. ARGV[1] end
local out, count = {}, 0
while count < limit do
  local ids = redis.call('ZRANGEBYLEX', K_SUBZ, min, '+', 'LIMIT', 0, limit - count)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local s = live_sub(id, now)
    if s then
      push_sub(out, id, s, now)
      count = count + 1
    else
      redis.call('ZREM', K_SUBZ, id)
    end
  end
  min = '(' .. ids[#ids]
end
return out
