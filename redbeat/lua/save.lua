-- save.lua: write entry definitions, keeping run state that changed meanwhile.
--
-- Compare-and-set on each entry's meta: the score was computed in Python
-- from the meta the caller expects to be stored ("" = none, a new entry), so
-- it is only written if that is still the stored meta.  An entry saved again
-- with the very definition it already has is left as it is (that counts as
-- written), so saving a mix of new and unchanged entries takes one call.
--
-- KEYS[1]      the schedule sorted set
-- KEYS[1 + i]  hash key of entry i
-- ARGV[1]      the changes channel (published to once if anything was written)
-- ARGV, 8 per entry i, from index 2 + 8 * (i - 1):
--   member      sorted-set member of the entry (its hash key)
--   name        entry name: a member written without the prefix is removed
--   definition  JSON to store in field "definition"
--   expected    meta the caller computed from ("" = none was stored)
--   meta        meta to store when none was stored ("" = leave as it is)
--   score       new score
--   keep        "1" to leave the score alone when the entry is already scheduled
--   policy      JSON for field "policy" ("" = the default policy: no field)
-- Returns: a list with, per entry: 1 written (or unchanged), 0 meta differs
-- from expected (read it and try again), -1 the key is not a hash.
local written = {}
local any = false
for i = 1, #KEYS - 1 do
  local key = KEYS[1 + i]
  local base = 2 + 8 * (i - 1)
  local member, name, definition = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local expected, meta, score = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5]
  local keep = ARGV[base + 6] == '1'
  local policy = ARGV[base + 7]
  local stored = redis.pcall('HMGET', key, 'definition', 'meta', 'policy')
  if stored['err'] then
    written[i] = -1
  else
    local current = stored[2] or ''
    if current ~= expected then
      local scheduled = redis.call('ZSCORE', KEYS[1], member)
      if current ~= '' and stored[1] == definition and (stored[3] or '') == policy and scheduled then
        written[i] = 1
      else
        written[i] = 0
      end
    else
      redis.call('HSET', key, 'definition', definition)
      if policy == '' then
        redis.call('HDEL', key, 'policy')
      else
        redis.call('HSET', key, 'policy', policy)
      end
      if current == '' and meta ~= '' then
        redis.call('HSET', key, 'meta', meta)
      end
      if name ~= member then
        redis.call('ZREM', KEYS[1], name)
      end
      if not keep or not redis.call('ZSCORE', KEYS[1], member) then
        redis.call('ZADD', KEYS[1], score, member)
      end
      written[i] = 1
      any = true
    end
  end
end
if any and ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], 'save')
end
return written
