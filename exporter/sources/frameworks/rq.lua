-- RQ: ARGV = prefix, now (unix seconds), queue names... (none: every queue listed in <prefix>queues)
local prefix, now = ARGV[1], tonumber(ARGV[2])
local names = names_from(3)
if #names == 0 then
  local queue_prefix = prefix .. 'queue:'
  for _, key in ipairs(read('SMEMBERS', prefix .. 'queues')) do
    if string.sub(key, 1, #queue_prefix) == queue_prefix then names[#names + 1] = string.sub(key, #queue_prefix + 1) end
  end
  table.sort(names)
end

-- Follows one job id to a field of its hash; a missing job or field counts as unreadable.
local function job_field(id, field, row)
  if not id then return nil end
  local value = read('HGET', prefix .. 'job:' .. id, field)
  if not value or value == '' then
    row.unreadable = row.unreadable + 1
    return nil
  end
  return value
end

return answer(names, function(name)
  local queue, failed, wip = prefix .. 'queue:' .. name, prefix .. 'failed:' .. name, prefix .. 'wip:' .. name
  local row = {queue = name, dlq = failed, unreadable = 0}
  row.length = read('LLEN', queue)
  row.oldest = job_field(read('LINDEX', queue, 0), 'enqueued_at', row)  -- RPUSH/LPOP: the oldest is at 0
  row.in_progress = read('ZCARD', wip)
  row.overdue = read('ZCOUNT', wip, '-inf', '(' .. ARGV[2])  -- scored by heartbeat expiry
  row.scheduled = read('ZCARD', prefix .. 'scheduled:' .. name)
  row.dlq_length = read('ZCARD', failed)
  -- Scored by expiry (failure + failure_ttl): the lowest score is the oldest failure for one failure_ttl.
  row.dlq_oldest = job_field(read('ZRANGE', failed, 0, 0)[1], 'ended_at', row)
  local workers = 0
  for _, key in ipairs(read('SMEMBERS', prefix .. 'workers:' .. name)) do
    workers = workers + read('EXISTS', key)  -- a worker's hash expires when its heartbeats stop
  end
  row.workers = workers
  return row
end)
