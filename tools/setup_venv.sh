#!/usr/bin/env bash
# Create or update the project virtualenv (.venv) and install asrkit into it.
#
#   tools/setup_venv.sh          # idempotent: reinstalls only when pyproject.toml changed
#
# Logs go to stderr. Honours $PYTHON (default python3) and $ASRKIT_VENV (default .venv).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${ASRKIT_VENV:-$root/.venv}
python=${PYTHON:-python3}

"$python" - <<'PY' || { echo "setup_venv: Python >= 3.10 is required (found $($python --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

if [ ! -x "$venv/bin/python" ]; then
  echo "setup_venv: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.asrkit-install-stamp"
want=$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$venv/bin/python" -c "import asrkit" 2>/dev/null; then
  echo "setup_venv: installing asrkit and its dependencies into $venv (first time: ~2 min)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$root[dev]" >&2
  echo "$want" > "$stamp"
fi
