-- due.lua: the first entries due now, with what the scheduler needs to send them.
--
-- One call instead of a range query followed by a fetch.  The entry keys are
-- derived from the members (a member written without the prefix names
-- prefix .. member), so they all live under the schedule's prefix: with a
-- hash-tagged prefix they share the schedule's Redis Cluster slot.
--
-- KEYS[1]  the schedule sorted set
-- ARGV[1]  now (UTC UNIX seconds): members with 0 <= score <= now are due
-- ARGV[2]  how many to return at most
-- ARGV[3]  the key prefix
-- Returns: a flat list, 6 items per due entry, earliest first:
--   member, score (exact string), definition, meta, policy (each nil if
--   absent), error (nil, or why the key could not be read, e.g. WRONGTYPE)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local prefix = ARGV[3]
local out = {}
for i = 1, #due, 2 do
  local member = due[i]
  local key = member
  if string.sub(member, 1, #prefix) ~= prefix then
    key = prefix .. member
  end
  local fields = redis.pcall('HMGET', key, 'definition', 'meta', 'policy')
  local n = #out
  out[n + 1] = member
  out[n + 2] = due[i + 1]
  if fields['err'] then
    out[n + 3] = false
    out[n + 4] = false
    out[n + 5] = false
    out[n + 6] = fields['err']
  else
    out[n + 3] = fields[1]
    out[n + 4] = fields[2]
    out[n + 5] = fields[3]
    out[n + 6] = false
  end
end
return out
