-- rollback.lua: undo claims whose message could not be published.
--
-- Restores the score and meta an entry had before it was claimed, so the
-- occurrence is sent again on the next tick instead of being lost.  An entry
-- changed since the claim (saved, deleted, claimed again) is left alone.
-- No lock check: the compare-and-set on the score is what makes it safe, so
-- a beat that lost the lock meanwhile still hands the occurrence back.
--
-- KEYS[i]   hash key of entry i, for i >= 2; KEYS[1] is the schedule sorted set
-- ARGV, 3 per entry i, from index 1 + 3 * (i - 2):
--   claimed   score the claim set
--   score     score to restore
--   meta      meta to restore ("" = there was none: delete the field)
-- Returns: the number of entries restored.
local restored = 0
for i = 2, #KEYS do
  local key = KEYS[i]
  local base = 1 + 3 * (i - 2)
  local current = redis.call('ZSCORE', KEYS[1], key)
  if current and tonumber(current) == tonumber(ARGV[base]) then
    redis.call('ZADD', KEYS[1], ARGV[base + 1], key)
    if ARGV[base + 2] == '' then
      redis.pcall('HDEL', key, 'meta')
    elseif redis.call('EXISTS', key) == 1 then  -- never re-create a deleted hash
      redis.pcall('HSET', key, 'meta', ARGV[base + 2])
    end
    restored = restored + 1
  end
end
return restored
