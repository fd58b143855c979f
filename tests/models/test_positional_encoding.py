import math

import torch

from asrkit.models.dropout import keep_mask
from asrkit.models.positional_encoding import PositionalEncoding, RelPositionalEncoding


def reference_sinusoid(position: float, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...) (Vaswani et al. 3.5)."""
    out = torch.empty(dim)
    for i in range(dim // 2):
        angle = position / 10000 ** (2 * i / dim)
        out[2 * i], out[2 * i + 1] = math.sin(angle), math.cos(angle)
    return out


def test_absolute_encoding_matches_formula():
    pe = PositionalEncoding(8, dropout=0.0)
    x = torch.zeros(1, 5, 8)
    out = pe(x, offset=3)
    for t in range(5):
        torch.testing.assert_close(out[0, t], reference_sinusoid(t + 3, 8), atol=1e-5, rtol=0)


def test_absolute_encoding_scales_the_input_by_sqrt_d():
    # Vaswani et al. 3.4/3.5: embeddings are multiplied by sqrt(d_model), then PE is added
    pe = PositionalEncoding(8, dropout=0.0)
    x = torch.randn(2, 5, 8)
    out = pe(x)
    for t in range(5):
        expected = x[:, t] * math.sqrt(8) + reference_sinusoid(t, 8)
        torch.testing.assert_close(out[:, t], expected, atol=1e-5, rtol=1e-5)


def test_relative_encoding_covers_distances_t_minus_1_to_minus_t_plus_1():
    pe = RelPositionalEncoding(6, dropout=0.0)
    x = torch.randn(2, 4, 6)
    scaled, pos_emb = pe(x)
    torch.testing.assert_close(scaled, x * math.sqrt(6))
    assert pos_emb.shape == (7, 6)
    for k, distance in enumerate(range(3, -4, -1)):
        torch.testing.assert_close(pos_emb[k], reference_sinusoid(distance, 6), atol=1e-5, rtol=0)


def test_training_dropout_applies_one_mask_after_the_scale():
    """dropout(x * sqrt(d)) with the dropout's 1/(1-p) folded into the sqrt(d) multiplication:
    the same numbers as the plain formula with the same mask."""
    pe = RelPositionalEncoding(8, dropout=0.2).train()
    x = torch.randn(2, 5, 8)
    torch.manual_seed(3)
    keep, scale = keep_mask(x.shape, 0.2)
    keep_pos, scale_pos = keep_mask((9, 8), 0.2)
    torch.manual_seed(3)
    scaled, pos_emb = pe(x)
    torch.testing.assert_close(scaled, x * math.sqrt(8) * keep * scale)
    expected_pos = torch.stack([reference_sinusoid(d, 8) for d in range(4, -5, -1)])
    torch.testing.assert_close(pos_emb, expected_pos * keep_pos * scale_pos, atol=1e-5, rtol=0)
    absolute = PositionalEncoding(8, dropout=0.2).train()
    torch.manual_seed(3)
    out = absolute(x)
    expected = (x * math.sqrt(8) + torch.stack([reference_sinusoid(t, 8) for t in range(5)]))
    torch.testing.assert_close(out, expected * keep * scale, atol=1e-5, rtol=1e-5)
