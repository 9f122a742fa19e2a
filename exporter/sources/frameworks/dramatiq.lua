-- Dramatiq: ARGV = namespace, queue names...
local namespace = ARGV[1]

return answer(names_from(2), function(name)
  local queue = namespace .. ':' .. name
  local dead = queue .. '.XQ'
  local row = {queue = name, dlq = dead, unreadable = 0}
  row.length = read('LLEN', queue)
  -- Bodies stay in .msgs until acked: those no longer listed were fetched by a worker.
  row.in_progress = math.max(0, read('HLEN', queue .. '.msgs') - row.length)
  local id = read('LINDEX', queue, 0)  -- RPUSH/LPOP: the oldest is at 0
  if id then
    local ok, message = pcall(cjson.decode, read('HGET', queue .. '.msgs', id) or '')
    if ok and type(message) == 'table' and type(message.message_timestamp) == 'number' then
      row.oldest = message.message_timestamp / 1000
    else
      row.unreadable = 1
    end
  end
  row.scheduled = read('HLEN', queue .. '.DQ.msgs')
  row.dlq_length = read('ZCARD', dead)
  local first = read('ZRANGE', dead, 0, 0, 'WITHSCORES')  -- scored by dead-letter time (ms)
  if first[2] then row.dlq_oldest = tonumber(first[2]) / 1000 end
  return row
end)
