"""A model that really recognises synth speech, made once per test session for the
transcription and export tests: a small CTC Conformer (2 blocks of width 64) trained on
9 synth utterances, joined at random into runs of 1-4, for at least 100 Adam steps of 8
runs and until CTC greedy search gets each of them and four runs of nine of them right
(100 steps, ~50 s on one core of a busy 2-core machine), laid out as `asrkit train` writes an experiment
(config in the checkpoint, tokenizer/, cmvn.json, checkpoints/last.pt).

It memorises its training utterances rather than generalising, which is what the tests
need: a recording made of those utterances has a known transcript and known utterance
boundaries, so stitching, timestamps, resampling and channel mixing are checked against
real numbers. The training loop is written out here (features computed once, the whole
corpus as one batch) instead of running asrkit's trainer, which costs ~30x more here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from asrkit.config import compose_train_config
from asrkit.data.audio import load_audio
from asrkit.data.cmvn import CMVNAccumulator
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.decoding.ctc_greedy import ctc_greedy_search
from asrkit.models.build import build_model
from asrkit.text.registry import fingerprint, train_tokenizer

MODEL = ["+experiment=synth/conformer", "encoder.d_model=64", "encoder.num_heads=2",
         "encoder.ffn_dim=128", "encoder.num_layers=2", "encoder.input_channels=32",
         "decoder.d_model=64", "decoder.num_heads=2", "decoder.ffn_dim=128",
         "decoder.num_layers=1", "encoder.dropout=0.0", "encoder.positional_dropout=0.0",
         "decoder.dropout=0.0", "decoder.positional_dropout=0.0", "model=ctc"]
MIN_STEPS, MAX_STEPS = 100, 250
MARGIN = 0.15  # seconds of silence the synth preparer keeps around each utterance's speech


@dataclass
class SynthModel:
    exp_dir: Path
    utterances: list[Utterance]   # what it was trained on (and recognises)


def synth_model(root: Path) -> SynthModel:
    """Prepare, train and save into ``root`` (once per session: the ``trained`` fixture,
    through made_once)."""
    from asrkit.data.prepare import run_preparer

    corpus = root / "corpus"
    run_preparer("synth", None, corpus, num_utts=12, seed=0, dev_fraction=0.01,
                 test_fraction=0.01, test_unseen_fraction=0.01)
    utterances = read_manifest(corpus / "train.jsonl")
    tokenizer = train_tokenizer([u.text for u in utterances], "char", None)
    extractor = FbankExtractor(num_mel_bins=40)
    feats = [extractor(load_audio(u.audio)) for u in utterances]
    accumulator = CMVNAccumulator(40)
    for f in feats:
        accumulator.add(f)
    cmvn = accumulator.result()
    exp_dir = root / "exp"
    config = compose_train_config([*MODEL, f"vocab_size={tokenizer.vocab_size}",
                                   f"exp_dir={exp_dir}"])
    normed = [cmvn(f) for f in feats]
    texts = [u.text for u in utterances]
    generator = torch.Generator().manual_seed(123)  # each alone, and 4 runs of 9 in a row
    runs = [[i] for i in range(len(utterances))] + [
        torch.randint(0, len(utterances), (9,), generator=generator).tolist() for _ in range(4)]
    check = _batch(normed, tokenizer.encode, texts, runs)
    generator = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
        decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda n: max(0.05, 1 - n / 160))
        for step in range(1, MAX_STEPS + 1):
            model.train()
            runs = _random_runs(len(utterances), generator)
            loss = model(*_batch(normed, tokenizer.encode, texts, runs))["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            decay.step()
            if step % 10 == 0 and step >= MIN_STEPS and _all_right(model, check):
                break
        else:
            raise AssertionError(f"the test model did not learn its {len(utterances)} "
                                 f"utterances in {MAX_STEPS} steps")
    finally:
        torch.set_num_threads(threads)
    tokenizer.save(exp_dir / "tokenizer")
    cmvn.save(exp_dir / "cmvn.json")
    config["tokenizer"] = {"dir": str(exp_dir / "tokenizer"), "fingerprint": fingerprint(tokenizer)}
    config["data"]["cmvn"] = str(exp_dir / "cmvn.json")
    (exp_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "config": config, "epoch": 1, "step": step},
               exp_dir / "checkpoints" / "last.pt")
    return SynthModel(exp_dir, utterances)


def _random_runs(count: int, generator: torch.Generator, batch: int = 8) -> list[list[int]]:
    """``batch`` examples, each 1-4 utterances in a row: the model learns to recognise an
    utterance wherever it lies in a longer window, not only at the start of its input."""
    lengths = torch.randint(1, 5, (batch,), generator=generator).tolist()
    return [torch.randint(0, count, (n,), generator=generator).tolist() for n in lengths]


def _batch(feats: list[torch.Tensor], encode, texts: list[str], runs: list[list[int]]):
    """Padded (feats, feat_lens, tokens, token_lens) of the utterances of each run joined."""
    joined = [torch.cat([feats[i] for i in run]) for run in runs]
    labels = [torch.tensor(encode(" ".join(texts[i] for i in run))) for run in runs]
    x = torch.nn.utils.rnn.pad_sequence(joined, batch_first=True)  # (B, T, 40)
    y = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-1)
    return (x, torch.tensor([f.size(0) for f in joined]), y,
            torch.tensor([t.numel() for t in labels]))


def _all_right(model, check) -> bool:
    """CTC greedy search gets every utterance, and all of them in a row, right."""
    x, x_lens, y, y_lens = check
    model.eval()
    with torch.no_grad():
        enc, enc_lens = model.encode(x, x_lens)
        nbest = ctc_greedy_search(model.ctc_log_probs(enc), enc_lens)
    return all(list(n[0].tokens) == y[b, : y_lens[b]].tolist() for b, n in enumerate(nbest))
