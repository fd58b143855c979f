"""An exported model (``asrkit export``) behind the decoding interface of ``ASRModel``, run
with onnxruntime or TorchScript: no PyTorch model is built from the config.

    model = ExportedModel.load("exported/", threads=1)
    enc, enc_lens = model.encode(feats, feat_lens)       # (B, T', D), (B,)
    ctc = model.ctc_log_probs(enc)                       # (B, T', V)
    model.score_hypotheses(enc, enc_lens, [[5, 9], [5, 7, 9]])   # attention rescoring
    model.decoder_step(prefixes, enc, enc_mask, cache)   # attention / joint beam search
    model.transducer.joint(enc_proj, pred)               # transducer searches
    model.encoder_chunk(chunk_feats, offset, *caches)    # the streaming step (--streaming)

so every search method of asrkit.decoding runs on it unchanged (``transducer``: the
transducer graphs behind TransducerHead's decoding interface,
asrkit.inference.exported_transducer; None without one, as ``ctc`` and ``decoder``). The decoder graph is the
teacher-forced decoder (the one rescoring needs); ``decoder_step`` runs it over the whole
prefix at every step and returns an empty cache (the eager model caches each layer's
states), so attention and joint beam search cost more per step than eagerly: use
``ctc_greedy``, ``ctc_prefix_beam`` or ``attention_rescoring`` with exported models.

Inputs and outputs are torch tensors (CPU); the graphs get and give numpy arrays
(onnxruntime) or tensors (TorchScript).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from asrkit.inference.exported_dir import STREAMING_GRAPH, ExportedDir, ExportInfo
from asrkit.inference.exported_encoder_chunk import ExportedEncoderChunk
from asrkit.inference.exported_transducer import ExportedTransducerHead
from asrkit.models.decoder_io import hypothesis_batch
from asrkit.models.mask import padding_mask


class OnnxGraph:
    """One ONNX graph in an onnxruntime CPU session."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort  # the `export` extra

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # no busy-waiting between runs: torch (features, search) runs in between on the
        # same cores, and spinning onnxruntime threads slowed 2-thread runs ~2x here
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feed = {name: np.ascontiguousarray(x.detach().cpu().numpy())
                for name, x in zip(self.input_names, inputs)}
        return tuple(torch.from_numpy(out) for out in self.session.run(None, feed))


class TorchScriptGraph:
    """One traced TorchScript module (torch.jit.load); threads: torch's own setting."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            out = self.module(*inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


GRAPH_RUNNERS = {"onnx": OnnxGraph, "torchscript": TorchScriptGraph}


class ExportedModel:
    def __init__(self, info: ExportInfo, graphs: dict) -> None:
        self.info = info
        self.family = info.family
        self.vocab_size = info.vocab_size
        self.blank_id, self.sos_id, self.eos_id = info.blank_id, info.sos_id, info.eos_id
        self.graphs = graphs
        self.ctc = graphs.get("ctc")          # as ASRModel's parts: None where absent
        self.decoder = graphs.get("decoder")  # None: CTC-only
        self.transducer = (ExportedTransducerHead(graphs, info.transducer, info.vocab_size)
                           if info.transducer is not None else None)
        self.encoder_chunk = (ExportedEncoderChunk(graphs[STREAMING_GRAPH], info.streaming,
                                                   info.graphs[STREAMING_GRAPH].outputs)
                              if info.streaming is not None else None)

    @classmethod
    def load(cls, directory: str | Path, threads: int | None = None,
             trusted_modules: Sequence[str] = ()) -> ExportedModel:
        """Open every graph of an exported directory (its model.json checked first)."""
        exported = ExportedDir(directory)
        info = exported.read_info(trusted_modules)
        runner = GRAPH_RUNNERS[info.runtime]
        graphs = {}
        for name, graph in info.graphs.items():
            try:
                graphs[name] = runner(exported.path / graph.file, threads)
            except Exception as e:  # noqa: BLE001 (onnxruntime raises bare Exception kinds)
                raise ValueError(f"{exported.path / graph.file}: cannot be loaded "
                                 f"({type(e).__name__}: {str(e).strip().splitlines()[0]})"
                                 ) from None
        return cls(info, graphs)

    def eval(self) -> ExportedModel:  # as nn.Module's, for code that calls it
        return self

    def encode(self, feats: torch.Tensor,
               feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F), feat_lens (B,) -> (enc (B, T', D), enc_lens (B,))."""
        enc, enc_lens = self.graphs["encoder"](feats.float(), feat_lens.long())
        return enc, enc_lens

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """enc (B, T', D) -> (B, T', V) log-probabilities."""
        if self.ctc is None:
            raise RuntimeError("ctc_log_probs needs a CTC head; the exported model is a "
                               "transducer alone")
        return self.ctc(enc.float())[0]

    def decoder_log_probs(self, tokens: torch.Tensor, token_mask: torch.Tensor,
                          enc: torch.Tensor, enc_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced decoder: tokens (N, U) starting with sos, token_mask (N, U) bool,
        enc (N, T', D), enc_mask (N, T') bool -> (N, U, V) log-probabilities."""
        if self.decoder is None:
            raise RuntimeError("the exported model is CTC-only: it has no attention decoder")
        return self.decoder(tokens.long(), token_mask.bool(), enc.float(), enc_mask.bool())[0]

    def score_hypotheses(self, enc: torch.Tensor, enc_lens: torch.Tensor,
                         hyps: Sequence[Sequence[int]]) -> torch.Tensor:
        """log P_att(y, eos | x) of each hypothesis, as ASRModel.score_hypotheses: enc
        (B, T', D), enc_lens (B,) with B = len(hyps) (or 1) -> (N,) float32."""
        enc, enc_lens, dec_in, dec_out, mask = hypothesis_batch(enc, enc_lens, hyps,
                                                                self.sos_id, self.eos_id)
        log_probs = self.decoder_log_probs(dec_in, mask, enc, padding_mask(enc_lens, enc.size(1)))
        picked = log_probs.gather(-1, dec_out.unsqueeze(-1)).squeeze(-1)  # (N, U+1)
        return (picked * mask).sum(-1)

    def score_nbest(self, enc: torch.Tensor, enc_lens: torch.Tensor,
                    nbest: Sequence[Sequence[Sequence[int]]],
                    hyps_per_pass: int = 32) -> list[torch.Tensor]:
        """As ASRModel.score_nbest, but one decoder row per hypothesis (the exported decoder
        takes token sequences, not prefix trees): the hypotheses of all utterances, shortest
        utterance and hypothesis first, ``hyps_per_pass`` per pass, each pass trimmed to its
        longest utterance's frames -> B tensors (hypotheses,) fp32."""
        flat = [(b, h, list(hyp)) for b, hyps in enumerate(nbest) for h, hyp in enumerate(hyps)]
        scores = [torch.zeros(len(hyps)) for hyps in nbest]
        frames = enc_lens.tolist()
        flat.sort(key=lambda item: (frames[item[0]], len(item[2])))
        for start in range(0, len(flat), hyps_per_pass):
            part = flat[start: start + hyps_per_pass]
            owner = torch.tensor([b for b, _, _ in part])
            width = max(frames[b] for b, _, _ in part)
            part_scores = self.score_hypotheses(enc[:, :width].index_select(0, owner),
                                                enc_lens.index_select(0, owner),
                                                [hyp for _, _, hyp in part]).tolist()
            for (b, h, _), score in zip(part, part_scores, strict=True):
                scores[b][h] = score
        return scores

    def decoder_step(self, tokens: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor,
                     cache: list[torch.Tensor] | None = None,
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """As ASRModel.decoder_step, recomputing the whole prefix: tokens (N, U) from sos
        -> (log_probs (N, V) of the next token, [] as the cache)."""
        mask = torch.ones(tokens.shape, dtype=torch.bool)
        log_probs = self.decoder_log_probs(tokens, mask, enc, enc_mask)  # (N, U, V)
        return log_probs[:, -1].float(), []
