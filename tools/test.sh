#!/usr/bin/env bash
# Run the asrkit test suite: sets up .venv and the Debian tools first, then pytest.
#
#   tools/test.sh                 # the whole suite (< 10 min on 2 CPU cores)
#   tools/test.sh tests/data -k sampler   # any pytest arguments pass through
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tools/install_deps.sh
tools/setup_venv.sh
exec "${ASRKIT_VENV:-$root/.venv}/bin/python" -m pytest "$@"
