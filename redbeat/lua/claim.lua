-- claim.lua: claim due occurrences before they are sent, fenced by the lock.
--
-- An occurrence is claimed by moving its entry's score from the value the
-- scheduler read to the next due time, and storing the new run state, in one
-- step.  Nothing is claimed unless the caller still holds the leader lock, so
-- a beat that lost leadership (paused, partitioned) cannot send anything, and
-- two beats can never both claim the same occurrence.
--
-- In at-least-once mode each claimed occurrence is also written to the
-- journal (a hash celery-redbeat 2.x never reads), in this same step, so a
-- claim and its journal record exist together or not at all: the next leader
-- re-sends what is still in the journal.
--
-- KEYS[1]      the schedule sorted set
-- KEYS[2]      the leader lock (any key when locking is disabled)
-- KEYS[3]      the journal hash (field: task id, value: JSON record)
-- KEYS[3 + i]  hash key of entry i
-- ARGV[1]      the lock token this beat holds ("" = locking disabled)
-- ARGV, 7 per entry i, from index 2 + 7 * (i - 1):
--   member    sorted-set member as read (possibly written without the prefix)
--   expected  score as read (the exact string Redis returned)
--   score     new score (next due time, or -1)
--   meta      new meta JSON ("" = leave meta as it is)
--   missed    occurrences not sent because they were too late (hash field "missed")
--   skipped   occurrences not sent by the missed-run policy (hash field "skipped")
--   journal   JSON array [task id, record, task id, record, ...] ("" = none)
-- Returns: -1 if the lock is not held by ARGV[1]; else a list with, per
-- entry, 1 if claimed or 0 if its score changed since it was read.
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
local claimed = {}
for i = 1, #KEYS - 3 do
  local key = KEYS[3 + i]
  local base = 2 + 7 * (i - 1)
  local member, expected = ARGV[base], ARGV[base + 1]
  local score, meta = ARGV[base + 2], ARGV[base + 3]
  local missed, skipped = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
  local journal = ARGV[base + 6]
  if redis.call('ZSCORE', KEYS[1], member) ~= expected then
    claimed[i] = 0
  else
    if member ~= key then
      redis.call('ZREM', KEYS[1], member)
    end
    redis.call('ZADD', KEYS[1], score, key)
    -- Run state only into a hash that still exists: one deleted by hand
    -- (DEL without ZREM) must not come back holding only meta.
    if (meta ~= '' or missed > 0 or skipped > 0) and redis.call('EXISTS', key) == 1 then
      if meta ~= '' then
        redis.pcall('HSET', key, 'meta', meta)
      end
      if missed > 0 then
        redis.pcall('HINCRBY', key, 'missed', missed)
      end
      if skipped > 0 then
        redis.pcall('HINCRBY', key, 'skipped', skipped)
      end
    end
    if journal ~= '' then
      redis.call('HSET', KEYS[3], unpack(cjson.decode(journal)))
    end
    claimed[i] = 1
  end
end
return claimed
