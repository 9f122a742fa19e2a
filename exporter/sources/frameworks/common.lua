-- Prepended to every framework script: lookup counting and the answer format.
-- Answer: { hits, misses, rows } with one row per queue, every field a string ('' = not read):
--   queue, dlq, length, oldest, in_progress, overdue, scheduled, dlq_length, dlq_oldest, workers,
--   unreadable, error
-- A queue whose keys Redis refuses (WRONGTYPE) answers its error instead of failing the others.
-- Hits and misses are counted exactly as Redis counts them (one per key lookup: a hit when the key
-- exists), so the exporter can take its own reads out of keyspace hit ratios. Most replies show whether
-- the key exists (Redis deletes empty lists, hashes, sets and sorted sets); for the others (HGET, ZCOUNT,
-- ZSCORE of nothing) an earlier reply about the same key decides, or one EXISTS, itself counted.
local hits, misses = 0, 0
local known = {}  -- key -> whether it exists, once a reply showed it

local SIZES = {LLEN = true, ZCARD = true, HLEN = true, SCARD = true}
local ITEMS = {SMEMBERS = true, HGETALL = true, ZRANGE = true, LINDEX = true}

local function count(exists)
  if exists then hits = hits + 1 else misses = misses + 1 end
end

local function read(command, key, ...)
  local reply = redis.call(command, key, ...)
  local exists
  if SIZES[command] then
    exists = reply > 0
  elseif ITEMS[command] then
    exists = reply ~= false and not (type(reply) == 'table' and next(reply) == nil)
  elseif command == 'EXISTS' then
    exists = reply == 1
  elseif reply ~= false and reply ~= 0 then
    exists = true
  elseif known[key] == nil then
    known[key] = redis.call('EXISTS', key) == 1
    count(known[key])
  end
  if exists == nil then exists = known[key] end
  known[key] = exists
  count(exists)
  return reply
end

local FIELDS = {'queue', 'dlq', 'length', 'oldest', 'in_progress', 'overdue', 'scheduled', 'dlq_length',
                'dlq_oldest', 'workers', 'unreadable', 'error'}

local function answer(names, read_queue)
  local rows = {}
  for i, name in ipairs(names) do
    local ok, row = pcall(read_queue, name)
    if not ok then
      row = {queue = name, error = (type(row) == 'table' and row.err) or tostring(row)}
    end
    local out = {}
    for j, field in ipairs(FIELDS) do
      local value = row[field]
      out[j] = value == nil and '' or tostring(value)
    end
    rows[i] = out
  end
  return {tostring(hits), tostring(misses), rows}
end

local function names_from(first)
  local names = {}
  for i = first, #ARGV do names[#names + 1] = ARGV[i] end
  return names
end
