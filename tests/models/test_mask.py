import torch

from asrkit.models.mask import causal_mask, decoder_self_attention_mask, padding_mask


def test_padding_mask_true_on_valid_steps():
    mask = padding_mask(torch.tensor([3, 1, 0]), 4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]


def test_causal_and_decoder_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True] * 3]
    mask = decoder_self_attention_mask(padding_mask(torch.tensor([2]), 3))
    assert mask[0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
