-- save.lua: write entry definitions, keeping run state that changed meanwhile.
--
-- Compare-and-set on each entry's meta: the score was computed in Python
-- from the meta the caller expects to be stored ("" = none, a new entry), so
-- it is only written if that is still the stored meta.  An entry saved again
-- with the very definition it already has is left as it is (that counts as
-- written), so saving a mix of new and unchanged entries takes one call.
--
-- The per-entry values come as one JSON array rather than as arguments:
-- packing tens of thousands of arguments costs the client far more than
-- encoding one string, and cjson decodes it in C.
--
-- KEYS[1]      the schedule sorted set
-- KEYS[1 + i]  hash key of entry i, which is also its sorted-set member
-- ARGV[1]      the changes channel (published to once if anything was written; "" = none)
-- ARGV[2]      the key prefix: entry i is named KEYS[1 + i] without it, and a
--              member written by hand as that bare name is removed
-- ARGV[3]      JSON array, 6 values per entry i, from index 1 + 6 * (i - 1); each
--              a string, or the index in this array of an earlier equal string
--              (new entries saved together share their meta: sent once):
--   definition  JSON to store in field "definition"
--   expected    meta the caller computed from ("" = none was stored)
--   meta        meta to store when none was stored ("" = leave as it is)
--   score       new score
--   keep        "1" to leave the score alone when the entry is already scheduled
--   policy      JSON for field "policy" ("" = the default policy: no field)
-- Returns: a string with one character per entry: "1" written (or unchanged),
-- "0" meta differs from expected (read it and try again), "-" the key is not a hash.
local schedule, prefix = KEYS[1], ARGV[2]
local values = cjson.decode(ARGV[3])
local skip = #prefix + 1
local flags = {}
local any = false
-- Sorted-set writes are batched (one ZADD and one ZREM per few hundred
-- entries); a key met twice flushes them first, so it sees its earlier write.
local adds, removes, pending = {}, {}, {}
-- Whether each entry is scheduled, asked for a thousand at a time.
local scheduled = {}
for i = 2, #KEYS, 1000 do
  local found = redis.call('ZMSCORE', schedule, unpack(KEYS, i, math.min(i + 999, #KEYS)))
  for j = 1, #found do
    scheduled[i + j - 2] = found[j]
  end
end
local function value(index)
  local v = values[index]
  if type(v) == 'number' then
    return values[v]
  end
  return v
end
local function flush()
  for i = 1, #removes, 500 do
    redis.call('ZREM', schedule, unpack(removes, i, math.min(i + 499, #removes)))
  end
  for i = 1, #adds, 1000 do
    redis.call('ZADD', schedule, unpack(adds, i, math.min(i + 999, #adds)))
  end
  adds, removes, pending = {}, {}, {}
end
for i = 1, #KEYS - 1 do
  local key = KEYS[1 + i]
  if pending[key] then  -- saved twice in one call: the second sees the first
    flush()
    scheduled[i] = redis.call('ZSCORE', schedule, key)
  end
  local base = 6 * (i - 1)
  local definition, expected, meta = value(base + 1), value(base + 2), value(base + 3)
  local score, keep, policy = value(base + 4), value(base + 5) == '1', value(base + 6)
  local stored = redis.pcall('HMGET', key, 'definition', 'meta', 'policy')
  if stored['err'] then
    flags[i] = '-'
  else
    local current = stored[2] or ''
    if current ~= expected then
      if current ~= '' and stored[1] == definition and (stored[3] or '') == policy
          and scheduled[i] then
        flags[i] = '1'
      else
        flags[i] = '0'
      end
    else
      local fields = {'definition', definition}
      if policy ~= '' then
        fields[#fields + 1], fields[#fields + 2] = 'policy', policy
      elseif stored[3] then
        redis.call('HDEL', key, 'policy')
      end
      if current == '' and meta ~= '' then
        fields[#fields + 1], fields[#fields + 2] = 'meta', meta
      end
      redis.call('HSET', key, unpack(fields))
      if skip > 1 then
        removes[#removes + 1] = string.sub(key, skip)
      end
      if not keep or not scheduled[i] then
        adds[#adds + 1], adds[#adds + 2] = score, key
      end
      pending[key] = true
      flags[i] = '1'
      any = true
    end
  end
end
flush()
if any and ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], 'save')
end
return table.concat(flags)
