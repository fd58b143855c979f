#!/usr/bin/env bash
# AISHELL-1 (Bu et al. 2017): the WeNet/ESPnet Conformer with characters; CER reported.
#
#   recipes/aishell/run.sh --data /corpora/aishell [--stage A] [--stop_stage B] [--options] [-- hydra overrides]
#
# Stages: 0 download (skipped when --data already holds data_aishell/) and prepare manifests,
#   1 CMVN, 2 character tokenizer, 3 train (+experiment=aishell/conformer), 4 average,
#   5 decode dev/test, 6 score and report (asrkit compare; CER is the figure for Mandarin).
# Options: --data DIR (corpus root; downloaded there if missing), --experiment PRESET,
#   --exp NAME, --avg_num N, --methods "…", --beam N, --ctc_weight W, --nj N, --gpus K,
#   --num_mel_bins N (default 80), --force true, --manifests DIR (default data/aishell), --exp_root DIR (default exp).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/tools/recipe_defaults.sh"
data=downloads/aishell
manifests=data/aishell
train_set=train
dev_set=dev
test_sets="dev test"
token_type=char
vocab_size=0
experiment=aishell/conformer
exp=aishell_conformer
avg_num=20   # the last 20 epochs, as WeNet (the preset keeps 20: trainer.keep_last)
methods="ctc_greedy ctc_prefix_beam attention attention_rescoring"
. "$root/tools/parse_options.sh"
. "$root/tools/recipe_options.sh"
. "$root/tools/stage.sh"
cd "$root"

stage0() {  # stage0 DATA MANIFESTS
  local data=$1 manifests=$2
  if [ ! -d "$data/data_aishell" ] && [ ! -d "$data/transcript" ]; then
    tools/download.sh https://www.openslr.org/resources/33/data_aishell.tgz "$data"
    (cd "$data/data_aishell/wav"; for f in *.tar.gz; do tar -xzf "$f"; rm "$f"; done)
  fi
  "$asrkit" prepare aishell --src "$data" --out "$manifests"
}
markers=$manifests/.stages run_stage 0 "download and prepare" stage0 "$data" "$manifests"
. "$root/tools/asr_stages.sh"
