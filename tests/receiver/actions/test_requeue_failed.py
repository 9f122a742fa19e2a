"""requeue_failed and purge_failed against real RQ, Dramatiq and Celery workers, checked through their own APIs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from opsloop.testsupport.servers import RedisServer
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from tests.frameworkjobs.workers import Workers, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(redis_server.url, tmp_path)
    yield running
    running.close()


async def test_rq_jobs_come_back_queued_and_a_real_worker_completes_them(redis_server, redis_db, workers, make_action):
    queue = Queue("default", connection=redis_db)
    jobs = [queue.enqueue("rq_jobs.flaky", f"job-{n}") for n in range(3)]
    workers.burst("rq", "worker", "--burst", "--url", redis_server.url, "default")
    failed = FailedJobRegistry(queue=queue)
    assert failed.count == 3
    before = time.time()

    def action(**options: object):
        return make_action(type="requeue_failed", framework="rq", redis=redis_server.url, queue="{queue}", **options)

    dry = await action(max_items=2).run({"queue": "default"}, dry_run=True)
    assert dry.ok
    assert dry.dry_run
    assert dry.detail == "would requeue 2 of 3 rq jobs rq:failed:default -> the job's queue"
    assert failed.count == 3
    assert queue.count == 0

    result = await action(max_items=2).run({"queue": "default"})
    assert result.ok, result.detail
    assert result.detail == "requeued 2 rq jobs rq:failed:default -> the job's queue (1 left, max_items 2 reached)"
    assert failed.count == 1
    assert queue.count == 2
    assert "rq:queue:default" in {q.key for q in Queue.all(connection=redis_db)}
    for job_id in queue.job_ids:
        job = Job.fetch(job_id, connection=redis_db)
        assert job.get_status() == JobStatus.QUEUED
        assert job.enqueued_at is not None
        assert job.enqueued_at.timestamp() >= before - 1
        assert job.started_at is None
        assert job.ended_at is None

    redis_db.set("fixed", "1")
    workers.burst("rq", "worker", "--burst", "--url", redis_server.url, "default")
    requeued = [job for job in jobs if job.id not in failed.get_job_ids()]
    assert len(requeued) == 2
    for job in requeued:
        assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert FinishedJobRegistry(queue=queue).count == 2
    assert redis_db.smembers("done") == {job.args[0].encode() for job in requeued}


async def test_rq_purge_deletes_only_jobs_that_failed_before_the_cutoff(redis_server, redis_db, workers, make_action):
    queue = Queue("default", connection=redis_db)
    old, recent = (queue.enqueue("rq_jobs.fail", reason) for reason in ("old", "recent"))
    workers.burst("rq", "worker", "--burst", "--url", redis_server.url, "default")
    redis_db.hset(old.key, "ended_at", "2020-01-01T00:00:00.000000Z")  # controlled failure time
    purge = make_action(
        type="purge_failed", framework="rq", redis=redis_server.url, queue="default", older_than="1h", max_items=10
    )
    dry = await purge.run({}, dry_run=True)
    assert dry.detail == "would delete 1 rq jobs failed more than 3600s ago from rq:failed:default"
    assert FailedJobRegistry(queue=queue).count == 2
    result = await purge.run({})
    assert result.ok
    assert result.detail == "deleted 1 rq jobs failed more than 3600s ago from rq:failed:default (1 left)"
    assert FailedJobRegistry(queue=queue).get_job_ids() == [recent.id]
    assert not Job.exists(old.id, connection=redis_db)
    assert Job.exists(recent.id, connection=redis_db)


async def test_dramatiq_bodies_move_with_their_ids_and_a_real_worker_completes_them(
    redis_server, redis_db, workers, make_action
):
    broker = RedisBroker(url=redis_server.url)
    for name in ("a", "b"):
        broker.enqueue(Message(queue_name="default", actor_name="flaky", args=(name,), kwargs={}, options={}))
    args = ("dramatiq", "dramatiq_jobs", "--processes", "1", "--threads", "1", "--queues", "default")
    worker = workers.start(*args)
    wait_for(lambda: redis_db.zcard("dramatiq:default.XQ") == 2, what="two dead letters")
    worker.terminate()
    worker.wait(30)
    action = make_action(type="requeue_failed", framework="dramatiq", redis=redis_server.url, queue="default")
    dry = await action.run({}, dry_run=True)
    assert dry.detail == "would requeue 2 of 2 dramatiq jobs dramatiq:default.XQ -> dramatiq:default"
    result = await action.run({})
    assert result.ok
    assert result.detail == "requeued 2 dramatiq jobs dramatiq:default.XQ -> dramatiq:default"
    assert redis_db.zcard("dramatiq:default.XQ") == redis_db.hlen("dramatiq:default.XQ.msgs") == 0
    assert broker.do_qsize("default") == 2  # the broker sees both messages, bodies and ids, waiting again

    redis_db.set("fixed", "1")
    workers.start(*args)
    wait_for(lambda: redis_db.scard("done") == 2, what="the requeued messages to run")
    wait_for(lambda: broker.do_qsize("default") == 0, what="the messages to be acked")
    assert redis_db.smembers("done") == {b"a", b"b"}
    assert redis_db.zcard("dramatiq:default.XQ") == 0


async def test_dramatiq_purge_removes_old_dead_letters_with_their_bodies(redis_db, redis_server, make_action):
    now_ms = time.time() * 1000
    redis_db.zadd("dramatiq:default.XQ", {"old": now_ms - 7_200_000, "new": now_ms - 1000})
    redis_db.hset("dramatiq:default.XQ.msgs", mapping={"old": "{}", "new": "{}"})
    purge = make_action(
        type="purge_failed", framework="dramatiq", redis=redis_server.url, queue="default", older_than="1h"
    )
    result = await purge.run({})
    assert result.detail == "deleted 1 dramatiq jobs failed more than 3600s ago from dramatiq:default.XQ (1 left)"
    assert redis_db.zrange("dramatiq:default.XQ", 0, -1) == [b"new"]
    assert redis_db.hkeys("dramatiq:default.XQ.msgs") == [b"new"]


async def test_list_requeue_moves_whole_items_oldest_first(redis_db, redis_server, make_action):
    redis_db.lpush("dead:emails", "m0", "m1", "m2")  # m0 failed first: right end
    action = make_action(
        type="requeue_failed", framework="list", redis=redis_server.url, queue="queue:{name}", dlq="dead:{name}",
        max_items=2,
    )  # fmt: skip
    result = await action.run({"name": "emails"})
    assert result.detail == "requeued 2 list jobs dead:emails -> queue:emails (1 left, max_items 2 reached)"
    assert redis_db.lrange("queue:emails", 0, -1) == [b"m1", b"m0"]
    assert redis_db.lrange("dead:emails", 0, -1) == [b"m2"]


async def test_wrong_types_and_bad_configs_are_clear_errors(redis_db, redis_server, make_action, parse_action):
    redis_db.set("rq:failed:default", "not a registry")
    action = make_action(type="requeue_failed", framework="rq", redis=redis_server.url, queue="default")
    result = await action.run({})
    assert not result.ok
    assert "rq:failed:default is a string" in result.detail
    with pytest.raises(ValueError, match="framework list keeps no dead letters of its own: set dlq"):
        parse_action(type="requeue_failed", framework="list", redis=redis_server.url, queue="q")
    with pytest.raises(ValueError, match="purge_failed needs failure times"):
        parse_action(
            type="purge_failed", framework="celery", redis=redis_server.url, queue="q", dlq="d", older_than="1h"
        )


async def test_celery_messages_move_whole_and_a_real_worker_runs_them(redis_server, redis_db, workers, make_action):
    app = Celery("producer", broker=redis_server.url)
    for name in ("a", "b"):
        app.send_task("celery_jobs.record", args=(name,), queue="mail")
    # An application's dead-letter list holds kombu's own messages: move them there before any worker runs.
    for _ in range(2):
        redis_db.lmove("mail", "mail.dead", "RIGHT", "LEFT")
    action = make_action(
        type="requeue_failed", framework="celery", redis=redis_server.url, queue="mail", dlq="mail.dead"
    )
    result = await action.run({})
    assert result.detail == "requeued 2 celery jobs mail.dead -> mail"
    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_declare(queue="mail").message_count == 2
    workers.start("celery", "-A", "celery_jobs", "worker", "-Q", "mail", "--pool", "solo", "--without-gossip",
                  "--without-mingle")  # fmt: skip
    wait_for(lambda: redis_db.scard("done") == 2, what="the requeued tasks to run")
    assert redis_db.smembers("done") == {b"a", b"b"}
    assert redis_db.llen("mail.dead") == 0
