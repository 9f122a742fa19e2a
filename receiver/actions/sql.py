"""``sql``: run one statement written in the config, such as ending idle connections.

Label values are bound as parameters (``%(name)s``), never formatted into the SQL text. The server
enforces the action's timeout too (``statement_timeout``), so a cancelled run does not leave a query
behind. The statement runs prepared (so exactly one statement) in one transaction, committed when it
succeeds.

The DSN is a secret: it is parsed when the action is built (a malformed one is a config error that does
not quote it), and an error whose text quotes it or its password is reported with a generic message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import psycopg
from opsloop.receiver.actions.base import ActionResult, BaseAction, Progress
from opsloop.receiver.actions.config import SqlConfig
from opsloop.receiver.actions.placeholders import value_of
from psycopg.conninfo import conninfo_to_dict

_SECRET_OPTIONS = ("password", "sslpassword")


class SqlAction(BaseAction[SqlConfig]):
    type = "sql"
    failures: ClassVar[tuple[type[Exception], ...]] = (psycopg.Error, OSError)

    def __init__(self, config: SqlConfig) -> None:
        super().__init__(config)
        self._dsn = config.secret("dsn") or ""
        try:
            options = conninfo_to_dict(self._dsn)
        except psycopg.Error:
            # libpq's parse errors can quote the whole string, password included: say what is wrong, not what
            raise ValueError(
                f"sql action {config.name!r}: the DSN is not a valid PostgreSQL connection string "
                "(not shown: it may hold a password)"
            ) from None
        # Text that must never reach a result: the DSN itself and the passwords it carries.
        self._secrets = [s for s in (self._dsn, *(str(options.get(key) or "") for key in _SECRET_OPTIONS)) if s]
        self._params = config.template_fields()

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        params = {name: value_of(values, name) for name in sorted(self._params)}
        if dry_run:
            return ActionResult(True, f"would run {cfg.name} with {params}", True)
        try:
            rows = await self._execute(params)
        except psycopg.Error as exc:
            return ActionResult(False, self._describe(exc))
        return ActionResult(True, f"{cfg.name}: {rows} rows")

    async def _execute(self, params: Mapping[str, str]) -> int:
        cfg = self.config
        timeout_ms = max(1, round(cfg.timeout * 1000))
        async with await psycopg.AsyncConnection.connect(
            self._dsn,
            connect_timeout=max(1, round(cfg.timeout)),
            options=f"-c statement_timeout={timeout_ms}",
            application_name="opsloop-receiver",
        ) as conn:
            # prepared, so the server runs exactly one statement: "; DROP ..." is refused even without params
            cursor = await conn.execute(cfg.statement, params, prepare=True)
            return cursor.rowcount

    def _describe(self, exc: psycopg.Error) -> str:
        """The error for the result, or a generic message when libpq or psycopg quoted the DSN or a password."""
        name = type(exc).__name__
        text = str(exc)
        if any(secret in text for secret in self._secrets):
            state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
            return f"{name}: the database call failed{state}; the error text is withheld because it quotes the DSN"
        return f"{name}: {text}"
