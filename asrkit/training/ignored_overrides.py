"""Command-line overrides the built model ignores, named before training starts.

Some keys do nothing by design in some configs, so that a preset's values merged over
another choice do no harm (``+experiment=synth/conformer model=ctc`` keeps the preset's
``decoder:`` keys; asrkit.models.build): a decoder or transducer section marked none, the
options of the other prediction network (asrkit.models.transducer.build.PREDICTION_ONLY),
``model.ctc_weight`` where the model fixes it (1 without a decoder, 0 for a transducer
alone), InterCTC's layers with ``model.interctc_weight`` 0 (no InterCTC, as ESPnet), and
``optim.lr`` under the Noam schedule, which sets the rate itself (``scheduler.factor``).
Refusing such keys would break shared override lists (a sweep over ``model=ctc,ctc_aed``
with one set of ``decoder.*`` values), but one typed on the command line was meant to
change something: ``asrkit train`` prints one warning line for each.

    for note in ignored_overrides(["model=ctc", "decoder.num_layers=4"], config):
        print(note)   # decoder.num_layers=4: ignored, this model has no decoder (...)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asrkit.models.build import has_decoder
from asrkit.models.transducer.build import PREDICTION_ONLY

_NONE_CHOICE = {"decoder": "model=ctc or decoder=none", "transducer": "transducer=none"}


def ignored_overrides(overrides: list[str], config: Mapping[str, Any]) -> list[str]:
    """One note per override in ``overrides`` the composed ``config``'s model ignores."""
    notes = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        why = _why_ignored(key, value, config)
        if why:
            notes.append(f"{override}: ignored, {why}")
    return notes


def _why_ignored(key: str, value: str, config: Mapping[str, Any]) -> str | None:
    section, _, name = key.partition(".")
    if section in _NONE_CHOICE and not has_decoder(config, section):
        if not name and value in ("none", "null", ""):
            return None  # choosing none is what made the section go
        return f"this model has no {section} ({_NONE_CHOICE[section]})"
    if section == "transducer" and name in PREDICTION_ONLY:
        prediction = config["transducer"].get("prediction", "lstm")
        if PREDICTION_ONLY[name] != prediction:
            return (f"it applies to the {PREDICTION_ONLY[name]} prediction network, not "
                    f"{prediction}")
    if key == "optim.lr" and str((config.get("scheduler") or {}).get("_target_", "")) \
            .endswith(".NoamScheduler"):
        return ("scheduler=noam sets the rate itself (its peak: scheduler.factor / "
                "sqrt(d_model * warmup_steps))")
    model = config.get("model") or {}
    if key == "model.ctc_weight":
        if model.get("transducer_weight") == 1.0:
            return "a transducer alone has no CTC head (model.transducer_weight 1)"
        if not has_decoder(config):
            return "without a decoder CTC takes all of the loss the transducer leaves"
    if key in ("model.interctc_layers", "model.interctc_shared_head") and \
            not model.get("interctc_weight"):
        return "model.interctc_weight is 0 (no InterCTC; set it > 0, e.g. 0.3)"
    return None
