"""Decoding under autocast (asrkit.decoding.precision): what each setting means, that the
network really runs in bf16 while the scores stay fp32, that the decoder's N-best scores in
bf16 are close to fp32's, and that models which recognise their utterances give the same
transcripts in bf16 as in fp32 (CTC and transducer searches)."""

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
    with pytest.raises(ValueError, match=r"^--precision: must be one of fp32, bf16, fp16, auto, "
                                         r"got 'int8'$"):
        DecodePrecision.resolve("int8", "cpu", key="--precision")


def _linear_output_dtypes(model: torch.nn.Module) -> tuple[list[torch.dtype], list]:
    """Records the output dtype of every nn.Linear call of ``model``."""
    dtypes: list[torch.dtype] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
               for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return dtypes, handles


def test_ctc_searches_in_bf16_give_the_fp32_transcripts(trained):
    exp = load_experiment(trained.exp_dir)
    methods = search_methods(["ctc_greedy", "ctc_prefix_beam"], ["beam=4"], exp.model)
    results, dtypes = {}, {}
    for name in ("fp32", "bf16"):
        seen, handles = _linear_output_dtypes(exp.model)
        results[name] = decode_utterances(exp.model, exp.tokenizer, trained.utterances,
                                          exp.extractor, methods, exp.cmvn, batch_size=4,
                                          precision=DecodePrecision.resolve(name, "cpu"))
        for handle in handles:
            handle.remove()
        dtypes[name] = set(seen)
    assert dtypes == {"fp32": {torch.float32}, "bf16": {torch.bfloat16}}
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
    paths = [str(u.audio) for u in trained.utterances[:4]]
    texts = {}
    for name in ("fp32", "bf16"):
        transcriber = Transcriber.load(trained_transducer.hybrid, method=method,
                                       precision=name)
        assert transcriber.precision.name == name
        texts[name] = [t.text for t in transcriber.transcribe(paths)]
    assert texts["bf16"] == texts["fp32"] == [u.text for u in trained.utterances[:4]]
