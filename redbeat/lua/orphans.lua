-- orphans.lua: one SCAN page of entry hashes that have no member in the schedule.
--
-- Beat start-up schedules hashes written without a ZADD (the RedBeat README
-- promises it).  Checking them here returns only the few orphans instead of
-- sending every key of the page to the client and asking again for their
-- scores.  Not for Redis Cluster: the scanned keys are not declared (there
-- the client scans each node and checks the scores itself).
--
-- KEYS[1]  the schedule sorted set
-- ARGV[1]  SCAN cursor ("0" to start)
-- ARGV[2]  SCAN MATCH pattern (every key under the prefix)
-- ARGV[3]  SCAN COUNT
-- ARGV[4]  the key prefix: "<prefix>:..." keys are redbeat's own, not entries
-- Returns: {next cursor ("0": the scan is complete), orphan key, ...}: keys
-- of hashes with a "definition" field whose member is in the schedule neither
-- as the key nor as the bare name.
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3], 'TYPE', 'hash')
local internal = ARGV[4] .. ':'
local skip = #ARGV[4] + 1
local keys = {}
for _, key in ipairs(page[2]) do
  -- Only hashes with a definition are entries: the prefix may be shared with
  -- other data, which beat must neither schedule nor report.
  if string.sub(key, 1, #internal) ~= internal
      and redis.call('HEXISTS', key, 'definition') == 1 then
    keys[#keys + 1] = key
  end
end
local out = {page[1]}
for i = 1, #keys, 1000 do  -- scores a thousand at a time; the bare name only when needed
  local found = redis.call('ZMSCORE', KEYS[1], unpack(keys, i, math.min(i + 999, #keys)))
  for j = 1, #found do
    local key = keys[i + j - 1]
    if not found[j] and not redis.call('ZSCORE', KEYS[1], string.sub(key, skip)) then
      out[#out + 1] = key
    end
  end
end
return out
