-- Prelude of the scripts that take messages (claim, pop): walks the free set.

-- Calls visit(id, info, position) on each live, visible, unclaimed message in
-- position order until visit returns false or `budget` entries were looked at.
-- Expired entries met on the way are removed. Reads `want` entries first
-- (what the caller expects to take), then ever larger chunks up to 100.
local function walk_free(now, budget, want, visit)
  local min, scanned = '-inf', 0
  local chunk = math.max(1, math.min(want, 100))
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
        local m = cmsgpack.unpack(raw)
        if m[EXPIRES] <= now then
          remove_message(id)
        elseif m[VISIBLE] <= now then
          if not visit(id, m, tonumber(batch[i * 2])) then return end
        end
      end
    end
    if #ids < chunk then return end
    chunk = math.min(chunk * 2, 100)
  end
end

