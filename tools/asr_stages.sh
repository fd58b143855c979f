#!/usr/bin/env bash
# Stages 1-6 shared by every recipe; source it from recipes/<corpus>/run.sh after stage 0.
#
# Needs these shell variables (the recipe's options):
#   manifests     directory holding the manifests (<manifests>/<set>.jsonl)
#   train_set     training manifest name; dev_set: validation manifest name
#   test_sets     space-separated manifest names to decode
#   token_type    bpe | unigram | char;  vocab_size (ignored for char unless > 0)
#   experiment    Hydra preset (conf/experiment/<experiment>.yaml)
#   num_mel_bins  fbank bins, for the CMVN statistics and training (default 80)
#   exp           experiment name (<exp_root>/<exp>, exp_root default exp);  avg_num: checkpoints to average
#   methods       space-separated decoding methods;  beam, ctc_weight, rescoring_beam
#   nj            jobs (loader workers, synthesis);  gpus: GPUs to train on (0 = CPU)
#   asrkit        the asrkit command (tools/recipe_options.sh)
# and "$@" holds the Hydra overrides given after `--` (passed to training). Paths holding
# commas, brackets, '=', spaces or non-ASCII letters go to Hydra quoted (_q), so that they
# pass its grammar (tools/recipe_options.sh refuses the two things quoting cannot carry).

exp_dir=${exp_root:-exp}/$exp
tokenizer_dir=$manifests/${token_type}${vocab_size}
[ "$token_type" = char ] && tokenizer_dir=$manifests/char
markers=${markers:-$exp_dir/.stages}
if [ "$token_type" = char ] && [ "${vocab_size:-0}" -le 0 ]; then vocab_args=(); else vocab_args=(--vocab-size "$vocab_size"); fi

_list() { local IFS=,; echo "[$*]"; }
# a value as Hydra reads it: as it is when its grammar takes it unquoted (so that the stage
# records of ordinary paths are what they always were), else quoted with ' escaped as \'
_q() {
  if [[ $1 =~ ^[A-Za-z0-9_./:+@%-]+$ ]]; then printf '%s' "$1"
  else printf "'%s'" "${1//\'/\\\'}"; fi
}
_test_manifests=()
for s in $test_sets; do _test_manifests+=("$(_q "$manifests/$s.jsonl")"); done

markers=$manifests/.stages run_stage 1 "CMVN statistics" \
  "$asrkit" cmvn --manifest "$manifests/$train_set.jsonl" --out "$manifests/cmvn.json" --nj "$nj" \
  --num-mel-bins "$num_mel_bins"
# one marker per tokenizer: another vocabulary size leaves this one's record as it was
markers=$manifests/.stages/$(basename "$tokenizer_dir") \
  legacy_marker=$manifests/.stages/stage_2.done run_stage 2 "tokenizer" \
  "$asrkit" tokenizer --manifest "$manifests/$train_set.jsonl" --type "$token_type" "${vocab_args[@]}" \
  --out "$tokenizer_dir"
train_args=(+experiment="$experiment" exp_dir="$(_q "$exp_dir")"
            data.train="$(_q "$manifests/$train_set.jsonl")"
            data.dev="$(_q "$manifests/$dev_set.jsonl")" data.cmvn="$(_q "$manifests/cmvn.json")"
            tokenizer.dir="$(_q "$tokenizer_dir")" data.num_workers="$nj"
            data.features.num_mel_bins="$num_mel_bins")
[ "${gpus:-0}" -gt 0 ] && train_args+=(trainer.devices="$gpus")
# A finished training run whose options changed is kept beside the new one, not resumed.
_move_exp_aside() {
  local old
  old="$exp_dir.old-$(date +%Y%m%d-%H%M%S)"
  mv "$exp_dir" "$old"
  echo "== the previous $exp_dir is kept as $old"
}
on_rerun=_move_exp_aside run_stage 3 "train" "$asrkit" train "${train_args[@]}" "$@"
# a run shorter than avg_num epochs averages what it has; decoding uses that average
run_stage 4 "average" "$asrkit" average "$exp_dir" --num "$avg_num" --allow-fewer
decode_args=(exp_dir="$(_q "$exp_dir")" test_sets="$(_list "${_test_manifests[@]}")"
             methods="$(_list $methods)" beam="$beam" ctc_weight="$ctc_weight")
# attention rescoring's CTC N-best, when that method is decoded
if [ "$rescoring_beam" != null ] && [[ " $methods " == *" attention_rescoring "* ]]; then
  decode_args+=(search.attention_rescoring.beam="$rescoring_beam")
fi
. "$root/tools/decode_covers.sh"
covered_by=decode_covers run_stage 5 "decode" "$asrkit" decode "${decode_args[@]}"
run_stage 6 "score and report" "$asrkit" compare "$exp_dir"
