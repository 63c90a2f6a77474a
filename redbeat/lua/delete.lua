-- delete.lua: delete entries, and nothing that is not one.
--
-- A key under the prefix is an entry only if it is a hash with a
-- "definition" field or the schedule holds it as a member.  redbeat's own
-- keys (prefix .. ":...") and other data sharing the prefix (another
-- application's hashes, a string where an entry was expected) are never
-- deleted; a member whose key is not a hash loses only its member.  Entry
-- keys are derived from the names (prefix .. name), as save.lua does: with a
-- hash-tagged prefix they share the schedule's Redis Cluster slot.
--
-- KEYS[1]  the schedule sorted set
-- ARGV[1]  the changes channel (published to once if anything was deleted; "" = none)
-- ARGV[2]  the key prefix
-- ARGV[3]  a lock key to refuse as well ("" = only prefix .. ":..." keys)
-- ARGV[4...]  entry names
-- Returns: a string, one character per name: "1" deleted, "0" no such entry.
local schedule, prefix, lock = KEYS[1], ARGV[2], ARGV[3]
local internal = prefix .. ':'
local flags = {}
local any = false
for i = 4, #ARGV do
  local name = ARGV[i]
  local key = prefix .. name
  local flag = '0'
  if string.sub(key, 1, #internal) ~= internal and key ~= lock then
    local is_hash = redis.call('TYPE', key)['ok'] == 'hash'
    local defined = is_hash and redis.call('HEXISTS', key, 'definition') == 1
    local member = redis.call('ZSCORE', schedule, key) or redis.call('ZSCORE', schedule, name)
    if defined or (member and is_hash) then
      redis.call('DEL', key)
      flag = '1'
    end
    if member then
      redis.call('ZREM', schedule, key, name)
      flag = '1'
    end
    if flag == '1' then
      redis.call('DEL', internal .. 'history:' .. name)
      any = true
    end
  end
  flags[#flags + 1] = flag
end
if any and ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], 'delete')
end
return table.concat(flags)
