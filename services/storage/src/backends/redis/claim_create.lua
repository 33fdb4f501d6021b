-- ARGV, per claim: claim id, ttl, grace, limit (concurrent claims, coalesced
-- by the caller, made one after another in ARGV order).
-- Each claims up to `limit` of the oldest live, visible, unclaimed messages.
-- With dead-lettering active, messages already claimed `_max_claim_count`
-- times are moved to the dead-letter outbox instead (the caller then files
-- them into the dead-letter queue). Returns {moved, now (ms), then per claim:
-- count n, then per claimed message: id, ttl, created (ms), body, claim
-- count}; no claim is recorded when nothing was claimed. (The claim id,
-- age and created seconds of `push_message` follow from the claim and
-- `now`: fewer reply fields, which Redis converts one by one.)
local now = now_ms()
local claims = #ARGV / 4
if not queue_exists() then
  local out = {0, now}
  for k = 1, claims do out[k + 2] = 0 end
  return out
end
sweep_messages(now, 20)
-- Messages of ended claims are free again before the walk.
reap(now, 1000)
local settings = redis.call('HMGET', K_Q, 'mcc', 'dlq', 'dlqttl')
local mcc, dlq, dlq_ttl = tonumber(settings[1] or ''), settings[2], tonumber(settings[3] or '')
local dead_active = mcc ~= nil and dlq and dlq ~= ''
local out = {0, now}
local moved = 0

local function claim_one(cid, ttl, grace, limit)
  local cexp = now + ttl * 1000
  local picked, picked_info, picked_pos, picked_tail = {}, {}, {}, {}
  walk_free(now, 1000 + limit, limit, function(id, m, pos, tail)
    if dead_active and m[COUNT] >= mcc then
      local expires, mttl = m[EXPIRES], m[TTL]
      if dlq_ttl then
        mttl = dlq_ttl
        expires = now + dlq_ttl * 1000
      end
      local body = body_of(id, tail)
      redis.call('HSET', K_DEAD, id, cmsgpack.pack({body, m[CLIENT], m[CREATED], mttl, expires, m[COUNT], dlq}))
      remove_message(id)
      moved = moved + 1
      return true
    end
    picked[#picked + 1] = id
    picked_info[#picked_info + 1] = m
    picked_pos[#picked_pos + 1] = pos
    picked_tail[#picked_tail + 1] = tail
    return #picked < limit
  end)
  out[#out + 1] = #picked
  if #picked == 0 then return end
  -- One command per structure for all the picked messages.
  local infos, held, extended = {}, {}, {}
  -- Messages of one post share their record before the claim, so mostly
  -- after it too: equal records are packed once.
  local last, packed = nil, nil
  for i, id in ipairs(picked) do
    local m = picked_info[i]
    m[CLAIM] = cid
    m[CLAIM_EXP] = cexp
    if dead_active then m[COUNT] = m[COUNT] + 1 end
    if m[EXPIRES] < cexp then
      m[EXPIRES] = cexp + grace * 1000
      m[TTL] = ttl + grace
      extended[#extended + 1] = m[EXPIRES]
      extended[#extended + 1] = id
    end
    if not (last and same_info(m, last)) then last, packed = m, cmsgpack.pack(m) end
    infos[#infos + 1] = id
    infos[#infos + 1] = packed .. picked_tail[i]
    held[#held + 1] = picked_pos[i]
    held[#held + 1] = id
  end
  redis.call('HSET', K_INFO, unpack(infos))
  redis.call('ZREM', K_FREE, unpack(picked))
  redis.call('ZADD', K_CLAIMED, unpack(held))
  if #extended > 0 then redis.call('ZADD', K_EXP, unpack(extended)) end
  redis.call('HSET', K_CLAIMS, cid, cmsgpack.pack({now, cexp, ttl, grace, picked}))
  redis.call('ZADD', K_CEXP, cexp, cid)
  local bodies = bodies_of(picked, picked_tail)
  for i, id in ipairs(picked) do
    local m = picked_info[i]
    local n = #out
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = id, m[TTL], m[CREATED], bodies[i] or 'null', m[COUNT]
  end
end

for k = 1, claims do
  local base = (k - 1) * 4
  claim_one(ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4]))
end
out[1] = moved
return out
