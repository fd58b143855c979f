import math

import pytest
import torch

from asrkit.models.dropout import keep_mask
from asrkit.models.mask import padding_mask
from asrkit.models.positional_encoding import RelPositionalEncoding
from asrkit.models.rel_attention import (
    RelPositionMultiHeadAttention,
    flex_rel_attention,
    rel_position_score_mod,
    rel_shift,
    set_attention_backend,
    skew,
)


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


def plain_rel_attention(att: RelPositionMultiHeadAttention, x, pos_emb, mask):
    """The block in plain torch ops, as written before any optimisation: separate q/k/v
    projections, the distance term gathered with an explicit index T-1-i+j, a float mask of
    -inf, softmax, values. mask (batch, 1 or T, T) bool."""
    batch, time, dim = x.shape
    heads, d_k = att.num_heads, att.d_k
    q = att.linear_q(x).view(batch, time, heads, d_k).transpose(1, 2)  # (b, h, T, d_k)
    k = att.linear_k(x).view(batch, time, heads, d_k).transpose(1, 2)
    v = att.linear_v(x).view(batch, time, heads, d_k).transpose(1, 2)
    p = att.linear_pos(pos_emb).view(2 * time - 1, heads, d_k).transpose(0, 1)  # (h, 2T-1, d_k)
    content = (q + att.pos_bias_u.unsqueeze(1)) @ k.transpose(-2, -1)
    distances = (q + att.pos_bias_v.unsqueeze(1)) @ p.transpose(-2, -1)  # (b, h, T, 2T-1)
    index = time - 1 - torch.arange(time)[:, None] + torch.arange(time)[None, :]  # (T, T)
    position = distances.gather(-1, index.expand(batch, heads, time, time))
    scores = (content + position) / math.sqrt(d_k)
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    out = scores.softmax(-1) @ v  # (b, h, T, d_k)
    return att.linear_out(out.transpose(1, 2).reshape(batch, time, dim))


def random_layer(dim=16, heads=4, dropout=0.0):
    torch.manual_seed(0)
    att = RelPositionMultiHeadAttention(dim, heads, dropout)
    with torch.no_grad():
        att.pos_bias_u.normal_()
        att.pos_bias_v.normal_()
    return att


def inputs(time=7, dim=16):
    torch.manual_seed(1)
    x = torch.randn(3, time, dim, requires_grad=True)
    _, pos_emb = RelPositionalEncoding(dim, dropout=0.0)(x)
    pos_emb = pos_emb.detach().requires_grad_()  # a gradient reaches pos_emb (and its dropout)
    key_mask = padding_mask(torch.tensor([time, 5, 2]), time).unsqueeze(1)  # (3, 1, T)
    return x, pos_emb, key_mask


def gradients(att, x, pos_emb, out, weight):
    for t in (x, pos_emb, *att.parameters()):
        t.grad = None
    (out * weight).sum().backward()
    return [x.grad, pos_emb.grad] + [p.grad for p in att.parameters()]


@pytest.mark.parametrize("backend", ["matmul", "sdpa"])
@pytest.mark.parametrize("causal", [False, True])
def test_backends_match_plain_torch_ops_with_gradients(backend, causal, assert_close_scaled):
    att = random_layer().train()  # training mode, no dropout: the training function
    att.attention_backend = backend
    x, pos_emb, mask = inputs()
    if causal:  # a (batch, T, T) mask as well as a (batch, 1, T) one
        mask = mask & torch.ones(7, 7, dtype=torch.bool).tril()
    weight = torch.randn(3, 7, 16)
    out = att(x, pos_emb, mask)
    ours = gradients(att, x, pos_emb, out, weight)
    expected = plain_rel_attention(att, x, pos_emb, mask)
    reference = gradients(att, x, pos_emb, expected, weight)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(ours, reference, strict=True):
        assert_close_scaled(a, b)


def test_flex_attention_score_mod_matches_plain_ops():
    """The CUDA kernel's logic on a CPU: flex_attention's reference implementation (forward;
    it has no CPU backward), and the score modification evaluated on the full (b, h, i, j)
    index grid, with gradients."""
    att = random_layer().eval()
    x, pos_emb, mask = inputs()
    with torch.no_grad():
        expected = plain_rel_attention(att, x, pos_emb, mask)
        q_u, k, v, distances = att.project(x, pos_emb)
        out = flex_rel_attention(q_u, k, v, distances, mask, compiled=False)
        merged = att.linear_out(out.transpose(1, 2).reshape(3, 7, 16))
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-5)

    weight = torch.randn(3, 7, 16)
    q_u, k, v, distances = att.project(x, pos_emb)
    score_mod = rel_position_score_mod(distances, mask)
    grid = [torch.arange(n).view([-1 if d == axis else 1 for d in range(4)])
            for axis, n in enumerate((3, 4, 7, 7))]
    scores = score_mod(q_u @ k.transpose(-2, -1), *grid)  # (b, h, T, T)
    dense = att.linear_out((scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 7, 16))
    ours = gradients(att, x, pos_emb, dense, weight)
    reference = gradients(att, x, pos_emb, plain_rel_attention(att, x, pos_emb, mask), weight)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_skew_is_rel_shift_without_a_copy():
    scores = torch.randn(2, 3, 5, 9)
    view = skew(scores)
    assert view.data_ptr() == scores[..., 4:].data_ptr()  # a view into the same storage
    torch.testing.assert_close(view, rel_shift(scores), rtol=0, atol=0)
    with pytest.raises(ValueError, match="contiguous"):
        skew(scores.transpose(-1, -2).contiguous().transpose(-1, -2))


def test_backend_choice_by_device_and_dropout():
    att = RelPositionMultiHeadAttention(16, 4, dropout=0.1)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert att.train().backend(cpu) == "matmul" and att.backend(cuda) == "sdpa"  # flex: no dropout
    assert att.eval().backend(cuda) == "flex"
    encoder = torch.nn.Sequential(att, RelPositionMultiHeadAttention(16, 4))
    assert set_attention_backend(encoder, "sdpa") == 2 and att.backend(cuda) == "sdpa"
    with pytest.raises(ValueError, match="attention_backend"):
        set_attention_backend(encoder, "flash")


def test_attention_dropout_masks_the_probabilities(assert_close_scaled):
    att = random_layer(dropout=0.3).train()
    x, pos_emb, mask = inputs()
    torch.manual_seed(4)
    keep, scale = keep_mask((12, 7, 7), 0.3)  # (batch * heads, T, T), drawn as the layer does
    torch.manual_seed(4)
    out = att(x, pos_emb, mask)
    q_u, k, v, distances = att.project(x, pos_emb)
    bias = rel_shift(distances).masked_fill(~mask.unsqueeze(1), float("-inf"))
    probs = (q_u @ k.transpose(-2, -1) + bias).softmax(-1) * keep.view(3, 4, 7, 7) * scale
    expected = att.linear_out((probs @ v).transpose(1, 2).reshape(3, 7, 16))
    assert_close_scaled(out, expected)


def test_an_utterance_without_frames_stays_finite():
    att = random_layer().train()
    x, pos_emb, _ = inputs()
    mask = padding_mask(torch.tensor([7, 0, 3]), 7).unsqueeze(1)
    out = att(x, pos_emb, mask)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()


def test_bf16_autocast_is_close_to_fp32():
    att = random_layer().eval()
    x, pos_emb, mask = inputs()
    with torch.no_grad():
        expected = plain_rel_attention(att, x, pos_emb, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = att(x, pos_emb, mask)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)
