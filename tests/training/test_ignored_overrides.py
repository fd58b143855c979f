"""The command-line overrides a composed config's model ignores are named (each checked
against what the built model actually holds)."""

from __future__ import annotations

import pytest

from asrkit.config import compose_train_config
from asrkit.models.build import build_model
from asrkit.training.ignored_overrides import ignored_overrides

SMALL = ["encoder=conformer", "encoder.d_model=16", "encoder.num_heads=2", "encoder.ffn_dim=32",
         "encoder.num_layers=2", "vocab_size=20"]


def _notes_and_params(*overrides: str) -> tuple[list[str], int]:
    config = compose_train_config([*SMALL, *overrides])
    model = build_model(config)
    return ignored_overrides(list(overrides), config), sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("base, ignored, why", [
    (["model=ctc"], "decoder.num_layers=3", "this model has no decoder (model=ctc or decoder=none)"),
    (["decoder=none"], "+decoder.extra=1", "this model has no decoder"),
    ([], "+transducer.prediction_dim=8", "this model has no transducer (transducer=none)"),
    (["model=transducer", "transducer=stateless", "transducer.prediction_dim=8",
      "transducer.joint_dim=8"], "+transducer.prediction_layers=3",
     "it applies to the lstm prediction network, not stateless"),
    (["model=transducer", "transducer=stateless", "transducer.prediction_dim=8",
      "transducer.joint_dim=8"], "+transducer.dropout=0.5", "not stateless"),
    (["model=transducer", "transducer=lstm", "transducer.prediction_dim=8",
      "transducer.joint_dim=8"], "+transducer.context_size=5",
     "it applies to the stateless prediction network, not lstm"),
    (["model=transducer", "transducer.prediction_dim=8", "transducer.joint_dim=8"],
     "model.ctc_weight=0.5", "a transducer alone has no CTC head"),
    (["model=ctc"], "model.ctc_weight=0.5", "without a decoder CTC takes all"),
    ([], "model.interctc_layers=[1]", "model.interctc_weight is 0"),
])
def test_an_ignored_override_is_named_and_changes_nothing(base, ignored, why):
    notes, params = _notes_and_params(*base, ignored)
    assert notes == [f"{ignored}: ignored, {notes[0].split(', ', 1)[1]}"] and why in notes[0]
    config = compose_train_config([*SMALL, *base])
    assert params == sum(p.numel() for p in build_model(config).parameters())


@pytest.mark.parametrize("base, used", [
    ([], "decoder.num_layers=3"),
    (["model=transducer", "transducer=lstm"], "transducer.prediction_layers=2"),
    (["model=transducer", "transducer=stateless"], "transducer.context_size=3"),
    (["model=interctc"], "model.interctc_layers=[1]"),
    ([], "model.ctc_weight=0.5"),
    (["model=ctc"], "decoder=none"),
])
def test_an_override_that_counts_is_not_named(base, used):
    config = compose_train_config([*SMALL, *base, used])
    assert ignored_overrides([*base, used], config) == []


def test_a_learning_rate_under_noam_is_named_as_the_schedule_sets_the_rate():
    import torch

    from asrkit.training.optim import build_optimizer
    from asrkit.training.schedulers import build_scheduler

    def rates(config) -> list[float]:
        model = torch.nn.Linear(2, 2)
        optimizer = build_optimizer(dict(config["optim"]), model)
        scheduler = build_scheduler(dict(config["scheduler"]), optimizer, total_steps=100,
                                    d_model=16)
        out = []
        for _ in range(5):
            optimizer.step()
            scheduler.step()
            out.append(optimizer.param_groups[0]["lr"])
        return out

    noam = [compose_train_config([*SMALL, f"optim.lr={lr}"]) for lr in (0.001, 0.01)]
    assert ignored_overrides(["optim.lr=0.001"], noam[0]) == [
        ("optim.lr=0.001: ignored, scheduler=noam sets the rate itself (its peak: "
         "scheduler.factor / sqrt(d_model * warmup_steps))")]
    assert rates(noam[0]) == rates(noam[1])  # the same rates: the value counts for nothing
    cosine = [compose_train_config([*SMALL, "scheduler=warmup_cosine", f"optim.lr={lr}"])
              for lr in (0.001, 0.01)]
    assert ignored_overrides(["optim.lr=0.001"], cosine[0]) == []
    assert rates(cosine[0]) != rates(cosine[1])
