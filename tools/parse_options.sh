#!/usr/bin/env bash
# Kaldi-style option parsing for recipe scripts; source it after declaring defaults:
#
#   stage=0; stop_stage=100; nj=2
#   . tools/parse_options.sh
#
# Each `--name value` (or `--name=value`) sets the shell variable `name` (dashes become
# underscores) and must name a variable declared before; `--help` prints the script's
# header comment. Everything after `--` is left in "$@" (e.g. Hydra overrides).
#
# Options named in `path_options` (e.g. "data manifests exp_root") are paths: a relative one
# given here is taken from the current directory, made absolute when that is not `$root`
# (the repository, when the script sets it), so that a recipe may `cd` there afterwards
# (its defaults stay relative to the repository).
#
# A script that hands options on to another recipe declares `passthrough=()` first: options
# it does not declare are then collected there (as `--name value`) instead of refused, and
# those listed in `passthrough_also` (e.g. "exp_root") are both set and collected.
__usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; }
__rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) __usage; exit 0 ;;
    --) shift; __rest+=("$@"); break ;;
    --*=*) __name=${1%%=*}; __value=${1#*=}; shift ;;
    --*) __name=$1; [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 2; }; __value=$2; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options are --name value; Hydra overrides go after --)" >&2; exit 2 ;;
  esac
  __name=${__name#--}; __name=${__name//-/_}
  if [[ " ${path_options:-} " == *" $__name "* && -n $__value && $__value != /* ]] \
      && [ "$(pwd -P)" != "$(cd "${root:-/nonexistent}" 2>/dev/null && pwd -P)" ]; then
    __value=$PWD/$__value
  fi
  if declare -p passthrough >/dev/null 2>&1; then
    if [[ " ${passthrough_also:-} " == *" $__name "* ]] || ! declare -p "$__name" >/dev/null 2>&1; then
      passthrough+=("--$__name" "$__value")
    fi
    declare -p "$__name" >/dev/null 2>&1 || continue
  fi
  if ! declare -p "$__name" >/dev/null 2>&1; then
    echo "$0: unknown option --${__name//_/-}" >&2; exit 2
  fi
  printf -v "$__name" '%s' "$__value"
done
set -- "${__rest[@]}"
unset __name __value __rest
