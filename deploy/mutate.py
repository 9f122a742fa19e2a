"""Mutation testing, one module at a time: ``deploy/local.sh mutate [module ...]``.

mutmut changes one thing in the module (a comparison, a constant, a return value), runs the tests that
cover it, and counts the change as killed when they fail. Survivors are missing tests or equivalent
changes; both are recorded in docs/mutation.md, the section of each module rewritten by its own run.
mutmut 2 mutates the file in place, which is what makes it work with the package-dir layout (the
editable install imports the very files it changes); the file is restored after every mutant.

A module's results are kept in a cache of its own (``.mutmut-cache-<module>``): ``--resume`` goes on
where a run stopped (``--budget`` or Ctrl-C) and, after tests were added, retests only the mutants not yet killed.
That cache lives in one checkout only, so every run also writes the status of each mutant to a ledger
committed with the results (``docs/mutation/<module>.tsv``); ``--resume`` without a cache rebuilds it from
the ledger, and a stopped run goes on in any checkout.

``--smoke`` is CI's share (``deploy/local.sh test`` runs it after the suite): one small module whose
every mutant must be killed, which proves that mutation runs still work and its tests can still fail.
It records nothing and keeps no cache.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "mutation.md"
CACHE = ROOT / ".mutmut-cache"
LEDGERS = ROOT / "docs" / "mutation"
LEDGER_COLUMNS = ("mutant", "file", "line", "text", "index", "status", "tests")
"""A ledger's columns: mutmut's id, the mutated file, the line's number (from 0) and the hash of its text,
which mutant of that line, its status, and the hash of the tests it was tested against ("-": others)."""

MODULES: dict[str, list[str]] = {
    # module: the tests that cover it (kept small: every mutant runs them; the fastest first, since a
    # killed mutant stops at the first failure)
    "render/thresholds.py": ["tests/render"],
    "render/alerts.py": ["tests/render", "tests/rules/test_boundaries.py", "tests/rules/test_alert_rules.py"],
    "exporter/sources/redis_queues.py": ["tests/exporter/sources/test_redis_key_reader.py",
                                         "tests/exporter/sources/test_redis_queues.py",
                                         "tests/exporter/sources/test_redis_dlq.py",
                                         # the script's cluster form alone reads its count of fixed arguments
                                         "tests/exporter/sources/test_redis_cluster.py::test_keys_on_every_primary_are_read_with_their_values"],
    "exporter/sources/redis_dlq.py": ["tests/exporter/sources/test_redis_dlq.py"],
    "exporter/sources/redis_discovery.py": ["tests/exporter/sources/test_redis_discovery.py",
                                            "tests/exporter/sources/test_redis_queues.py"],
    "receiver/routing.py": ["tests/receiver/test_routing.py", "tests/receiver/test_routing_explained.py",
                            "tests/receiver/test_matchers.py"],
    "receiver/matchers.py": ["tests/receiver/test_matchers_semantics.py", "tests/receiver/test_matchers_re2.py",
                             "tests/receiver/test_matchers_re2_escapes.py",
                             "tests/receiver/test_routing.py", "tests/receiver/test_routing_explained.py",
                             "tests/receiver/test_matchers.py"],
    "receiver/recovery.py": ["tests/receiver/test_verifier.py", "tests/receiver/test_recovery_steps.py",
                             "tests/receiver/test_recovery_outcomes.py", "tests/receiver/test_recovery.py",
                             "tests/receiver/console/test_approvals.py::test_without_a_decision_the_plan_escalates",
                             "tests/receiver/console/test_approvals.py::test_a_waiting_run_survives_a_restart_and_runs_once_approved",
                             "tests/receiver/console/test_approvals.py::test_an_alert_that_resolves_while_waiting_needs_no_decision",
                             "tests/receiver/test_takeover.py::test_take_over_makes_a_dead_owners_work_due_now_as_interrupted"],
    # worker.py: the pure parts first, then the worker driven directly on SQLite (quickest first), then a
    # receiver's (group messages, paced Slack). Not backoff_delay's own tests or other store backends, nor
    # test_worker.py: what its paced rounds of retries check, the direct tests check without the waits.
    "receiver/worker.py": [f"tests/receiver/{t}" for t in (
        "test_worker_parts.py",
        "test_worker_groups.py::test_retry_delays_are_short_first_then_back_off_to_the_redelivery_cap",
        *(f"test_worker_deliveries.py::test_{t}" for t in (
            "a_delivery_to_a_notifier_not_configured_fails_for_good",
            "a_step_that_raises_is_logged_with_its_job_and_the_worker_goes_on",
            "a_delivery_whose_earlier_claim_was_cut_off_is_sent_again_and_says_so",
            "a_permanent_error_ends_the_delivery_with_the_error",
            "a_delivery_older_than_give_up_after_fails_at_its_next_error",
            "a_worker_that_cannot_claim_says_why_and_keeps_polling",
        )),
        "test_worker_group_deliveries.py",
        *(f"test_worker_deliveries.py::test_{t}" for t in (
            "a_store_lost_during_a_step_is_logged_by_the_heartbeat_and_the_step",
            "a_worker_runs_no_more_steps_at_once_than_its_concurrency",
            "a_heartbeat_keeps_a_long_step_leased_so_no_other_worker_takes_it",
            "each_delivery_shows_its_message_once_and_logs_each_attempt",
            "retry_after_is_kept_within_the_cap_of_the_attempts_tier",
        )),
        *(f"test_worker_groups.py::test_{t}" for t in (
            "runs_a_guard_skipped_are_listed_in_one_group_message",
            "email_sends_one_mail_per_group_and_threads_its_resolution",
            "resolving_a_group_replaces_what_was_not_sent_and_tells_the_rest_once",
            "a_failing_mail_server_never_holds_the_worker",
            "a_group_too_large_for_one_message_follows_up_and_loses_nothing[sqlite]",
            "app_mode_edits_that_outgrow_a_message_continue_in_its_thread_and_lose_nothing",
        )),
    )],
    "receiver/store/ops.py": ["tests/receiver/store/test_ops.py", "tests/receiver/store/test_idempotency.py",
                              "tests/receiver/store/test_ops_rows.py", "tests/receiver/store/test_group_holds.py"],
    "receiver/store/group_ops.py": ["tests/receiver/store/test_group_ops.py",
                                    "tests/receiver/store/test_group_parts.py",
                                    "tests/receiver/store/test_grouping.py",
                                    "tests/receiver/store/test_group_holds.py"],
    "receiver/store/moves.py": ["tests/receiver/store/test_moves.py"],
    "receiver/store/reads.py": ["tests/receiver/store/test_reads.py",
                                "tests/receiver/store/test_steering.py::test_filters_match_labels_exactly_and_page",
                                "tests/receiver/store/test_steering.py::test_stats_facts_count_runs_and_actions_in_the_range",
                                "tests/receiver/store/test_steering.py::test_events_pauses_and_runs_by_hand_land_in_the_timeline"],
    "receiver/store/limits.py": ["tests/receiver/store/test_limits.py",
                                 "tests/receiver/store/test_ops.py::test_max_concurrent_puts_a_new_run_back_to_wait_until_a_run_ends",
                                 "tests/receiver/store/test_ops.py::test_dry_runs_do_not_count_towards_the_circuit_breaker"],
    "receiver/store/steering.py": ["tests/receiver/store/test_steering_rows.py",
                                   "tests/receiver/store/test_steering.py", "tests/receiver/store/test_limits.py",
                                   "tests/receiver/store/test_ops.py::test_manual_run_bypasses_pause_and_actions_are_recorded"],
    "receiver/store/grouping.py": [*(f"tests/receiver/store/test_ops_rows.py::test_{t}" for t in (
        "a_grouped_delivery_waits_its_window_in_its_group_and_a_page_does_not_wait",
        "a_plan_outcome_joins_the_alerts_group_and_is_due_with_its_window",
        "a_skipped_note_folds_into_the_waiting_firing_message_and_the_next_delivery_still_queues",
        "renewing_a_lease_renews_the_lease_of_the_group_it_holds",
        "a_claim_leases_the_group_of_the_member_it_takes_for_the_lease",
        "a_claim_on_postgresql_leaves_a_member_whose_group_row_another_replica_holds",
    )), "tests/receiver/store/test_grouping_rows.py", "tests/receiver/store/test_group_parts.py",
        "tests/receiver/store/test_grouping.py", "tests/receiver/store/test_group_holds.py"],
    "receiver/store/batching.py": ["tests/receiver/store/test_batching.py"],
    "receiver/store/pacing.py": ["tests/receiver/store/test_pacing_rows.py",
                                 *(f"tests/receiver/store/test_ops.py::test_{t}" for t in (
                                     "send_slots_space_a_destination_and_hold_each_jobs_slot",
                                     "an_urgent_delivery_takes_the_next_slot_ahead_of_held_ones",
                                     "resolved_replaces_a_firing_message_still_waiting_and_frees_its_slot",
                                 ))],
    "receiver/store/sqlite.py": ["tests/receiver/store/test_sqlite.py",
                                 "tests/receiver/store/test_group_ops.py::test_sqlite_writes_a_long_group_change_in_parts_of_200_members"],
    "receiver/store/postgres.py": ["tests/receiver/store/test_postgres.py"],
    "receiver/store/pipeline.py": ["tests/receiver/store/test_pipeline.py", "tests/receiver/store/test_postgres.py"],
    "receiver/store/schema.py": ["tests/receiver/store/test_schema.py",
                                "tests/receiver/store/test_sqlite.py::test_a_store_from_before_job_urgency_and_group_columns_gains_them_on_open",
                                "tests/receiver/store/test_group_holds.py"],
    "receiver/store/driver.py": ["tests/receiver/store/test_driver.py"],
    "receiver/store/__init__.py": ["tests/receiver/store/test_open_store.py"],
    "receiver/process_family.py": ["tests/receiver/test_process_family.py"],
    "receiver/processes.py": ["tests/receiver/test_parent_link.py", "tests/receiver/test_processes.py"],
    "exporter/collector.py": ["tests/exporter/test_collector.py",
                              "tests/exporter/sources/test_redis_cluster.py::test_a_killed_primary_costs_only_its_own_keys_and_recovers"],
}  # fmt: skip
STATES = ("killed", "survived", "timeout", "suspicious", "skipped", "untested")
KILLED = ("killed", "suspicious", "timeout")
"""suspicious: killed, but the tests took long; timeout: the mutant hung them, which they detect too."""
SMOKE = "exporter/sources/redis_dlq.py"
SMOKE_BUDGET = 300.0
"""Seconds: a smoke that hangs fails CI instead of holding it (it takes about half a minute)."""


def _code_only(tree: ast.Module) -> ast.Module:
    """The module without its docstrings, imports and ``if TYPE_CHECKING:`` blocks: what mutants come from."""

    def kept(node: ast.stmt) -> bool:
        if isinstance(node, ast.Import | ast.ImportFrom):
            return False
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return False
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        return not (docstring and isinstance(node.value.value, str))  # type: ignore[attr-defined]

    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                setattr(node, name, [n for n in body if kept(n)] or [ast.Pass()])
    return tree


def fingerprint(module: str, source: str | None = None) -> str:
    """The code a run mutated, as 12 hex digits: a changed module needs a new run, a changed comment does not.

    Docstrings, comments, imports, ``TYPE_CHECKING`` blocks and layout do not count (mutmut mutates none
    of them); every statement and expression does. ``source`` is the module's text (default: the file now).
    """
    text = (ROOT / module).read_text() if source is None else source
    dump = ast.dump(_code_only(ast.parse(text)), annotate_fields=False, include_attributes=False)
    return hashlib.sha256(dump.encode()).hexdigest()[:12]


def mutmut(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=ROOT, capture_output=True, text=True)
    # mutmut's exit code is a bit field: 1 is a fatal error, 2/4/8 report survivors, timeouts, suspects
    if done.returncode & 1:
        raise SystemExit(f"mutmut {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def ids(state: str) -> list[str]:
    return mutmut("result-ids", state).split()


def module_cache(module: str) -> Path:
    return ROOT / f".mutmut-cache-{re.sub(r'[^A-Za-z0-9]+', '-', module).strip('-')}"


def ledger(module: str) -> Path:
    return LEDGERS / f"{module}.tsv"


def line_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def tests_hashes() -> tuple[str, str]:
    """mutmut's hash of the tests, and the same files hashed in the order of their paths.

    mutmut keys each status but "killed" by a hash of every file under tests/ (a test change anywhere has
    the survivors tested again); it reads them in the order the file system lists them, which differs
    between two checkouts of the same commit, so the ledger keeps the ordered hash instead.
    """
    from mutmut.cache import hash_of_tests

    dirs = [str(d) for d in (ROOT / "tests", ROOT / "test") if d.is_dir()]  # mutmut's default tests_dir
    ordered = hashlib.sha256()
    for path in sorted(Path(root, name) for d in dirs for root, _, names in os.walk(d) for name in names):
        if path.suffix == ".py":
            ordered.update(f"{path.relative_to(ROOT).as_posix()}\0".encode() + path.read_bytes())
    return hash_of_tests(dirs), ordered.hexdigest()[:16]


def write_ledger(module: str) -> None:
    """The status of every mutant in mutmut's cache, for ``seed`` in another checkout."""
    current, ordered = tests_hashes()
    query = (
        'SELECT m.id, s.filename, l.line_number, l.line, m."index", m.status, m.tested_against_hash FROM Mutant m '
        "JOIN Line l ON l.id = m.line JOIN SourceFile s ON s.id = l.sourcefile ORDER BY m.id"
    )
    with contextlib.closing(sqlite3.connect(CACHE)) as db:
        found = db.execute(query).fetchall()
    rows = [
        (str(mutant), path, str(number), line_hash(text), str(index), status, ordered if tested == current else "-")
        for mutant, path, number, text, index, status, tested in found
    ]
    head = f"# mutmut's status of each mutant of {module}, written by deploy/mutate.py; --resume reads it"
    path = ledger(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([head, "\t".join(LEDGER_COLUMNS), *("\t".join(row) for row in rows)]) + "\n")


def seed(module: str) -> None:
    """mutmut's cache of ``module`` rebuilt from its ledger (run in ROOT, where mutmut keeps its cache).

    The mutants are listed and registered as mutmut's own run does, so they get the same ids; each takes
    the status the ledger gives the same mutant of the same line, found by the line's text where lines
    moved. A line changed since is tested again, and so is a status not killed when the tests changed.
    A mutant mutmut called suspicious (killed, in a run a loaded machine made slow) is seeded as killed:
    mutmut would test it again once the tests change, and the tests that killed it would not count.
    """
    from mutmut import Context, list_mutations, python_source_files
    from mutmut.cache import register_mutants, update_line_numbers, update_mutant_status

    current, ordered = tests_hashes()
    known: dict[str, list[dict[str, str]]] = {}
    for line in ledger(module).read_text().splitlines()[2:]:
        row = dict(zip(LEDGER_COLUMNS, line.split("\t"), strict=True))
        known.setdefault(row["file"], []).append(row)
    for filename in python_source_files(module, ["tests/"]):
        update_line_numbers(filename)
        mutations = list_mutations(Context(source=Path(filename).read_text(), filename=filename))
        register_mutants({filename: mutations})
        rows = known.get(filename, [])
        before = sorted({(int(r["line"]), r["text"]) for r in rows})
        now = sorted({(m.line_number, line_hash(m.line)) for m in mutations})
        same = SequenceMatcher(None, [h for _, h in before], [h for _, h in now], autojunk=False)
        moved = {before[b.a + k][0]: now[b.b + k][0] for b in same.get_matching_blocks() for k in range(b.size)}
        status = {(moved[int(r["line"])], int(r["index"])): r for r in rows if int(r["line"]) in moved}
        for mutation in mutations:
            if row := status.get((mutation.line_number, mutation.index)):
                tested = current if row["tests"] == ordered else ""
                killed = "ok_killed" if row["status"] == "ok_suspicious" else row["status"]
                update_mutant_status(filename, mutation, killed, tested)


def restore(module: str) -> None:
    """Put back a file mutmut left mutated when its run was stopped (it keeps the original as ``.bak``)."""
    for backup in (ROOT / module).parent.rglob("*.py.bak"):
        backup.replace(backup.with_suffix(""))


def group(pgid: int) -> dict[int, str]:
    """The processes of a process group, with their command lines (Linux ``/proc``)."""
    members: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                members[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return members


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop mutmut for good, then the tests of the mutant it was on, so they stop their servers.

    mutmut goes on to the next mutant after an interrupted test run (counting the interrupted mutant
    as killed), so every process of its group but pytest is killed outright; pytest gets Ctrl-C, which
    stops the servers it started (they run in sessions of their own, out of reach of the group).
    """
    members = group(proc.pid)
    for pid, cmd in members.items():
        os.kill(pid, signal.SIGINT if " -m pytest " in cmd else signal.SIGKILL)
    proc.wait()
    for _ in range(600):
        if not group(proc.pid):
            break
        time.sleep(0.1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)


def mutate(module: str, runner: str, budget: float | None) -> bool:
    """Run mutmut over the module; False when the budget (seconds) ran out or Ctrl-C stopped it first."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--mutmut", "run", "--paths-to-mutate", module]
    cmd += ["--runner", runner]
    proc = subprocess.Popen([*cmd, "--no-progress", "--simple-output"], cwd=ROOT, start_new_session=True)
    try:
        code = proc.wait(timeout=budget)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        stop(proc)
        restore(module)
        return False
    if code & 1:
        raise SystemExit(f"mutmut run {module} failed ({code})")
    return True


def runner(module: str) -> str:
    return f"{sys.executable} {Path(__file__).resolve()} --pytest {' '.join(MODULES[module])}"


def survivor(mutant: str) -> list[str]:
    """A mutant's diff, its changed lines only."""
    diff = mutmut("show", mutant)
    body = "\n".join(line for line in diff.splitlines() if line.startswith(("+", "-")) and line[1:2] != line[:1])
    return ["", f"Survivor {mutant}:", "", "```diff", body, "```"]


def run(module: str, budget: float | None = None, resume: bool = False) -> str:
    """Mutate one module and return its section for the results file."""
    tests = " ".join(MODULES[module])
    code = fingerprint(module)
    kept = module_cache(module)
    CACHE.unlink(missing_ok=True)
    if resume and kept.exists():
        shutil.copy(kept, CACHE)
    elif resume and ledger(module).exists():
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--seed", module], cwd=ROOT, check=True)
    finished = mutate(module, runner(module), budget)
    counts = {state: ids(state) for state in STATES}
    total = sum(len(v) for v in counts.values())
    killed = sum(len(counts[state]) for state in KILLED)
    tested = total - len(counts["untested"])
    ratio = f"{100 * killed / total:.1f}%" if total else "n/a"
    complete = finished and not counts["untested"]
    if complete:
        summary = f"{total} mutants, {killed} killed ({ratio})"
    else:
        share = f"{100 * killed / tested:.1f}%" if tested else "n/a"
        summary = (
            f"{total} mutants, run stopped after {tested} ({len(counts['untested'])} not tested yet): "
            f"{killed} killed ({share} of those tested, {ratio} of all)"
        )
    lines = [
        f"<!-- mutation:{module} -->",
        f"### {module}",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d} of code `{code}` against `{tests}`: {summary}"
        + "".join(f", {len(counts[s])} {s}" for s in ("survived", "timeout", "skipped") if counts[s])
        + ".",
    ]
    for mutant in counts["survived"]:
        lines += survivor(mutant)
    write_ledger(module)
    CACHE.replace(kept)  # for --resume: after new tests, only the mutants not yet killed run again
    lines.append(f"<!-- /mutation:{module} -->")
    return "\n".join(lines)


def smoke(module: str) -> int:
    """Mutate ``module`` from scratch; 0 when every mutant is killed, else 1 with the survivors' diffs."""
    CACHE.unlink(missing_ok=True)
    try:
        finished = mutate(module, runner(module), SMOKE_BUDGET)
        counts = {state: ids(state) for state in STATES}
        report = [line for mutant in counts["survived"] for line in survivor(mutant)]
    finally:
        CACHE.unlink(missing_ok=True)
    total = sum(len(v) for v in counts.values())
    killed = sum(len(counts[state]) for state in KILLED)
    print(f"mutation smoke {module}: {total} mutants, {killed} killed", *report, sep="\n", flush=True)
    if not finished:
        print(f"mutation smoke {module}: stopped after {SMOKE_BUDGET:.0f} s", flush=True)
    return 0 if finished and total and killed == total else 1


def record(module: str, section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Mutation testing results\n"
    pattern = re.compile(rf"<!-- mutation:{re.escape(module)} -->.*?<!-- /mutation:{re.escape(module)} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def run_tests(tests: list[str]) -> int:
    """The runner mutmut calls: pytest, with every failure reported as exit code 1.

    mutmut 2 reads only 1 as "tests failed"; pytest exits 2 when a mutant breaks an import, which mutmut
    would count as a survivor.
    """
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *tests]
    return 0 if subprocess.call(cmd, cwd=ROOT, preexec_fn=interrupt_when_orphaned) == 0 else 1


def interrupt_when_orphaned() -> None:
    """Ctrl-C for pytest when this runner dies (Linux ``PR_SET_PDEATHSIG``).

    On a timeout mutmut kills the runner alone: a mutant that loops forever would keep its pytest
    running, growing without bound, after the run has moved on. Ctrl-C stops it, and its servers with it
    (a run started in the background inherits Ctrl-C ignored, hence the reset).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # 1: PR_SET_PDEATHSIG


def run_mutmut(args: list[str]) -> NoReturn:
    """mutmut's command line (it exits with mutmut's code), its cache lookup fixed for repeated lines.

    mutmut 2.5 looks up the cached status of a module's mutants by the text of their line alone, so on a
    resumed run a mutant on a repeated line (``return False``, a lone ``)``) took the status of the same
    line's first occurrence: a survivor there was not tested again once the first was killed. Each
    mutant is looked up by its line number too here, as mutmut does when it runs a single mutant.
    """
    from mutmut import cache
    from mutmut.__main__ import climain

    def statuses(filename: str, mutations: list[Any], hash_of_tests: str) -> dict[Any, str]:
        return {m: cache.cached_mutation_status(filename, m, hash_of_tests) for m in mutations}

    cache.get_cached_mutation_statuses = statuses
    climain(args, prog_name="mutmut")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--pytest"]:
        return run_tests(argv[1:])
    if argv[:1] == ["--mutmut"]:
        run_mutmut(argv[1:])
    if argv[:1] == ["--seed"]:
        seed(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("modules", nargs="*", metavar="module", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--budget", type=float, metavar="MINUTES", help="stop each module's run after this long")
    resume_help = "go on from the module's last run (kept killed): its cache, else its ledger in docs/mutation"
    parser.add_argument("--resume", action="store_true", help=resume_help)
    smoke_help = f"fail unless every mutant is killed (default module: {SMOKE}); records nothing"
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"no test mapping for {', '.join(unknown)}; known: {', '.join(MODULES)}")
    if args.smoke:
        return max(smoke(module) for module in args.modules or [SMOKE])
    for module in args.modules or list(MODULES):
        print(f"mutating {module}", flush=True)
        section = run(module, args.budget * 60 if args.budget else None, args.resume)
        record(module, section)
        print(section.splitlines()[3], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
