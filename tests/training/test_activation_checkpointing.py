import torch

from asrkit.config import compose_train_config
from asrkit.models.build import build_model
from asrkit.training.activation_checkpointing import enable_activation_checkpointing


def test_same_gradients_with_and_without_recomputation():
    config = compose_train_config(["+experiment=synth/conformer", "vocab_size=20",
                                   "encoder.num_layers=2", "encoder.d_model=32",
                                   "encoder.num_heads=2", "encoder.ffn_dim=64",
                                   "decoder.d_model=32", "decoder.num_heads=2",
                                   "decoder.ffn_dim=64", "decoder.num_layers=1"])
    torch.manual_seed(0)
    plain = build_model(config)
    checkpointed = build_model(config)
    checkpointed.load_state_dict(plain.state_dict())
    assert enable_activation_checkpointing(checkpointed) == 3
    assert plain.state_dict().keys() == checkpointed.state_dict().keys()
    feats, lens = torch.randn(2, 90, config["encoder"]["input_dim"]), torch.tensor([90, 70])
    tokens, token_lens = torch.tensor([[3, 4, 5], [6, 7, -1]]), torch.tensor([3, 2])
    grads = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same dropout masks (checkpoint replays the RNG state)
        model(feats, lens, tokens, token_lens)["loss"].backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)
    # the batch norms' running statistics are updated once a step, as without checkpointing
    buffers = [dict(model.named_buffers()) for model in (plain, checkpointed)]
    norms = [n for n in buffers[0] if n.endswith("num_batches_tracked")]
    assert norms and all(int(buffers[1][n]) == int(buffers[0][n]) == 1 for n in norms)
    for name, value in buffers[0].items():
        torch.testing.assert_close(buffers[1][name], value, rtol=1e-5, atol=1e-6, msg=name)
