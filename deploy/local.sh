#!/usr/bin/env bash
# opsloop's one entry point on a fresh Debian machine.
#   deploy/local.sh demo [demo options]   run the whole loop locally
#   deploy/local.sh test [pytest options] lint and run the test suite against real servers (without
#                                         options, then a mutation smoke: docs/testing.md)
#   deploy/local.sh mutate [module ...]   mutation testing per module, results in docs/mutation.md
# Installs what is missing: Debian packages (redis-server, prometheus, prometheus-alertmanager,
# prometheus-redis-exporter, PostgreSQL 15) and a virtualenv in .venv with the project and its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'opsloop: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
  else log "need root to run: $*"; exit 1; fi
}

ensure_debian_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v prometheus-redis-exporter >/dev/null || missing+=(prometheus-redis-exporter)
  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
  id postgres >/dev/null 2>&1 || missing+=(postgresql-15)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v pgrep >/dev/null || missing+=(procps)
  command -v wrk >/dev/null || missing+=(wrk)  # benchmarks/webhook_ack.py
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
    # Debian's packages may start their daemons; opsloop starts its own on free ports.
    if command -v service >/dev/null; then
      for svc in redis-server prometheus prometheus-alertmanager prometheus-redis-exporter postgresql; do
        as_root service "$svc" stop >/dev/null 2>&1 || true
      done
    fi
  fi
}

ensure_venv() {
  local extras=${1:-test}
  local stamp=.venv/.opsloop-installed-${extras/,/-}
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    python3 -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    log "installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  demo)
    ensure_debian_packages
    ensure_venv
    exec .venv/bin/python -m opsloop.demo "$@"
    ;;
  test)
    ensure_debian_packages
    ensure_venv
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    # Three workers on two cores: most tests wait on real servers, not on the CPU. `-n 0` in the
    # arguments runs the tests in this process instead (for `-s`, `--pdb` or a profiler).
    .venv/bin/python -m pytest -n 3 "$@"
    # The whole suite (CI) ends with a mutation smoke: after pytest, so no test imports a mutated file.
    if [ $# -eq 0 ]; then nice -n 19 .venv/bin/python deploy/mutate.py --smoke; fi
    ;;
  mutate)
    ensure_debian_packages
    ensure_venv
    exec nice -n 19 .venv/bin/python deploy/mutate.py "$@"
    ;;
  *)
    echo "usage: $0 demo|test|mutate [options]" >&2
    exit 2
    ;;
esac
