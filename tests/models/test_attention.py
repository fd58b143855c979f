import math

import torch

from asrkit.models.attention import MultiHeadAttention


def naive_attention(mha: MultiHeadAttention, query, key, value, mask):
    """softmax(Q K^T / sqrt(d_k) masked) V per head, written out with einsum."""
    heads = mha.num_heads
    q = mha.linear_q(query).unflatten(-1, (heads, -1))  # (b, tq, h, dk)
    k = mha.linear_k(key).unflatten(-1, (heads, -1))
    v = mha.linear_v(value).unflatten(-1, (heads, -1))
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    out = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)
    return mha.linear_out(out.flatten(2))


def test_matches_naive_reference_with_padding_and_causal_masks():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=16, num_heads=4).eval()
    x = torch.randn(2, 5, 16)
    key_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2]).unsqueeze(1)  # (2, 1, 5)
    causal = torch.ones(5, 5, dtype=torch.bool).tril().unsqueeze(0)  # (1, 5, 5)
    for mask in (key_mask, key_mask & causal):
        torch.testing.assert_close(mha(x, x, x, mask), naive_attention(mha, x, x, x, mask))


def test_cross_attention_with_other_key_width_ignores_masked_keys():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model=8, num_heads=2, kv_dim=12).eval()
    q, kv = torch.randn(1, 3, 8), torch.randn(1, 6, 12)
    mask = torch.tensor([[[True] * 4 + [False] * 2]])
    out = mha(q, kv, kv, mask)
    kv2 = kv.clone()
    kv2[:, 4:] = 1e3
    torch.testing.assert_close(mha(q, kv2, kv2, mask), out)
    torch.testing.assert_close(out, mha(q, kv[:, :4], kv[:, :4], None))
