-- save.lua: write entry definitions, keeping run state that changed meanwhile.
--
-- Compare-and-set on each entry's meta: the score was computed in Python
-- from the meta the caller expects to be stored ("" = none, a new entry), so
-- it is only written if that is still the stored meta.  An entry saved again
-- with the very definition it already has is left as it is (that counts as
-- written), so saving a mix of new and unchanged entries takes one call.
--
-- A read-modify-write (enable, disable, edit) also gives the definition and
-- policy it read: the entry is written only if both are still the stored
-- text, so a change made by another writer meanwhile (another client, beat's
-- finish action, celery-redbeat 2.x or redis-cli, which keep no version) is
-- never overwritten, and an entry deleted meanwhile is not created again.
--
-- The entries come in two strings rather than as keys and arguments: packing
-- tens of thousands of arguments costs the client far more than joining
-- strings, and cjson decodes the JSON in C.  The entry keys are derived from
-- the names (prefix .. name), as due.lua does: with a hash-tagged prefix they
-- share the schedule's Redis Cluster slot.
--
-- KEYS[1]  the schedule sorted set
-- KEYS[2]  the set of static entry names (read and written only when ARGV[3] is "1")
-- ARGV[1]  the changes channel (published to once if anything was written; "" = none)
-- ARGV[2]  the key prefix: entry i's hash key, and its sorted-set member, is
--          prefix .. name; a member written by hand as the bare name is removed
-- ARGV[3]  "1" to add every name to KEYS[2] (beat start-up: the static entries),
--          and to return the names it held that this call does not save
-- ARGV[4]  the definitions (JSON for field "definition"), in entry order,
--          separated by "\n" (compact JSON text never holds a raw newline)
-- ARGV[5]  JSON object of the other values, an array (or string) per field,
--          entry i at index i:
--   name      entry names
--   score     new scores (numbers, or strings: Redis writes numbers as %.17g,
--             which keeps every bit of the double)
--   keep      a string, character i "1" to leave the score alone when the
--             entry is already scheduled
--   expected  meta the caller computed from ("" = none was stored)
--   meta      meta to store when none was stored ("" = leave as it is)
--   policy    JSON for field "policy" ("" = the default policy: no field)
--   read      (optional) definition the writer read: index into texts, 0 =
--             no condition (a blind save: the last writer wins)
--   read_policy  (with read) policy the writer read ("" = none)
--   texts     the distinct strings of expected, meta, policy and read, which
--             hold indexes into it (entries saved new together share one meta)
-- Returns: {flags, stale, name, ...}: flags is a string with one character
-- per entry, "1" written (or unchanged), "0" meta differs from expected (try
-- again from what stale holds), "-" the key is not a hash, "c" the definition
-- or policy is not the text the writer read, "x" the writer read an entry
-- that no longer has a definition (deleted); stale holds, for each "0" entry
-- in order, its stored definition, meta and policy (nil where none), so the
-- writer retries without reading them again; with ARGV[3] "1", the names
-- follow that KEYS[2] held and this call did not save.
local schedule, prefix = KEYS[1], ARGV[2]
local v = cjson.decode(ARGV[5])
local names, texts, count = v.name, v.texts, #v.name
local scores, keep, expected_at, meta_at, policy_at = v.score, v.keep, v.expected, v.meta, v.policy
local read_at, read_policy_at = v.read, v.read_policy  -- nil when no entry is conditional
local keys, definitions = {}, {}
local text, at = ARGV[4], 1
for i = 1, count do
  keys[i] = prefix .. names[i]
  local stop = string.find(text, '\n', at, true) or (#text + 1)
  definitions[i] = string.sub(text, at, stop - 1)
  at = stop + 1
end
local out = {'', {}}
local stale = out[2]
if ARGV[3] == '1' then
  local here = {}
  for i = 1, count do
    here[names[i]] = true
  end
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if not here[name] then
      out[#out + 1] = name
    end
  end
  for i = 1, count, 1000 do
    redis.call('SADD', KEYS[2], unpack(names, i, math.min(i + 999, count)))
  end
end
-- Whether each entry is scheduled, asked for a thousand at a time.
local scheduled = {}
for i = 1, count, 1000 do
  local found = redis.call('ZMSCORE', schedule, unpack(keys, i, math.min(i + 999, count)))
  for j = 1, #found do
    scheduled[i + j - 1] = found[j]
  end
end
-- Sorted-set writes are batched (one ZADD and one ZREM per few hundred
-- entries); a key met twice flushes them first, so it sees its earlier write.
local adds, removes, pending = {}, {}, {}
local function flush()
  for i = 1, #removes, 500 do
    redis.call('ZREM', schedule, unpack(removes, i, math.min(i + 499, #removes)))
  end
  for i = 1, #adds, 1000 do
    redis.call('ZADD', schedule, unpack(adds, i, math.min(i + 999, #adds)))
  end
  adds, removes, pending = {}, {}, {}
end
local flags = {}
local any = false
for i = 1, count do
  local key, definition = keys[i], definitions[i]
  if pending[key] then  -- saved twice in one call: the second sees the first
    flush()
    scheduled[i] = redis.call('ZSCORE', schedule, key)
  end
  local expected, policy = texts[expected_at[i]], texts[policy_at[i]]
  local stored = redis.pcall('HMGET', key, 'definition', 'meta', 'policy')
  local read = read_at and read_at[i] or 0
  if stored['err'] then
    flags[i] = '-'
  elseif read ~= 0 and not stored[1] then
    flags[i] = 'x'
  elseif read ~= 0 and (stored[1] ~= texts[read]
      or (stored[3] or '') ~= texts[read_policy_at[i]]) then
    flags[i] = 'c'
  else
    local current = stored[2] or ''
    if current ~= expected then
      if current ~= '' and stored[1] == definition and (stored[3] or '') == policy
          and scheduled[i] then
        flags[i] = '1'
      else
        flags[i] = '0'
        local n = #stale  -- HMGET gives false for a missing field: nil in the reply
        stale[n + 1], stale[n + 2], stale[n + 3] = stored[1], stored[2], stored[3]
      end
    else
      local meta = texts[meta_at[i]]
      if current ~= '' or meta == '' then
        meta = nil
      end
      if policy ~= '' then
        if meta then
          redis.call('HSET', key, 'definition', definition, 'policy', policy, 'meta', meta)
        else
          redis.call('HSET', key, 'definition', definition, 'policy', policy)
        end
      else
        if meta then
          redis.call('HSET', key, 'definition', definition, 'meta', meta)
        else
          redis.call('HSET', key, 'definition', definition)
        end
        if stored[3] then
          redis.call('HDEL', key, 'policy')
        end
      end
      if prefix ~= '' then
        removes[#removes + 1] = names[i]
      end
      if string.sub(keep, i, i) ~= '1' or not scheduled[i] then
        adds[#adds + 1], adds[#adds + 2] = scores[i], key
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
out[1] = table.concat(flags)
return out
