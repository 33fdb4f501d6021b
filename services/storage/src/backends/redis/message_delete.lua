-- ARGV: message id, claim mode ('none' | 'id' | 'malformed'), claim id.
-- Returns 'ok' | 'claimed' | 'not_claimed' | 'claim_invalid'.
local now = now_ms()
if not queue_exists() then return 'ok' end
local id, mode, cid = ARGV[1], ARGV[2], ARGV[3]
local m = load_info(id)
if not m then return 'ok' end
if m[EXPIRES] <= now then
  remove_message(id)
  return 'ok'
end
if mode == 'malformed' then return 'claim_invalid' end
local active = claim_active(m, now)
if mode == 'none' then
  if active then return 'claimed' end
elseif not active then
  return 'not_claimed'
elseif m[CLAIM] ~= cid then
  return 'claimed'
end
remove_message(id)
return 'ok'
