-- state.lua: set an entry's run state and score (reschedule, check --fix),
-- only while its hash exists: a deleted entry is not created again holding
-- only meta.
--
-- KEYS[1]  the schedule sorted set
-- KEYS[2]  the entry's hash key
-- ARGV[1]  the changes channel ("" = none)
-- ARGV[2]  meta JSON ("" = delete the field)
-- ARGV[3]  score
-- Returns: 1 if written, 0 if the hash does not exist.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
if ARGV[2] == '' then
  redis.pcall('HDEL', KEYS[2], 'meta')
else
  redis.pcall('HSET', KEYS[2], 'meta', ARGV[2])
end
redis.call('ZADD', KEYS[1], ARGV[3], KEYS[2])
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], 'state')
end
return 1
