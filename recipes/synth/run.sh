#!/usr/bin/env bash
# The embedded default recipe: a synthetic English corpus made with espeak-ng/flite, a small
# Conformer with joint CTC/attention loss and word pieces, trained on the CPU (or GPUs).
#
#   recipes/synth/run.sh [--stage A] [--stop_stage B] [--options] [-- hydra overrides]
#   recipes/synth/run.sh --stage 3 --exp moe -- encoder=moe_conformer trainer.max_epochs=30
#
# Stages: 0 synthesise the corpus, 1 CMVN, 2 tokenizer (bpe), 3 train, 4 average,
#   5 decode test and test_unseen with every method, 6 score and report (asrkit compare).
# Options: --num_utts N (corpus size), --heldout_fraction F (share of dev, test and
#   test_unseen each), --seed N, --vocab_size N, --experiment PRESET (conf/experiment/…),
#   --exp NAME (exp/NAME), --avg_num N, --methods "…", --beam N, --rescoring_beam N,
#   --ctc_weight W,
#   --num_mel_bins N (default 40), --nj N, --gpus K (train on K GPUs: trainer.devices=K, one DDP rank each),
#   --force true (redo finished stages), --manifests DIR (default data/synth),
#   --exp_root DIR (default exp).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/tools/recipe_defaults.sh"
num_utts=4400
heldout_fraction=0.035   # share of num_utts in each of dev, test and test_unseen
seed=1
manifests=data/synth
train_set=train
dev_set=dev
test_sets="test test_unseen"
token_type=bpe
vocab_size=100
num_mel_bins=40   # synth/base.yaml's: half the conv front end's cost, enough for clean TTS speech
experiment=synth/conformer
exp=synth_conformer
avg_num=3
rescoring_beam=20   # attention rescoring over a CTC 20-best (the other searches: --beam 10)
methods="ctc_greedy ctc_prefix_beam attention attention_rescoring joint"
. "$root/tools/parse_options.sh"
. "$root/tools/recipe_options.sh"
. "$root/tools/stage.sh"
cd "$root"

markers=$manifests/.stages run_stage 0 "synthesise the corpus" \
  "$asrkit" prepare synth --out "$manifests" --num-utts "$num_utts" --seed "$seed" --nj "$nj" \
  --dev-fraction "$heldout_fraction" --test-fraction "$heldout_fraction" \
  --test-unseen-fraction "$heldout_fraction"
. "$root/tools/asr_stages.sh"
