-- ARGV: require claim (0/1), number of ids n, n ids, then the claim ids.
-- Deletes the listed messages regardless of claims. With `require claim`,
-- every existing listed message must be under an active claim among the
-- claim ids, else nothing is deleted and 'claim_required' is returned.
local now = now_ms()
if not queue_exists() then return 'ok' end
local n = tonumber(ARGV[2])
if ARGV[1] == '1' then
  local allowed = {}
  for i = 3 + n, #ARGV do allowed[ARGV[i]] = true end
  for i = 3, 2 + n do
    local m = load_info(ARGV[i])
    if m and m[EXPIRES] > now and not (claim_active(m, now) and allowed[m[CLAIM]]) then
      return 'claim_required'
    end
  end
end
-- Removing an id that is not there changes nothing.
local ids = {}
for i = 3, 2 + n do ids[#ids + 1] = ARGV[i] end
remove_messages(ids)
return 'ok'
