import math

import torch

from asrkit.models.positional_encoding import RelPositionalEncoding
from asrkit.models.rel_attention import RelPositionMultiHeadAttention, rel_shift


def sinusoid(distance: int, dim: int) -> torch.Tensor:
    i = torch.arange(dim // 2, dtype=torch.float64)
    angle = distance / 10000 ** (2 * i / dim)
    return torch.stack([angle.sin(), angle.cos()], -1).flatten().float()


def naive_rel_attention(att: RelPositionMultiHeadAttention, x, key_mask):
    """Transformer-XL attention with an explicit relative index per (i, j):
    score = (q_i + u)·k_j + (q_i + v)·W_pos p(i - j), scaled by 1/sqrt(d_k)."""
    batch, time, dim = x.shape
    heads, d_k = att.num_heads, att.d_k
    q = att.linear_q(x).view(batch, time, heads, d_k)
    k = att.linear_k(x).view(batch, time, heads, d_k)
    v = att.linear_v(x).view(batch, time, heads, d_k)
    scores = torch.empty(batch, heads, time, time)
    for i in range(time):
        for j in range(time):
            p = att.linear_pos(sinusoid(i - j, dim)).view(heads, d_k)
            content = ((q[:, i] + att.pos_bias_u) * k[:, j]).sum(-1)  # (batch, heads)
            position = ((q[:, i] + att.pos_bias_v) * p).sum(-1)
            scores[:, :, i, j] = (content + position) / math.sqrt(d_k)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    out = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v)
    return att.linear_out(out.reshape(batch, time, dim))


def test_rel_shift_aligns_distance_i_minus_j():
    time = 4
    distances = torch.arange(time - 1, -time, -1).float()  # column k holds distance T-1-k
    scores = distances.expand(2, 3, time, 2 * time - 1)
    shifted = rel_shift(scores)
    expected = torch.arange(time)[:, None] - torch.arange(time)[None, :]
    assert torch.equal(shifted[1, 2], expected.float())


def test_matches_naive_reference():
    torch.manual_seed(0)
    dim, time = 16, 6
    att = RelPositionMultiHeadAttention(dim, num_heads=4).eval()
    with torch.no_grad():  # non-zero biases, so u and v are really exercised
        att.pos_bias_u.normal_()
        att.pos_bias_v.normal_()
    x = torch.randn(2, time, dim)
    key_mask = torch.tensor([[True] * time, [True] * 4 + [False] * 2])
    _, pos_emb = RelPositionalEncoding(dim, dropout=0.0)(x)
    with torch.no_grad():
        out = att(x, pos_emb, key_mask.unsqueeze(1))
        expected = naive_rel_attention(att, x, key_mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)


def test_parameters_match_conformer_convention():
    att = RelPositionMultiHeadAttention(256, 4)
    assert att.linear_pos.bias is None
    assert att.pos_bias_u.shape == att.pos_bias_v.shape == (4, 64)
    assert sum(p.numel() for p in att.parameters()) == 4 * (256 * 256 + 256) + 256 * 256 + 512
