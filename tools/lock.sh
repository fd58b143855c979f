#!/usr/bin/env bash
# Refresh uv.lock after a change to the dependencies in pyproject.toml, then sync .venv.
#
#   tools/lock.sh                # re-resolve what changed, keep every other version
#   tools/lock.sh --upgrade      # move every package to the newest version the ranges allow
#
# torch and torchaudio stay at the pair fixed by [tool.uv] constraint-dependencies.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
. "$root/tools/uv.sh"
ensure_uv
"$uv" lock --project "$root" --python "$python" --no-python-downloads "$@"
"$root/tools/setup_venv.sh"
