import itertools
import math

import pytest
import torch

from asrkit.training.schedulers import (
    NoamScheduler,
    WarmupCosineScheduler,
    WarmupLinearScheduler,
    build_scheduler,
    rewind,
    set_total_steps,
)


def optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def rates(scheduler, steps):
    """The rate used by updates 1..steps."""
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_noam_is_the_transformer_formula():
    d, warmup, factor = 256, 10, 2.0
    got = rates(NoamScheduler(optimizer(), d_model=d, warmup_steps=warmup, factor=factor), 40)
    want = [factor * d ** -0.5 * min(s ** -0.5, s * warmup ** -1.5) for s in range(1, 41)]
    assert got == pytest.approx(want, rel=1e-12)
    assert max(got) == pytest.approx(factor * (d * warmup) ** -0.5) == got[warmup - 1]


def test_noam_default_factor_gives_the_conformer_peak():
    """Gulati et al.: peak 0.05 / sqrt(d) with 10k warm-up steps."""
    sched = NoamScheduler(optimizer(), d_model=144, warmup_steps=10000)
    assert sched.rate(10000) == pytest.approx(0.05 / math.sqrt(144))


def test_warmup_linear_and_cosine():
    lin = rates(WarmupLinearScheduler(optimizer(2.0), warmup_steps=4, total_steps=10,
                                      min_lr_ratio=0.0), 12)
    assert lin[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert lin[4:10] == pytest.approx([2.0 * (1 - k / 7) for k in range(1, 7)])
    assert lin[10:] == pytest.approx([0.0, 0.0])
    cos = rates(WarmupCosineScheduler(optimizer(2.0), warmup_steps=2, total_steps=8,
                                      min_lr_ratio=0.1), 8)
    assert cos[:2] == pytest.approx([1.0, 2.0])
    want = [2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 7))) for k in range(1, 7)]
    assert cos[2:] == pytest.approx(want)
    assert all(a > b for a, b in itertools.pairwise(cos[1:]))  # decreasing after the warm-up


def test_state_dict_round_trip_continues_the_schedule():
    first = NoamScheduler(optimizer(), d_model=64, warmup_steps=5)
    rates(first, 7)
    second = NoamScheduler(optimizer(), d_model=64, warmup_steps=5)
    second.load_state_dict(first.state_dict())
    second.optimizer.param_groups[0]["lr"] = first.optimizer.param_groups[0]["lr"]
    assert rates(second, 3) == pytest.approx(rates(first, 3))


def test_builder_fills_in_total_steps_and_d_model():
    cfg = {"_target_": "asrkit.training.schedulers.WarmupLinearScheduler", "warmup_steps": 2,
           "total_steps": None, "min_lr_ratio": 0.0}
    assert build_scheduler(cfg, optimizer(), total_steps=50, d_model=8).total_steps == 50
    noam = {"_target_": "asrkit.training.schedulers.NoamScheduler", "d_model": None,
            "warmup_steps": 2, "factor": 1.0}
    assert build_scheduler(noam, optimizer(), total_steps=50, d_model=8).d_model == 8
    with pytest.raises(ValueError, match="scheduler.warmup_steps"):
        build_scheduler({**noam, "warmup_steps": 0}, optimizer(), 50, 8)


@pytest.mark.parametrize("cls", [WarmupLinearScheduler, WarmupCosineScheduler])
def test_set_total_steps_continues_as_a_fresh_schedule_of_the_new_length(cls):
    """A run resumed with more epochs: after update 12 of a 12-update schedule (rate at its
    floor), stretched to 18 the rates are those a fresh 18-update schedule gives."""
    short = cls(optimizer(2.0), warmup_steps=3, total_steps=12, min_lr_ratio=0.1)
    rates(short, 12)
    assert set_total_steps(short, 18) == 12
    assert rates(short, 6) == pytest.approx(
        rates(cls(optimizer(2.0), warmup_steps=3, total_steps=18, min_lr_ratio=0.1), 18)[12:],
        rel=1e-12)
    assert set_total_steps(short, 18) is None  # already so
    assert set_total_steps(NoamScheduler(optimizer(), d_model=4, warmup_steps=2), 5) is None


def test_warm_up_follows_a_short_runs_length(caplog):
    """synth/base's 200 warm-up updates in a 40-update run: cut to 10, so the run reaches its
    peak rate and decays, instead of ending at 40/200 of it."""
    from asrkit.training.schedulers import effective_warmup

    assert [effective_warmup(200, n) for n in (40, 800, 801, 3)] == [10, 200, 200, 1]
    cfg = {"_target_": "asrkit.training.schedulers.WarmupCosineScheduler", "warmup_steps": 200,
           "total_steps": None, "min_lr_ratio": 0.0}
    scheduler = build_scheduler(cfg, optimizer(), total_steps=40, d_model=8)
    assert scheduler.warmup_steps == 10 and scheduler.configured_warmup_steps == 200
    assert "warm-up shortened to 10 updates" in caplog.text
    rates = []
    for _ in range(40):
        rates.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    peak = scheduler.base_lrs[0]
    assert max(rates) == pytest.approx(peak) and rates.index(max(rates)) == 9
    long = build_scheduler({**cfg}, optimizer(), total_steps=1000, d_model=8)
    assert long.warmup_steps == 200  # a run of more than 4 x warm-up is unchanged


def test_a_shortened_noam_warm_up_keeps_the_configured_peak(caplog):
    """Noam's peak is factor * (d * warmup)^-0.5: cutting 25,000 warm-up updates to 1,000 for
    a 4,000-update run must not raise it 5x; it is reached at update 1,000 instead."""
    cfg = {"_target_": "asrkit.training.schedulers.NoamScheduler", "d_model": 256,
           "warmup_steps": 25000, "factor": 5.0}
    configured_peak = 5.0 * (256 * 25000) ** -0.5
    short = build_scheduler(cfg, optimizer(), total_steps=4000, d_model=256)
    assert short.warmup_steps == 1000 and "the same peak rate" in caplog.text
    peak = max(short.rate(s) for s in range(1, 4001))
    assert peak == pytest.approx(configured_peak, rel=1e-12)
    assert short.rate(1000) == pytest.approx(configured_peak, rel=1e-12)
    assert short.rate(4000) == pytest.approx(configured_peak * (1000 / 4000) ** 0.5, rel=1e-12)
    long = build_scheduler(cfg, optimizer(), total_steps=200000, d_model=256)
    assert long.factor == 5.0 and long.warmup_steps == 25000  # unchanged


@pytest.mark.parametrize("make", [
    lambda opt: NoamScheduler(opt, d_model=64, warmup_steps=4),
    lambda opt: WarmupLinearScheduler(opt, warmup_steps=3, total_steps=12),
    lambda opt: WarmupCosineScheduler(opt, warmup_steps=3, total_steps=12, min_lr_ratio=0.1),
    lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step)),
])
def test_rewind_takes_back_steps_as_if_they_were_never_made(make):
    """The trainer steps the schedule at every update it attempts and takes back the ones
    the device skipped: 7 steps less 2 give the rates of a schedule stepped 5 times."""
    rewound, straight = make(optimizer(0.01)), make(optimizer(0.01))
    rates(rewound, 7)
    rewind(rewound, 2)
    rates(straight, 5)
    assert rewound.last_epoch == straight.last_epoch == 5
    assert rates(rewound, 6) == rates(straight, 6)  # the next updates, to the end and past
    rewind(rewound, 0)
    assert rewound.last_epoch == 11
