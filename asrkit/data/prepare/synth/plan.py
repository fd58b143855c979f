"""What the synth corpus will contain: split sizes, and per utterance its text and voice.

Every random choice of an utterance comes from a seed derived from (seed, split, index),
so an utterance does not depend on the number of worker threads, and train utterance i
is the same whatever the corpus size. Voices go round a per-split shuffled list, so even
a small corpus uses every voice. dev, test and test_unseen sentences are redrawn until
they occur in no earlier split: no evaluation sentence is a training sentence.

    python -m asrkit.data.prepare.synth.plan 20     # print the plan of a 20-utterance corpus
"""

from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass

from asrkit.data.prepare.synth.sentences import Sentence, generate_sentence
from asrkit.data.prepare.synth.synthesize import SynthRequest
from asrkit.data.prepare.synth.voices import VoiceSet, discover_voices

SPLITS = ("train", "dev", "test", "test_unseen")
RATE_RANGE = (0.85, 1.2)    # speaking-rate factor (espeak 136..192 wpm; flite stretch 0.83..1.18)
LEVEL_RANGE = (0.3, 0.9)    # peak amplitude
MAX_REDRAWS = 1000          # attempts at an evaluation sentence not seen before


@dataclass(frozen=True)
class PlannedUtterance:
    id: str
    split: str
    text: str               # the transcript
    audio: str              # wav path relative to the output directory
    request: SynthRequest


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any parts, the same on every machine and Python run."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def split_sizes(num_utts: int, dev: float, test: float, test_unseen: float) -> dict[str, int]:
    """Utterances per split: each held-out split gets round(fraction * num_utts), at least 1."""
    fractions = {"dev": dev, "test": test, "test_unseen": test_unseen}
    for name, fraction in fractions.items():
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"--{name.replace('_', '-')}-fraction must be in [0, 1), got {fraction}")
    sizes = {name: max(1, round(f * num_utts)) for name, f in fractions.items()}
    train = num_utts - sum(sizes.values())
    if train < 1:
        raise ValueError(f"--num-utts {num_utts} leaves no training utterances "
                         f"(dev/test/test_unseen take {sum(sizes.values())})")
    return {"train": train, **sizes}


def plan_corpus(
    seed: int,
    sizes: dict[str, int],
    voices: VoiceSet,
    noise_snr: tuple[float, float] | None,
) -> list[PlannedUtterance]:
    """Every utterance of the corpus, split by split in SPLITS order."""
    plan: list[PlannedUtterance] = []
    used: set[str] = set()
    for split in SPLITS:
        pool = list(voices.unseen if split == "test_unseen" else voices.train)
        random.Random(derive_seed(seed, split, "voices")).shuffle(pool)
        for index in range(sizes.get(split, 0)):
            sentence = _sentence(seed, split, index, avoid=used if split != "train" else set())
            used.add(sentence.text)
            rng = random.Random(derive_seed(seed, split, index, "voice"))
            snr = rng.random()  # drawn even without noise so the other draws stay the same
            request = SynthRequest(
                voice=pool[index % len(pool)],
                text=sentence.text + ("?" if sentence.question else "."),
                rate=round(rng.uniform(*RATE_RANGE), 3),
                pitch=round(rng.uniform(-1.0, 1.0), 3),
                level=round(rng.uniform(*LEVEL_RANGE), 3),
                noise_snr=round(noise_snr[0] + snr * (noise_snr[1] - noise_snr[0]), 2)
                if noise_snr else None,
                noise_color=rng.choice(("white", "pink")),
                noise_seed=derive_seed(seed, split, index, "noise"),
            )
            utt_id = f"{split}-{index:06d}"
            plan.append(PlannedUtterance(utt_id, split, sentence.text, f"wav/{split}/{utt_id}.wav",
                                         request))
    return plan


def _sentence(seed: int, split: str, index: int, avoid: set[str]) -> Sentence:
    rng = random.Random(derive_seed(seed, split, index, "text"))
    for _ in range(MAX_REDRAWS):
        sentence = generate_sentence(rng)
        if sentence.text not in avoid:
            return sentence
    raise RuntimeError(f"synth: found no new sentence for {split} utterance {index}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for item in plan_corpus(0, split_sizes(n, 0.08, 0.08, 0.08), discover_voices(), (20.0, 40.0)):
        r = item.request
        print(f"{item.id}  {r.voice.speaker:<28} rate {r.rate:.2f} pitch {r.pitch:+.2f}  "
              f"{item.text}")
