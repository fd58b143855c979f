"""A training step reads nothing from the device (asrkit.training.train_step): no host-device
synchronisation between a batch's arrival and the end of its optimiser step, except at the
log lines (``settle``). On the CPU nothing would wait, so the test forbids what would wait
on a GPU: every way a tensor's value reaches the host (``item``, ``tolist``, ``bool``,
``float``, ``int``, formatting) and every op whose output size depends on the values
(``nonzero``, boolean-mask indexing, ``masked_select``, ``unique``, ``bincount``) raise
inside the step. Skips (a NaN loss, an infinite gradient) happen inside the guarded steps
and are counted at the next log line as if checked at once."""

from __future__ import annotations

import contextlib
import re

import pytest
import torch

from asrkit.training.running_means import RunningMeans
from asrkit.training.trainer import Trainer
from tests.training.test_train_step import FixedBatches, infinite_gradient

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__",
         "__format__", "__repr__", "numpy", "cpu", "nonzero", "argwhere", "masked_select",
         "unique")
SIZED_BY_VALUES = ("nonzero", "argwhere", "masked_select", "unique", "bincount")


class ReadGuard:
    """Patches tensor reads to raise while ``active``; ``off()`` lifts it for a while."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.active, self.violations = False, []
        for name in READS:
            monkeypatch.setattr(torch.Tensor, name, self._guard(getattr(torch.Tensor, name),
                                                                f"Tensor.{name}"))
        for name in SIZED_BY_VALUES:
            monkeypatch.setattr(torch, name, self._guard(getattr(torch, name), f"torch.{name}"))
        getitem = torch.Tensor.__getitem__

        def guarded_getitem(tensor: torch.Tensor, index):
            parts = index if isinstance(index, tuple) else (index,)
            if self.active and any(torch.is_tensor(i) and i.dtype == torch.bool for i in parts):
                self._violate("boolean-mask indexing")
            return getitem(tensor, index)

        monkeypatch.setattr(torch.Tensor, "__getitem__", guarded_getitem)

    def _violate(self, what: str) -> None:
        self.violations.append(what)
        raise AssertionError(f"{what} inside a training step (a host-device sync on a GPU)")

    def _guard(self, original, what: str):
        def guarded(*args, **kwargs):
            if self.active:
                self._violate(what)
            return original(*args, **kwargs)
        return guarded

    @contextlib.contextmanager
    def off(self):
        active, self.active = self.active, False
        try:
            yield
        finally:
            self.active = active

    def lifted_in(self, fn):
        def unguarded(*args, **kwargs):
            with self.off():
                return fn(*args, **kwargs)
        return unguarded


def nan_loss_at(trainer: Trainer, micro_batches: set[int]) -> None:
    """The loss of the given micro-batches (1-based) becomes NaN, on the device."""
    forward, calls = trainer.steps.train_model.forward, [0]

    def patched(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls[0] += 1
        if calls[0] in micro_batches:
            out = {**out, "loss": out["loss"] * float("nan")}
        return out

    trainer.steps.train_model.forward = patched


def set_up(corpus, exp_dir, *extra: str) -> tuple[Trainer, list[dict]]:
    """A trainer at a constant rate (so that runs settling at different times take the same
    updates) over the first epoch's batches, loaded beforehand."""
    trainer = Trainer(corpus.config(exp_dir, "trainer.max_epochs=1", "trainer.tensorboard=false",
                                    "trainer.num_attention_images=0", *extra))
    trainer.setup()
    trainer.state.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.state.optimizer,
                                                                lambda step: 1.0)
    batches = list(trainer.train_loader)
    trainer.train_loader = FixedBatches(batches)
    return trainer, batches


CONFORMER = ("encoder=conformer", "encoder.num_layers=1", "encoder.d_model=32",
             "encoder.num_heads=2", "encoder.ffn_dim=64", "encoder.kernel_size=3")


@pytest.mark.parametrize("model,grad_skips", [((), 1), (CONFORMER, 1),
                                              (("trainer.precision=fp16",  # see below
                                                "encoder.input_layer=linear"), 0)],
                         ids=["transformer", "conformer-batchnorm", "fp16-gradscaler"])
def test_a_training_step_reads_nothing_from_the_device(corpus, tmp_path, monkeypatch, model,
                                                       grad_skips):
    """Also with BatchNorm (its statistics put back on the device after the NaN loss) and
    under fp16, where the GradScaler skips the infinite gradient's update (found_inf too)
    and, as before, does not count it as a skip (without the conv2d front end: PyTorch's
    CPU fp16 convolution backward is over 100x slower than bf16's)."""
    trainer, batches = set_up(corpus, tmp_path / "exp", "trainer.log_interval=3", *model)
    nan_loss_at(trainer, {2})
    infinite_gradient(trainer, {4})
    assert trainer.state.optimizer.defaults["fused"]  # found_inf: skipped on the device
    guard = ReadGuard(monkeypatch)
    steps, guarded_updates = trainer.steps, []
    for name in ("settle",):  # the log lines' reads, and the epoch's end
        setattr(steps, name, guard.lifted_in(getattr(steps, name)))
    for name in ("_log_interval", "_periodic"):
        setattr(trainer, name, guard.lifted_in(getattr(trainer, name)))
    monkeypatch.setattr(RunningMeans, "means", guard.lifted_in(RunningMeans.means))
    update = steps.update

    def recording_update():
        guarded_updates.append(guard.active)
        return update()

    steps.update = recording_update
    try:
        guard.active = True
        trainer._train_epoch()
    finally:
        guard.active = False
        trainer.cleanup()
    assert guard.violations == []
    assert guarded_updates == [True] * len(batches) == [True] * 6  # 6 updates, all guarded
    assert trainer.counters["nan_skipped"] == 1
    assert trainer.counters["nonfinite_grad_skipped"] == grad_skips
    made = 4 + (1 - grad_skips)  # 6 updates, less the NaN loss's and the counted one
    assert trainer.step == made and trainer.state.scheduler.last_epoch == made
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def run_epoch(corpus, exp_dir, log_interval: int) -> Trainer:
    trainer, _ = set_up(corpus, exp_dir, f"trainer.log_interval={log_interval}",
                        "trainer.max_nan_in_a_row=3")
    nan_loss_at(trainer, {2})
    infinite_gradient(trainer, {4, 5})
    try:
        trainer._train_epoch()
    finally:
        trainer.cleanup()
    return trainer


def test_skips_counted_at_log_lines_are_those_counted_at_every_update(corpus, tmp_path):
    """Checked at every update (log_interval 1, what the trainer did before) or only at every
    fourth: the same updates are skipped and made, so the weights, the optimiser's state, the
    counters and the warnings (with the utterances of the batch) are the same."""
    eager = run_epoch(corpus, tmp_path / "eager", log_interval=1)
    lazy = run_epoch(corpus, tmp_path / "lazy", log_interval=4)
    assert eager.step == lazy.step == 3  # 6 updates, 3 skipped
    assert eager.counters == lazy.counters == {"nan_skipped": 1, "oom_skipped": 0,
                                               "nonfinite_grad_skipped": 2}
    for a, b in zip(eager.model.state_dict().values(), lazy.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(eager.state.optimizer.state.values(), lazy.state.optimizer.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in a)  # Adam's moments and step count

    def warnings(exp: str) -> list[str]:
        lines = (tmp_path / exp / "train.log").read_text().splitlines()
        return [re.sub(r"^.*WARNING ", "", line) for line in lines if "skipped (" in line]

    assert warnings("eager") == warnings("lazy") and len(warnings("lazy")) == 3
    first, _, last = warnings("lazy")
    assert first.startswith("non-finite loss (nan on this rank) at update 1, batch of feats (")
    assert last == "non-finite gradient norm at update 2: update skipped (2 in a row, 3 in all)"


def test_too_many_skips_in_a_row_stop_the_run_at_the_next_log_line(corpus, tmp_path):
    """With log_interval 4 the skips are read at update 4: the run stops there, naming the
    update where the third skip in a row happened, with the counters as at that skip."""
    from asrkit.training.train_step import TrainingError

    trainer, _ = set_up(corpus, tmp_path / "exp", "trainer.log_interval=4",
                        "trainer.max_nan_in_a_row=3")
    infinite_gradient(trainer)  # every update
    try:
        with pytest.raises(TrainingError, match="3 non-finite losses or gradient norms in a "
                                                "row .trainer.max_nan_in_a_row=3. at update 0"):
            trainer._train_epoch()
    finally:
        trainer.cleanup()
    assert trainer.counters["nonfinite_grad_skipped"] == 3 and trainer.step == 0
