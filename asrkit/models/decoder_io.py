"""The attention decoder's teacher-forced input and target for token sequences, for the
training loss and for scoring hypotheses (the eager ASRModel and the exported model alike).

    dec_in, dec_out, mask = teacher_forcing_io(tokens, token_lens, sos_id, eos_id)
    enc, enc_lens, dec_in, dec_out, mask = hypothesis_batch(enc, enc_lens, hyps, sos, eos)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from asrkit.models.mask import padding_mask


def teacher_forcing_io(tokens: torch.Tensor, token_lens: torch.Tensor, sos_id: int,
                       eos_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, U) transcripts -> decoder input [sos, y] and target [y, eos], both (B, U+1),
    and their (B, U+1) mask; padding in the input is eos, in the target anything."""
    batch = tokens.size(0)
    valid = padding_mask(token_lens, tokens.size(1))  # (B, U)
    tokens = tokens.masked_fill(~valid, eos_id)
    sos = tokens.new_full((batch, 1), sos_id)
    eos = tokens.new_full((batch, 1), eos_id)
    dec_in = torch.cat([sos, tokens], dim=1)  # (B, U+1); padding is eos
    # the target is y followed by eos at index token_lens; positions after are masked
    dec_out = torch.cat([tokens, eos], dim=1)  # (B, U+1)
    mask = padding_mask(token_lens + 1, tokens.size(1) + 1)  # (B, U+1)
    return dec_in, dec_out, mask


def hypothesis_batch(enc: torch.Tensor, enc_lens: torch.Tensor, hyps: Sequence[Sequence[int]],
                     sos_id: int, eos_id: int) -> tuple[torch.Tensor, ...]:
    """N hypotheses (token-id lists without sos/eos) against enc (B, T', D), enc_lens (B,)
    with B = N, or B = 1 for all against one utterance -> (enc, enc_lens) with N rows and
    the decoder's teacher_forcing_io for them."""
    num = len(hyps)
    if enc.size(0) == 1 and num != 1:
        enc, enc_lens = enc.expand(num, -1, -1), enc_lens.expand(num)
    if enc.size(0) != num:
        raise ValueError(f"score_hypotheses: {num} hypotheses for a batch of {enc.size(0)}")
    lens = torch.tensor([len(h) for h in hyps], dtype=torch.long, device=enc.device)
    tokens = torch.full((num, max(int(lens.max()), 1)), eos_id, dtype=torch.long,
                        device=enc.device)
    for i, hyp in enumerate(hyps):
        tokens[i, : len(hyp)] = torch.as_tensor(list(hyp), dtype=torch.long)
    return (enc, enc_lens, *teacher_forcing_io(tokens, lens, sos_id, eos_id))
