#!/usr/bin/env bash
# decode_covers OLD NEW: whether the decode stage's record in file OLD covers the record in
# file NEW (tools/stage.sh's covered_by; sourced by tools/asr_stages.sh).
#
# A decode of more methods with the same other options covers one of fewer (each method's
# results are kept apart), so that recipes/synth/compare_models.sh (three methods) reuses
# run.sh's decode (five). The rescoring beam is an option only while attention_rescoring
# is decoded: a decode that had it covers one without that method; one with that method
# covers only the same beam (or none on both sides: then it is `beam`).
decode_covers() {
  local old_methods new_methods m
  old_methods=$(sed -n 's/^arg: methods=\[\(.*\)\]$/\1/p' "$1")
  new_methods=$(sed -n 's/^arg: methods=\[\(.*\)\]$/\1/p' "$2")
  [ -n "$old_methods" ] && [ -n "$new_methods" ] || return 1
  local other='^arg: \(methods=\|search\.attention_rescoring\.beam=\)'
  [ "$(grep -v "$other" "$1")" = "$(grep -v "$other" "$2")" ] || return 1
  if [[ ",$new_methods," == *",attention_rescoring,"* ]]; then  # its beam, or none, alike
    [ "$(grep '^arg: search\.attention_rescoring\.beam=' "$1")" = \
      "$(grep '^arg: search\.attention_rescoring\.beam=' "$2")" ] || return 1
  fi
  for m in ${new_methods//,/ }; do
    [[ ",$old_methods," == *",$m,"* ]] || return 1
  done
}
