"""``sql``: run one statement written in the config, such as ending idle connections.

Label values are bound as parameters (``%(name)s``), never formatted into the SQL text. The server
enforces the action's timeout too (``statement_timeout``), so a cancelled run does not leave a query
behind. The statement runs prepared (so exactly one statement) in one transaction, committed when it
succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import psycopg

from receiver.actions.base import ActionResult, BaseAction, Progress
from receiver.actions.config import SqlConfig, resolve_secret
from receiver.actions.placeholders import value_of


class SqlAction(BaseAction[SqlConfig]):
    type = "sql"
    failures: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error, OSError)

    def __init__(self, config: SqlConfig) -> None:
        super().__init__(config)
        self._dsn = resolve_secret(config, "dsn") or ""
        self._params = config.template_fields()

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        params = {name: value_of(values, name) for name in sorted(self._params)}
        if dry_run:
            return ActionResult(True, f"would run {cfg.name} with {params}", True)
        timeout_ms = max(1, round(cfg.timeout * 1000))
        async with await psycopg.AsyncConnection.connect(
            self._dsn,
            connect_timeout=max(1, round(cfg.timeout)),
            options=f"-c statement_timeout={timeout_ms}",
            application_name="opsloop-receiver",
        ) as conn:
            # prepared, so the server runs exactly one statement: "; DROP ..." is refused even without params
            cursor = await conn.execute(cfg.statement, params, prepare=True)
            rows = cursor.rowcount
        return ActionResult(True, f"{cfg.name}: {rows} rows")
