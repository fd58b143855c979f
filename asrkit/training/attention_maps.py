"""Attention weights of a model's attention modules, for pictures (not for training).

The attention modules compute their softmax inside ``F.scaled_dot_product_attention`` and
never materialise the weights, so ``record_attention`` registers forward hooks that take
each module's inputs and recompute ``softmax(QK^T / sqrt(d_k) + bias)`` with the module's own
projections, masks included:

- ``MultiHeadAttention`` (Transformer self-attention, decoder self/cross-attention);
- ``RelPositionMultiHeadAttention`` (Conformer; Transformer-XL terms with u/v and rel_shift).

Other module types are ignored. Use it on one utterance in eval mode:

    with record_attention(model) as weights:
        model(feats, feat_lens, tokens, token_lens)
    weights["decoder.layers.0.src_attn"]  # (batch, heads, T_q, T_k), fp32, CPU
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from asrkit.models.attention import MultiHeadAttention, split_heads
from asrkit.models.rel_attention import RelPositionMultiHeadAttention, rel_shift


def _softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """scores (batch, heads, T_q, T_k); mask (batch, 1|T_q, T_k) bool, True = attend."""
    if mask is not None:
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(scores.float(), dim=-1)


def multi_head_weights(module: MultiHeadAttention, query: torch.Tensor, key: torch.Tensor,
                       mask: torch.Tensor | None) -> torch.Tensor:
    q = split_heads(module.linear_q(query), module.num_heads)  # (batch, heads, T_q, d_k)
    k = split_heads(module.linear_k(key), module.num_heads)  # (batch, heads, T_k, d_k)
    return _softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), mask)


def rel_position_weights(module: RelPositionMultiHeadAttention, x: torch.Tensor,
                         pos_emb: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    q = split_heads(module.linear_q(x), module.num_heads)  # (batch, heads, T, d_k)
    k = split_heads(module.linear_k(x), module.num_heads)
    p = module.linear_pos(pos_emb).view(-1, module.num_heads, module.d_k).transpose(0, 1)
    content = (q + module.pos_bias_u.unsqueeze(1)) @ k.transpose(-2, -1)  # (b, h, T, T)
    position = rel_shift((q + module.pos_bias_v.unsqueeze(1)) @ p.transpose(-2, -1))
    return _softmax((content + position) / math.sqrt(module.d_k), mask)


def _argument(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _hook(weights: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, args: tuple, kwargs: dict, _output: Any) -> None:
        with torch.no_grad():
            if isinstance(module, RelPositionMultiHeadAttention):
                value = rel_position_weights(
                    module, _argument(args, kwargs, 0, "x"),
                    _argument(args, kwargs, 1, "pos_emb"), _argument(args, kwargs, 2, "mask"))
            else:
                value = multi_head_weights(
                    module, _argument(args, kwargs, 0, "query"),
                    _argument(args, kwargs, 1, "key"), _argument(args, kwargs, 3, "mask"))
        weights[name] = value.cpu()

    return hook


@contextlib.contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """While active, every supported attention module's weights of its last call are stored
    in the yielded dict under the module's name; the hooks are removed on exit."""
    weights: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_hook(_hook(weights, name), with_kwargs=True)
               for name, module in model.named_modules()
               if isinstance(module, (MultiHeadAttention, RelPositionMultiHeadAttention))]
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()


def select_maps(weights: dict[str, torch.Tensor], num_encoder_heads: int,
                ) -> dict[str, torch.Tensor]:
    """The pictures to draw from one utterance's recorded weights (batch index 0):

    - ``attention/decoder_cross/layer<i>``: each decoder layer's cross-attention, mean over
      heads, (tokens + 1, encoder frames);
    - ``attention/encoder_self/layer<l>_head<h>``: ``num_encoder_heads`` heads spread over the
      encoder's layers (first to last, cycling through heads), (frames, frames)."""
    maps: dict[str, torch.Tensor] = {}
    cross = sorted((n for n in weights if n.startswith("decoder.") and n.endswith("src_attn")),
                   key=_layer_index)
    for name in cross:
        maps[f"attention/decoder_cross/layer{_layer_index(name)}"] = weights[name][0].mean(0)
    # the encoder's own blocks only (not, e.g., the 3M model's shared embedding block)
    encoder = sorted((n for n in weights if _ENCODER_LAYER.match(n)), key=_layer_index)
    if encoder and num_encoder_heads > 0:
        picks = torch.linspace(0, len(encoder) - 1, num_encoder_heads).round().long().tolist()
        taken: set[tuple[int, int]] = set()
        for i, index in enumerate(picks):
            pick = _free_head(encoder, weights, index, i, taken)
            if pick is None:  # every head of every layer drawn already
                break
            taken.add(pick)
            name = encoder[pick[0]]
            maps[f"attention/encoder_self/layer{_layer_index(name)}_head{pick[1]}"] = \
                weights[name][0, pick[1]]
    return maps


_ENCODER_LAYER = re.compile(r"encoder\.layers\.\d+\.")


def _free_head(encoder: list[str], weights: dict[str, torch.Tensor], index: int, i: int,
               taken: set[tuple[int, int]]) -> tuple[int, int] | None:
    """(layer, head) for the i-th picture, aimed at layer ``index`` and head i (cycling):
    the next head of that layer not yet drawn, else of the nearest layer with one."""
    for layer in sorted(range(len(encoder)), key=lambda j: (abs(j - index), j)):
        heads = weights[encoder[layer]].size(1)
        for step in range(heads):
            if (layer, (i + step) % heads) not in taken:
                return layer, (i + step) % heads
    return None


@torch.no_grad()
def utterance_maps(model: nn.Module, item: dict[str, Any], device: torch.device,
                   autocast: contextlib.AbstractContextManager, num_encoder_heads: int,
                   ) -> dict[str, torch.Tensor]:
    """``select_maps`` of one dataset item (``feats`` (T, F), ``tokens`` (U)), teacher-forced
    with its transcript in eval mode; the model's training mode is restored."""
    feats = item["feats"].unsqueeze(0).to(device)
    tokens = item["tokens"].unsqueeze(0).to(device)
    lens = torch.tensor([feats.size(1)], device=device)
    token_lens = torch.tensor([tokens.size(1)], device=device)
    was_training = model.training
    model.eval()
    try:
        with record_attention(model) as weights, autocast:
            model(feats, lens, tokens, token_lens)
    finally:
        model.train(was_training)
    return select_maps(weights, num_encoder_heads)


def _layer_index(name: str) -> int:
    parts = name.split(".")
    for before, part in itertools.pairwise(parts):
        if before == "layers" and part.isdigit():
            return int(part)
    return -1
