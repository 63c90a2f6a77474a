-- finish.lua: beat's bookkeeping after sending, never re-creating a deleted entry.
--
-- History records and the finish actions of entries with no occurrence left
-- are written with the next round trip beat makes anyway, up to a tick after
-- the send; meanwhile a user may have edited or deleted the entry.  So every
-- write is conditional: a history record is added only while the entry's
-- hash has a definition, and a finish action (disable, delete) is done only
-- if the definition is still the text beat read when it planned the last
-- run: an edit made since wins, and a deleted entry stays deleted (no HSET
-- on a key that no longer exists).  Entry keys are derived from the names
-- (prefix .. name), as save.lua does.
--
-- KEYS[1]  the schedule sorted set
-- ARGV[1]  the changes channel (published to once if an entry was disabled or
--          deleted; "" = none)
-- ARGV[2]  the key prefix
-- ARGV[3]  JSON object, each field optional:
--   history  [[name, record JSON, records to keep], ...], oldest first
--   disable  [[name, definition read, definition to store], ...]
--   delete   [[name, definition read], ...]
-- Returns: {records added, entries disabled, entries deleted, records not written,
--          the first error a record write met ("" if none)}
local schedule, prefix = KEYS[1], ARGV[2]
local v = cjson.decode(ARGV[3])
local function defined(key)
  return redis.pcall('HEXISTS', key, 'definition') == 1
end
local function stored_is(key, read)
  return redis.pcall('HGET', key, 'definition') == read
end
local added, disabled, deleted, failed, first_error = 0, 0, 0, 0, ''
for _, h in ipairs(v.history or {}) do
  local name, record, keep = h[1], h[2], h[3]
  if defined(prefix .. name) then
    local list = prefix .. ':history:' .. name
    -- pcall: a history key of the wrong type, or an ACL user without LPUSH or
    -- LTRIM, loses the record, not the other writes; the caller logs why
    local pushed = redis.pcall('LPUSH', list, record)
    local trimmed = type(pushed) == 'number' and redis.pcall('LTRIM', list, 0, keep - 1)
    if type(trimmed) == 'table' and trimmed.ok then
      added = added + 1
    else
      failed = failed + 1
      local command, err = 'LPUSH', pushed
      if type(trimmed) == 'table' then command, err = 'LTRIM', trimmed end
      if first_error == '' then
        first_error = name .. ': ' .. command .. ' refused: ' .. tostring(err.err)
      end
    end
  end
end
for _, d in ipairs(v.disable or {}) do
  local key = prefix .. d[1]
  if stored_is(key, d[2]) then
    redis.call('HSET', key, 'definition', d[3])
    disabled = disabled + 1
  end
end
for _, d in ipairs(v.delete or {}) do
  local name = d[1]
  local key = prefix .. name
  if stored_is(key, d[2]) then
    redis.call('ZREM', schedule, key, name)
    redis.call('DEL', key, prefix .. ':history:' .. name)  -- DEL takes any type
    deleted = deleted + 1
  end
end
if disabled + deleted > 0 and ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], 'finish')
end
return {added, disabled, deleted, failed, first_error}
