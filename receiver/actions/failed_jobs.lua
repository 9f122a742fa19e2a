-- Scripts of requeue_failed and purge_failed, one section per framework, chosen by ARGV[1].
-- Every script answers {done (or would do), left in the dead-letter store, dangling ids dropped}.
-- Each job moves or goes in one script call, so it is always either failed or queued, never both or
-- neither. Key names are derived inside Redis: not Redis Cluster-safe (the frameworks aren't either).
local op, dry = ARGV[1], ARGV[2] == '1'

local function expect(key, kinds)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and not kinds[kind] then
    return redis.error_reply(key .. ' is a ' .. kind)
  end
end

-- RQ: what FailedJobRegistry.requeue does, per job: ZREM from the failed registry, status queued,
-- a new enqueued_at, started_at/ended_at/exc_info cleared, RPUSH onto the queue of the job's origin,
-- and the queue listed in <prefix>queues. ARGV: op, dry, prefix, queue, now (RQ time format), wanted.
if op == 'rq_requeue' then
  local prefix, stamp, wanted = ARGV[3], ARGV[5], tonumber(ARGV[6])
  local failed = prefix .. 'failed:' .. ARGV[4]
  local err = expect(failed, {zset = true}) if err then return err end
  local size = redis.call('ZCARD', failed)
  if dry then return {math.min(wanted, size), size - math.min(wanted, size), 0} end
  local moved, dangling = 0, 0
  for _, id in ipairs(redis.call('ZRANGE', failed, 0, wanted - 1)) do
    redis.call('ZREM', failed, id)
    local job = prefix .. 'job:' .. id
    local origin = redis.call('HGET', job, 'origin')
    if origin then
      local queue = prefix .. 'queue:' .. origin
      redis.call('HSET', job, 'status', 'queued', 'enqueued_at', stamp, 'started_at', '', 'ended_at', '')
      redis.call('HDEL', job, 'exc_info')
      redis.call('RPUSH', queue, id)
      redis.call('SADD', prefix .. 'queues', queue)
      moved = moved + 1
    else
      dangling = dangling + 1  -- the job hash expired: nothing to run, so only the id goes
    end
  end
  return {moved, size - moved - dangling, dangling}
end

-- RQ: delete failed jobs whose ended_at is before the cutoff, as Job.delete does (hash, dependents,
-- dependencies, results, executions). Scores are expiry times, in failure order for one failure_ttl,
-- so the lowest `window` are examined. ARGV: op, dry, prefix, queue, cutoff (RQ time format), wanted, window.
if op == 'rq_purge' then
  local prefix, cutoff, wanted, window = ARGV[3], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
  local failed = prefix .. 'failed:' .. ARGV[4]
  local err = expect(failed, {zset = true}) if err then return err end
  local done, dangling = 0, 0
  for _, id in ipairs(redis.call('ZRANGE', failed, 0, window - 1)) do
    if done >= wanted then break end
    local job = prefix .. 'job:' .. id
    local ended = redis.call('HGET', job, 'ended_at')
    local gone = redis.call('EXISTS', job) == 0
    if gone or (ended and ended ~= '' and ended < cutoff) then  -- one fixed-width UTC format: compares as text
      done = done + 1
      if gone then dangling = dangling + 1 end
      if not dry then
        redis.call('ZREM', failed, id)
        redis.call('DEL', job, job .. ':dependents', prefix .. 'job::' .. id .. ':dependencies',
                   prefix .. 'results:' .. id, prefix .. 'executions:' .. id)
      end
    end
  end
  local left = redis.call('ZCARD', failed)
  return {done, dry and left - done or left, dangling}
end

-- Dramatiq: the dead-lettered id leaves <queue>.XQ and its body leaves <queue>.XQ.msgs together; both
-- go back to <queue>.msgs and the <queue> list, as the broker's enqueue writes them.
-- ARGV: op, dry, namespace, queue, unused, wanted.
if op == 'dramatiq_requeue' then
  local base, wanted = ARGV[3] .. ':' .. ARGV[4], tonumber(ARGV[6])
  local dead, bodies = base .. '.XQ', base .. '.XQ.msgs'
  local err = expect(dead, {zset = true}) or expect(base, {list = true}) if err then return err end
  local size = redis.call('ZCARD', dead)
  if dry then return {math.min(wanted, size), size - math.min(wanted, size), 0} end
  local moved, dangling = 0, 0
  for _, id in ipairs(redis.call('ZRANGE', dead, 0, wanted - 1)) do
    local body = redis.call('HGET', bodies, id)
    redis.call('ZREM', dead, id)
    redis.call('HDEL', bodies, id)
    if body then
      redis.call('HSET', base .. '.msgs', id, body)
      redis.call('RPUSH', base, id)
      moved = moved + 1
    else
      dangling = dangling + 1
    end
  end
  return {moved, size - moved - dangling, dangling}
end

-- Dramatiq: delete dead letters (id and body) dead-lettered before the cutoff (unix ms).
-- ARGV: op, dry, namespace, queue, cutoff, wanted.
if op == 'dramatiq_purge' then
  local base, cutoff, wanted = ARGV[3] .. ':' .. ARGV[4], ARGV[5], tonumber(ARGV[6])
  local dead, bodies = base .. '.XQ', base .. '.XQ.msgs'
  local err = expect(dead, {zset = true}) if err then return err end
  local ids = redis.call('ZRANGEBYSCORE', dead, '-inf', '(' .. cutoff, 'LIMIT', 0, wanted)
  if not dry and #ids > 0 then
    redis.call('ZREM', dead, unpack(ids))
    redis.call('HDEL', bodies, unpack(ids))
  end
  local left = redis.call('ZCARD', dead)
  return {#ids, dry and left - #ids or left, 0}
end

-- Celery and plain lists: items are whole messages; the oldest failure (right end) moves to the
-- queue's producing (left) end, rejoining the line as if published again. KEYS: dead-letter list, queue.
-- ARGV: op, dry, unused, unused, unused, wanted.
if op == 'list_requeue' then
  local dead, queue, wanted = KEYS[1], KEYS[2], tonumber(ARGV[6])
  local err = expect(dead, {list = true}) or expect(queue, {list = true}) if err then return err end
  local size = redis.call('LLEN', dead)
  local n = math.min(wanted, size)
  if not dry then
    for _ = 1, n do redis.call('LMOVE', dead, queue, 'RIGHT', 'LEFT') end
  end
  return {n, size - n, 0}
end

return redis.error_reply('unknown operation ' .. tostring(op))
