import torch
import torch.nn.functional as F

from asrkit.models.decoders.transformer import TransformerDecoder
from asrkit.models.mask import padding_mask

VOCAB = 11


def tiny_decoder(**kwargs) -> TransformerDecoder:
    torch.manual_seed(0)
    options = {"vocab_size": VOCAB, "encoder_dim": 12, "d_model": 16, "num_heads": 4,
               "ffn_dim": 32, "num_layers": 2}
    return TransformerDecoder(**{**options, **kwargs}).eval()


def encoder_output(lengths):
    torch.manual_seed(1)
    enc = torch.randn(len(lengths), max(lengths), 12)
    return enc, padding_mask(torch.tensor(lengths), max(lengths))


def test_shapes():
    decoder = tiny_decoder()
    enc, enc_mask = encoder_output([9, 6])
    tokens = torch.randint(0, VOCAB, (2, 5))
    logits = decoder(tokens, padding_mask(torch.tensor([5, 3]), 5), enc, enc_mask)
    assert logits.shape == (2, 5, VOCAB)


def test_padding_invariance_of_tokens_and_encoder_frames():
    decoder = tiny_decoder()
    enc, enc_mask = encoder_output([9, 6, 3])
    enc = torch.where(enc_mask.unsqueeze(-1), enc, torch.full_like(enc, 1e3))  # garbage padding
    token_lens = torch.tensor([4, 6, 2])
    tokens = torch.randint(0, VOCAB, (3, 6))
    with torch.no_grad():
        batch = decoder(tokens, padding_mask(token_lens, 6), enc, enc_mask)
        enc_lens = enc_mask.sum(1).tolist()
        for b, (u, t) in enumerate(zip(token_lens.tolist(), enc_lens, strict=True)):
            alone = decoder(tokens[b: b + 1, :u], torch.ones(1, u, dtype=torch.bool),
                            enc[b: b + 1, :t], torch.ones(1, t, dtype=torch.bool))
            torch.testing.assert_close(batch[b, :u], alone[0], atol=1e-5, rtol=1e-5)


def test_incremental_decoding_with_cache_equals_full_forward():
    decoder = tiny_decoder()
    enc, enc_mask = encoder_output([9, 5, 7])
    tokens = torch.randint(0, VOCAB, (3, 6))
    with torch.no_grad():
        full = F.log_softmax(decoder(tokens, torch.ones(3, 6, dtype=torch.bool), enc, enc_mask), -1)
        cache = None
        for u in range(1, 7):
            log_probs, cache = decoder.forward_one_step(tokens[:, :u], enc, enc_mask, cache)
            assert len(cache) == 2 and cache[0].shape == (3, u, 16)
            torch.testing.assert_close(log_probs, full[:, u - 1], atol=1e-5, rtol=1e-5)
        # a first call with a longer prefix and no cache gives the same
        log_probs, _ = decoder.forward_one_step(tokens[:, :4], enc, enc_mask, None)
        torch.testing.assert_close(log_probs, full[:, 3], atol=1e-5, rtol=1e-5)


def test_cache_reorders_like_beam_search():
    decoder = tiny_decoder()
    enc, enc_mask = encoder_output([8, 8])
    tokens = torch.randint(0, VOCAB, (2, 4))
    with torch.no_grad():
        _, cache = decoder.forward_one_step(tokens[:, :3], enc, enc_mask, None)
        order = torch.tensor([1, 1])
        cache = [c.index_select(0, order) for c in cache]
        step, _ = decoder.forward_one_step(tokens[order, :4], enc[order], enc_mask[order], cache)
        expected, _ = decoder.forward_one_step(tokens[order, :4], enc[order], enc_mask[order])
    torch.testing.assert_close(step, expected, atol=1e-5, rtol=1e-5)


def test_tied_weights_share_the_embedding():
    decoder = tiny_decoder(tie_weights=True)
    assert decoder.output_layer.weight is decoder.embed.weight
    untied = tiny_decoder()
    assert len(list(untied.parameters())) == len(list(decoder.parameters())) + 1
