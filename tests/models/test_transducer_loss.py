import pytest
import torch

from asrkit.models.transducer import loss as loss_module
from asrkit.models.transducer.head import TransducerHead
from asrkit.models.transducer.joiner import Joiner
from asrkit.models.transducer.loss import plan_chunks, rnnt_loss_fp32
from asrkit.models.transducer.lstm_prediction import LSTMPredictionNetwork
from tests.models.transducer_reference import forward_algorithm_nll, tiny_head

ENC_DIM = 6


def _batch(enc_lens, token_lens, vocab=5, seed=0):
    """enc (B, T, D) and tokens (B, U) whose padding is garbage (large noise, -1 tokens)."""
    gen = torch.Generator().manual_seed(seed)
    batch, frames, labels = len(enc_lens), max(enc_lens), max(max(token_lens), 1)
    enc = torch.randn(batch, frames, ENC_DIM, generator=gen)
    tokens = torch.randint(1, vocab, (batch, labels), generator=gen)
    for b, (t, u) in enumerate(zip(enc_lens, token_lens)):
        enc[b, t:] = 100.0 * torch.randn(frames - t, ENC_DIM, generator=gen)
        tokens[b, u:] = -1
    return enc, torch.tensor(enc_lens), tokens, torch.tensor(token_lens)


def _reference_loss(head, enc, enc_lens, tokens, token_lens):
    """The head's loss rebuilt per utterance, unpadded: prediction network and joiner on
    that utterance alone, then the forward algorithm; mean over utterances."""
    total = 0.0
    for b in range(enc.size(0)):
        t, u = int(enc_lens[b]), int(token_lens[b])
        labels = tokens[b, :u]
        pred = head.joiner.project_prediction(head.prediction(labels[None]))  # (1, U + 1, J)
        logits = head.joiner(head.joiner.project_encoder(enc[b, :t])[:, None], pred)
        total = total + forward_algorithm_nll(logits.double().log_softmax(-1), labels.tolist())
    return total / enc.size(0)


def _loss_and_grads(head, enc, *rest):
    enc = enc.clone().requires_grad_()
    loss = head(enc, *rest)["loss_transducer"]
    grads = torch.autograd.grad(loss, [enc, *head.parameters()])
    return loss, grads


@pytest.mark.parametrize("seed", [0, 1])
def test_rnnt_loss_equals_the_forward_algorithm_values_and_logit_gradients(seed):
    gen = torch.Generator().manual_seed(seed)
    logit_lens, target_lens = [5, 3, 4], [3, 1, 0]
    logits = (2 * torch.randn(3, 5, 4, 6, generator=gen)).requires_grad_()
    targets = torch.randint(1, 6, (3, 3), generator=gen)
    losses = rnnt_loss_fp32(logits, targets, torch.tensor(logit_lens), torch.tensor(target_lens))
    (grad,) = torch.autograd.grad(losses.sum(), logits)
    naive_logits = logits.detach().double().requires_grad_()
    naive = [forward_algorithm_nll(naive_logits[b, :t, : u + 1].log_softmax(-1),
                                   targets[b, :u].tolist())
             for b, (t, u) in enumerate(zip(logit_lens, target_lens))]
    (naive_grad,) = torch.autograd.grad(sum(naive), naive_logits)
    torch.testing.assert_close(losses.double(), torch.stack(naive), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad.double(), naive_grad, atol=1e-5, rtol=1e-5)
    assert float(grad[1, 3:].abs().sum()) == 0.0, "padded frames get no gradient"


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
def test_head_loss_equals_the_forward_algorithm_with_parameter_gradients(prediction):
    head = tiny_head(prediction=prediction, seed=1, sharpen=2.0)
    enc, enc_lens, tokens, token_lens = _batch([4, 6, 3], [2, 3, 0])
    loss, grads = _loss_and_grads(head, enc, enc_lens, tokens, token_lens)
    head.double()
    enc64 = enc.double().requires_grad_()
    naive = _reference_loss(head, enc64, enc_lens, tokens, token_lens)
    naive_grads = torch.autograd.grad(naive, [enc64, *head.parameters()])
    torch.testing.assert_close(loss.double(), naive, atol=1e-5, rtol=1e-5)
    for grad, naive_grad in zip(grads, naive_grads):
        torch.testing.assert_close(grad.double(), naive_grad, atol=1e-5, rtol=1e-4)


def test_empty_transcript_costs_the_blanks_of_every_frame():
    head = tiny_head(seed=2)
    enc, enc_lens, tokens, token_lens = _batch([5], [0])
    with torch.no_grad():
        pred = head.joiner.project_prediction(head.prediction(tokens[:, :0]))  # (1, 1, J)
        log_probs = head.joiner(head.joiner.project_encoder(enc), pred).log_softmax(-1)
        expected = -log_probs[0, :, 0].sum()
        torch.testing.assert_close(head(enc, enc_lens, tokens, token_lens)["loss_transducer"],
                                   expected, atol=1e-5, rtol=1e-5)


# (budget, chunks expected) for joint_dim 10 + vocab 5 = 15 elements per lattice cell
@pytest.mark.parametrize("budget,num_chunks", [(1, 4), (15 * 2 * 9 * 4, 2), (10**9, 1)])
def test_sub_batched_loss_equals_all_at_once(budget, num_chunks):
    enc_lens, token_lens = [9, 4, 7, 8], [3, 1, 2, 0]
    assert len(plan_chunks(enc_lens, token_lens, 15, budget)) == num_chunks
    head = tiny_head(seed=3, sharpen=2.0)
    head.train()  # dropout is 0: train mode must not change the numbers, only the path
    enc, lens, tokens, tlens = _batch(enc_lens, token_lens, seed=3)
    loss, grads = _loss_and_grads(head, enc, lens, tokens, tlens)
    head.max_joint_elements = budget
    chunked, chunked_grads = _loss_and_grads(head, enc, lens, tokens, tlens)
    torch.testing.assert_close(chunked, loss, atol=1e-6, rtol=1e-6)
    for grad, reference in zip(chunked_grads, grads):
        torch.testing.assert_close(grad, reference, atol=1e-6, rtol=1e-5)


def test_sub_batched_loss_never_builds_or_keeps_the_whole_lattice():
    """Without a budget the joint makes the whole (B, T, U + 1, V) logits and autograd keeps
    its (B, T, U + 1, J) hidden layer until the backward; with a budget of one utterance, no
    logits bigger than one utterance's are made and nothing of lattice size is kept."""
    head = tiny_head(prediction="stateless", seed=4)
    enc, lens, tokens, tlens = _batch([8] * 4, [3] * 4, seed=4)
    cells = 8 * 4  # per utterance: T (U + 1) lattice cells; vocab 5, joint_dim 10
    for budget, num_utts in [(None, 4), (cells * 15, 1)]:
        head.max_joint_elements = budget
        logits, saved = [], []
        hook = head.joiner.register_forward_hook(
            lambda m, i, out, shapes=logits: shapes.append(out.shape))

        def keep(t, sizes=saved):
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            _loss_and_grads(head, enc, lens, tokens, tlens)
        hook.remove()
        assert set(logits) == {(num_utts, 8, 4, 5)}
        assert max(saved) == num_utts * cells * 10, budget


def test_plan_chunks_covers_every_utterance_once_within_the_budget():
    gen = torch.Generator().manual_seed(0)
    enc_lens = torch.randint(1, 50, (40,), generator=gen).tolist()
    token_lens = torch.randint(0, 12, (40,), generator=gen).tolist()
    chunks = plan_chunks(enc_lens, token_lens, 7, 7 * 2000)
    assert sorted(b for group, _, _ in chunks for b in group) == list(range(40))
    for group, t_max, u_max in chunks:
        assert t_max == max(enc_lens[b] for b in group)
        assert u_max == max(token_lens[b] for b in group)
        assert len(group) == 1 or len(group) * t_max * (u_max + 1) * 7 <= 7 * 2000
    with pytest.raises(ValueError, match="max_joint_elements"):
        plan_chunks([3], [1], 7, 0)


@pytest.mark.parametrize("budget", [None, 1])
def test_bf16_autocast_computes_the_loss_in_fp32(monkeypatch, budget):
    seen = []

    def recording_rnnt_loss(logits, *args, **kwargs):
        seen.append(logits.dtype)
        return rnnt_loss(logits, *args, **kwargs)

    rnnt_loss = loss_module.rnnt_loss
    monkeypatch.setattr(loss_module, "rnnt_loss", recording_rnnt_loss)
    head = tiny_head(seed=5, sharpen=2.0, max_joint_elements=budget)
    enc, lens, tokens, tlens = _batch([6, 4, 5], [2, 3, 1], seed=5)
    reference, reference_grads = _loss_and_grads(head, enc, lens, tokens, tlens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head.joiner(torch.zeros(1, 10), torch.zeros(1, 10)).dtype == torch.bfloat16
        loss, grads = _loss_and_grads(head, enc, lens, tokens, tlens)
    assert loss.dtype == torch.float32 and set(seen) == {torch.float32}
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, reference, atol=0.0, rtol=2e-2)
    for grad, reference_grad in zip(grads, reference_grads):
        assert grad.dtype == torch.float32 and bool(torch.isfinite(grad).all())
        torch.testing.assert_close(grad, reference_grad, atol=3e-2, rtol=0.1)


@pytest.mark.parametrize("budget", [None, 1])
def test_loss_and_score_are_padding_invariant(budget):
    head = tiny_head(seed=6, sharpen=2.0, max_joint_elements=budget)
    enc_lens, token_lens = [3, 9, 6], [2, 5, 0]
    enc, lens, tokens, tlens = _batch(enc_lens, token_lens, seed=6)
    with torch.no_grad():
        batch_loss = head(enc, lens, tokens, tlens)["loss_transducer"]
        batch_scores = head.score(enc, lens, tokens, tlens)
        alone = torch.stack([head(enc[b: b + 1, :t], lens[b: b + 1], tokens[b: b + 1, :u],
                                  tlens[b: b + 1])["loss_transducer"]
                             for b, (t, u) in enumerate(zip(enc_lens, token_lens))])
    torch.testing.assert_close(batch_scores, -alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch_loss, alone.mean(), atol=1e-5, rtol=1e-5)


def test_joiner_is_output_of_tanh_of_the_summed_projections():
    torch.manual_seed(0)
    joiner = Joiner(4, 3, 5, joint_dim=6)
    enc, pred = torch.randn(2, 7, 4), torch.randn(2, 2, 3)
    hidden = (enc @ joiner.encoder_proj.weight.T + joiner.encoder_proj.bias)[:, :, None] \
        + (pred @ joiner.prediction_proj.weight.T)[:, None]
    expected = hidden.tanh() @ joiner.output.weight.T + joiner.output.bias  # (2, 7, 2, 5)
    out = joiner(joiner.project_encoder(enc)[:, :, None], joiner.project_prediction(pred)[:, None])
    torch.testing.assert_close(out, expected)


def test_head_rejects_mismatched_parts_and_empty_utterances():
    with pytest.raises(ValueError, match="output_dim 8 != joiner prediction_dim 6"):
        TransducerHead(LSTMPredictionNetwork(5, 8), Joiner(4, 6, 5))
    with pytest.raises(ValueError, match="vocab_size 5 != joiner vocab_size 7"):
        TransducerHead(LSTMPredictionNetwork(5, 8), Joiner(4, 8, 7))
    head = tiny_head()
    enc, _, tokens, tlens = _batch([3, 2], [1, 1])
    with pytest.raises(ValueError, match=r"enc_lens \[3, 0\]"):
        head(enc, torch.tensor([3, 0]), tokens, tlens)
