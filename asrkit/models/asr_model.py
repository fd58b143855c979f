"""Joint CTC/attention speech recogniser (Kim, Hori & Watanabe 2017; Watanabe et al. 2017),
with the training-time extras of 3M (You et al. 2022) and Chiu et al. 2018, and optionally a
transducer branch (Graves 2012; a hybrid as in ESPnet's and icefall's transducer recipes):

    loss = transducer_weight * loss_transducer
         + (1 - transducer_weight) * (ctc_weight * ctc_term + (1 - ctc_weight) * att_term)
         + encoder losses
    ctc_term = (1 - w) * loss_ctc + w * mean_k loss_interctc_k     (w = interctc_weight)
    att_term = loss_att + sum_k inter_decoder_weight_k * loss_att_inter<k>

``loss_ctc`` is the CTC loss of a linear head on the encoder (asrkit.models.ctc) and
``loss_att`` the label-smoothed loss of the attention decoder (asrkit.models.label_smoothing).
Without a decoder (``decoder=none``) ``ctc_weight`` is forced to 1 (CTC takes what the
transducer leaves, all of the loss without one); with ``transducer_weight`` 1 the model is a
transducer alone and has no CTC head.
InterCTC and intermediate attention decoders (asrkit.models.intermediate) read chosen
encoder layers and are used in training only. "Encoder losses" are whatever the encoder
returns in its EncoderOutput (MoE balance losses, a CTC loss on the MoE shared embedding),
already weighted by the encoder's config. With ``scheduled_sampling_prob > 0`` the top
decoder is trained with scheduled sampling (asrkit.models.scheduled_sampling): the trainer
calls ``model.set_step(step)`` before each forward. ``forward_mwer`` is the MWER fine-tuning
objective (asrkit.models.mwer) on N-best lists made by the decoding code.

Token ids: CTC ``blank_id`` (default 0) and the decoder's ``sos_id``/``eos_id`` (default 2 and
2) match asrkit.text's fixed ids (blank 0, unk 1, sos/eos 2). Transcripts never contain sos,
eos or blank: the model adds sos/eos for the decoder itself.

Training::

    model.set_step(step)                      # only matters with scheduled sampling
    out = model(feats, feat_lens, tokens, token_lens)
    out["loss"].backward()                    # every other scalar entry is for the log

MWER fine-tuning (from a trained model; N-best from the decoding code's beam search)::

    out = model(feats, feat_lens, tokens, token_lens, nbest=nbest, word_errors=errors)

Decoding::

    enc, enc_lens = model.encode(feats, feat_lens)
    ctc_lp = model.ctc_log_probs(enc)                                    # (B, T', V)
    lp, cache = model.decoder_step(prefix, enc, enc_mask, cache)         # beam search
    scores = model.score_hypotheses(enc, enc_lens, [[5, 9], [5, 7, 9]])  # rescoring
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.arg_types import NonNegativeFloat, NonNegativeInt, Probability, UnitInterval
from asrkit.models.ctc import CTC
from asrkit.models.decoder_io import hypothesis_batch, teacher_forcing_io
from asrkit.models.encoder_output import EncoderOutput
from asrkit.models.intermediate import InterCTC, encoder_depth_dims, resolve_layers
from asrkit.models.label_smoothing import LabelSmoothingLoss
from asrkit.models.mask import padding_mask
from asrkit.models.mwer import expected_word_errors, mwer_loss, pad_nbest
from asrkit.models.prefix_tree import score_trees
from asrkit.models.scheduled_sampling import ScheduledSampling, mix_decoder_inputs


class ASRModel(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module | None,
        vocab_size: int,
        ctc_weight: UnitInterval = 0.3,
        lsm_weight: Probability = 0.1,
        length_normalized_loss: bool = False,
        blank_id: int = 0,
        sos_id: int = 2,
        eos_id: int = 2,
        interctc_layers: Sequence[int | float] = (),
        interctc_weight: UnitInterval = 0.0,
        interctc_shared_head: bool = True,
        inter_decoder_layers: Sequence[int | float] = (),
        inter_decoder_weight: NonNegativeFloat | Sequence[NonNegativeFloat] = 1.0,
        inter_decoders: Sequence[nn.Module] = (),
        scheduled_sampling_prob: UnitInterval = 0.0,
        scheduled_sampling_ramp_steps: NonNegativeInt = 0,
        mwer_ce_weight: NonNegativeFloat = 0.01,
        mwer_ctc_weight: NonNegativeFloat = 0.0,
        transducer: nn.Module | None = None,
        transducer_weight: UnitInterval = 0.0,
    ) -> None:
        """encoder: any module with ``output_dim`` mapping (feats, feat_lens) to
        (enc, enc_lens); decoder: a TransformerDecoder or None (CTC-only);
        lsm_weight: label smoothing; length_normalized_loss: divide the attention loss by the
        number of tokens instead of the batch size;
        interctc_layers: encoder layers (1-based numbers, or depth fractions such as 0.5)
        with an InterCTC loss, mixed in with interctc_weight (w; 0: no InterCTC whatever the
        layers, as ESPnet); interctc_shared_head: use the top CTC head there (else one head
        per layer);
        inter_decoder_layers: encoder layers (numbers or fractions) feeding one extra
        attention decoder each, built by the model builder from the decoder config
        (``inter_decoders``); inter_decoder_weight: the weight of each one's loss (one
        value for all, or one per entry of inter_decoder_layers, in the order written);
        scheduled_sampling_prob: the largest scheduled-sampling probability, reached
        linearly after scheduled_sampling_ramp_steps (0: teacher forcing);
        mwer_ce_weight: lambda of the MWER objective (used only by forward_mwer);
        mwer_ctc_weight: weight of the CTC loss added to the MWER objective (forward_mwer),
        so that fine-tuning the decoder does not leave the CTC branch behind;
        transducer: a transducer head (asrkit.models.transducer) or None; transducer_weight:
        its share of the loss, the rest shared by CTC and the attention decoder as
        ctc_weight says (1: a transducer alone, whose model then has no CTC head)."""
        super().__init__()
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight: must be in [0, 1], got {ctc_weight}")
        if (transducer is None) != (transducer_weight == 0.0):
            raise ValueError("transducer_weight: must be > 0 with a transducer and 0 without "
                             f"(got {transducer_weight} and "
                             f"{'a' if transducer is not None else 'no'} transducer)")
        for name, value in (("sos_id", sos_id), ("eos_id", eos_id), ("blank_id", blank_id)):
            if not 0 <= value < vocab_size:
                raise ValueError(f"{name}: {value} is outside the vocabulary of {vocab_size}")
        self.vocab_size = vocab_size
        self.transducer, self.transducer_weight = transducer, transducer_weight
        self.ctc_weight = 1.0 if decoder is None else ctc_weight
        if transducer_weight == 1.0:  # a transducer alone
            if decoder is not None or interctc_layers:
                raise ValueError("transducer_weight: 1 leaves no loss for the attention decoder "
                                 "and InterCTC: choose decoder=none, or a weight below 1")
            self.ctc_weight = 0.0
        self.blank_id, self.sos_id, self.eos_id = blank_id, sos_id, eos_id
        self.encoder = encoder
        self.decoder = decoder
        self.ctc = (None if transducer_weight == 1.0
                    else CTC(encoder.output_dim, vocab_size, blank_id))
        self.att_loss = LabelSmoothingLoss(vocab_size, lsm_weight, length_normalized_loss)
        self._init_interctc(interctc_layers, interctc_weight, interctc_shared_head)
        self._init_inter_decoders(inter_decoder_layers, inter_decoder_weight, inter_decoders)
        self.mwer_ce_weight = mwer_ce_weight
        if mwer_ctc_weight > 0.0 and self.ctc is None:
            raise ValueError("mwer_ctc_weight: > 0 needs a CTC head (a model with ctc_weight > 0)")
        self.mwer_ctc_weight = mwer_ctc_weight
        self.scheduled_sampling = None
        if scheduled_sampling_prob > 0.0:
            if decoder is None:
                raise ValueError("scheduled_sampling_prob: > 0 needs an attention decoder")
            self.scheduled_sampling = ScheduledSampling(scheduled_sampling_prob,
                                                        scheduled_sampling_ramp_steps)

    def _init_interctc(self, layers: Sequence[int | float], weight: float,
                       shared_head: bool) -> None:
        self.interctc, self.interctc_weight = None, weight
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"interctc_weight: must be in [0, 1], got {weight}")
        if not layers:
            if weight > 0:
                raise ValueError("interctc_weight: > 0 but interctc_layers is empty")
            return
        if weight == 0.0:
            return  # layers without a weight: no InterCTC (as ESPnet), no untrained heads
        if self.ctc_weight == 0.0:
            raise ValueError("interctc_layers: need a CTC branch (ctc_weight > 0)")
        dims = encoder_depth_dims(self.encoder)
        resolved = resolve_layers(layers, len(dims), "interctc_layers")
        self.interctc = InterCTC(resolved, [dims[n - 1] for n in resolved], self.vocab_size,
                                 self.blank_id, self.encoder.output_dim if shared_head else None)

    def _init_inter_decoders(self, layers: Sequence[int | float],
                             weight: float | Sequence[float],
                             decoders: Sequence[nn.Module]) -> None:
        self.inter_decoder_layers: tuple[int, ...] = ()
        self.inter_decoders = nn.ModuleList(decoders)
        if layers:
            if self.decoder is None or self.ctc_weight == 1.0:
                raise ValueError("inter_decoder_layers: need an attention decoder and "
                                 "ctc_weight < 1")
            depth = len(encoder_depth_dims(self.encoder))
            self.inter_decoder_layers = resolve_layers(layers, depth, "inter_decoder_layers")
        num = len(self.inter_decoder_layers)
        if len(decoders) != num:
            raise ValueError(f"inter_decoder_layers: name {num} layers but {len(decoders)} "
                             f"intermediate decoders were given")
        weights = [weight] * num if isinstance(weight, (int, float)) else list(weight)
        if len(weights) != num:
            raise ValueError(f"inter_decoder_weight: {len(weights)} weights for {num} "
                             f"intermediate decoders")
        if layers and not isinstance(weight, (int, float)):  # weight k: layer k as written
            written = [resolve_layers([item], depth, "inter_decoder_layers")[0]
                       for item in layers]
            weights = [w for _, w in sorted(zip(written, weights, strict=True))]
        self.inter_decoder_weights = [float(w) for w in weights]

    def set_step(self, step: int) -> None:
        """The trainer's global step, for the scheduled-sampling ramp (no-op without it)."""
        if self.scheduled_sampling is not None:
            self.scheduled_sampling.set_step(step)

    def training_only_modules(self) -> list[nn.Module]:
        """Modules used by training losses only (never at decoding): for parameter counts."""
        modules: list[nn.Module] = [self.inter_decoders]
        if self.interctc is not None:
            modules.append(self.interctc)
        if hasattr(self.encoder, "training_only_modules"):
            modules += self.encoder.training_only_modules()
        return modules

    # ---- training ---------------------------------------------------------------------
    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor,
                token_lens: torch.Tensor,
                nbest: Sequence[Sequence[Sequence[int]]] | None = None,
                word_errors: Sequence[Sequence[float]] | torch.Tensor | None = None,
                ) -> dict[str, torch.Tensor]:
        """feats (B, T, F) float, feat_lens (B,), tokens (B, U) long (anything past token_lens
        is padding, e.g. -1), token_lens (B,) -> dict of scalar tensors (below). With
        ``nbest`` and ``word_errors`` it is the MWER objective instead (``forward_mwer``;
        going through ``forward`` lets DistributedDataParallel synchronise its gradients).

        - ``loss``: the weighted joint loss to optimise;
        - ``loss_ctc``: CTC loss per utterance (present when ctc_weight > 0);
        - ``loss_att``: label-smoothed decoder loss (present when ctc_weight < 1);
        - ``acc``: decoder token accuracy over real tokens and eos (with ``loss_att``);
        - with InterCTC: ``loss_interctc`` (mean over its layers) and, for more than one
          layer, ``loss_interctc_l<layer>``;
        - with intermediate decoders: ``loss_att_inter<k>``, ``acc_inter<k>`` (k = 1, 2, ..
          from the lowest layer up);
        - with scheduled sampling, in training mode: ``sampling_prob``;
        - the encoder's terms (MoE: ``loss_moe``, ``loss_moe_switch``, ``loss_moe_sparsity``,
          ``loss_moe_importance``, ``moe_load_expert<i>``, ``moe_max_load``,
          ``loss_ctc_embedding``).
        """
        if nbest is not None or word_errors is not None:
            if nbest is None or word_errors is None:
                raise ValueError("MWER needs both nbest and word_errors")
            return self.forward_mwer(feats, feat_lens, tokens, token_lens, nbest, word_errors)
        enc_out = self._encode_for_training(feats, feat_lens)
        out: dict[str, torch.Tensor] = {}
        loss = enc_out.enc.new_zeros((), dtype=torch.float32)
        rest = 1.0 - self.transducer_weight  # CTC's and the decoder's share
        if self.transducer is not None:
            out.update(self.transducer(enc_out.enc, enc_out.enc_lens, tokens, token_lens))
            loss = loss + self.transducer_weight * out["loss_transducer"]
        if rest > 0.0 and self.ctc_weight > 0.0:
            loss = loss + rest * self.ctc_weight * self._ctc_term(enc_out, tokens, token_lens,
                                                                  out)
        if rest > 0.0 and self.ctc_weight < 1.0:
            loss = loss + rest * (1.0 - self.ctc_weight) * self._att_term(enc_out, tokens,
                                                                          token_lens, out)
        out["loss"] = loss + self._encoder_terms(enc_out, tokens, token_lens, out)
        return out

    @staticmethod
    def _encoder_terms(enc_out: EncoderOutput, tokens: torch.Tensor, token_lens: torch.Tensor,
                       out: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """The encoder's own losses (MoE balance, the shared embedding's CTC), weighted, and
        their log terms into ``out``."""
        loss = 0.0 if enc_out.aux_loss is None else enc_out.aux_loss
        out.update(enc_out.aux_terms)
        for name, aux in enc_out.aux_ctc.items():
            out[f"loss_ctc_{name}"] = aux.head(aux.hidden, aux.lens, tokens, token_lens)
            loss = loss + aux.weight * out[f"loss_ctc_{name}"]
        return loss

    def _encode_for_training(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> EncoderOutput:
        layers = sorted(set(self.inter_decoder_layers).union(
            self.interctc.layers if self.interctc is not None else ()))
        if hasattr(self.encoder, "forward_with_intermediates"):
            return self.encoder.forward_with_intermediates(feats, feat_lens, layers)
        enc, enc_lens = self.encoder(feats, feat_lens)
        return EncoderOutput(enc, enc_lens)

    def _ctc_term(self, enc_out: EncoderOutput, tokens: torch.Tensor, token_lens: torch.Tensor,
                  out: dict[str, torch.Tensor]) -> torch.Tensor:
        out["loss_ctc"] = self.ctc(enc_out.enc, enc_out.enc_lens, tokens, token_lens)
        if self.interctc is None:
            return out["loss_ctc"]
        losses = self.interctc(enc_out.intermediates, tokens, token_lens, self.ctc)
        out["loss_interctc"] = sum(losses.values()) / len(losses)
        if len(losses) > 1:
            out.update({f"loss_interctc_l{layer}": v for layer, v in losses.items()})
        w = self.interctc_weight
        return (1.0 - w) * out["loss_ctc"] + w * out["loss_interctc"]

    def _att_term(self, enc_out: EncoderOutput, tokens: torch.Tensor, token_lens: torch.Tensor,
                  out: dict[str, torch.Tensor]) -> torch.Tensor:
        prob = None
        if self.scheduled_sampling is not None and self.training:
            prob = self.scheduled_sampling.probability()
            out["sampling_prob"] = prob
        out["loss_att"], out["acc"] = self._attention_loss(
            self.decoder, enc_out.enc, enc_out.enc_lens, tokens, token_lens, prob)
        term = out["loss_att"]
        for k, (layer, decoder, weight) in enumerate(zip(
                self.inter_decoder_layers, self.inter_decoders, self.inter_decoder_weights,
                strict=True), start=1):
            hidden, lens = enc_out.intermediates[layer]
            out[f"loss_att_inter{k}"], out[f"acc_inter{k}"] = self._attention_loss(
                decoder, hidden, lens, tokens, token_lens)
            term = term + weight * out[f"loss_att_inter{k}"]
        return term

    def _attention_loss(self, decoder: nn.Module, enc: torch.Tensor, enc_lens: torch.Tensor,
                        tokens: torch.Tensor, token_lens: torch.Tensor,
                        sampling_prob: torch.Tensor | None = None,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        dec_in, dec_out, mask = teacher_forcing_io(tokens, token_lens, self.sos_id, self.eos_id)
        enc_mask = padding_mask(enc_lens, enc.size(1))
        if sampling_prob is not None:  # scheduled sampling: a first pass gives predictions
            with torch.no_grad():
                first_pass = decoder(dec_in, mask, enc, enc_mask)
            dec_in = mix_decoder_inputs(dec_in, first_pass, mask, sampling_prob)
        logits = decoder(dec_in, mask, enc, enc_mask)  # (B, U+1, V)
        loss = self.att_loss(logits, dec_out, mask)
        correct = (logits.argmax(-1) == dec_out) & mask
        acc = correct.sum() / mask.sum().clamp(min=1)
        return loss, acc.detach()

    # ---- MWER fine-tuning -----------------------------------------------------------------
    def forward_mwer(self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor,
                     token_lens: torch.Tensor, nbest: Sequence[Sequence[Sequence[int]]],
                     word_errors: Sequence[Sequence[float]] | torch.Tensor,
                     ) -> dict[str, torch.Tensor]:
        """The MWER objective (Prabhavalkar et al. 2018) for a batch with given N-best lists.

        nbest: per utterance, up to N hypotheses (token ids without sos/eos) from the model's
        own beam search; word_errors: per utterance, each hypothesis' word errors against
        the reference. The hypotheses are scored by the attention decoder (log P(y, eos|x),
        with gradient); ce_weight: the model's ``mwer_ce_weight`` (lambda, 0.01). ->
        {"loss": loss_mwer + ce_weight * loss_att + mwer_ctc_weight * loss_ctc + the
        encoder's own losses, "loss_mwer", "loss_att", "acc", "mwer_expected_errors",
        "loss_ctc" when mwer_ctc_weight > 0, and the encoder's terms as in ``forward``}. The
        CTC term (the joint model's CTC loss, InterCTC included) keeps the CTC branch
        trained: without it MWER fine-tuning improves the attention decoder at the cost of
        CTC greedy and joint decoding. The intermediate decoders, and at mwer_ctc_weight 0
        the CTC heads, get no gradient (DDP is told: asrkit.training.distributed.wrap_model)."""
        self._require_decoder("forward_mwer")
        ce_weight = self.mwer_ce_weight
        if len(nbest) != feats.size(0):
            raise ValueError(f"forward_mwer: {len(nbest)} N-best lists for a batch of "
                             f"{feats.size(0)}")
        enc_out = self._encode_for_training(feats, feat_lens)
        enc, enc_lens = enc_out.enc, enc_out.enc_lens
        flat, errors, mask = pad_nbest(nbest, word_errors)
        errors, mask = errors.to(enc.device), mask.to(enc.device)
        width = mask.size(1)
        scores = self.score_hypotheses(enc.repeat_interleave(width, dim=0),
                                       enc_lens.repeat_interleave(width), flat)
        scores = scores.view(-1, width)  # (B, N)
        out: dict[str, torch.Tensor] = {"loss_mwer": mwer_loss(scores, errors, mask)}
        out["loss_att"], out["acc"] = self._attention_loss(self.decoder, enc, enc_lens, tokens,
                                                           token_lens)
        out["mwer_expected_errors"] = expected_word_errors(scores.detach(), errors, mask)
        loss = out["loss_mwer"] + ce_weight * out["loss_att"]
        if self.mwer_ctc_weight > 0.0:
            loss = loss + self.mwer_ctc_weight * self._ctc_term(enc_out, tokens, token_lens, out)
        out["loss"] = loss + self._encoder_terms(enc_out, tokens, token_lens, out)
        return out

    # ---- decoding -----------------------------------------------------------------------
    def encode(self, feats: torch.Tensor, feat_lens: torch.Tensor,
               chunk_size: int | None = None,
               left_chunks: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F), feat_lens (B,) -> (enc (B, T', D), enc_lens (B,)).
        chunk_size / left_chunks: the streaming encoder's chunk mask (None: its configured
        one; asrkit.models.chunk_mask); only encoders with a chunk mask take them."""
        if chunk_size is None and left_chunks is None:
            return self.encoder(feats, feat_lens)
        return self.encoder(feats, feat_lens, chunk_size=chunk_size, left_chunks=left_chunks)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """enc (B, T', D) -> CTC log-probabilities (B, T', V), fp32."""
        if self.ctc is None:
            raise RuntimeError("ctc_log_probs needs a CTC head; this model is a transducer "
                               "alone (transducer_weight 1)")
        return self.ctc.log_probs(enc)

    def decoder_step(self, tokens: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor,
                     cache: list[torch.Tensor] | None = None,
                     ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One incremental decoder step (see TransformerDecoder.forward_one_step).

        tokens (N, U) equal-length prefixes starting with sos_id, enc (N, T', D),
        enc_mask (N, T') bool, cache None or the previous step's ->
        (log_probs (N, V) of the next token, new cache)."""
        self._require_decoder("decoder_step")
        return self.decoder.forward_one_step(tokens, enc, enc_mask, cache)

    def score_hypotheses(self, enc: torch.Tensor, enc_lens: torch.Tensor,
                         hyps: Sequence[Sequence[int]]) -> torch.Tensor:
        """Attention log-likelihood log P(y, eos | x) of each hypothesis (for rescoring).

        enc (B, T', D), enc_lens (B,) with B = len(hyps), or B = 1 to score all hypotheses
        against one utterance; hyps: N token-id lists without sos/eos -> (N,) fp32."""
        self._require_decoder("score_hypotheses")
        enc, enc_lens, dec_in, dec_out, mask = hypothesis_batch(enc, enc_lens, hyps,
                                                                self.sos_id, self.eos_id)
        logits = self.decoder(dec_in, mask, enc, padding_mask(enc_lens, enc.size(1)))
        log_probs = F.log_softmax(logits.float(), dim=-1).gather(-1, dec_out.unsqueeze(-1))
        return (log_probs.squeeze(-1) * mask).sum(-1)  # (N,)

    def score_nbest(self, enc: torch.Tensor, enc_lens: torch.Tensor,
                    nbest: Sequence[Sequence[Sequence[int]]],
                    nodes_per_pass: int | None = None,
                    self_attention: str | None = None) -> list[torch.Tensor]:
        """log P(y, eos | x) of each utterance's hypotheses, as ``score_hypotheses`` gives
        them: enc (B, T', D), enc_lens (B,), nbest: B lists of token-id lists -> B tensors
        (hypotheses,) fp32.

        Each utterance's hypotheses are one prefix tree, scored in passes of about
        ``nodes_per_pass`` nodes (None: score_trees's default for the device;
        asrkit.models.prefix_tree.score_trees): a shared prefix is
        computed once, and the cross-attention keys and values once per utterance instead of
        once per hypothesis. ``self_attention``: "tree", "paths" or None (the cheaper)."""
        self._require_decoder("score_nbest")
        if len(nbest) != enc.size(0):
            raise ValueError(f"score_nbest: {len(nbest)} N-best lists for a batch of "
                             f"{enc.size(0)}")
        return score_trees(self.decoder, enc, enc_lens, nbest, self.sos_id, self.eos_id,
                           nodes_per_pass, self_attention)

    def _require_decoder(self, what: str) -> None:
        if self.decoder is None:
            raise RuntimeError(f"{what} needs an attention decoder; this model is CTC-only")
