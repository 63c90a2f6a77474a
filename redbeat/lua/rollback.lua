-- rollback.lua: undo claims whose message could not be published.
--
-- Restores the score and meta an entry had before it was claimed, so the
-- occurrence is sent again on the next tick instead of being lost.  An entry
-- changed since the claim (saved, deleted, claimed again) is left alone.
--
-- KEYS[1]      the schedule sorted set
-- KEYS[2]      the leader lock (any key when locking is disabled)
-- KEYS[2 + i]  hash key of entry i
-- ARGV[1]      the lock token this beat holds ("" = locking disabled)
-- ARGV, 3 per entry i, from index 2 + 3 * (i - 1):
--   claimed   score the claim set (exact string)
--   score     score to restore
--   meta      meta to restore ("" = there was none: delete the field)
-- Returns: -1 if the lock is not held; else the number of entries restored.
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
local restored = 0
for i = 1, #KEYS - 2 do
  local key = KEYS[2 + i]
  local base = 2 + 3 * (i - 1)
  local current = redis.call('ZSCORE', KEYS[1], key)
  if current and tonumber(current) == tonumber(ARGV[base]) then
    redis.call('ZADD', KEYS[1], ARGV[base + 1], key)
    if ARGV[base + 2] == '' then
      redis.pcall('HDEL', key, 'meta')
    else
      redis.pcall('HSET', key, 'meta', ARGV[base + 2])
    end
    restored = restored + 1
  end
end
return restored
