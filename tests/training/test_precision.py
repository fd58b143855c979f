"""Mixed precision on the CPU (asrkit.training.precision): bf16 autocast, and fp16 autocast with
a GradScaler, through a whole epoch of training, validation and checkpointing."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.training.precision import resolve_precision
from asrkit.training.trainer import run_training


def test_precision_choice_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).name == "fp32"
    assert resolve_precision("auto", cpu).scaler is None
    bf16 = resolve_precision("bf16", cpu)
    assert bf16.scaler is None
    with bf16.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    fp16 = resolve_precision("fp16", cpu)
    assert isinstance(fp16.scaler, torch.amp.GradScaler) and fp16.scaler._device == "cpu"
    with fp16.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
    with pytest.raises(ValueError, match="trainer.precision"):
        resolve_precision("fp8", cpu)


@pytest.mark.parametrize("precision, extra", [
    ("bf16", ()),
    ("bf16", ("trainer.mwer.enabled=true",)),  # the N-best search under autocast too
    ("fp16", ()),
])
def test_an_epoch_in_low_precision_trains_validates_and_checkpoints(corpus, tmp_path,
                                                                    precision, extra):
    exp = tmp_path / "exp"
    status = run_training(corpus.config(exp, "trainer.max_epochs=1", "trainer.tensorboard=false",
                                        f"trainer.precision={precision}", *extra))
    assert status == 0
    log = (exp / "train.log").read_text()
    assert f"precision {precision}" in log and "training finished" in log
    ckpt = torch.load(exp / "checkpoints" / "epoch_1.pt", weights_only=True)
    assert ckpt["epoch_complete"] and ckpt["step"] >= 1
    metrics = ckpt["metrics"]
    assert math.isfinite(metrics["dev_loss"]) and 0.0 <= metrics["dev_wer"]
    assert metrics["dev_cer"] >= 0.0
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values()
               if v.is_floating_point())  # weights stay fp32 under autocast
    if precision == "fp16":  # the GradScaler's state is saved for resuming
        assert ckpt["grad_scaler"]["scale"] > 0
    else:
        assert ckpt["grad_scaler"] is None
