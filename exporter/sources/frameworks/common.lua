-- Prepended to every framework script: lookup counting and the answer format.
-- Answer: { hits, misses, rows } with one row per queue, every field a string ('' = not read):
--   queue, dlq, length, oldest, in_progress, overdue, scheduled, dlq_length, dlq_oldest, workers,
--   unreadable, error
-- A queue whose keys Redis refuses (WRONGTYPE) answers its error instead of failing the others.
-- Hits and misses are counted from replies (a zero or empty reply counts as a miss), so the
-- exporter can take its own reads out of keyspace hit ratios.
local hits, misses = 0, 0

local function read(...)
  local reply = redis.call(...)
  if reply == 0 or reply == false or (type(reply) == 'table' and next(reply) == nil) then
    misses = misses + 1
  else
    hits = hits + 1
  end
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
