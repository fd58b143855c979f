#!/usr/bin/env bash
# Stage runner for recipes; source it, then call
#
#   run_stage N "name" command args...
#
# A stage runs when stage <= N <= stop_stage. It logs its start, end and elapsed time,
# stops the recipe with the stage's name on failure, and writes a marker
# ($exp_markers/stage_N.done) so that a finished stage is skipped on the next run
# unless --force true is given.
run_stage() {
  local n=$1 name=$2; shift 2
  [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ] && return 0
  local marker="$markers/stage_$n.done"
  if [ -f "$marker" ] && [ "${force:-false}" != true ]; then
    echo "== stage $n ($name): already done, skipping (--force true redoes it)"
    return 0
  fi
  echo "== stage $n ($name): start $(date '+%F %T')"
  local t0=$SECONDS
  if ! "$@"; then
    echo "== stage $n ($name): FAILED after $((SECONDS - t0)) s" >&2
    exit 1
  fi
  mkdir -p "$markers" && touch "$marker"
  echo "== stage $n ($name): done in $((SECONDS - t0)) s"
}
