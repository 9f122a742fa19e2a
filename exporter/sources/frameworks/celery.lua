-- Celery (kombu's Redis transport): ARGV = key prefix, now (unix seconds), visibility timeout (s),
-- most unacked entries to read, priority steps (comma-separated), queue names...
local prefix, now, visibility, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local steps = {}
for step in string.gmatch(ARGV[5], '[^,]+') do steps[#steps + 1] = step end

-- One pass over the unacked hash (tasks delivered to a worker: running, prefetched or waiting for their
-- ETA), by routing key: {in progress, scheduled (has an ETA), overdue (unacked past the visibility timeout)}.
local unacked, unattributed, split = {}, 0, read('HLEN', prefix .. 'unacked') <= cap
if split then
  local entries = read('HGETALL', prefix .. 'unacked')
  for i = 1, #entries, 2 do
    local ok, entry = pcall(cjson.decode, entries[i + 1])
    local raw = ok and type(entry) == 'table' and entry[1]
    local routing_key = ok and type(entry) == 'table' and entry[3]
    if type(raw) == 'table' and type(routing_key) == 'string' then
      local counts = unacked[routing_key] or {0, 0, 0}
      unacked[routing_key] = counts
      local eta = type(raw.headers) == 'table' and raw.headers.eta
      if eta and eta ~= cjson.null then
        counts[2] = counts[2] + 1
      else
        counts[1] = counts[1] + 1
        local since = tonumber(read('ZSCORE', prefix .. 'unacked_index', entries[i]))
        if since and since < now - visibility then counts[3] = counts[3] + 1 end
      end
    else
      unattributed = unattributed + 1
    end
  end
end

local names = names_from(6)
local rows = answer(names, function(name)
  local row = {queue = name, unreadable = 0, length = 0}
  for _, step in ipairs(steps) do
    local key = prefix .. name
    if step ~= '0' then key = key .. '\6\22' .. step end  -- kombu's separator \x06\x16
    row.length = row.length + read('LLEN', key)
  end
  if split then
    local counts = unacked[name] or {0, 0, 0}
    row.in_progress, row.scheduled, row.overdue = counts[1], counts[2], counts[3]
  end
  return row
end)
if unattributed > 0 then  -- entries without a routing key belong to no queue: one row without a name
  table.insert(rows[3], {'', '', '', '', '', '', '', '', '', '', tostring(unattributed), ''})
end
return rows
