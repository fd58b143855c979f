#!/usr/bin/env bash
# Run the default asrkit recipe (recipes/synth) end to end on this machine.
#
#   ./run.sh [recipe options]        e.g. ./run.sh --stage 2 --stop_stage 2
#
# Sets up what is missing first: the Debian speech tools (tools/install_deps.sh, needs root
# or prints the apt-get command) and the virtualenv .venv with asrkit installed
# (tools/setup_venv.sh). Options are passed to recipes/synth/run.sh (`--help` lists them).
# Another recipe: recipes/<corpus>/run.sh --help.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"
  echo
  exec "$root/recipes/synth/run.sh" --help
fi
"$root/tools/install_deps.sh"
"$root/tools/setup_venv.sh"
exec "$root/recipes/synth/run.sh" "$@"
