#!/usr/bin/env bash
# Options every recipe shares, with their defaults; source it before the recipe's own
# defaults and tools/parse_options.sh (a recipe may override any of these after sourcing).
stage=0
stop_stage=6
last_stage=6      # the recipes' stages are 0-6
path_options="data manifests exp_root"   # relative ones given are from the current directory
exp_root=exp
beam=10
ctc_weight=0.3
rescoring_beam=null   # N-best size of attention_rescoring (null: --beam)
nj=$(nproc)
gpus=0
force=false
num_mel_bins=80   # fbank bins (CMVN statistics and training)
