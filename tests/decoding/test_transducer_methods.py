"""The transducer's search methods through `asrkit decode`, configured like the others, on
a tiny random hybrid (transducer + CTC + attention decoder) and a transducer alone."""

from __future__ import annotations

import json

import pytest
import torch

from asrkit.bin.decode import main as decode
from asrkit.config import ConfigError
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import search_methods

HYBRID = ("transducer=stateless", "model.transducer_weight=0.5",
          "transducer.prediction_dim=32", "transducer.joint_dim=32")
METHODS = ["transducer_greedy", "transducer_modified_beam", "transducer_beam",
           "transducer_rescoring"]


def test_every_transducer_method_decodes_a_hybrid(make_experiment, synth_dir, tmp_path, capsys):
    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl", extra=HYBRID)
    assert decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", f"methods=[{','.join(METHODS)}]",
                   "beam=3", f"test_sets=[{synth_dir / 'test.jsonl'}]"]) == 0
    runs = {json.loads(p.read_text())["method"]: p.parent
            for p in (exp / "decode" / "avg_2" / "test").glob("*/wer.json")}
    assert set(runs) == set(METHODS)
    assert runs["transducer_rescoring"].name == (
        "transducer_rescoring-beam3-transducer_weight0.5-ctc_weight0.3")
    out = capsys.readouterr().out
    assert all(f"{m:<20} WER" in out for m in METHODS)


def test_rescoring_with_the_transducer_alone_keeps_the_beams_order(make_experiment, synth_dir,
                                                                   tmp_path):
    exp = load_experiment(make_experiment(tmp_path / "exp", synth_dir / "train.jsonl",
                                          extra=HYBRID), "avg_2.pt")
    methods = search_methods(["transducer_beam", "transducer_rescoring"],
                             ["beam=3", "search.transducer_rescoring.transducer_weight=1.0",
                              "search.transducer_rescoring.ctc_weight=0.0"], exp.model)
    feats = torch.randn(2, 120, 80)
    with torch.no_grad():
        enc, lens = exp.model.encode(feats, torch.tensor([120, 90]))
        ctc = exp.model.ctc_log_probs(enc)
        beam = methods["transducer_beam"](exp.model, enc, lens, ctc)
        rescored = methods["transducer_rescoring"](exp.model, enc, lens, ctc)
    for a, b in zip(beam, rescored):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b])


def test_rescoring_combines_the_three_scores(make_experiment, synth_dir, tmp_path):
    """0.5 x the beam's transducer score + 0.3 x log P_ctc (torch's ctc_loss: -inf for a
    hypothesis CTC cannot emit, as the random transducer's repeated labels at one per frame
    are) + 0.2 x the decoder's log-likelihood of each hypothesis scored alone."""
    exp = load_experiment(make_experiment(tmp_path / "exp", synth_dir / "train.jsonl",
                                          extra=HYBRID), "avg_2.pt")
    model = exp.model
    methods = search_methods(["transducer_beam", "transducer_rescoring"], ["beam=3"], model)
    with torch.no_grad():
        enc, lens = model.encode(torch.randn(2, 120, 80), torch.tensor([120, 90]))
        ctc = model.ctc_log_probs(enc)
        beam = methods["transducer_beam"](model, enc, lens, ctc)
        rescored = methods["transducer_rescoring"](model, enc, lens, ctc)
        for b, hyps in enumerate(beam):
            expected = {}
            for hyp in hyps:
                att = model.score_hypotheses(enc[b: b + 1, : lens[b]], lens[b: b + 1],
                                             [hyp.tokens]).item()
                log_p_ctc = -torch.nn.functional.ctc_loss(
                    ctc[b, : lens[b]], torch.tensor(hyp.tokens, dtype=torch.long),
                    lens[b: b + 1], torch.tensor([len(hyp.tokens)]),
                    blank=model.blank_id, reduction="sum").item()
                expected[hyp.tokens] = 0.5 * hyp.score + 0.3 * log_p_ctc + 0.2 * att
            assert {h.tokens for h in rescored[b]} == set(expected)
            for hyp in rescored[b]:
                assert hyp.score == pytest.approx(expected[hyp.tokens], abs=1e-3)
            assert [h.score for h in rescored[b]] == pytest.approx(
                sorted(expected.values(), reverse=True), abs=1e-3)
    # feasible ones too: with ctc_weight 0 every score is finite and the CTC term drops out
    no_ctc = search_methods(["transducer_rescoring"],
                            ["beam=3", "search.transducer_rescoring.ctc_weight=0.0"], model)
    with torch.no_grad():
        for b, hyps in enumerate(no_ctc["transducer_rescoring"](model, enc, lens, ctc)):
            for hyp in hyps:
                att = model.score_hypotheses(enc[b: b + 1, : lens[b]], lens[b: b + 1],
                                             [hyp.tokens]).item()
                trans = next(h.score for h in beam[b] if h.tokens == hyp.tokens)
                assert hyp.score == pytest.approx(0.5 * trans + 0.5 * att, abs=1e-3)


def test_a_transducer_alone_refuses_ctc_methods(make_experiment, synth_dir, tmp_path):
    exp = load_experiment(make_experiment(tmp_path / "exp", synth_dir / "train.jsonl",
                                          extra=("model=transducer", "transducer=stateless",
                                                 "transducer.prediction_dim=32",
                                                 "transducer.joint_dim=32")), "avg_2.pt")
    with pytest.raises(ConfigError, match="'ctc_greedy' needs a CTC head, which this model has "
                                          "not \\(its methods: transducer_greedy"):
        search_methods(["ctc_greedy"], model=exp.model)
    assert set(search_methods(METHODS[:3], model=exp.model)) == set(METHODS[:3])
