-- ARGV: id. Returns {'ok', fields...} or {'not_found'}.
local now = now_ms()
local s = live_sub(ARGV[1], now)
if not s then return {'not_found'} end
local out = {'ok'}
push_sub(out, ARGV[1], s, now)
return out
