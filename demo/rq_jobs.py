"""The demo's RQ job: a report that fails while its dependency is broken (``demo:reports:broken`` set)."""

from __future__ import annotations

from rq import get_current_job

BROKEN_FLAG = "demo:reports:broken"
DONE_COUNTER = "demo:reports:done"


def build_report(number: int) -> int:
    job = get_current_job()
    assert job is not None  # only ever run by an RQ worker
    if job.connection.exists(BROKEN_FLAG):
        raise ConnectionError(f"report {number}: the reporting database is unreachable")
    job.connection.incr(DONE_COUNTER)
    return number
