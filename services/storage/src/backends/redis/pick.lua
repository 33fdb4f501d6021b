-- Prelude of the scripts that take messages (claim, pop): walks the free set.

-- A copy of an info record.
local function copy_info(m)
  return {m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9]}
end

-- Whether two info records are equal.
local function same_info(a, b)
  for i = 1, 9 do
    if a[i] ~= b[i] then return false end
  end
  return true
end

-- Calls visit(id, info, position, tail) on each live, visible, unclaimed
-- message in position order (`tail` as `split_info` returns it) until visit
-- returns false or `budget` entries were looked at. Expired entries met on
-- the way are removed. Reads `want` entries first (what the caller expects
-- to take), then ever larger chunks up to 100. Each visit gets its own
-- record table (the caller may change it); runs of equal records (one
-- post's messages share one) are decoded once: msgpack ends where it ends,
-- so a value starting with the bytes of the last record read holds that
-- record.
local function walk_free(now, budget, want, visit)
  local min, scanned = '-inf', 0
  local chunk = math.max(1, math.min(want, 100))
  local head, last = nil, nil
  while scanned < budget do
    local batch = redis.call('ZRANGEBYSCORE', K_FREE, min, '+inf', 'WITHSCORES', 'LIMIT', 0, chunk)
    if #batch == 0 then return end
    local ids = {}
    for i = 1, #batch, 2 do ids[#ids + 1] = batch[i] end
    min = '(' .. batch[#batch]
    local raws = redis.call('HMGET', K_INFO, unpack(ids))
    for i, id in ipairs(ids) do
      scanned = scanned + 1
      local raw = raws[i]
      if not raw then
        redis.call('ZREM', K_FREE, id)
      else
        local tail
        if head and string.sub(raw, 1, #head) == head then
          tail = string.sub(raw, #head + 1)
        else
          last, tail = split_info(raw)
          head = string.sub(raw, 1, #raw - #tail)
        end
        local m = copy_info(last)
        if m[EXPIRES] <= now then
          remove_message(id)
        elseif m[VISIBLE] <= now then
          if not visit(id, m, tonumber(batch[i * 2]), tail) then return end
        end
      end
    end
    if #ids < chunk then return end
    chunk = math.min(chunk * 2, 100)
  end
end

