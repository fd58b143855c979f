#!/usr/bin/env bash
# LibriSpeech (Panayotov et al. 2015): Conformer with joint CTC/attention and word pieces.
#
#   recipes/librispeech/run.sh --data /corpora [--stage A] [--stop_stage B] [--options] [-- hydra overrides]
#
# Stages: 0 download (skipped when --data already holds LibriSpeech/) and prepare manifests,
#   1 CMVN, 2 sentencepiece unigram (256 units for train-clean-100, 5000 for 960 h),
#   3 train (+experiment=librispeech/conformer_m), 4 average, 5 decode dev/test clean/other,
#   6 score and report (asrkit compare).
# Options: --data DIR (corpus root; downloaded there if missing), --train_set NAME
#   (train-clean-100 | train-960), --vocab_size N, --experiment PRESET, --exp NAME,
#   --avg_num N, --methods "…", --beam N, --ctc_weight W, --num_mel_bins N (default 80),
#   --nj N, --gpus K, --force true,
#   --manifests DIR (default data/librispeech), --exp_root DIR (default exp).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/tools/recipe_defaults.sh"
data=downloads/librispeech
manifests=data/librispeech
train_set=train-clean-100
dev_set=dev-clean
test_sets="dev-clean dev-other test-clean test-other"
token_type=unigram
vocab_size=
experiment=librispeech/conformer_m
exp=
avg_num=10
methods="ctc_greedy ctc_prefix_beam attention attention_rescoring"
. "$root/tools/parse_options.sh"
. "$root/tools/recipe_options.sh"
. "$root/tools/stage.sh"
cd "$root"
[ -n "$vocab_size" ] || { [ "$train_set" = train-clean-100 ] && vocab_size=256 || vocab_size=5000; }
[ -n "$exp" ] || exp=librispeech_${train_set}_$(basename "$experiment")
subsets="dev-clean dev-other test-clean test-other"
if [ "$train_set" = train-960 ]; then subsets="$subsets train-clean-100 train-clean-360 train-other-500"
else subsets="$subsets $train_set"; fi

stage0() {  # stage0 DATA MANIFESTS TRAIN_SET SUBSET...
  local data=$1 manifests=$2 train_set=$3; shift 3
  local subsets="$*"
  if [ ! -d "$data/LibriSpeech" ] && [ ! -d "$data/dev-clean" ]; then
    for s in $subsets; do tools/download.sh "https://www.openslr.org/resources/12/$s.tar.gz" "$data"; done
  fi
  "$asrkit" prepare librispeech --src "$data" --out "$manifests" --subsets $subsets
  if [ "$train_set" = train-960 ]; then
    cat "$manifests"/train-clean-{100,360}.jsonl "$manifests/train-other-500.jsonl" \
      > "$manifests/train-960.jsonl"
  fi
}
markers=$manifests/.stages run_stage 0 "download and prepare" stage0 "$data" "$manifests" "$train_set" $subsets
. "$root/tools/asr_stages.sh"
