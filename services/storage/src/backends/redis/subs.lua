-- Prelude of the subscription scripts.
-- A record is msgpack {subscriber, ttl, options, confirmed (0/1), created, expires}.
local S_SUBSCRIBER, S_TTL, S_OPTIONS, S_CONFIRMED, S_CREATED, S_EXPIRES = 1, 2, 3, 4, 5, 6

local function load_sub(id)
  local raw = redis.call('HGET', K_SUBS, id)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end

local function save_sub(id, s)
  redis.call('HSET', K_SUBS, id, cmsgpack.pack(s))
end

local function remove_sub(id, s)
  redis.call('HDEL', K_SUBS, id)
  redis.call('ZREM', K_SUBZ, id)
  if s and redis.call('HGET', K_SUBU, s[S_SUBSCRIBER]) == id then
    redis.call('HDEL', K_SUBU, s[S_SUBSCRIBER])
  end
end

-- Loads a live subscription, removing it when it has expired.
local function live_sub(id, now)
  local s = load_sub(id)
  if not s then return nil end
  if s[S_EXPIRES] <= now then
    remove_sub(id, s)
    return nil
  end
  return s
end

-- Appends id, subscriber, ttl, age, options, confirmed.
local function push_sub(out, id, s, now)
  out[#out + 1] = id
  out[#out + 1] = s[S_SUBSCRIBER]
  out[#out + 1] = s[S_TTL]
  out[#out + 1] = math.floor((now - s[S_CREATED]) / 1000)
  out[#out + 1] = s[S_OPTIONS]
  out[#out + 1] = s[S_CONFIRMED]
end
