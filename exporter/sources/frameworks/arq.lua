-- arq: ARGV = now (unix ms), most due jobs checked for running, queue keys...
-- One sorted set per queue holds waiting, deferred and running jobs, scored by due time (ms); a running
-- job keeps its entry and has an arq:in-progress:<id> key.
local now, cap = tonumber(ARGV[1]), tonumber(ARGV[2])

return answer(names_from(3), function(name)
  local row = {queue = name}
  local total = read('ZCARD', name)
  local due = read('ZCOUNT', name, '-inf', now)
  row.scheduled = total - due
  local running = 0
  if due > 0 then
    -- Workers take the lowest scores first, so running jobs sit at the head.
    local head = read('ZRANGE', name, 0, math.min(due, cap) - 1, 'WITHSCORES')
    for i = 1, #head, 2 do
      if read('EXISTS', 'arq:in-progress:' .. head[i]) == 1 then
        running = running + 1
      elseif not row.oldest then
        row.oldest = tonumber(head[i + 1]) / 1000
      end
    end
  end
  row.in_progress, row.length = running, due - running
  return row
end)
