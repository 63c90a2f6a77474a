-- rollback.lua: undo claims whose message could not be published.
--
-- Restores the score and meta an entry had before it was claimed, so the
-- occurrence is sent again on the next tick instead of being lost, and drops
-- its journal records (the occurrence is due again: the journal must not
-- make a next leader send it a second time).  An entry changed since the
-- claim (saved, deleted, claimed again) is left alone, journal included.
-- No lock check: the compare-and-set on the score is what makes it safe, so
-- a beat that lost the lock meanwhile still hands the occurrence back.
--
-- KEYS[1]   the schedule sorted set
-- KEYS[2]   the journal hash
-- KEYS[i]   hash key of entry i - 2, for i >= 3
-- ARGV, 4 per entry i, from index 1 + 4 * (i - 3):
--   claimed   score the claim set
--   score     score to restore
--   meta      meta to restore ("" = there was none: delete the field)
--   journal   JSON array of the claim's journal fields (task ids) ("" = none)
-- Returns: the number of entries restored.
local restored = 0
for i = 3, #KEYS do
  local key = KEYS[i]
  local base = 1 + 4 * (i - 3)
  local current = redis.call('ZSCORE', KEYS[1], key)
  if current and tonumber(current) == tonumber(ARGV[base]) then
    redis.call('ZADD', KEYS[1], ARGV[base + 1], key)
    if ARGV[base + 2] == '' then
      redis.pcall('HDEL', key, 'meta')
    elseif redis.call('EXISTS', key) == 1 then  -- never re-create a deleted hash
      redis.pcall('HSET', key, 'meta', ARGV[base + 2])
    end
    if ARGV[base + 3] ~= '' then
      redis.call('HDEL', KEYS[2], unpack(cjson.decode(ARGV[base + 3])))
    end
    restored = restored + 1
  end
end
return restored
