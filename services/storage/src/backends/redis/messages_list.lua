-- ARGV: after position (-1 = from the head), limit, echo (0/1), client,
-- include claimed (0/1), include delayed (0/1), scan budget.
-- Filters apply before the limit. Returns {delay_queue, exhausted, last
-- scanned position, message fields...}; when `exhausted` is 0 the caller
-- continues from the last scanned position.
local now = now_ms()
if not queue_exists() then return {0, 1, -1} end
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local echo, client = ARGV[3] == '1', ARGV[4]
local include_claimed, include_delayed = ARGV[5] == '1', ARGV[6] == '1'
local budget = tonumber(ARGV[7])
local delay_queue = num_setting('ddelay') ~= nil
if not delay_queue then include_delayed = true end
local min = '-inf'
if after >= 0 then min = '(' .. after end
local picked, picked_info, picked_pos, picked_tail = {}, {}, {}, {}
local scanned, last_pos, exhausted = 0, after, 0
while #picked < limit do
  if scanned >= budget then break end
  local batch = positions(min, 100, false)
  if #batch == 0 then exhausted = 1 break end
  local ids = {}
  for i = 1, #batch, 2 do ids[#ids + 1] = batch[i] end
  local raws = redis.call('HMGET', K_INFO, unpack(ids))
  for i, id in ipairs(ids) do
    scanned = scanned + 1
    last_pos = tonumber(batch[i * 2])
    local raw = raws[i]
    if raw then
      local m, tail = split_info(raw)
      if m[EXPIRES] > now
        and (echo or m[CLIENT] ~= client)
        and (include_claimed or not claim_active(m, now))
        and (include_delayed or m[VISIBLE] <= now) then
        picked[#picked + 1] = id
        picked_info[#picked_info + 1] = m
        picked_pos[#picked_pos + 1] = last_pos
        picked_tail[#picked_tail + 1] = tail
        if #picked >= limit then break end
      end
    end
  end
  if last_pos >= 0 then min = '(' .. last_pos end
  if #ids < 100 and #picked < limit then exhausted = 1 break end
end
local dq = 0
if delay_queue then dq = 1 end
local out = {dq, exhausted, last_pos}
if #picked > 0 then
  local bodies = bodies_of(picked, picked_tail)
  for i, id in ipairs(picked) do push_message(out, id, picked_info[i], bodies[i], now, picked_pos[i]) end
end
return out
