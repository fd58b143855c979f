"""One update of the training loop (asrkit.training.train_step) as the trainer drives it:
gradient accumulation, clipping of the global gradient norm, and non-finite gradients."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest
import torch

from asrkit.training.run import run_training
from asrkit.training.trainer import Trainer, TrainingError


class FixedBatches:
    """A stand-in for the train loader that hands out the given batches once, advancing
    ``sampler.position`` as ResumableLoader does."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches
        self.sampler = SimpleNamespace(position=0)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            self.sampler.position += 1
            yield batch


def split(batch: dict, start: int, stop: int) -> dict:
    """Utterances start..stop-1 of a batch, padding kept as it is (same time and token width)."""
    return {key: value[start:stop] for key, value in batch.items() if key != "failed"}


def sgd_trainer(config: dict) -> Trainer:
    """A set-up trainer without dropout whose update is plain SGD at a fixed rate (Adam's
    first step is nearly invariant to the scale of the gradient and would hide a missing
    1/accum_grad)."""
    trainer = Trainer(config)
    trainer.setup()
    for module in trainer.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    sgd = torch.optim.SGD(trainer.model.parameters(), lr=0.1)
    trainer.state.optimizer = sgd
    trainer.state.scheduler = torch.optim.lr_scheduler.LambdaLR(sgd, lambda step: 1.0)
    return trainer


def test_two_accumulated_half_batches_make_the_update_of_the_full_batch(corpus, tmp_path):
    extra = ("trainer.max_epochs=1", "trainer.grad_clip=null", "trainer.tensorboard=false")
    whole = sgd_trainer(corpus.config(tmp_path / "whole", *extra))
    halves = sgd_trainer(corpus.config(tmp_path / "halves", *extra, "trainer.accum_grad=2"))
    try:
        for a, b in zip(whole.model.parameters(), halves.model.parameters(), strict=True):
            assert torch.equal(a, b)  # the same seed, the same initial weights
        batch = next(iter(whole.train_loader))
        size = len(batch["ids"]) // 2 * 2
        assert size >= 2
        whole.train_loader = FixedBatches([split(batch, 0, size)])
        halves.train_loader = FixedBatches([split(batch, 0, size // 2),
                                            split(batch, size // 2, size)])
        initial = [p.detach().clone() for p in whole.model.parameters()]
        whole._train_epoch()
        halves._train_epoch()
        assert whole.step == halves.step == 1
        for (name, a), b in zip(whole.model.named_parameters(), halves.model.parameters()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
        moved = max(float((p.detach() - q).abs().max())
                    for p, q in zip(whole.model.parameters(), initial))
        assert moved > 1e-3  # the update did something to compare
    finally:
        whole.cleanup()
        halves.cleanup()


def global_norm(params) -> float:
    return math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params
                         if p.grad is not None))


def test_clipping_bounds_the_global_norm_and_the_log_has_the_norm_before(corpus, tmp_path):
    clip = 0.5
    trainer = Trainer(corpus.config(tmp_path / "exp", "trainer.max_epochs=1",
                                    f"trainer.grad_clip={clip}"))
    trainer.setup()
    steps, params = trainer.steps, list(trainer.model.parameters())
    before, returned, applied = [], [], []
    update = steps.update

    def recording_update():
        before.append(global_norm(params))
        returned.append(update())
        return returned[-1]

    steps.update = recording_update
    steps.optimizer.register_step_pre_hook(lambda *_: applied.append(global_norm(params)))
    try:
        assert trainer.train() == 0
    finally:
        trainer.cleanup()
    assert len(applied) == len(before) == trainer.step > 0
    assert min(before) > clip  # clipping was needed at every update
    assert applied == pytest.approx([clip] * len(applied), rel=1e-5)  # scaled to clip exactly
    assert returned == pytest.approx(before, rel=1e-5)  # update() returns the norm before
    logged = [float(v) for v in re.findall(r"grad_norm (\S+)",
                                           (tmp_path / "exp" / "train.log").read_text())]
    assert logged == pytest.approx(before, rel=1e-2)  # printed with 3 digits


def infinite_gradient(trainer: Trainer, batches: set[int] | None = None) -> None:
    """Make one parameter's gradient infinite in the backward pass of the given batches
    (1-based), or of every batch."""
    param, calls = next(trainer.model.parameters()), [0]

    def hook(grad: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if batches is None or calls[0] in batches:
            return torch.full_like(grad, float("inf"))
        return grad

    param.register_hook(hook)


def test_nonfinite_gradient_norms_in_a_row_stop_the_run(corpus, tmp_path):
    trainer = Trainer(corpus.config(tmp_path / "exp", "trainer.max_nan_in_a_row=3"))
    trainer.setup()
    infinite_gradient(trainer)
    try:
        with pytest.raises(TrainingError, match="3 non-finite losses or gradient norms in a "
                                                "row .trainer.max_nan_in_a_row=3. at update 0"):
            trainer.train()
    finally:
        trainer.cleanup()
    assert trainer.counters["nonfinite_grad_skipped"] == 3 and trainer.step == 0


def test_a_nonfinite_gradient_between_good_updates_is_skipped(corpus, tmp_path):
    trainer = Trainer(corpus.config(tmp_path / "exp", "trainer.max_epochs=1",
                                    "trainer.max_nan_in_a_row=2"))
    trainer.setup()
    infinite_gradient(trainer, batches={2, 4})  # never two in a row
    try:
        assert trainer.train() == 0
    finally:
        trainer.cleanup()
    assert trainer.counters["nonfinite_grad_skipped"] == 2
    assert trainer.step == len(trainer.train_loader) - 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_a_diverging_run_stops_with_exit_status_1(corpus, tmp_path):
    """The audit's case: a huge rate without clipping gives non-finite gradients, update
    after update; the run must stop instead of finishing with status 0."""
    exp = tmp_path / "exp"
    status = run_training(corpus.config(exp, "optim.lr=1e4", "trainer.grad_clip=null",
                                        "trainer.max_nan_in_a_row=3", "trainer.max_epochs=6",
                                        "trainer.tensorboard=false"))
    assert status == 1
    log = (exp / "train.log").read_text()
    assert "3 non-finite losses or gradient norms in a row" in log
    assert "training finished" not in log


@pytest.mark.long(160)
def test_compile_handles_every_batch_shape_without_recompiling(corpus, tmp_path):
    """trainer.compile=true (inductor, C++ code) for a joint CTC/attention model over an
    epoch of batches of different sizes and lengths: no graph is compiled more than twice
    (dynamo would raise at a third), so nothing falls back to eager after recompile_limit,
    and every batch's loss is eager mode's (dropout off; the updates in between are then
    the same too). About 2.5 minutes on one core of a 2-core machine when inductor's cache
    is cold, as on a fresh CI machine (compile_for_varying_shapes)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    def epoch(name: str, compile: bool) -> list[tuple[tuple, tuple, float]]:
        trainer = Trainer(corpus.config(tmp_path / name, "trainer.max_epochs=1",
                                        f"trainer.compile={str(compile).lower()}",
                                        "trainer.tensorboard=false",
                                        "trainer.num_attention_images=0", "encoder.dropout=0.0",
                                        "encoder.positional_dropout=0.0",
                                        "decoder.dropout=0.0",
                                        "decoder.positional_dropout=0.0"))
        trainer.setup()
        seen = []
        forward = trainer.steps.forward

        def recording(batch, sync):
            out = forward(batch, sync)
            seen.append((tuple(batch["feats"].shape), tuple(batch["tokens"].shape),
                         out["loss"].item()))
            return out

        trainer.steps.forward = recording
        try:
            with torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=True):
                assert trainer.train() == 0
        finally:
            trainer.cleanup()
            torch._dynamo.reset()
        return seen

    torch._dynamo.reset()
    counters.clear()
    compiled = epoch("compiled", compile=True)
    assert counters["frames"]["ok"] > 0 and counters["frames"]["ok"] == counters["frames"]["total"]
    shapes = [(feats, tokens) for feats, tokens, _ in compiled]
    assert len(set(shapes)) == len(shapes) >= 5  # the batches really differ
    assert len({feats[0] for feats, _ in shapes}) >= 3  # in size too, not only in length
    eager = epoch("eager", compile=False)
    assert [(f, t) for f, t, _ in eager] == shapes
    assert [loss for *_, loss in compiled] == pytest.approx([loss for *_, loss in eager],
                                                            rel=1e-4)
