"""The graphs ``asrkit export`` traces from an ASRModel's CTC and attention side, each a
wrapper around one call of the model that holds only its own parameters (the transducer's:
asrkit.inference.transducer_graphs; the streaming encoder step:
asrkit.inference.encoder_chunk_graph), and ``graph_specs``: every graph a model has, with
its inputs and outputs as model.json describes them (asrkit.inference.exported_dir).

    encoder   feats (batch, time, mel), feat_lens (batch,) -> enc, enc_lens
    ctc       enc (batch, frames, D) -> ctc_log_probs (batch, frames, V)
    decoder   tokens, token_mask (hyps, length), enc, enc_mask -> log_probs (hyps, length, V)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.inference.exported_dir import tensor_spec
from asrkit.inference.transducer_graphs import transducer_graph_specs


class EncoderGraph(nn.Module):
    """ASRModel.encode: the encoder alone (each graph holds only its own parameters)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor):
        return self.encoder(feats, feat_lens)  # (B, T', D), (B,)


class CTCGraph(nn.Module):
    """ASRModel.ctc_log_probs: the CTC head."""

    def __init__(self, ctc: nn.Module) -> None:
        super().__init__()
        self.ctc = ctc

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        return self.ctc.log_probs(enc)  # (B, T', V)


class DecoderGraph(nn.Module):
    """The attention decoder, teacher-forced, with log-softmax outputs."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor, enc: torch.Tensor,
                enc_mask: torch.Tensor) -> torch.Tensor:
        logits = self.decoder(tokens, token_mask, enc, enc_mask)  # (N, U, V)
        return F.log_softmax(logits.float(), dim=-1)


def graph_specs(model: nn.Module, bins: int) -> dict[str, tuple[nn.Module, list, list]]:
    """name -> (module, inputs, outputs) of every graph the model has. The wrappers are in
    eval mode: the exporter puts a module back into its mode afterwards, which for a
    wrapper left in training mode would switch the model's dropout on."""
    dim, vocab = model.encoder.output_dim, model.vocab_size
    specs = {
        "encoder": (EncoderGraph(model.encoder).eval(),
                    [tensor_spec("feats", "float32", "batch", "time", bins),
                     tensor_spec("feat_lens", "int64", "batch")],
                    [tensor_spec("enc", "float32", "batch", "frames", dim),
                     tensor_spec("enc_lens", "int64", "batch")]),
    }
    if model.ctc is not None:
        specs["ctc"] = (CTCGraph(model.ctc).eval(),
                        [tensor_spec("enc", "float32", "batch", "frames", dim)],
                        [tensor_spec("ctc_log_probs", "float32", "batch", "frames", vocab)])
    if model.decoder is not None:
        specs["decoder"] = (DecoderGraph(model.decoder).eval(),
                            [tensor_spec("tokens", "int64", "hyps", "length"),
                             tensor_spec("token_mask", "bool", "hyps", "length"),
                             tensor_spec("enc", "float32", "hyps", "frames", dim),
                             tensor_spec("enc_mask", "bool", "hyps", "frames")],
                            [tensor_spec("log_probs", "float32", "hyps", "length", vocab)])
    if model.transducer is not None:
        specs.update(transducer_graph_specs(model.transducer, dim))
    return specs
