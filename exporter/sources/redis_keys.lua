-- Length and oldest-item stamp of each key in KEYS, as one flat array:
--   hits, misses, then two values per key.
-- hits and misses count this script's key lookups, which Redis adds to INFO keyspace_hits/misses (so the
-- exporter can take itself out of hit ratios). A list's two values are its length (an integer) and its
-- oldest item's stamp: when the field is a number in range, an integer count of ten-thousandths of the
-- item's unit (0.1 ms of a stamp in seconds); else its text, or "" for none. Any other type's are its type
-- and a line:
--   length TAB stamp [TAB group TAB pending TAB lag]...
-- Integers and no text per list: building a line per key cost Redis about as much as reading the key.
-- ARGV[1]: JSON field holding a list item's enqueue time ("" = do not read list items)
-- ARGV[2]: "right" or "left", the end of a list where the oldest item sits
-- ARGV[3]: "1" to add stream consumer groups
-- A missing key reads as an empty list: Redis deletes lists when they become empty.
local field, oldest_index, with_groups = ARGV[1], (ARGV[2] == 'left') and 0 or -1, ARGV[3] == '1'
local STAMP_UNITS, STAMP_LIMIT = 1e4, 1e14  -- within the limit, a stamp in units fits a 64-bit integer

local function clean(value)
  return (string.gsub(tostring(value), '[\t\n]', ' '))
end

local hits, misses = 0, 0

local function list_stamp(key)
  hits = hits + 1
  local item = redis.call('LINDEX', key, oldest_index)
  if not item then return '' end
  local ok, doc = pcall(cjson.decode, item)
  if not ok or type(doc) ~= 'table' then return '' end
  local stamp = doc[field]
  if type(stamp) == 'number' then
    if stamp > -STAMP_LIMIT and stamp < STAMP_LIMIT then return math.floor(stamp * STAMP_UNITS + 0.5) end
    return tostring(stamp)  -- out of range, or not a number (cjson reads NaN and Infinity)
  end
  if type(stamp) == 'string' then return clean(stamp) end
  return ''
end

local function stream_groups(key)
  hits = hits + 1
  local parts = {}
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    local lag = info['lag']
    parts[#parts + 1] = clean(info['name']) .. '\t' .. info['pending'] .. '\t' .. (lag and tostring(lag) or '')
  end
  return parts
end

local out, n = {0, 0}, 2
for _, key in ipairs(KEYS) do
  -- Queues are mostly lists: try LLEN first and ask for the TYPE only when it is refused.
  local length = redis.pcall('LLEN', key)
  if type(length) == 'number' then
    if length > 0 then
      hits = hits + 1
      out[n + 1], out[n + 2] = length, (field ~= '' and list_stamp(key) or '')
    else
      misses = misses + 1  -- a missing key: Redis deletes empty lists
      out[n + 1], out[n + 2] = 0, ''
    end
  else
    local kind = redis.call('TYPE', key)['ok']
    hits = hits + 2  -- LLEN found a key of another type, TYPE found it again
    local line
    if kind == 'zset' then
      hits = hits + 2
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      line = redis.call('ZCARD', key) .. '\t' .. (first[2] or '')
    elseif kind == 'stream' then
      hits = hits + 2
      local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
      line = redis.call('XLEN', key) .. '\t' .. (first[1] and first[1][1] or '')
      if with_groups then
        local groups = stream_groups(key)
        if #groups > 0 then line = line .. '\t' .. table.concat(groups, '\t') end
      end
    else
      line = '0\t'
    end
    out[n + 1], out[n + 2] = kind, line
  end
  n = n + 2
end
out[1], out[2] = hits, misses
return out
