#!/usr/bin/env bash
# Source this: defines $uv (the pinned uv binary under .tools/) and ensure_uv, which installs
# that uv with pip when it is missing. Used by tools/setup_venv.sh and tools/lock.sh.
uv_version=0.13.9
uv="$root/.tools/uv-$uv_version/bin/uv"

ensure_uv() {
  [ -x "$uv" ] && return 0
  echo "setup_venv: installing uv $uv_version into .tools/" >&2
  "${python:-python3}" -m pip install -qq --disable-pip-version-check --root-user-action=ignore \
    --target "$root/.tools/uv-$uv_version" "uv==$uv_version" >&2
}
