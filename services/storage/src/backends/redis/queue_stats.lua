-- Returns {exists, claimed, total, oldest..., newest...} where oldest and newest
-- are {id, age, created} or absent when the queue holds no live message.
local now = now_ms()
if not queue_exists() then return {0, 0, 0} end
-- Expired messages leave first (bounded: a backlog beyond ~10,000 messages
-- is counted until the sweeper reaches it).
for _ = 1, 10 do
  sweep_messages(now, 1000)
  if not expiry_due(now) then break end
end
-- Messages of claims that ended go back to the free set first, so the
-- claimed set holds only messages under an active claim.
for _ = 1, 10 do
  if reap(now, 1000) < 1000 then break end
end
local claimed = redis.call('ZCARD', K_CLAIMED)
local total = claimed + redis.call('ZCARD', K_FREE)
local out = {1, claimed, total}
if total == 0 then return out end
-- Walks from one end, dropping expired messages met on the way.
local function first_live(reverse)
  while true do
    local found = positions('-inf', 100, reverse)
    if #found == 0 then return nil end
    for i = 1, #found, 2 do
      local id = found[i]
      local m = load_info(id)
      if m and m[EXPIRES] > now then return id, m end
      remove_message(id)
    end
  end
end
for _, reverse in ipairs({false, true}) do
  local id, m = first_live(reverse)
  if not id then return {1, claimed, total} end
  out[#out + 1] = id
  out[#out + 1] = math.floor((now - m[CREATED]) / 1000)
  out[#out + 1] = math.floor(m[CREATED] / 1000)
end
return out
