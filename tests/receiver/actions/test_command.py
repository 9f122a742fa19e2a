"""The command action with real processes, including ones that spawn their own children."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from opsloop.receiver.actions import Action
from opsloop.receiver.domain import Alert, RoutedAlert
from opsloop.receiver.store import open_store
from opsloop.testsupport.servers import PostgresServer, wait_until

from tests.receiver.store.conftest import fresh_postgres_url

PY = sys.executable


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids_in(path: Path) -> list[int]:
    wait_until(lambda: path.exists() and path.read_text().endswith("\n"), 10, f"pids in {path}")
    return [int(p) for p in path.read_text().split()]


async def test_values_reach_the_program_as_inert_arguments_and_environment(
    make_action: Callable[..., Action], tmp_path: Path
) -> None:
    action = make_action(
        type="command",
        argv=[PY, "-c", "import os, sys; print(sys.argv[1:], os.environ['REASON'])", "{queue}", "--force"],
        env={"REASON": "{reason}"},
        cwd=str(tmp_path),
    )
    hostile = "$(touch pwned); touch pwned `touch pwned` | touch pwned"
    result = await action.run({"queue": hostile, "reason": "{{ 7*7 }} && touch pwned"})
    assert result.ok, result.detail
    assert result.detail == f"{PY} exit 0: ['{hostile}', '--force'] {{{{ 7*7 }}}} && touch pwned"
    assert os.listdir(tmp_path) == []


async def test_the_child_does_not_inherit_the_receivers_secrets(
    make_action: Callable[..., Action], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_TEST_WEBHOOK_URL", "https://hooks.example/secret")
    monkeypatch.setenv("OPSLOOP_TEST_PASSED", "yes")
    action = make_action(
        type="command",
        argv=[PY, "-c", "import os; print(sorted(k for k in os.environ if not k.startswith('LC_')))"],
        pass_env=["OPSLOOP_TEST_PASSED"],
        env={"EXTRA": "1"},
    )
    result = await action.run({})
    assert result.detail == f"{PY} exit 0: ['EXTRA', 'OPSLOOP_TEST_PASSED']"


async def test_a_failing_command_reports_its_exit_code_and_output_tail(make_action: Callable[..., Action]) -> None:
    script = (
        "import sys\n"
        "print('x' * 10000, flush=True)\n"
        "print('queue emails is locked', file=sys.stderr, flush=True)\n"
        "sys.exit(3)\n"
    )
    result = await make_action(type="command", argv=[PY, "-c", script]).run({})
    assert not result.ok
    assert result.detail.startswith(f"{PY} exit 3: xxx")
    assert result.detail.endswith("x queue emails is locked")
    assert len(result.detail) < 400


async def test_a_timeout_kills_the_whole_process_group(make_action: Callable[..., Action], tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('started', flush=True)\n"
        f"open({str(pids)!r}, 'w').write('%d %d\\n' % (os.getpid(), child.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = await make_action(type="command", argv=[PY, "-c", script], timeout="1500ms").run({})
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.detail == "timed out after 1.5s; process group killed; output: started"
    assert elapsed < 4
    parent, child = pids_in(pids)
    wait_until(lambda: not alive(parent) and not alive(child), 5, "both processes to die")


async def test_helpers_left_behind_are_killed_when_the_command_exits(
    make_action: Callable[..., Action], tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write('%d\\n' % child.pid)\n"
    )
    started = time.monotonic()
    result = await make_action(type="command", argv=[PY, "-c", script]).run({})
    assert (result.ok, result.detail) == (True, f"{PY} exit 0")
    assert time.monotonic() - started < 4
    [child] = pids_in(pids)
    wait_until(lambda: not alive(child), 5, "the helper to die")


async def test_a_missing_program_is_a_failed_result(make_action: Callable[..., Action], tmp_path: Path) -> None:
    result = await make_action(type="command", argv=[str(tmp_path / "absent"), "x"]).run({})
    assert not result.ok
    assert result.detail == f"FileNotFoundError: [Errno 2] No such file or directory: '{tmp_path / 'absent'}'"


async def test_dry_run_runs_nothing(make_action: Callable[..., Action], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    action = make_action(type="command", argv=["/usr/bin/touch", str(marker), "{unit}"], env={"WHY": "{why}"})
    result = await action.run({"unit": "a b", "why": "test"}, dry_run=True)
    assert result == type(result)(True, f"would run /usr/bin/touch {marker} 'a b' with WHY='test'", True)
    assert not marker.exists()


async def test_a_program_killed_by_a_signal_says_so(make_action: Callable[..., Action]) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    result = await make_action(type="command", argv=[PY, "-c", script]).run({})
    assert (result.ok, result.detail) == (False, f"{PY} killed by signal 15")


async def test_a_nul_byte_in_the_output_is_dropped_and_the_result_recorded_in_postgresql(
    make_action: Callable[..., Action], postgres_server: PostgresServer
) -> None:
    script = "import sys; sys.stdout.write('before\\x00after'); sys.exit(2)"
    result = await make_action(type="command", argv=[PY, "-c", script]).run({})
    assert (result.ok, result.detail) == (False, f"{PY} exit 2: beforeafter")
    # Recorded as the core records it: PostgreSQL text would refuse a NUL and lose the whole result.
    store = open_store(fresh_postgres_url(postgres_server, "nul"))
    await store.open()
    try:
        alert = RoutedAlert(Alert("fp", "2030-01-01T00:00:00Z", "firing", {}), plans=(("fix", {}),))
        await store.ingest([alert], "", 0, 1.0)
        (job,) = await store.claim("w", 10, 30, 1.0)
        action_id = await store.begin_action(job, "w", 0, "command", False, 1.0, 60.0)
        assert action_id is not None
        await store.end_action(action_id, result.ok, result.detail, 2.0)
        (record,) = await store.actions_of(job.id)
    finally:
        await store.close()
    assert (record.state, record.detail) == ("failed", f"{PY} exit 2: beforeafter")
