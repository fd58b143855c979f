"""The utterance dataset: audio -> (speed perturbation) -> fbank -> CMVN -> (SpecAugment).

Each item's random choices come from a generator seeded by (seed, epoch, index), so the
same epoch yields the same features whichever worker computes them and after a resume.
An utterance that fails to load — unreadable, truncated or non-finite audio
(asrkit.data.audio), or non-finite features — becomes `{"id", "error"}` instead of an
exception; the loader logs it with its id and reason and counts it against
`max_fail_fraction`, and it never reaches a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from asrkit.data.audio import AudioError, load_audio
from asrkit.data.augment import SpecAugment, speed_perturb
from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import Utterance

IGNORE_ID = -1  # padding value of `tokens` in a batch
_MIX = 1_000_003


class ASRDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        utterances: Sequence[Utterance],
        token_ids: Sequence[Sequence[int]],
        extractor: FbankExtractor,
        cmvn: GlobalCMVN | None = None,
        specaug: SpecAugment | None = None,
        speed_factors: Sequence[float] = (),
        dither: float = 0.0,
        seed: int = 0,
    ):
        self.utterances = list(utterances)
        self.token_ids = [list(t) for t in token_ids]
        self.extractor = extractor
        self.cmvn = cmvn
        self.specaug = specaug
        self.speed_factors = list(speed_factors)
        self.dither = dither
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterances)

    def _generator(self, index: int) -> torch.Generator:
        key = ((self.seed * _MIX + self.epoch) * _MIX + index) % (2**63)
        return torch.Generator().manual_seed(key)

    def __getitem__(self, index: int) -> dict:
        utt = self.utterances[index]
        gen = self._generator(index)
        try:
            wave = load_audio(utt.audio, utt.start, utt.end, self.extractor.sample_rate)
            wave = speed_perturb(wave, self.extractor.sample_rate, self.speed_factors, gen)
            feats = self.extractor(wave, self.dither, gen)
        except (AudioError, ValueError, RuntimeError) as e:
            return {"id": utt.id, "error": str(e)}
        if self.cmvn is not None:
            feats = self.cmvn(feats)
        if not bool(torch.isfinite(feats).all()):  # e.g. CMVN statistics with a zero variance
            return {"id": utt.id, "error": f"{utt.audio}: non-finite features (NaN/inf)"}
        if self.specaug is not None:
            feats = self.specaug(feats, gen)
        return {"id": utt.id, "feats": feats, "tokens": torch.tensor(self.token_ids[index])}


def collate_batch(items: list[dict]) -> dict:
    """Pad a list of items into a batch; failed items are listed under `failed`.

    feats (B, T, bins) zero-padded, feat_lens (B,), tokens (B, U) padded with IGNORE_ID,
    token_lens (B,), ids [B], failed [(id, reason)].
    """
    good = [item for item in items if "error" not in item]
    failed = [(item["id"], item["error"]) for item in items if "error" in item]
    if not good:
        return {"ids": [], "failed": failed}
    return {
        "ids": [item["id"] for item in good],
        "feats": pad_sequence([item["feats"] for item in good], batch_first=True),
        "feat_lens": torch.tensor([item["feats"].shape[0] for item in good]),
        "tokens": pad_sequence([item["tokens"] for item in good], batch_first=True,
                               padding_value=IGNORE_ID),
        "token_lens": torch.tensor([len(item["tokens"]) for item in good]),
        "failed": failed,
    }
