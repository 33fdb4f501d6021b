-- Returns {exists, claimed, total, oldest..., newest...} where oldest and newest
-- are {id, age, created} or absent when the queue holds no live message.
local now = now_ms()
if not queue_exists() then return {0, 0, 0} end
sweep(now, 100)
local total = redis.call('ZCOUNT', K_EXP, '(' .. now, '+inf')
local claimed = redis.call('ZCOUNT', K_CLAIMED, '(' .. now, '+inf')
local out = {1, claimed, total}
if total == 0 then return out end
-- Walks from one end, dropping expired messages met on the way.
local function first_live(reverse)
  while true do
    local ids
    if reverse then
      ids = redis.call('ZREVRANGE', K_MSGS, 0, 99)
    else
      ids = redis.call('ZRANGE', K_MSGS, 0, 99)
    end
    if #ids == 0 then return nil end
    for _, id in ipairs(ids) do
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
