#!/usr/bin/env bash
# Train, decode and compare the synth model presets at an equal training budget: every
# preset shares conf/experiment/synth/base.yaml (features, augmentation, batching, optimiser,
# schedule, epochs, decoder) and has about the same number of parameters.
#
#   recipes/synth/compare_models.sh [--models "transformer conformer ..."] [--jobs N]
#       [--methods "..."] [--transducer_methods "..."]
#       [-- hydra overrides for every model, e.g. trainer.max_epochs=10]
#
# The transducer presets (*_transducer) decode with --transducer_methods, the others with
# --methods.
#
# Stages 0-2 of recipes/synth/run.sh run once (corpus, CMVN, tokenizer), then stages 3-5
# (train, average, decode) for each preset as exp/synth_<model>, --jobs N of them at a time
# (each with nproc/N threads), then one `asrkit compare` table of them all, also written to
# exp/synth_models.md; each preset logs to exp/logs/synth_<model>.log. Options not listed
# here (--num_utts, --vocab_size, --nj, ...) go to
# recipes/synth/run.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
models="transformer conformer moe_conformer interctc 3m conformer_ss contextnet conformer_transducer contextnet_transducer"
jobs=1
methods="ctc_greedy attention_rescoring joint"
transducer_methods="transducer_greedy transducer_modified_beam transducer_beam"
exp_root=exp
passthrough=()            # every other option goes to recipes/synth/run.sh
passthrough_also=exp_root
path_options="data manifests exp_root"   # relative ones given are from the current directory
. "$root/tools/parse_options.sh"
. "$root/tools/asrkit_command.sh"
cd "$root"
[ -n "${models// /}" ] || { echo "compare_models.sh: --models names no preset" >&2; exit 2; }
case "$jobs" in
  ''|*[!0-9]*|0) echo "compare_models.sh: --jobs must be a whole number >= 1, got '$jobs'" >&2; exit 2 ;;
esac
for model in $models; do
  [ -f "conf/experiment/synth/$model.yaml" ] || { echo "compare_models.sh: no preset conf/experiment/synth/$model.yaml" >&2; exit 2; }
done
recipe=recipes/synth/run.sh
"$recipe" "${passthrough[@]}" --stage 0 --stop_stage 2
threads=$(( $(nproc) / jobs )); [ "$threads" -ge 1 ] || threads=1
failed=0
running=0
for model in $models; do
  mkdir -p "$exp_root/logs"
  model_methods=$methods
  [[ $model == *transducer* ]] && model_methods=$transducer_methods
  OMP_NUM_THREADS=$threads "$recipe" "${passthrough[@]}" --experiment "synth/$model" \
    --exp "synth_$model" --methods "$model_methods" --nj 1 --stage 3 --stop_stage 5 -- "$@" \
    > "$exp_root/logs/synth_$model.log" 2>&1 &
  echo "synth/$model: training in $exp_root/synth_$model (log: $exp_root/logs/synth_$model.log)"
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=$((failed + 1))
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=$((failed + 1))
  running=$((running - 1))
done
[ "$failed" -eq 0 ] || echo "compare_models.sh: $failed model(s) failed; see their log in $exp_root/logs/" >&2
dirs=()
compared=()  # the methods of the kinds of model compared (no note about methods none has)
for model in $models; do
  [ -d "$exp_root/synth_$model/decode" ] || continue
  dirs+=("$exp_root/synth_$model")
  if [[ $model == *transducer* ]]; then compared+=($transducer_methods); else compared+=($methods); fi
done
[ ${#dirs[@]} -gt 0 ] || exit 1
"$asrkit" compare "${dirs[@]}" --methods $(printf '%s\n' "${compared[@]}" | awk '!seen[$0]++') \
  | tee "$exp_root/synth_models.md"
[ "$failed" -eq 0 ]
