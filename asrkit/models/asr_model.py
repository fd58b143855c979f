"""Joint CTC/attention speech recogniser (Kim, Hori & Watanabe 2017; Watanabe et al. 2017).

    loss = ctc_weight * loss_ctc + (1 - ctc_weight) * loss_att

``loss_ctc`` is the CTC loss of a linear head on the encoder (asrkit.models.ctc) and
``loss_att`` the label-smoothed loss of the attention decoder (asrkit.models.label_smoothing).
Without a decoder (``decoder=none``) the model is CTC-only and ``ctc_weight`` is forced to 1.

Token ids: CTC ``blank_id`` (default 0) and the decoder's ``sos_id``/``eos_id`` (default 2 and
2) match asrkit.text's fixed ids (blank 0, unk 1, sos/eos 2). Transcripts never contain sos,
eos or blank: the model adds sos/eos for the decoder itself.

Training::

    out = model(feats, feat_lens, tokens, token_lens)
    out["loss"].backward()

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

from asrkit.models.ctc import CTC
from asrkit.models.label_smoothing import LabelSmoothingLoss
from asrkit.models.mask import padding_mask


class ASRModel(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module | None,
        vocab_size: int,
        ctc_weight: float = 0.3,
        lsm_weight: float = 0.1,
        length_normalized_loss: bool = False,
        blank_id: int = 0,
        sos_id: int = 2,
        eos_id: int = 2,
    ) -> None:
        """encoder: any module with ``output_dim`` mapping (feats, feat_lens) to
        (enc, enc_lens); decoder: a TransformerDecoder or None (CTC-only);
        lsm_weight: label smoothing; length_normalized_loss: divide the attention loss by the
        number of tokens instead of the batch size."""
        super().__init__()
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        for name, value in (("sos_id", sos_id), ("eos_id", eos_id), ("blank_id", blank_id)):
            if not 0 <= value < vocab_size:
                raise ValueError(f"{name} {value} is outside the vocabulary of {vocab_size}")
        self.vocab_size = vocab_size
        self.ctc_weight = 1.0 if decoder is None else ctc_weight
        self.blank_id, self.sos_id, self.eos_id = blank_id, sos_id, eos_id
        self.encoder = encoder
        self.decoder = decoder
        self.ctc = CTC(encoder.output_dim, vocab_size, blank_id)
        self.att_loss = LabelSmoothingLoss(vocab_size, lsm_weight, length_normalized_loss)

    # ---- training ---------------------------------------------------------------------
    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor,
                token_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        """feats (B, T, F) float, feat_lens (B,), tokens (B, U) long (anything past token_lens
        is padding, e.g. -1), token_lens (B,) -> dict of scalar tensors:

        - ``loss``: the weighted joint loss to optimise;
        - ``loss_ctc``: CTC loss per utterance (present when ctc_weight > 0);
        - ``loss_att``: label-smoothed decoder loss (present when ctc_weight < 1);
        - ``acc``: decoder token accuracy over real tokens and eos (with ``loss_att``).
        """
        enc, enc_lens = self.encode(feats, feat_lens)
        out: dict[str, torch.Tensor] = {}
        loss = enc.new_zeros((), dtype=torch.float32)
        if self.ctc_weight > 0.0:
            out["loss_ctc"] = self.ctc(enc, enc_lens, tokens, token_lens)
            loss = loss + self.ctc_weight * out["loss_ctc"]
        if self.ctc_weight < 1.0:
            out["loss_att"], out["acc"] = self._attention_loss(enc, enc_lens, tokens, token_lens)
            loss = loss + (1.0 - self.ctc_weight) * out["loss_att"]
        out["loss"] = loss
        return out

    def _decoder_io(self, tokens: torch.Tensor,
                    token_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, U) transcripts -> decoder input [sos, y] and target [y, eos], both (B, U+1),
        and their (B, U+1) mask; padding in the input is eos, in the target anything."""
        batch = tokens.size(0)
        valid = padding_mask(token_lens, tokens.size(1))  # (B, U)
        tokens = tokens.masked_fill(~valid, self.eos_id)
        sos = tokens.new_full((batch, 1), self.sos_id)
        eos = tokens.new_full((batch, 1), self.eos_id)
        dec_in = torch.cat([sos, tokens], dim=1)  # (B, U+1); padding is eos
        # the target is y followed by eos at index token_lens; positions after are masked
        dec_out = torch.cat([tokens, eos], dim=1)  # (B, U+1)
        mask = padding_mask(token_lens + 1, tokens.size(1) + 1)  # (B, U+1)
        return dec_in, dec_out, mask

    def _attention_loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, tokens: torch.Tensor,
                        token_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dec_in, dec_out, mask = self._decoder_io(tokens, token_lens)
        enc_mask = padding_mask(enc_lens, enc.size(1))
        logits = self.decoder(dec_in, mask, enc, enc_mask)  # (B, U+1, V)
        loss = self.att_loss(logits, dec_out, mask)
        correct = (logits.argmax(-1) == dec_out) & mask
        acc = correct.sum() / mask.sum().clamp(min=1)
        return loss, acc.detach()

    # ---- decoding -----------------------------------------------------------------------
    def encode(self, feats: torch.Tensor,
               feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F), feat_lens (B,) -> (enc (B, T', D), enc_lens (B,))."""
        return self.encoder(feats, feat_lens)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """enc (B, T', D) -> CTC log-probabilities (B, T', V), fp32."""
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
        num = len(hyps)
        if enc.size(0) == 1 and num != 1:
            enc, enc_lens = enc.expand(num, -1, -1), enc_lens.expand(num)
        if enc.size(0) != num:
            raise ValueError(f"score_hypotheses: {num} hypotheses for a batch of {enc.size(0)}")
        lens = torch.tensor([len(h) for h in hyps], device=enc.device)
        tokens = torch.full((num, max(int(lens.max()), 1)), self.eos_id, device=enc.device)
        for i, hyp in enumerate(hyps):
            tokens[i, : len(hyp)] = torch.as_tensor(list(hyp), dtype=torch.long)
        dec_in, dec_out, mask = self._decoder_io(tokens, lens)
        logits = self.decoder(dec_in, mask, enc, padding_mask(enc_lens, enc.size(1)))
        log_probs = F.log_softmax(logits.float(), dim=-1).gather(-1, dec_out.unsqueeze(-1))
        return (log_probs.squeeze(-1) * mask).sum(-1)  # (N,)

    def _require_decoder(self, what: str) -> None:
        if self.decoder is None:
            raise RuntimeError(f"{what} needs an attention decoder; this model is CTC-only")
