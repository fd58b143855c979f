#!/usr/bin/env bash
# The GPU check: one command, one GPU, within 8 minutes. Prints the bf16 training-step table
# (synth/conformer, aishell/conformer, librispeech/conformer_l; eager and torch.compile'd:
# ms/step, input frames/s, peak memory, MFU, the attention kernels that ran), a 300-update
# synth training run whose loss must fall, a trainer.devices=2 run (two DDP ranks on the one
# GPU) and the decoding RTF and WER of every search method. Each section runs in its own try: a failure prints one line and the
# rest go on. Details and options: benchmarks/gpu_check.py (--help). On a machine without
# this checkout's venv and without network, build the bundle here first and carry it:
# benchmarks/gpu_bundle.sh (wheels of the missing packages and a prepared synth corpus).
#
#   benchmarks/gpu_check.sh                         # everything: 450 s budget, 475 s at most
#   benchmarks/gpu_check.sh --peak-tflops 989       # MFU against this dense bf16 peak
#   benchmarks/gpu_check.sh --only steps --budget-s 300 | tee gpu_check.txt
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
# without the venv (a GPU machine with torch but not the rest, no network): the wheels that
# benchmarks/gpu_bundle.sh put in .gpu_bundle/whl, installed for this run only
if [ ! -x "$root/.venv/bin/python" ] && [ -d "$root/.gpu_bundle/whl" ]; then
  site=/tmp/asrkit_gpu_site
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$root"/.gpu_bundle/whl/*.whl || { echo "gpu_check: installing" \
    ".gpu_bundle/whl failed" >&2; exit 1; }
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}  # asrkit from this checkout
budget=450
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --budget-s) budget=${args[i + 1]:-450} ;;
    --budget-s=*) budget=${args[i]#--budget-s=} ;;
  esac
done
# the script keeps to its budget; the hard limit (25 s more) guards against a hang outside it
exec timeout --kill-after=5 "$(( $(printf '%.0f' "$budget") + 20 ))"s \
  env PYTHONUNBUFFERED=1 "$python" benchmarks/gpu_check.py "$@"
