"""The benchmark's PostgreSQL: WAL ready for reuse as on a server in steady state, a fresh database per
measurement, and what the server itself did during one (checkpoints, WAL, autovacuum, its CPU time)."""

from __future__ import annotations

from machine import family_cpu_seconds
from opsloop.testsupport.servers import PostgresServer


class ServerActivity:
    """What PostgreSQL itself did during a measurement: checkpoints started, WAL written (and how much of
    it full-page images), WAL buffers full, WAL segment files added, autovacuum and autoanalyze runs on the
    measured database (its statistics views), and the CPU time of the postmaster and its backends. A round
    that misses with a calm disk is told apart from one the server's own background work got in the way of.
    """

    QUERY = (
        "SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter), wal_bytes, wal_fpi, "
        "wal_buffers_full, (SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_user_tables), "
        "(SELECT count(*) FROM pg_ls_waldir()) FROM pg_stat_wal"
    )
    FIELDS = ("checkpoints", "wal_bytes", "wal_fpi", "wal_buffers_full", "autovacuums", "wal_files", "postgres_cpu")

    def __init__(self, server: PostgresServer, database: str) -> None:
        self.server, self.database = server, database
        self.postmaster = postmaster_pid(server)
        self.before = self.snapshot()

    def snapshot(self) -> list[float]:
        cpu = family_cpu_seconds(self.postmaster)
        row = self.server.psql(self.QUERY, database=self.database).strip().split("|")
        return [*(float(value) for value in row), cpu]

    def delta(self) -> dict[str, float]:
        return dict(zip(self.FIELDS, (b - a for a, b in zip(self.before, self.snapshot(), strict=True)), strict=True))


def postmaster_pid(server: PostgresServer) -> int:
    return int((server.datadir / "postmaster.pid").read_text().split("\n", 1)[0])


def recycle_wal(server: PostgresServer, megabytes: int) -> None:
    """Leave ``megabytes`` of WAL segments ready for reuse, as a server in steady state has them.

    A new server has none: every 16 MiB of WAL a backend creates and zero-fills a new segment file in the
    commit path, which a long-running server seldom does (its checkpoints rename old segments for reuse, up
    to ``min_wal_size``). So: raise ``min_wal_size``, write that much WAL into a scratch table, drop it and
    checkpoint. fsync and ``synchronous_commit`` stay on.
    """
    server.psql(f"ALTER SYSTEM SET min_wal_size = '{megabytes}MB'", database="postgres")
    server.psql("SELECT pg_reload_conf()", database="postgres")
    rows = megabytes * 2**20 // 260  # about 260 bytes of WAL per row
    server.psql(f"CREATE TABLE wal_warmup AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, {rows}) g")
    server.psql("DROP TABLE wal_warmup")
    server.psql("CHECKPOINT")


def fresh_database(server: PostgresServer, name: str) -> str:
    server.psql(f"CREATE DATABASE {name}", database="postgres")
    return server.dsn.rsplit("/", 1)[0] + f"/{name}"
