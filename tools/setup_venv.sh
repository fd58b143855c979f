#!/usr/bin/env bash
# Create or update the project virtualenv (.venv) from the lock file uv.lock.
#
#   tools/setup_venv.sh          # idempotent: a no-op in well under a second when up to date
#
# Every package, transitive ones included, comes at the exact version and hash recorded in
# uv.lock (`uv sync --locked` refuses a lock that no longer matches pyproject.toml). uv
# itself is installed at a pinned version into .tools/ by pip. After installing, the venv is
# checked by importing torch and torchaudio and computing one fbank: a venv that fails is
# rebuilt once from nothing, and if that fails too the script stops with one line naming
# both versions.
#
# Refresh the lock after changing dependencies in pyproject.toml:  tools/lock.sh
#
# Logs go to stderr. Honours $PYTHON (default python3) and $ASRKIT_VENV (default .venv).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)  # the real path, as the editable install records it
venv=${ASRKIT_VENV:-$root/.venv}
python=${PYTHON:-python3}
. "$root/tools/uv.sh"

"$python" - <<'PY' || { echo "setup_venv: Python >= 3.10 is required (found $($python --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

# uv's own hint for a lock that no longer matches pyproject.toml ("run `uv lock`") names a
# command that is not on PATH here: its lines are replaced by ours.
sync() {
  local err  # uv's stderr; its stdout goes to ours (fd 3: our stderr)
  if ! { err=$(UV_PROJECT_ENVIRONMENT="$venv" "$uv" sync --locked --extra dev --extra export \
      --python "$python" --no-python-downloads --project "$root" --quiet 2>&1 >&3); } 3>&2; then
    if grep -q "needs to be updated" <<<"$err"; then
      echo "setup_venv: uv.lock does not match pyproject.toml: refresh it with tools/lock.sh" >&2
    else
      printf '%s\n' "$err" >&2
    fi
    return 1
  fi
  [ -z "$err" ] || printf '%s\n' "$err" >&2
}

# torch and torchaudio must have been built for each other: import both, compute one fbank.
check() {
  "$venv/bin/python" - 2>/dev/null <<'PY'
import torch, torchaudio
torchaudio.compliance.kaldi.fbank(torch.zeros(1, 1600))
PY
}

versions() {
  "$venv/bin/python" - 2>/dev/null <<'PY' || echo "torch and torchaudio could not be queried"
from importlib.metadata import version
print(f"torch {version('torch')} with torchaudio {version('torchaudio')}")
PY
}

# The check costs seconds (importing torch); it is skipped when this lock passed it before.
stamp="$venv/.asrkit-checked"
want=$(cat "$root/uv.lock" "$root/pyproject.toml" | sha256sum | cut -c1-32)

# The checkout whose asrkit the venv runs (its editable install), if any.
installed_from() {
  local finder
  for finder in "$venv"/lib/python*/site-packages/__editable___asrkit_*_finder.py; do
    [ -f "$finder" ] && sed -n "s/^MAPPING.*'asrkit': '\(.*\)\/asrkit'.*/\1/p" "$finder"
  done
  return 0
}

ensure_uv
before=$(installed_from | head -n 1)
sync
if [ -n "$before" ] && [ "$before" != "$root" ]; then
  echo "setup_venv: $venv ran the asrkit of $before; it now runs $root's (a virtualenv serves one checkout: give each its own ASRKIT_VENV)" >&2
fi
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
if ! check; then
  echo "setup_venv: $(versions) do not work together; rebuilding $venv from uv.lock" >&2
  rm -rf "$venv"
  sync
  if ! check; then
    echo "setup_venv: broken environment: $(versions) fail to import or compute fbank together (see uv.lock)" >&2
    exit 1
  fi
fi
echo "$want" > "$stamp"
