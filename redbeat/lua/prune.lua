-- prune.lua: drop sorted-set members whose entry hash does not exist.
--
-- Atomic per member, so a hash created between a check and the fix is kept
-- together with its member.  Never deletes a hash.
--
-- KEYS[1]      the schedule sorted set
-- KEYS[1 + i]  hash key of entry i
-- ARGV[i]      the member of entry i as stored (possibly without the prefix)
-- Returns: the number of members removed.
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
