-- ARGV: limit. Removes and returns up to `limit` of the oldest live, visible,
-- unclaimed messages.
local now = now_ms()
if not queue_exists() then return {} end
sweep_messages(now, 20)
-- Messages of ended claims are free again before the walk.
reap(now, 1000)
local limit = tonumber(ARGV[1])
local taken, taken_info, taken_pos, taken_tail = {}, {}, {}, {}
walk_free(now, 1000 + limit, limit, function(id, m, pos, tail)
  taken[#taken + 1] = id
  taken_info[#taken_info + 1] = m
  taken_pos[#taken_pos + 1] = pos
  taken_tail[#taken_tail + 1] = tail
  return #taken < limit
end)
local out = {}
if #taken == 0 then return out end
local bodies = bodies_of(taken, taken_tail)
for i, id in ipairs(taken) do
  push_message(out, id, taken_info[i], bodies[i], now, taken_pos[i])
end
remove_messages(taken)
return out
