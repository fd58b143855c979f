"""benchmarks/decode.py's per-utterance Python reference: exact on tiny inputs (against
enumerating every CTC path), and the same N-best as asrkit's batched prefix beam search."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search
from benchmarks import decode


def collapse(path: tuple[int, ...], blank: int = 0) -> tuple[int, ...]:
    labels = [k for k, _ in itertools.groupby(path)]
    return tuple(k for k in labels if k != blank)


def test_reference_with_a_full_beam_gives_exact_labelling_probabilities():
    torch.manual_seed(0)
    frames, vocab = 4, 3
    log_probs = torch.randn(frames, vocab).log_softmax(-1)
    exact: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        score = sum(float(log_probs[t, s]) for t, s in enumerate(path))
        label = collapse(path)
        exact[label] = float(torch.logaddexp(torch.tensor(exact.get(label, -math.inf)),
                                             torch.tensor(score)))
    nbest = decode.reference_prefix_beam(log_probs, beam=len(exact), top_k=vocab - 1)
    assert len(nbest) == len(exact)
    for labels, score in nbest:
        assert score == pytest.approx(exact[labels], abs=1e-5)


@pytest.mark.parametrize("peaky", [False, True])
def test_reference_and_batched_search_agree(peaky):
    torch.manual_seed(1)
    lengths = torch.tensor([30, 17, 25])
    if peaky:
        log_probs = decode.peaky_log_probs(lengths, vocab=12)
    else:
        log_probs = (0.5 * torch.randn(3, 30, 12)).log_softmax(-1)
    batched = ctc_prefix_beam_search(log_probs, lengths, beam=5)
    for b in range(3):
        reference = decode.reference_prefix_beam(log_probs[b, : int(lengths[b])], beam=5)
        assert [labels for labels, _ in reference] == [h.tokens for h in batched[b]]
        for (_, score), hyp in zip(reference, batched[b], strict=True):
            assert score == pytest.approx(hyp.score, abs=1e-3)


def test_peaky_log_probs_are_distributions_with_labels_on_some_frames():
    lengths = torch.tensor([200, 120])
    log_probs = decode.peaky_log_probs(lengths, vocab=50)
    assert log_probs.shape == (2, 200, 50)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 200))
    label_share = (log_probs.argmax(-1) != 0).float().mean().item()
    assert 0.25 < label_share < 0.45  # ~0.35 labels per frame


def test_a_trained_experiment_is_searched_in_decodes_batches(trained, tmp_path, capsys):
    """--exp: the experiment's own log-probs on --manifest, batched as `asrkit decode`
    batches (make_batches: longest first, --batch-size at most), then the batched search
    against the reference on them; an utterance without an encoder frame is left out."""
    import argparse
    from dataclasses import replace

    import soundfile

    from asrkit.data.manifest import write_manifest
    from asrkit.decoding.ctc_greedy import ctc_greedy_search
    from asrkit.text.registry import load_tokenizer

    utterances = trained.utterances
    soundfile.write(tmp_path / "blip.wav", torch.zeros(800).numpy(), 16000)  # 50 ms
    blip = replace(utterances[0], id="blip", audio=str(tmp_path / "blip.wav"), duration=0.05)
    manifest = tmp_path / "test.jsonl"
    write_manifest(manifest, [*utterances, blip])
    args = argparse.Namespace(exp=trained.exp_dir, checkpoint=None, manifest=manifest,
                              device="cpu", exp_utts=0, batch_size=4, beam=4, ctc_weight=0.3,
                              precision=["fp32"], repeats=1)
    model, batches, audio, _ = decode.experiment_batches(args)
    assert "1 utterance(s) of" in capsys.readouterr().out  # the blip: no encoder frame
    assert audio == pytest.approx(sum(u.duration for u in utterances))  # without the blip
    assert [enc.size(0) for enc, _, _ in batches] == [4, 4, 1]  # the nine others
    lengths = [int(n) for _, enc_lens, _ in batches for n in enc_lens]
    assert lengths == sorted(lengths, reverse=True)  # longest first, across batches too
    longest = max(utterances, key=lambda u: u.duration)
    tokenizer = load_tokenizer(trained.exp_dir / "tokenizer")
    texts = [tokenizer.decode(hyps[0].tokens) for _, enc_lens, log_probs in batches
             for hyps in ctc_greedy_search(log_probs, enc_lens)]
    assert texts[0] == longest.text  # the model memorised its utterances
    assert sorted(texts) == sorted(u.text for u in utterances)

    decode.compare_searches("trained model", model, batches, audio, args)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1  # a CTC-only model: no rescoring row
    assert rows[0][:4] == ["trained", "model", "ctc_prefix_beam", "fp32"]
    assert rows[0][-2] == "100%,"  # the same best hypothesis as the reference on all nine

    args.manifest = None
    decode.experiment_rows(args)
    assert capsys.readouterr().out.startswith(f"(no rows for {trained.exp_dir}: its lists need")
