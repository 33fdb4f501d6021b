-- ARGV: message ids. Returns {queue exists (0/1), message fields...} with the
-- live messages among the ids, in the order asked.
local now = now_ms()
if not queue_exists() then return {0} end
local out = {1}
local seen = {}
for _, id in ipairs(ARGV) do
  if not seen[id] then
    seen[id] = true
    local m, tail = load_info(id)
    if m and m[EXPIRES] > now then
      push_message(out, id, m, body_of(id, tail), now, 0)
    end
  end
end
return out
