"""``opsloop-receiver --processes N``: N processes on one address, one PostgreSQL store, one set of metrics.

The oracles are the kernel (``/proc``: who listens on the port, which processes exist), PostgreSQL (what
was stored) and the mail server (what was sent), never the receiver's own account of itself.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opsloop.receiver.domain import SENT, Job
from opsloop.receiver.store.postgres import PostgresStore
from opsloop.testsupport.servers import (
    BIND_FAILURES,
    LOOPBACK,
    ManagedProcess,
    PostgresServer,
    free_port,
    wait_until,
)
from opsloop.testsupport.sinks import SmtpSink
from prometheus_client.parser import text_string_to_metric_families

from tests.receiver.harness import FAST_WORKER, email_notifier, write_config
from tests.receiver.test_main import post_all, receiver_argv

pytestmark = pytest.mark.slow

LISTENING = 'msg="receiver processes listening" processes=2'
ENDED_EARLY = 'msg="receiver process ended before it listened: stopping the receiver" index=[01] pid={pid} status=-9'


def logged_as(receiver: Receiver, pattern: str) -> list[re.Match[str]]:
    """The receiver's log lines that end with ``pattern`` (a regular expression), matched."""
    lines = receiver.process.log_tail(400).splitlines()
    return [match for line in lines if (match := re.search(pattern + "$", line))]


def children(pid: int) -> list[int]:
    """The kernel's list of a process's children."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def kernel_rss(pid: int) -> int:
    """Resident memory in bytes as ``/proc/PID/status`` gives it (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def listening_sockets(port: int) -> set[str]:
    """Inodes of the IPv4 sockets listening on ``port``, from the kernel's socket table."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(fields[9])
    return inodes


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(match[1])
    return inodes


def listeners(parent: int, port: int) -> dict[int, set[str]]:
    """Each child of ``parent`` with the sockets it listens on ``port`` with."""
    listening = listening_sockets(port)
    return {child: sockets_of(child) & listening for child in children(parent)}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, over a new connection each time."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def store_dsn(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database("processes")


class Receiver:
    """``opsloop-receiver --processes N`` as a process group of its own."""

    def __init__(self, config: Path, workdir: Path, processes: int, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.process = ManagedProcess("receiver", workdir)
        self.process.spawn(receiver_argv(
            config, "--web.listen-address", f"{LOOPBACK}:{self.port}", "--processes", str(processes), *extra
        ))  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    def wait_settled(self) -> None:
        """Until every process listens, or the receiver has ended."""
        wait_until(lambda: self.process.logged(LISTENING) or not self.process.running, 60, "every process")

    def serving(self) -> set[int]:
        """The processes that listen on the receiver's port now."""
        return {child for child, sockets in listeners(self.pid, self.port).items() if sockets}

    def wait_replaced(self, dead: int) -> None:
        wait_until(lambda: len(self.serving() - {dead}) == 2, 60, "a process in place of the dead one")

    def wait(self, timeout: float) -> int:
        assert self.process.proc is not None
        return self.process.proc.wait(timeout)


Launch = Callable[..., Receiver]


@pytest.fixture
def launch() -> Iterator[Launch]:
    """``launch(config, *flags, port=None, listening=True)``: a receiver with ``--processes 2`` on ``config``
    (in the config's directory), by default once every process listens; stopped, process group and all,
    after the test."""
    receivers: list[Receiver] = []

    def start(config: Path, *extra: str, port: int | None = None, listening: bool = True) -> Receiver:
        for attempt in range(3):
            receiver = Receiver(config, config.parent, 2, *extra, port=port)
            receivers.append(receiver)
            if not listening:
                return receiver
            receiver.wait_settled()
            # A port picked here can be taken by a server of a test running beside this one before the
            # processes bind it: then, as the test servers do, again on another port.
            if receiver.process.running or port is not None or not receiver.process.logged_any(BIND_FAILURES):
                break
            assert attempt < 2, receiver.process.log_tail()
        assert receiver.process.running, receiver.process.log_tail()
        return receiver

    yield start
    for receiver in receivers:
        receiver.process.stop()


def test_processes_flag_refuses_bad_values_and_a_sqlite_store(tmp_path: Path) -> None:
    config = write_config(tmp_path)  # a SQLite store
    for value in ("0", "65", "two", "-1"):
        done = subprocess.run(
            receiver_argv(config, "--check-config", "--processes", value), capture_output=True, text=True, check=False
        )
        assert done.returncode == 2
        assert f"argument --processes: expected a whole number from 1 to 64, got '{value}'" in done.stderr
    done = subprocess.run(
        receiver_argv(config, "--check-config", "--processes", "2"), capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        f"{config}: store: --processes 2 needs a PostgreSQL store (a SQLite store is written by one process)"
    ]
    done = subprocess.run(
        receiver_argv(config, "--check-config", "--processes", "1"), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_two_processes_listen_on_one_address_and_every_scrape_sums_them(
    tmp_path: Path, store_dsn: str, launch: Launch, postgres_server: PostgresServer
) -> None:
    launched = time.time()
    receiver = launch(write_config(tmp_path, store=store_dsn))
    first = listeners(receiver.pid, receiver.port)
    assert len(first) == 2
    started = logged_as(receiver, r'msg="receiver process started" index=(\d+) pid=(\d+)')
    assert sorted(int(m[1]) for m in started) == [0, 1]
    assert {int(m[2]) for m in started} == set(first)
    assert all(len(sockets) == 1 for sockets in first.values())  # one listening socket each, of its own
    assert len(set().union(*first.values())) == 2
    assert not sockets_of(receiver.pid) & listening_sockets(receiver.port)  # the parent serves nothing
    shared = {
        Path(entry.split("=", 1)[1])
        for child in first
        for entry in Path(f"/proc/{child}/environ").read_text().split("\0")
        if entry.startswith("PROMETHEUS_MULTIPROC_DIR=")
    }
    assert len(shared) == 1
    assert next(iter(shared)).is_dir()

    acked: set[int] = set()
    asyncio.run(post_all(receiver.url, list(range(60)), acked))
    assert acked == set(range(60))
    assert postgres_server.psql("SELECT count(*) FROM incidents", database=store_dsn.rsplit("/", 1)[1]) == "60\n"

    # A process killed outright is replaced; the replacement starts from zero, and what the dead one
    # counted still counts: every scrape, whichever process answers it, reports the whole receiver.
    victim = next(iter(first))
    os.kill(victim, signal.SIGKILL)
    receiver.wait_replaced(victim)
    assert logged_as(
        receiver, f'msg="receiver process ended: starting another in its place" index=[01] pid={victim} status=-9'
    )
    for _ in range(20):  # new connections: the kernel spreads them over both processes
        samples = scrape(receiver.url)
        assert samples[("opsloop_receiver_webhooks_total", (("outcome", "accepted"),))] == 60
        assert samples[("opsloop_receiver_alerts_total", (("status", "firing"),))] == 60
        assert samples[("opsloop_receiver_store_up", ())] == 1
        assert [key for key in samples if key[0] == "opsloop_receiver_queue_depth"] == [
            ("opsloop_receiver_queue_depth", (("kind", "plan"),)),
            ("opsloop_receiver_queue_depth", (("kind", "delivery"),)),
        ]
        assert not [key for key in samples if "pid" in dict(key[1])]
        assert sum(k[0] == "opsloop_build_info" for k in samples) == 1  # one receiver, not one per process

    # process_* describe the whole receiver, the parent and its processes together, whichever answers.
    family = [receiver.pid, *children(receiver.pid)]
    resident = [kernel_rss(pid) for pid in family]
    busy = sum(cpu_seconds(pid) for pid in family[1:])
    for _ in range(4):
        samples = scrape(receiver.url)
        assert samples[("process_cpu_seconds_total", ())] >= busy  # more than any one process used
        assert 0.8 * sum(resident) <= samples[("process_resident_memory_bytes", ())] <= 1.25 * sum(resident)
        assert samples[("process_resident_memory_bytes", ())] > 2 * max(resident)
        assert launched - 1 <= samples[("process_start_time_seconds", ())] <= launched + 10  # the parent's start

    # SIGTERM to the receiver stops every process and removes the shared directory.
    last = list(listeners(receiver.pid, receiver.port))
    os.kill(receiver.pid, signal.SIGTERM)
    assert receiver.wait(40) == 0
    assert all(gone(child) for child in last)
    assert not next(iter(shared)).exists()


def test_sigterm_to_every_process_at_once_stops_each_cleanly(tmp_path: Path, store_dsn: str, launch: Launch) -> None:
    """A service manager signals every process of its unit, and the parent passes SIGTERM on as well:
    the second SIGTERM a process gets while it shuts down must not cut its shutdown short."""
    for attempt in range(3):
        workdir = tmp_path / str(attempt)
        workdir.mkdir()
        receiver = launch(write_config(workdir, store=store_dsn))
        asyncio.run(post_all(receiver.url, list(range(20)), set()))  # connections and store work to end
        os.killpg(receiver.pid, signal.SIGTERM)
        assert receiver.wait(40) == 0
        assert not receiver.process.logged("stopped uncleanly"), receiver.process.log_tail()
        assert receiver.process.log_tail(200).count('msg="shutting down"') == 2


def test_sighup_reaches_every_process(tmp_path: Path, store_dsn: str, launch: Launch) -> None:
    web_config = tmp_path / "web.yml"
    web_config.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    receiver = launch(write_config(tmp_path, store=store_dsn), "--web.config.file", str(web_config))
    os.kill(receiver.pid, signal.SIGHUP)
    wait_until(lambda: receiver.process.log_tail(200).count("web config file reloaded") == 2, 20, "two reloads")
    pids = {int(m) for m in re.findall(r"pid=(\d+)", receiver.process.log_tail(200)) if int(m) != receiver.pid}
    assert set(children(receiver.pid)) <= pids  # the processes that reloaded are the ones running


async def why_not_bound(port: int) -> str:
    """What asyncio itself says when it cannot listen on a port: the reason the receiver should log."""
    try:
        server = await asyncio.get_running_loop().create_server(asyncio.Protocol, LOOPBACK, port)
    except OSError as exc:
        return exc.strerror
    server.close()
    raise AssertionError(f"port {port} is free")


def test_a_taken_address_ends_the_receiver_before_any_process_starts(
    tmp_path: Path, store_dsn: str, launch: Launch
) -> None:
    config = write_config(tmp_path, store=store_dsn)
    with socket.socket() as taken:  # without SO_REUSEPORT, as another program holds a port
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        bind_error = asyncio.run(why_not_bound(port))
        receiver = launch(config, port=port, listening=False)
        assert receiver.wait(60) == 1
    log = receiver.process.log_tail(200)
    # which address, and why in the kernel's words (asyncio writes them in lower case)
    said = next(line for line in log.splitlines() if 'msg="cannot listen"' in line)
    assert said.endswith(
        f'logger=opsloop.receiver.processes msg="cannot listen" address={LOOPBACK}:{port} error="{bind_error}"'
    )
    assert os.strerror(errno.EADDRINUSE).lower() in bind_error
    assert "receiver process started" not in log
    assert not running_with(str(config))  # no process of it is left


def test_a_second_receiver_on_the_same_address_is_refused(
    tmp_path: Path, store_dsn: str, launch: Launch, postgres_server: PostgresServer
) -> None:
    """``SO_REUSEPORT`` alone would let it join the first one's port and take a share of its webhooks."""
    first = launch(write_config(tmp_path, store=store_dsn))
    serving = first.serving()
    other = tmp_path / "other"
    other.mkdir()
    second = launch(
        write_config(other, store=postgres_server.create_database("other")), port=first.port, listening=False
    )
    assert second.wait(60) == 1
    assert 'msg="cannot listen"' in second.process.log_tail(200)
    assert first.serving() == serving
    assert set().union(*listeners(first.pid, first.port).values()) == listening_sockets(first.port)


def a_process_starting(launch: Launch, config: Path, phase: str) -> tuple[Receiver, int]:
    """A receiver with one process on its way to listening, and that process's pid: at the ``first`` start,
    or in place of a process killed once all listened (``replacement``). Either takes a second or more."""
    if phase == "first":
        receiver = launch(config, listening=False)
        wait_until(lambda: bool(children(receiver.pid)), 30, "the first process")
        return receiver, children(receiver.pid)[0]
    receiver = launch(config)
    first = children(receiver.pid)
    os.kill(first[0], signal.SIGKILL)
    wait_until(lambda: bool(set(children(receiver.pid)) - set(first)), 30, "a process in place of the dead one")
    return receiver, next(iter(set(children(receiver.pid)) - set(first)))


@pytest.mark.parametrize("phase", ["first", "replacement"])
def test_a_process_that_ends_before_it_listens_ends_the_receiver_with_status_1(
    tmp_path: Path, store_dsn: str, launch: Launch, phase: str
) -> None:
    """A process that cannot start would die again: better stop, visibly, than spin."""
    config = write_config(tmp_path, store=store_dsn)
    receiver, starting = a_process_starting(launch, config, phase)
    os.kill(starting, signal.SIGKILL)
    assert receiver.wait(60) == 1
    assert logged_as(receiver, ENDED_EARLY.format(pid=starting))
    assert not running_with(str(config))


@pytest.mark.parametrize("phase", ["first", "replacement"])
def test_sigterm_while_a_process_starts_stops_the_receiver_with_status_0(
    tmp_path: Path, store_dsn: str, launch: Launch, phase: str
) -> None:
    """A stop asked for is a stop, not a failed start: status 0, nothing left, no start failure logged."""
    config = write_config(tmp_path, store=store_dsn)
    receiver, _ = a_process_starting(launch, config, phase)
    os.kill(receiver.pid, signal.SIGTERM)
    assert receiver.wait(60) == 0
    log = receiver.process.log_tail(200)
    if phase == "first":
        assert LISTENING not in log  # stopped while starting, as meant
    assert "before it listened" not in log
    assert not running_with(str(config))


def test_the_receiver_exits_only_once_its_processes_have_stopped(
    tmp_path: Path, store_dsn: str, launch: Launch
) -> None:
    """Whoever sees the receiver exit may start another at once: the old processes must be gone by then."""
    receiver = launch(write_config(tmp_path, store=store_dsn))
    held, other = children(receiver.pid)
    os.kill(held, signal.SIGSTOP)  # it cannot act on the SIGTERM it gets until it is continued
    try:
        os.kill(receiver.pid, signal.SIGTERM)
        wait_until(lambda: gone(other), 30, "the other process to stop")
        time.sleep(1)
        assert receiver.process.running  # still waiting for the held one
    finally:
        os.kill(held, signal.SIGCONT)
    assert receiver.wait(40) == 0
    assert gone(held)
    assert not receiver.process.logged("stopped uncleanly")


def test_a_process_still_running_30_s_after_sigterm_is_killed(tmp_path: Path, store_dsn: str, launch: Launch) -> None:
    receiver = launch(write_config(tmp_path, store=store_dsn))
    held = children(receiver.pid)[0]
    os.kill(held, signal.SIGSTOP)  # never continued: it cannot stop by itself
    asked = time.monotonic()
    os.kill(receiver.pid, signal.SIGTERM)
    assert receiver.wait(90) == 0
    assert time.monotonic() - asked >= 30  # docs/receiver.md: "any still running 30 s later is killed"
    assert gone(held)
    assert logged_as(receiver, f'msg="receiver process did not stop: killing it" pid={held}')
    assert logged_as(receiver, f'msg="receiver process stopped uncleanly" pid={held} status=-9')
    assert len(logged_as(receiver, 'msg="receiver process stopped uncleanly" .*')) == 1  # the other stopped cleanly


def test_a_parent_killed_with_sigkill_leaves_no_process_behind(tmp_path: Path, store_dsn: str, launch: Launch) -> None:
    receiver = launch(write_config(tmp_path, store=store_dsn))
    orphans = children(receiver.pid)
    assert len(orphans) == 2
    os.kill(receiver.pid, signal.SIGKILL)  # the parent alone, not its process group
    receiver.wait(10)
    wait_until(lambda: all(gone(pid) for pid in orphans), 30, "the processes to stop by themselves")
    assert receiver.process.logged("the receiver's parent process is gone: stopping")


def test_kill_9_of_one_process_during_a_burst_loses_and_duplicates_nothing(
    tmp_path: Path, store_dsn: str, launch: Launch
) -> None:
    burst = 200
    with SmtpSink() as mailbox:
        config = write_config(
            tmp_path, store=store_dsn, notifiers={"email": [email_notifier("oncall", mailbox.port)]},
            routes=[{"match": {}, "notify": ["email/oncall"]}], worker={**FAST_WORKER, "lease": "2s"},
        )  # fmt: skip
        receiver = launch(config)

        async def burst_with_a_kill() -> set[int]:
            acked: set[int] = set()
            third = asyncio.Event()
            sending = asyncio.create_task(post_all(receiver.url, list(range(burst)), acked, (burst // 3, third)))
            await third.wait()
            victim = children(receiver.pid)[0]
            os.kill(victim, signal.SIGKILL)  # mid-burst, mid-delivery
            await sending
            # Alertmanager retries whatever was not acknowledged, and some acknowledged ones again.
            await asyncio.to_thread(receiver.wait_replaced, victim)
            await post_all(receiver.url, [n for n in range(burst) if n not in acked] + sorted(acked)[:40], acked)
            return acked

        assert asyncio.run(burst_with_a_kill()) == set(range(burst))
        wait_until(lambda: len({m["Subject"] for m in mailbox.messages}) >= burst, 60, "every alert's message")
        subjects = collections.Counter(m["Subject"] for m in mailbox.messages)
    store = PostgresStore(store_dsn)

    async def deliveries() -> list[Job]:
        await store.open()
        try:
            return [job for view in await store.incidents(limit=10 * burst) for job in view.jobs]
        finally:
            await store.close()

    jobs = asyncio.run(deliveries())
    assert len(jobs) == burst
    assert all(job.state == SENT for job in jobs)
    assert len(subjects) == burst
    # A message is sent twice only when the kill landed while it was being handed to the mail server,
    # and the store then counts the interruption.
    repeated = [subject for subject, count in subjects.items() if count > 1]
    assert len(repeated) <= sum(1 for job in jobs if job.interrupted)


def running_with(text: str) -> list[int]:
    """Processes whose command line contains ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes() and not gone(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found
