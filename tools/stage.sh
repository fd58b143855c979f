#!/usr/bin/env bash
# Stage runner for recipes; source it, then call
#
#   run_stage N "name" command args...
#
# A stage runs when stage <= N <= stop_stage. It logs its start, end and elapsed time and
# stops the recipe with the stage's name on failure. On success it writes a marker
# ($markers/stage_N.done) that records what the stage depended on: its command line (the
# recipe's effective options and the Hydra overrides it was given) and the records of all
# the stages before it (a stage may read any earlier stage's output: training reads the
# corpus as well as the tokenizer). The next run skips the stage only when that record is
# unchanged; when it differs the stage reruns with one line saying why, and since every
# record includes the ones before it, so do the stages after it. `--force true` redoes a
# stage in any case.
#
# A stage before --stage is not run, so what the stages after it depend on is what it left
# when it last ran: its marker's record (or, without a marker, the record it would have
# now). When that differs from today's (its options, or an earlier stage, changed since it
# ran), one line says so: it is brought up to date only once it runs again (start at it, or
# at an earlier stage).
#
# --stage and --stop_stage must be whole numbers, --stage not after --stop_stage (exit 2).
#
# Arguments that do not change a stage's result are left out of its record: the number of
# jobs (`--nj N`, `data.num_workers=N`); synthesis and statistics are identical for any N.
# The asrkit command is recorded as `.venv/bin/asrkit` whichever virtualenv runs it
# ($ASRKIT_VENV, tools/asrkit_command.sh), so that a record does not depend on it.
#
# A stage whose marker moved may name where it was (`legacy_marker=FILE run_stage ...`):
# a marker there with today's record is taken over.
#
# A stage may name a function to call before it reruns over an older result (for training:
# move the old experiment aside, since a run would otherwise resume from its checkpoints):
#
#   on_rerun=move_aside run_stage 3 "train" ...
#
# A stage may name a function that tells whether what it did last covers today's record
# although the two differ (for decoding: the methods asked for now are among those decoded
# then, with the same other options); it is then skipped, and the stages after it see the
# record it ran with:
#
#   covered_by=decode_covers run_stage 5 "decode" ...   # decode_covers OLD_FILE NEW_FILE
_stage_chain=""

# The record of a stage: the previous stage's record, then one argument per line.
_stage_record() {
  local skip=false arg
  printf 'after: %s\n' "$_stage_chain"
  for arg in "$@"; do
    if $skip; then skip=false; continue; fi
    case "$arg" in
      --nj) skip=true; continue ;;
      --nj=*|data.num_workers=*) continue ;;
    esac
    [ -n "${asrkit:-}" ] && [ "$arg" = "$asrkit" ] && arg=.venv/bin/asrkit
    printf 'arg: %s\n' "$arg"
  done
}

# One line naming what differs between an old and a new record.
_stage_why() {
  local old=$1 new=$2
  if [ "$(sed -n 1p "$old")" != "$(sed -n 1p "$new")" ]; then
    echo "an earlier stage's inputs changed"
    return
  fi
  local gone added
  gone=$(grep -Fxv -f "$new" "$old" | sed 's/^arg: //' | paste -sd ' ' -)
  added=$(grep -Fxv -f "$old" "$new" | sed 's/^arg: //' | paste -sd ' ' -)
  echo "its options changed (was: ${gone:-nothing}; now: ${added:-nothing})"
}

for _stage_option in stage stop_stage; do
  case "${!_stage_option}" in
    ''|*[!0-9]*)
      echo "$(basename "$0"): --$_stage_option must be a whole number, got '${!_stage_option}'" >&2
      exit 2 ;;
  esac
done
if [ "$stage" -gt "$stop_stage" ]; then
  echo "$(basename "$0"): --stage $stage is after --stop_stage $stop_stage: no stage to run" >&2
  exit 2
fi
if [ -n "${last_stage:-}" ] && [ "$stage" -gt "$last_stage" ]; then
  echo "$(basename "$0"): --stage $stage: no stage to run (the stages are 0-$last_stage)" >&2
  exit 2
fi

# _stage_why between a marker's record and today's record of its stage.
_marker_why() {
  local old new
  old=$(mktemp) new=$(mktemp)
  sed 1d "$1" > "$old"
  printf '%s\n' "$2" > "$new"
  _stage_why "$old" "$new"
  rm -f "$old" "$new"
}

# Whether function $1 says the record in marker $2 covers today's record $3.
_marker_covers() {
  local old new status=0
  old=$(mktemp) new=$(mktemp)
  sed 1d "$2" > "$old"
  printf '%s\n' "$3" > "$new"
  "$1" "$old" "$new" || status=$?
  rm -f "$old" "$new"
  return "$status"
}

# What the stages after a stage see of it and of every stage before it: a running hash of
# each stage's effective record digest (its digest today when it runs or is up to date,
# its marker's when it is not run now).
_stage_chain_add() {
  _stage_chain=$(printf '%s %s\n' "$_stage_chain" "$1" | sha256sum | cut -c1-16)
}

run_stage() {
  local n=$1 name=$2; shift 2
  local hook=${on_rerun:-} covers=${covered_by:-}
  local record digest why
  local marker="$markers/stage_$n.done"
  record=$(_stage_record "$@")
  digest=$(printf '%s\n' "$record" | sha256sum | cut -c1-16)
  [ "$n" -gt "$stop_stage" ] && return 0
  local legacy=${legacy_marker:-}
  if [ ! -f "$marker" ] && [ -n "$legacy" ] && [ -f "$legacy" ] \
      && [ "$(sed -n 1p "$legacy")" = "digest: $digest" ]; then
    mkdir -p "$markers" && cp "$legacy" "$marker"
  fi
  if [ "$n" -lt "$stage" ]; then  # not run: the stages after it read what it left
    if [ -f "$marker" ] && [ "$(sed -n 1p "$marker")" != "digest: $digest" ]; then
      _stage_chain_add "$(sed -n '1s/^digest: //p' "$marker")"
      echo "== stage $n ($name): not run (--stage $stage): $(_marker_why "$marker" "$record") since it ran; the stages after it use what it left"
    else
      _stage_chain_add "$digest"
    fi
    return 0
  fi
  if [ -f "$marker" ]; then
    if [ "${force:-false}" = true ]; then
      echo "== stage $n ($name): done before, redoing it (--force true)"
    elif [ "$(sed -n 1p "$marker")" = "digest: $digest" ]; then
      _stage_chain_add "$digest"
      echo "== stage $n ($name): already done with these options, skipping (--force true redoes it)"
      return 0
    elif [ -n "$covers" ] && _marker_covers "$covers" "$marker" "$record"; then
      _stage_chain_add "$(sed -n '1s/^digest: //p' "$marker")"
      why=$(_marker_why "$marker" "$record")
      echo "== stage $n ($name): already done: its last run covers these options ${why#its options changed }, skipping (--force true redoes it)"
      return 0
    else
      echo "== stage $n ($name): rerunning: $(_marker_why "$marker" "$record")"
    fi
    [ -z "$hook" ] || $hook
  fi
  _stage_chain_add "$digest"
  echo "== stage $n ($name): start $(date '+%F %T')"
  local t0=$SECONDS status errexit=false
  # In a subshell with -e on, so that a stage that is a shell function stops at its first
  # failing command: run as `if ! "$@"`, bash would turn -e off inside it and take the
  # function's last command's status for the stage's.
  [[ $- == *e* ]] && errexit=true
  set +e
  ( set -e; "$@" )
  status=$?
  if $errexit; then set -e; fi
  if [ "$status" -ne 0 ]; then
    echo "== stage $n ($name): FAILED after $((SECONDS - t0)) s" >&2
    exit 1
  fi
  mkdir -p "$markers"
  { echo "digest: $digest"; printf '%s\n' "$record"; } > "$markers/.stage_$n.tmp"
  mv "$markers/.stage_$n.tmp" "$marker"
  echo "== stage $n ($name): done in $((SECONDS - t0)) s"
}
