#!/usr/bin/env bash
# Idempotent setup for `make run|test|bench`, `.ci/run` and machines without make:
#   1. Debian packages redis-server, softhsm2, chromium and curl (the zone map and
#      first-run tests), and Java 17 + Maven for the Apache Kafka broker lane (only if
#      their binaries are missing),
#   2. .venv (python3 -m venv; installs python3-venv first if ensurepip is missing),
#   3. the project with its dev extras (pip install -e '.[dev]'), every package at the
#      version pinned in requirements.lock (pip -c), skipped when neither
#      pyproject.toml nor requirements.lock changed since the last successful install,
#   4. Apache Kafka's jars (python -m zoneapp.stack.kafka_install: a Maven fetch at
#      the pinned version, checked against the jar lock, cached in ~/.cache/zoneapp; a
#      no-op once cached). Done here, not only lazily on the first Kafka start, because
#      `make test` always runs the Kafka tests: a fetch that fails should fail here, with
#      Maven's message, not inside the first test's start-up timeout. Skipped by --no-system.
# Usage: scripts/bootstrap.sh [--no-system]   (--no-system: skip the apt step, e.g. for lint)
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
SYSTEM=1
for arg in "$@"; do
  case "$arg" in
    --no-system) SYSTEM=0 ;;
    *) echo "bootstrap: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { echo "bootstrap: $*" >&2; }

# Root runs apt-get directly; others use sudo (non-interactive when there is no terminal,
# so CI fails fast instead of waiting for a password).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
  else
    say "need root to run: $*  (no sudo found)"
    return 1
  fi
}

APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found; install these packages yourself: $*"
    return 1
  fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root apt-get update -q
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  as_root apt-get install -y -q --no-install-recommends "$@"
}

softhsm_present() {
  command -v softhsm2-util >/dev/null 2>&1 || return 1
  local lib
  for lib in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*-linux-gnu/softhsm/libsofthsm2.so \
             /usr/local/lib/softhsm/libsofthsm2.so; do
    [ -f "$lib" ] && return 0
  done
  return 1
}

if [ "$SYSTEM" -eq 1 ]; then
  missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  softhsm_present || missing+=(softhsm2)
  # Test dependency: the zone map page is checked in a real headless Chromium.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # The first-run test runs the curl lines `make run` prints, with the real curl.
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  # The Kafka broker lane (zoneapp.stack.apache_kafka): a JVM, and Maven to fetch Kafka.
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
fi

# A venv whose python or pip is gone (interrupted creation, moved repo) is rebuilt.
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  say "$VENV is broken; recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
    # Debian's python3 ships venv/ensurepip in a separate package.
    version="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install "python${version}-venv" || apt_install python3-venv
  fi
  say "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.zoneapp-install-stamp"
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || ! "$VENV/bin/python" -c "import zoneapp.stack, pytest" >/dev/null 2>&1; then
  say "installing the project: pip install -c requirements.lock -e '.[dev]'"
  "$VENV/bin/python" -m pip install -q -c requirements.lock -e '.[dev]'
  echo "$want" > "$stamp"
fi
if [ "$SYSTEM" -eq 1 ]; then
  say "Apache Kafka jars: $("$VENV/bin/python" -m zoneapp.stack.kafka_install)"
fi
say "ready ($VENV)"
