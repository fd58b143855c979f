"""Transducer models that really recognise synth speech, made once per test session from
the trained CTC model of tests/inference/synth_model.py: a stateless transducer (Ghodsi et
al. 2020; embedding and joint of 64) is trained on that model's frozen encoder outputs of
its 9 utterances (where training a transducer with its encoder from scratch took > 300 s),
until transducer greedy search and modified beam search get every utterance right. Saved as
two experiments laid out as `asrkit train` writes them:

- ``hybrid``: the CTC head and the transducer (model.transducer_weight 0.5, no decoder);
- ``alone``: the same encoder and transducer without the CTC head (model=transducer).

The head is trained with the transducer loss plus the one-label-per-frame ("modified")
transducer loss of k2 (``_one_label_per_frame_loss``, written here: torchaudio's
``rnnt_loss`` has no such variant). With the transducer loss alone the head learnt, on an
Intel Xeon, to emit the doubled "b" of "rabbit" on one frame, which modified beam search
(one label per frame) cannot follow; with the modified loss alone it never learnt what
follows a label within a frame, which greedy search asks.

Each window a test transcribes is one or a few of the training utterances, so texts and
times are checked against the utterances' known transcripts and boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from asrkit.config import compose_train_config
from asrkit.data.audio import load_audio
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.transducer_greedy import transducer_greedy_search
from asrkit.decoding.transducer_modified_beam import transducer_modified_beam_search
from asrkit.models.build import build_model
from tests.inference.synth_model import MODEL, SynthModel, _batch

TRANSDUCER = ["transducer=stateless", "transducer.prediction_dim=64", "transducer.joint_dim=64"]
MAX_STEPS = 300


@dataclass
class SynthTransducer:
    hybrid: Path        # experiment: encoder + CTC head + transducer
    alone: Path         # experiment: encoder + transducer


def synth_transducer(ctc_model: SynthModel, root: Path) -> SynthTransducer:
    """Train the transducer on ``ctc_model``'s encoder and save both experiments in root
    (once per session: the ``trained_transducer`` fixture, through made_once)."""
    exp = load_experiment(ctc_model.exp_dir)
    vocab = f"vocab_size={exp.tokenizer.vocab_size}"
    hybrid_config = compose_train_config([*MODEL, vocab, *TRANSDUCER, "+model.transducer_weight=0.5",
                                          f"exp_dir={root / 'hybrid'}"])
    torch.manual_seed(0)
    model = build_model(hybrid_config)
    loaded = model.load_state_dict(exp.model.state_dict(), strict=False)
    assert not loaded.unexpected_keys and all(k.startswith("transducer.")
                                              for k in loaded.missing_keys)
    model.eval()
    texts = [u.text for u in ctc_model.utterances]
    feats = [exp.cmvn(exp.extractor(load_audio(u.audio))) for u in ctc_model.utterances]
    x, x_lens, y, y_lens = _batch(feats, exp.tokenizer.encode, texts,
                                  [[i] for i in range(len(texts))])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            enc, enc_lens = model.encode(x, x_lens)  # the frozen encoder, once
        _train_head(model.transducer, enc, enc_lens, y, y_lens)
    finally:
        torch.set_num_threads(threads)
    state = model.state_dict()
    _save(root / "hybrid", hybrid_config, state, exp)
    alone_config = compose_train_config([*(m for m in MODEL if m != "model=ctc"), vocab,
                                         "model=transducer", *TRANSDUCER,
                                         f"exp_dir={root / 'alone'}"])
    alone_state = {k: v for k, v in state.items() if not k.startswith("ctc.")}
    build_model(alone_config).load_state_dict(alone_state)  # strict: the same parameters
    _save(root / "alone", alone_config, alone_state, exp)
    return SynthTransducer(root / "hybrid", root / "alone")


def _train_head(head, enc, enc_lens, y, y_lens) -> None:
    optimizer = torch.optim.Adam(head.parameters(), lr=0.02)
    torch.manual_seed(0)
    for step in range(1, MAX_STEPS + 1):
        head.train()
        loss = (head(enc, enc_lens, y, y_lens)["loss_transducer"]
                + _one_label_per_frame_loss(head, enc, enc_lens, y, y_lens))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            head.eval()
            if all(_all_right(search(head, enc, enc_lens), y, y_lens)
                   for search in (transducer_greedy_search, transducer_modified_beam_search)):
                return
    raise AssertionError(f"the test transducer did not learn its utterances in {MAX_STEPS} "
                         f"steps")


def _one_label_per_frame_loss(head, enc, enc_lens, y, y_lens) -> torch.Tensor:
    """-log P(y | x) per utterance (mean) over the alignments that take one frame per label
    or blank: from lattice node (t, u) a blank goes to (t + 1, u), label u + 1 to (t + 1,
    u + 1); every frame is used (y_lens <= enc_lens)."""
    assert bool((y_lens <= enc_lens).all()), "one label per frame needs y_lens <= enc_lens"
    # (B, T, J), (B, U + 1, J), targets (B, U) padded with blank: as the head's own loss
    enc_proj, pred_proj, targets, enc_lens, y_lens = head._lattice_inputs(enc, enc_lens, y,
                                                                          y_lens)
    log_probs = head.joiner(enc_proj[:, :, None], pred_proj[:, None]).log_softmax(-1)
    blank = log_probs[..., head.blank_id]  # (B, T, U + 1)
    label = log_probs[:, :, :-1].gather(3, targets[:, None, :, None].expand(
        -1, log_probs.size(1), -1, 1)).squeeze(3)  # (B, T, U): label u + 1 at node (t, u)
    never = -1e30  # not reached (finite: the gradient of logaddexp(-inf, -inf) is NaN)
    alpha = torch.full_like(blank[:, 0], never)  # (B, U + 1) before frame t
    alpha[:, 0] = 0.0
    for t in range(enc_proj.size(1)):
        step = torch.logaddexp(alpha + blank[:, t], torch.nn.functional.pad(
            alpha[:, :-1] + label[:, t], (1, 0), value=never))
        alpha = torch.where((t < enc_lens)[:, None], step, alpha)
    return -alpha.gather(1, y_lens[:, None]).mean()


def _all_right(nbest, y, y_lens) -> bool:
    """Whether every utterance's best hypothesis is its transcript."""
    return all(list(n[0].tokens) == y[b, : y_lens[b]].tolist() for b, n in enumerate(nbest))


def _save(exp_dir: Path, config: dict, state: dict, source) -> None:
    """An experiment directory as `asrkit train` leaves it (config in the checkpoint)."""
    source.tokenizer.save(exp_dir / "tokenizer")
    source.cmvn.save(exp_dir / "cmvn.json")
    config["tokenizer"] = {"dir": str(exp_dir / "tokenizer"),
                           "fingerprint": source.config["tokenizer"]["fingerprint"]}
    config["data"]["cmvn"] = str(exp_dir / "cmvn.json")
    (exp_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "config": config, "epoch": 1, "step": 1},
               exp_dir / "checkpoints" / "last.pt")
