#!/usr/bin/env bash
# Checks of the options every recipe shares, and the asrkit command; source it after
# tools/parse_options.sh. A bad value stops the recipe (exit 2) with one line naming it.
#
# Paths that become Hydra overrides (--manifests, --exp_root, --exp) may hold any character
# but a backslash or '${' (Hydra's quoted strings and OmegaConf's interpolation); the stages
# pass them quoted (tools/asr_stages.sh).
_option_error() { echo "$(basename "$0"): $*" >&2; exit 2; }
case "$gpus" in ''|*[!0-9]*) _option_error "--gpus must be a whole number (0: the CPU), got '$gpus'" ;; esac
case "$nj" in ''|0|*[!0-9]*) _option_error "--nj must be a whole number >= 1, got '$nj'" ;; esac
case "$force" in true|false) ;; *) _option_error "--force must be true or false, got '$force'" ;; esac
for _path_option in manifests exp_root exp; do
  case "${!_path_option}" in
    *\\*|*'${'*) _option_error "--$_path_option '${!_path_option}' holds a backslash or '\${', which a Hydra override cannot carry" ;;
  esac
done
unset _path_option
. "$root/tools/asrkit_command.sh"
