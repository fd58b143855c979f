#!/usr/bin/env bash
# Build .gpu_bundle/ here, for benchmarks/gpu_check.sh on a GPU machine that has torch,
# torchaudio, sentencepiece and tensorboard but not the rest of asrkit's dependencies, no
# espeak-ng/flite and no network (this project's lent H200 is such a machine):
#   .gpu_bundle/whl/   wheels (CPython 3.12, manylinux x86-64) of the packages it lacks, at
#                      the versions of this checkout's venv (uv.lock)
#   .gpu_bundle/data/  a synth corpus in FLAC (--num-utts, default 400), its CMVN (40 mel bins)
#                      and a bpe-100 tokenizer: what the train, ddp and decode sections use
# gpu_check.sh installs the wheels into a temporary directory and uses the corpus when the
# bundle is there. The bundle is git-ignored; the device tool carries it (carry: .gpu_bundle).
#
#   benchmarks/gpu_bundle.sh [--num-utts 400]     # needs PyPI, espeak-ng or flite, the venv
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
num_utts=400
[ "${1:-}" = "--num-utts" ] && num_utts=$2
out=.gpu_bundle
venv=.venv/bin/python
rm -rf "$out.partial" && mkdir -p "$out.partial/whl"
# the venv's versions of what the GPU image lacks (its package list: /work/.library/device)
packages=$("$venv" - <<'PY'
from importlib.metadata import version
names = ["hydra-core", "omegaconf", "antlr4-python3-runtime", "jiwer", "rapidfuzz",
         "soundfile", "cffi", "pycparser", "click"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PY
)
for spec in $packages; do
  case $spec in
    antlr4-python3-runtime*)  # published as a source archive only: build its (pure) wheel
      python3 -m pip wheel -q --no-deps -w "$out.partial/whl" "$spec" ;;
    *)
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 --platform any -d "$out.partial/whl" "$spec" ;;
  esac
done
data=$out.partial/data
"$venv" -m asrkit prepare synth --out "$data" --num-utts "$num_utts" --seed 1 --nj 2 >/dev/null
# FLAC instead of WAV: half the bytes to carry (the device tool carries 64 MiB in all)
"$venv" - "$data" <<'PY'
import json, sys
from pathlib import Path
import soundfile as sf
data = Path(sys.argv[1])
for manifest in sorted(data.glob("*.jsonl")):
    lines = []
    for line in manifest.read_text().splitlines():
        utt = json.loads(line)
        wav = (manifest.parent / utt["audio"]) if not Path(utt["audio"]).is_absolute() else Path(utt["audio"])
        flac = wav.with_suffix(".flac")
        samples, rate = sf.read(wav, dtype="int16")
        sf.write(flac, samples, rate, subtype="PCM_16")
        wav.unlink()
        utt["audio"] = str(flac.relative_to(manifest.parent))
        lines.append(json.dumps(utt, ensure_ascii=False))
    manifest.write_text("\n".join(lines) + "\n")
PY
"$venv" -m asrkit cmvn --manifest "$data/train.jsonl" --out "$data/cmvn.json" \
  --num-mel-bins 40 --nj 2 >/dev/null
"$venv" -m asrkit tokenizer --manifest "$data/train.jsonl" --type bpe --vocab-size 100 \
  --out "$data/bpe100" >/dev/null
rm -rf "$out" && mv "$out.partial" "$out"
du -sh "$out" "$out/whl" "$out/data"
