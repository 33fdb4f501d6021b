-- Deletes single messages, each on its own terms (concurrent deletes,
-- coalesced by the caller), in request order: a later request for an id an
-- earlier one removed finds it gone.
-- ARGV, per message: id, claim mode ('none' | 'id' | 'malformed'), claim id.
-- Returns per message 'ok' | 'claimed' | 'not_claimed' | 'claim_invalid'.
local now = now_ms()
local n = #ARGV / 3
local out = {}
if not queue_exists() then
  for k = 1, n do out[k] = 'ok' end
  return out
end
local ids = {}
for k = 1, n do ids[k] = ARGV[(k - 1) * 3 + 1] end
local raws = redis.call('HMGET', K_INFO, unpack(ids))
local gone, doomed = {}, {}
for k = 1, n do
  local id, mode, cid = ids[k], ARGV[(k - 1) * 3 + 2], ARGV[(k - 1) * 3 + 3]
  local status = 'ok'
  if raws[k] and not gone[id] then
    local m = split_info(raws[k])
    -- An expired message is removed whatever the request says.
    if m[EXPIRES] > now then
      if mode == 'malformed' then
        status = 'claim_invalid'
      else
        local active = claim_active(m, now)
        if mode == 'none' then
          if active then status = 'claimed' end
        elseif not active then
          status = 'not_claimed'
        elseif m[CLAIM] ~= cid then
          status = 'claimed'
        end
      end
    end
    if status == 'ok' then
      gone[id] = true
      doomed[#doomed + 1] = id
    end
  end
  out[k] = status
end
if #doomed > 0 then remove_messages(doomed) end
return out
