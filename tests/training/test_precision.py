"""Mixed precision on the CPU (asrkit.training.precision): bf16 autocast, and fp16 autocast with
a GradScaler, through a whole epoch of training, validation and checkpointing."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.native_bf16 import cpu_native_bf16
from asrkit.training.precision import auto_precision, resolve_precision
from asrkit.training.run import run_training


def test_precision_choice_on_cpu():
    cpu = torch.device("cpu")
    plain_cpu = fake_cpuinfo("avx2")  # no native bf16
    assert resolve_precision("auto", cpu, cpuinfo=plain_cpu).name == "fp32"
    assert resolve_precision("auto", cpu, cpuinfo=plain_cpu).scaler is None
    assert resolve_precision("auto", cpu).name == ("fp32" if cpu_native_bf16() is None else "bf16")
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


def fake_cpuinfo(*flags: str) -> str:
    """Two processors' worth of /proc/cpuinfo with the given extra flags."""
    block = ("processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Fake Xeon\n"
             "flags\t\t: fpu vme sse sse2 avx avx2 avx512f {extra}\n\n")
    return "".join(block.format(n=n, extra=" ".join(flags)) for n in range(2))


@pytest.mark.parametrize("flags, native", [
    (("avx512_bf16", "amx_tile", "amx_bf16"), "AMX-BF16"),
    (("avx512_bf16",), "AVX512-BF16"),
    (("avx512_vnni",), None),
])
def test_native_bf16_from_cpuinfo_flags(flags, native):
    assert cpu_native_bf16(fake_cpuinfo(*flags)) == native


@pytest.mark.parametrize("flags, switch, expected, line", [
    (("amx_bf16", "avx512_bf16"), True, "bf16", "precision bf16: CPU has AMX-BF16"),
    (("avx512_bf16",), True, "bf16", "precision bf16: CPU has AVX512-BF16"),
    ((), True, "fp32", "precision fp32: no native bf16 on this CPU"),
    (("amx_bf16",), False, "fp32", ("precision fp32: CPU has AMX-BF16, but bf16 is not the CPU "
                                   "default yet")),
])
def test_auto_on_the_cpu_follows_the_switch_and_says_why(flags, switch, expected, line, caplog):
    cpu = torch.device("cpu")
    with caplog.at_level("INFO", logger="asrkit.training.precision"):
        chosen = resolve_precision("auto", cpu, cpuinfo=fake_cpuinfo(*flags),
                                   cpu_bf16_by_default=switch)
    assert chosen.name == expected and chosen.scaler is None
    assert line in caplog.text


def test_the_cpu_default_is_bf16_where_the_cpu_has_it_natively():
    from asrkit.training import precision

    assert precision.CPU_BF16_BY_DEFAULT is True
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, cpuinfo=fake_cpuinfo("amx_bf16")).name == "bf16"
    assert resolve_precision("auto", cpu, cpuinfo=fake_cpuinfo("avx512_bf16")).name == "bf16"
    assert resolve_precision("auto", cpu, cpuinfo=fake_cpuinfo("avx512f")).name == "fp32"


@pytest.mark.parametrize("precision, extra", [
    ("bf16", ()),
    ("bf16", ("trainer.mwer.enabled=true",)),  # the N-best search under autocast too
    # no conv2d front end in fp16: PyTorch's CPU fp16 convolution backward is over 100x slower
    # than bf16's (15 s of the 23 s this test took); the GradScaler's path is the same
    ("fp16", ("encoder.input_layer=linear",)),
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


def test_auto_on_a_gpu_wants_compute_capability_8(monkeypatch):
    """torch.cuda.is_bf16_supported() is True on older GPUs too, where bf16 is emulated."""
    for capability, expected in (((7, 0), "fp16"), ((8, 0), "bf16"), ((8, 9), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _d, c=capability: c)
        assert auto_precision(torch.device("cuda", 0))[0] == expected
