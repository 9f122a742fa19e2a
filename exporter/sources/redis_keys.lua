-- Length and oldest-item stamp of each key in KEYS. The first line counts this script's key lookups,
-- which Redis adds to INFO keyspace_hits/misses (so the exporter can take itself out of hit ratios):
--   hits TAB misses
-- then one line per key:
--   type TAB length TAB stamp [TAB group TAB pending TAB lag]...
-- ARGV[1]: JSON field holding a list item's enqueue time ("" = do not read list items)
-- ARGV[2]: "right" or "left", the end of a list where the oldest item sits
-- ARGV[3]: "1" to add stream consumer groups
-- A missing key reads as an empty list: Redis deletes lists when they become empty.
local field, oldest_index, with_groups = ARGV[1], (ARGV[2] == 'left') and 0 or -1, ARGV[3] == '1'

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
  if type(stamp) == 'number' then return tostring(stamp) end  -- 14 significant digits: 0.1 ms
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

local lines = {}
for i, key in ipairs(KEYS) do
  -- Queues are mostly lists: try LLEN first and ask for the TYPE only when it is refused.
  local length = redis.pcall('LLEN', key)
  local kind = 'list'
  if type(length) ~= 'number' then
    kind = redis.call('TYPE', key)['ok']
    hits = hits + 2  -- LLEN found a key of another type, TYPE found it again
  elseif length > 0 then
    hits = hits + 1
  else
    misses = misses + 1  -- a missing key: Redis deletes empty lists
  end
  local line
  if kind == 'list' then
    line = 'list\t' .. length .. '\t' .. ((field ~= '' and length > 0) and list_stamp(key) or '')
  elseif kind == 'zset' then
    hits = hits + 2
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    line = 'zset\t' .. redis.call('ZCARD', key) .. '\t' .. (first[2] or '')
  elseif kind == 'stream' then
    hits = hits + 2
    local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
    line = 'stream\t' .. redis.call('XLEN', key) .. '\t' .. (first[1] and first[1][1] or '')
    if with_groups then
      local groups = stream_groups(key)
      if #groups > 0 then line = line .. '\t' .. table.concat(groups, '\t') end
    end
  else
    line = kind .. '\t0\t'
  end
  lines[i] = line
end
return hits .. '\t' .. misses .. '\n' .. table.concat(lines, '\n')
