#!/usr/bin/env bash
# The asrkit command of the recipes, which run from the repository root: that of the
# virtualenv $ASRKIT_VENV when it is set (as tools/setup_venv.sh; a relative one is taken
# from the current directory), else .venv's. Source it before `cd "$root"`.
if [ -n "${ASRKIT_VENV:-}" ]; then
  case "$ASRKIT_VENV" in /*) asrkit=$ASRKIT_VENV/bin/asrkit ;; *) asrkit=$PWD/$ASRKIT_VENV/bin/asrkit ;; esac
else
  asrkit=.venv/bin/asrkit
fi
