"""Start real Redis, PostgreSQL, Prometheus and Alertmanager processes on free loopback ports.

The demo and the test suite share these launchers so both exercise the same binaries the same way.
Every server lives in its own temporary directory, logs to a file there, and is stopped (process group
and all) by ``stop()``. One module on purpose, past the usual size: the four launchers are small and
share the process, port and readiness handling that makes up most of it.
"""

from __future__ import annotations

import abc
import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

PG_BIN = Path("/usr/lib/postgresql/15/bin")
LOOPBACK = "127.0.0.1"
BIND_FAILURES = ("already in use",)
"""How redis-server, PostgreSQL and the Go servers report losing the race for their port."""


class ServerError(RuntimeError):
    """A server did not start or stop as expected; the message includes its log tail."""


PORT_RANGE = range(20000, 22768)
"""Ports handed out for servers: below Linux's ephemeral range (32768+), so no outgoing connection or
port-0 bind on this machine takes one between our check and the server's bind, and port + 10000 (a
Redis Cluster node's bus port) stays below it too."""
_handed_out: set[int] = set()
_ports_rng = random.SystemRandom()  # not the global generator: pytest-randomly reseeds that for every test


def bindable(port: int) -> bool:
    """True when nothing listens on ``port`` of the loopback address right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port that is free now, with port + 10000 free too, never the same twice per process.

    Redis, PostgreSQL, Prometheus and Alertmanager cannot all report a port they chose themselves, so a
    port is picked here: at random from ``PORT_RANGE`` to keep concurrent test runs apart, and checked by
    binding it. Servers still retry on another port if the bind fails (see ``Server._launch``).
    """
    for _ in range(200):
        port = _ports_rng.choice(PORT_RANGE)
        if port not in _handed_out and bindable(port) and bindable(port + 10000):
            _handed_out.add(port)
            return port
    raise ServerError(f"no free port pair in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def pid_exists(pid: int) -> bool:
    """Whether ``pid`` names a process, zombies included (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise ServerError(f"timed out after {timeout:.0f}s waiting for {what}")


class ManagedProcess:
    """One child process in its own process group, with its output in ``log_path``."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(argv),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logged_any(self, texts: Sequence[str]) -> bool:
        return any(self.logged(text) for text in texts)

    def logged(self, text: str) -> bool:
        """Whether this run (not an earlier one appending to the same log) has written ``text``."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                return text.encode() in log.read()
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check() and self.running:  # still running: the answer did not come from another server
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.05)
        raise ServerError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL the process group: a crash, not a shutdown."""
        if self.proc is None:
            return
        self.signal(signal.SIGKILL)
        self.proc.wait(5)


class Server(abc.ABC):
    """Base for the launchers: a temp dir, a port, a managed process, context-manager support."""

    name = "server"

    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"opsloop-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._auto_port = port is None  # a port we picked may be retaken: choose again if the bind fails
        self.port = port or free_port()
        self.process = ManagedProcess(self.name, self.workdir)

    def _launch(self, spawn: Callable[[], None], ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """``spawn()`` on ``self.port`` and wait for ``ready()``; on a lost bind race, again on a new port.

        Only a port this object picked on its first start moves: a restart keeps the address clients know.
        """
        for attempt in range(3):
            spawn()
            try:
                self.process.wait_ready(ready, timeout)
            except ServerError:
                if not (self._auto_port and self.process.logged_any(BIND_FAILURES)) or attempt == 2:
                    raise
                self.process.stop()
                self.port = free_port()
                continue
            self._auto_port = False
            return

    @abc.abstractmethod
    def start(self) -> Server:
        """Start the process and return once it accepts connections."""

    def stop(self) -> None:
        self.process.stop()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class RedisServer(Server):
    name = "redis"

    def __init__(
        self, workdir: Path | None = None, port: int | None = None, maxmemory: str = "0", extra: Sequence[str] = ()
    ) -> None:
        super().__init__(workdir, port)
        self.maxmemory = maxmemory
        self.extra = list(extra)
        """More redis-server options (cluster mode, replicaof) for the topology launchers."""

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> RedisServer:
        if self.process.running:
            return self  # already up: a second redis-server could not bind, and would hide this one

        def spawn() -> None:
            self.process.spawn(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--bind", LOOPBACK,
                    "--port", str(self.port),
                    "--dir", str(self.workdir),
                    "--save", "",
                    "--appendonly", "no",
                    "--maxmemory", self.maxmemory,
                    "--protected-mode", "no",
                    # redis-server rewrites its process title; keep the workdir in it so leftovers can be found
                    "--proc-title-template", f"{{title}} {{listen-addr}} {self.workdir}",
                    *self.extra,
                ]
            )  # fmt: skip

        # the log line tells our redis-server from another one that may hold the port
        self._launch(spawn, lambda: self.process.logged("Ready to accept connections") and port_open(self.port))
        return self

    def kill(self) -> None:
        self.process.kill()

    def pause(self) -> None:
        """SIGSTOP: Redis keeps its socket but answers nothing, like a blackholed host."""
        self.process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.signal(signal.SIGCONT)


def _postgres_user() -> pwd.struct_passwd | None:
    """initdb refuses to run as root: as root, run PostgreSQL as the ``postgres`` system user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServerError("running as root needs a 'postgres' system user (Debian: postgresql-15)") from exc


class PostgresServer(Server):
    name = "postgres"

    def __init__(
        self, workdir: Path | None = None, port: int | None = None, database: str = "opsloop", durable: bool = False
    ) -> None:
        super().__init__(workdir, port)
        self.database = database
        self.durable = durable
        """True: PostgreSQL's own defaults (fsync, synchronous_commit on), for durability tests and benchmarks;
        False: no fsync at all, for speed."""
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.user = _postgres_user()
        self.role = self.user.pw_name if self.user else pwd.getpwuid(os.geteuid()).pw_name

    def _as_owner(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["runuser", "-u", self.user.pw_name, "--", *argv]

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.role}@{LOOPBACK}:{self.port}/{self.database}"

    def start(self) -> PostgresServer:
        if not (self.datadir / "PG_VERSION").exists():
            self.sockdir.mkdir(exist_ok=True)
            if self.user is not None:
                for path in (self.workdir, self.sockdir):
                    os.chown(path, self.user.pw_uid, self.user.pw_gid)
            done = subprocess.run(
                self._as_owner(
                    [str(PG_BIN / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", self.role,
                     "--no-sync", "-E", "UTF8", "--locale=C"]
                ),
                check=False, capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                hint = " (every parent directory must be searchable by that user)" if self.user else ""
                raise ServerError(f"initdb failed as {self.role}{hint}: {done.stderr.strip()}")
        self._wait_postmaster_gone()

        def spawn() -> None:
            self.process.spawn(
                self._as_owner(
                    [str(PG_BIN / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                     "-k", str(self.sockdir), "-c", f"listen_addresses={LOOPBACK}",
                     *([] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                                "-c", "full_page_writes=off"])]
                )
            )  # fmt: skip

        self._launch(spawn, lambda: self.process.logged("ready to accept connections") and self._accepting())
        self._ensure_database()
        return self

    def _accepting(self) -> bool:
        done = subprocess.run([str(PG_BIN / "pg_isready"), "-h", LOOPBACK, "-p", str(self.port), "-q"], check=False)
        return done.returncode == 0

    def create_database(self, prefix: str = "test") -> str:
        """A new database under a name nobody else gets (tests never share one by accident); its DSN."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}", database="postgres")
        return self.dsn.rsplit("/", 1)[0] + f"/{name}"

    def _ensure_database(self) -> None:
        self.psql(f"CREATE DATABASE {self.database}", database="postgres", check=False)

    def psql(self, sql: str, database: str | None = None, check: bool = True) -> str:
        """Run SQL through psql (used for fixtures and the demo schema, not by opsloop itself)."""
        done = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", LOOPBACK,
             "-p", str(self.port), "-U", self.role, "-d", database or self.database, "-c", sql],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise ServerError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def kill(self) -> None:
        """SIGKILL the postmaster, then its group, and return once its PID is gone.

        The postmaster goes first, while ``runuser`` is still alive to reap it: an orphaned zombie keeps
        its PID, and a restart would find that PID in ``postmaster.pid`` and refuse to start.
        """
        pid = self._postmaster_pid()
        if pid is not None and self.process.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if self.process.proc is not None and pid == self.process.proc.pid:
                self.process.proc.wait(10)  # no runuser in between: we are its parent and must reap it
        self.process.kill()
        self._wait_postmaster_gone()

    def _postmaster_pid(self) -> int | None:
        """The PID recorded in ``postmaster.pid`` (its first line), or None without a lock file."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _wait_postmaster_gone(self) -> None:
        """PostgreSQL refuses to start while the PID in a stale lock file still exists (zombies too)."""
        pid = self._postmaster_pid()
        if pid is not None:
            wait_until(lambda: not pid_exists(pid), 30, f"PostgreSQL's postmaster (PID {pid}) to exit")

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown"; SIGTERM ("smart") waits for clients to go away.
        was_running = self.process.running
        if was_running:
            self.process.signal(signal.SIGINT)
            # Its shutdown checkpoint can take seconds on a busy disk: runuser, told to stop too early, kills
            # the postmaster (SIGKILL) before it removes its lock file, which then never goes.
            with contextlib.suppress(ServerError):
                wait_until(lambda: not (self.datadir / "postmaster.pid").exists(), 30, "PostgreSQL to shut down")
        self.process.stop()
        if was_running:  # runuser may exit before its postmaster; a restart must wait for the data dir's lock
            wait_until(lambda: not (self.datadir / "postmaster.pid").exists(), 30, "PostgreSQL to release its data dir")


class PrometheusServer(Server):
    """Prometheus with a generated config; intervals default to 1s so tests see alerts quickly."""

    name = "prometheus"

    def __init__(
        self,
        scrape_targets: dict[str, list[str]],
        rule_files: Sequence[Path] = (),
        alertmanager_port: int | None = None,
        interval: str = "1s",
        workdir: Path | None = None,
        port: int | None = None,
        scrape_configs: Sequence[dict[str, Any]] = (),
    ) -> None:
        """``scrape_configs`` are added as written (TLS, basic auth...) after the plain ``scrape_targets`` jobs."""
        super().__init__(workdir, port)
        self.scrape_targets = scrape_targets
        self.extra_scrape_configs = list(scrape_configs)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.alertmanager_port = alertmanager_port
        self.interval = interval

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval,
                       "scrape_timeout": self.interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in self.scrape_targets.items()
            ] + self.extra_scrape_configs,
        }  # fmt: skip
        if self.alertmanager_port:
            cfg["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{self.alertmanager_port}"]}]}]
            }
        return cfg

    def start(self) -> PrometheusServer:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

        def spawn() -> None:
            self.process.spawn(
                [
                    shutil.which("prometheus") or "prometheus",
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                    f"--web.listen-address={LOOPBACK}:{self.port}",
                    "--rules.alert.resend-delay=1s",
                    "--web.enable-lifecycle",
                ]
            )

        self._launch(spawn, lambda: http_ok(f"{self.url}/-/ready"), 60)
        return self


class AlertmanagerServer(Server):
    """Alertmanager alone (clustering off) with the given routing config."""

    name = "alertmanager"

    def __init__(self, config: dict[str, Any], workdir: Path | None = None, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.config = config

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> AlertmanagerServer:
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "alertmanager"

        def spawn() -> None:
            self.process.spawn(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address={LOOPBACK}:{self.port}",
                    "--cluster.listen-address=",
                ]
            )

        self._launch(spawn, lambda: http_ok(f"{self.url}/-/ready"), 60)
        return self
