"""Decoding under autocast (asrkit.decoding.precision): what each setting means; that
decode_utterances and the Transcriber compute features outside autocast and run the
network and searches inside it; that every search method's best score in bf16 is close to
fp32's (scores stay fp32); that the decoder's N-best scores in bf16 are close to fp32's; and
that models which recognise their utterances give the same transcripts in bf16 as in fp32
(CTC and transducer searches)."""

from __future__ import annotations

import pytest
import torch

from asrkit.data.dataset import ASRDataset, collate_batch
from asrkit.data.manifest import read_manifest
from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search
from asrkit.decoding.decode_set import decode_utterances, encode_batch
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import search_methods
from asrkit.decoding.precision import DecodePrecision
from asrkit.inference.transcriber import Transcriber
from asrkit.native_bf16 import cuda_native_bf16
from tests.conftest import _tiny_model

CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {}\n\n"


def test_what_each_setting_means():
    assert DecodePrecision.resolve("fp32", "cpu") == DecodePrecision("fp32", "cpu")
    assert DecodePrecision.resolve("fp32", "cpu").settings() == {}
    bf16 = DecodePrecision.resolve("bf16", "cpu")
    assert bf16.settings() == {"precision": "bf16"} and bf16.reason == ""
    x = torch.ones(2, 3)
    with bf16.autocast():
        assert (x @ x.T).dtype == torch.bfloat16
    with DecodePrecision.resolve("fp16", "cpu").autocast():
        assert (x @ x.T).dtype == torch.float16
    with DecodePrecision.resolve("fp32", "cpu").autocast():
        assert (x @ x.T).dtype == torch.float32
    native = DecodePrecision.resolve("auto", "cpu", cpuinfo=CPUINFO.format("avx512_bf16"))
    assert (native.name, native.reason) == ("bf16", "CPU has AVX512-BF16")
    plain = DecodePrecision.resolve("auto", "cpu", cpuinfo=CPUINFO.format("avx512_vnni"))
    assert (plain.name, plain.reason) == ("fp32", "no native bf16 on this CPU")
    with pytest.raises(ValueError, match=r"^precision: must be one of fp32, bf16, fp16, auto, "
                                         r"got 'int8'$"):
        DecodePrecision.resolve("int8", "cpu")


def test_slow_choices_warn_and_auto_on_a_gpu_wants_compute_capability_8(monkeypatch, caplog):
    with caplog.at_level("WARNING", logger="asrkit.decoding.precision"):
        DecodePrecision.resolve("bf16", "cpu", cpuinfo=CPUINFO.format("avx512_vnni"))
        DecodePrecision.resolve("fp16", "cpu")
        DecodePrecision.resolve("bf16", "cpu", cpuinfo=CPUINFO.format("amx_bf16"))
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "precision=bf16 on a CPU without native bf16", "precision=fp16 on the CPU"]
    # torch.cuda.is_bf16_supported() is True on older GPUs too (emulated): not the test
    for capability, expected in (((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _d, c=capability: c)
        assert cuda_native_bf16("cuda:0") == (expected == "bf16")
        assert DecodePrecision.resolve("auto", "cuda:0").name == expected


class Recorder:
    """Stands in for an extractor or a search method: records whether CPU autocast was on
    at each call, passes the call on, and everything else too."""

    def __init__(self, inner):
        self.inner, self.autocast = inner, set()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, *args, **kwargs):
        self.autocast.add(torch.is_autocast_enabled("cpu"))
        return self.inner(*args, **kwargs)


def _linear_output_dtypes(model: torch.nn.Module) -> tuple[list[torch.dtype], list]:
    """Records the output dtype of every nn.Linear call of ``model``."""
    dtypes: list[torch.dtype] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
               for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return dtypes, handles


def test_ctc_searches_in_bf16_give_the_fp32_transcripts(trained):
    """Features outside autocast, encoder and searches inside. The trained model's closest
    CTC decision (top-1 against top-2 log-prob, 0.40) is wider than what bf16 moves a
    log-prob here (< 0.25), so the transcripts must not change."""
    exp = load_experiment(trained.exp_dir)
    results, dtypes, autocast = {}, {}, {}
    for name in ("fp32", "bf16"):
        methods = {m: Recorder(method) for m, method in search_methods(
            ["ctc_greedy", "ctc_prefix_beam"], ["beam=4"], exp.model).items()}
        extractor = Recorder(exp.extractor)
        seen, handles = _linear_output_dtypes(exp.model)
        results[name] = decode_utterances(exp.model, exp.tokenizer, trained.utterances,
                                          extractor, methods, exp.cmvn, batch_size=4,
                                          precision=DecodePrecision.resolve(name, "cpu"))
        for handle in handles:
            handle.remove()
        dtypes[name] = set(seen)
        autocast[name] = (extractor.autocast, *(m.autocast for m in methods.values()))
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    assert autocast == {"fp32": ({False}, {False}, {False}), "bf16": ({False}, {True}, {True})}
    refs = {u.id: u.text for u in trained.utterances}
    for method in methods:
        assert results["fp32"].hyps[method] == refs, method
        assert results["bf16"].hyps[method] == refs, method


def test_decoder_scores_of_an_nbest_in_bf16_are_close_to_fp32(synth_exp, synth_dir):
    """The attention decoder over prefix trees (what attention_rescoring and
    transducer_rescoring run) under bf16 autocast: fp32 scores, within 2 % of fp32's."""
    exp = load_experiment(synth_exp, "avg_2.pt")
    utterances = read_manifest(synth_dir / "train.jsonl")[:4]
    dataset = ASRDataset(utterances, [[] for _ in utterances], exp.extractor, cmvn=exp.cmvn)
    batch = collate_batch([dataset[i] for i in range(len(utterances))])
    with torch.inference_mode():
        enc, enc_lens, ctc, _ = encode_batch(exp.model, batch["feats"], batch["feat_lens"])
        nbest = [[list(h.tokens) for h in hyps]
                 for hyps in ctc_prefix_beam_search(ctc, enc_lens, 5, exp.model.blank_id)]
        fp32 = exp.model.score_nbest(enc, enc_lens, nbest)
        with DecodePrecision.resolve("bf16", "cpu").autocast():
            bf16 = exp.model.score_nbest(enc, enc_lens, nbest)
    assert sum(len(hyps) for hyps in nbest) > 8
    for ours, ref in zip(bf16, fp32, strict=True):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, ref, rtol=0.02, atol=0.05)
        assert not torch.equal(ours, ref)  # it did run in bf16


@pytest.mark.parametrize("method", ["transducer_greedy", "transducer_modified_beam"])
def test_transducer_searches_in_bf16_give_the_fp32_transcripts(trained, trained_transducer,
                                                                method):
    """Through the Transcriber: features outside autocast, the network (encoder, prediction
    network, joiner) in bf16, the same transcripts."""
    paths = [str(u.audio) for u in trained.utterances[:4]]
    texts, dtypes = {}, {}
    for name in ("fp32", "bf16"):
        transcriber = Transcriber.load(trained_transducer.hybrid, method=method,
                                       precision=name)
        transcriber.extractor = extractor = Recorder(transcriber.extractor)
        seen, handles = _linear_output_dtypes(transcriber.model)
        texts[name] = [t.text for t in transcriber.transcribe(paths)]
        for handle in handles:
            handle.remove()
        dtypes[name] = set(seen)
        assert extractor.autocast == {False}
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
    assert texts["bf16"] == texts["fp32"] == [u.text for u in trained.utterances[:4]]


ALL_METHODS = ["ctc_greedy", "ctc_prefix_beam", "attention", "attention_rescoring", "joint",
               "transducer_greedy", "transducer_modified_beam", "transducer_beam",
               "transducer_rescoring"]


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
def test_every_search_runs_in_bf16_and_scores_as_fp32(prediction):
    """A random hybrid (CTC, attention decoder, transducer with an LSTM or stateless
    prediction network), every method under bf16 autocast: fp32 CTC log-probs, and where
    bf16 finds the same best hypothesis as fp32 (most utterances: a random model's near
    ties may go the other way), its score within 2 % of fp32's."""
    model, _ = _tiny_model(extra=(f"transducer={prediction}", "model.transducer_weight=0.5",
                                  "transducer.prediction_dim=32", "transducer.joint_dim=32"))
    methods = search_methods(ALL_METHODS, ["beam=3"], model)
    gen = torch.Generator().manual_seed(0)
    feats, feat_lens = torch.randn(3, 160, 80, generator=gen), torch.tensor([160, 130, 100])
    best = {}
    for name in ("fp32", "bf16"):
        with torch.inference_mode(), DecodePrecision.resolve(name, "cpu").autocast():
            enc, enc_lens, ctc, _ = encode_batch(model, feats, feat_lens)
            assert ctc.dtype == torch.float32
            best[name] = {m: [(tuple(hyps[0].tokens), float(hyps[0].score))
                              for hyps in method(model, enc, enc_lens, ctc)]
                          for m, method in methods.items()}
    same = 0
    for method in ALL_METHODS:
        for (tokens, score), (ref_tokens, ref) in zip(best["bf16"][method], best["fp32"][method],
                                                      strict=True):
            if tokens == ref_tokens:
                same += 1
                assert score == ref or abs(score - ref) <= 0.02 * abs(ref) + 0.05, method
    assert same >= 2 * len(ALL_METHODS)  # of 3 utterances each