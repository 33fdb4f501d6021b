-- ARGV: id, confirmed (0/1). Returns 'ok' or 'not_found'.
local now = now_ms()
local s = live_sub(ARGV[1], now)
if not s then return 'not_found' end
s[S_CONFIRMED] = tonumber(ARGV[2])
save_sub(ARGV[1], s)
return 'ok'
