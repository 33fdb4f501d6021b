-- ARGV: claim id, ttl, grace. Renews an active claim: new expiry now + ttl,
-- age restarts, held messages that would expire first are extended to
-- now + ttl + grace. Returns 'ok' or 'not_found'.
local now = now_ms()
if not queue_exists() then return 'not_found' end
local cid, ttl, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local raw = redis.call('HGET', K_CLAIMS, cid)
if not raw then return 'not_found' end
local c = cmsgpack.unpack(raw)
if c[2] <= now then return 'not_found' end
local cexp = now + ttl * 1000
for _, id in ipairs(c[5]) do
  local m, tail = load_info(id)
  if m and m[CLAIM] == cid then
    m[CLAIM_EXP] = cexp
    if m[EXPIRES] < cexp then
      m[EXPIRES] = cexp + grace * 1000
      m[TTL] = ttl + grace
      redis.call('ZADD', K_EXP, m[EXPIRES], id)
    end
    save_info(id, m, tail)
  end
end
redis.call('HSET', K_CLAIMS, cid, cmsgpack.pack({now, cexp, ttl, grace, c[5]}))
redis.call('ZADD', K_CEXP, cexp, cid)
return 'ok'
