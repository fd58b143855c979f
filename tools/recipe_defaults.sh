#!/usr/bin/env bash
# Options every recipe shares, with their defaults; source it before the recipe's own
# defaults and tools/parse_options.sh (a recipe may override any of these after sourcing).
stage=0
stop_stage=6
exp_root=exp
beam=10
ctc_weight=0.3
rescoring_beam=null   # N-best size of attention_rescoring (null: --beam)
nj=$(nproc)
gpus=0
force=false
num_mel_bins=80   # fbank bins (CMVN statistics and training)
