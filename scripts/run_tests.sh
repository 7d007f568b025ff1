#!/usr/bin/env bash
# Runs the test suite. Tests that start Ray clusters or servers need every address to be loopback
# (Ray swaps 127.0.0.1 for the machine's address), so as root the suite runs inside a private
# network namespace; elsewhere those tests skip themselves and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTEST="${VENV:-.venv}/bin/python -m pytest"
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec unshare -n sh -c "ip link set lo up && FLOWPREP_NETNS=1 $PYTEST $*"
fi
exec $PYTEST "$@"
