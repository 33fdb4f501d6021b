-- ARGV: claim id. Returns {'ok', ttl, grace, age, message fields...} for an
-- active claim (with the live messages it still holds), else {'not_found'}.
local now = now_ms()
if not queue_exists() then return {'not_found'} end
local cid = ARGV[1]
local raw = redis.call('HGET', K_CLAIMS, cid)
if not raw then return {'not_found'} end
local c = cmsgpack.unpack(raw)
if c[2] <= now then return {'not_found'} end
local out = {'ok', c[3], c[4], math.floor((now - c[1]) / 1000)}
for _, id in ipairs(c[5]) do
  local m, tail = load_info(id)
  if m and m[CLAIM] == cid and m[EXPIRES] > now then
    push_message(out, id, m, body_of(id, tail), now, 0)
  end
end
return out
