#!/usr/bin/env bash
# Run the asrkit test suite: sets up .venv and the Debian tools first, then pytest in
# pytest-xdist workers, one per core (at most 4), each with its share of torch's threads
# (tests/conftest.py). Tests are handed out one at a time (--maxschedchunk=1), so that the
# long ones, which come first, start on different workers.
#
#   tools/test.sh                 # the whole suite (< 10 min on 2 CPU cores)
#   tools/test.sh tests/data -k sampler   # any pytest arguments pass through
#   tools/test.sh -n 0 tests/data # in one process (pdb; with -s, output as it comes)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/install_deps.sh
tools/setup_venv.sh
exec "${ASRKIT_VENV:-$root/.venv}/bin/python" -m pytest -n auto --maxprocesses=4 \
  --maxschedchunk=1 "$@"
