"""Build an ``ASRModel`` from a plain config dict (the composed ``conf/train.yaml``, or the
resolved config a checkpoint stores).

The config has three sections, each naming its builder with Hydra's ``_target_`` and giving
its keyword arguments flat::

    encoder: {_target_: asrkit.models.encoders.conformer.ConformerEncoder, input_dim: 80, ...}
    decoder: {_target_: asrkit.models.decoders.transformer.TransformerDecoder, ...}
    decoder: {_none_: true}   # decoder=none / model=ctc: no decoder (also {} or None)
    model:   {_target_: asrkit.models.asr_model.ASRModel, ctc_weight: 0.3, ...}
    vocab_size: 4233

The builder fills in what one section needs from another: the decoder and the transducer
(an optional section: ``transducer=lstm`` / ``stateless``, conf/transducer/) get
``vocab_size`` and ``encoder_dim`` (the encoder's ``output_dim``), the model gets
``encoder``, ``decoder``, ``transducer`` and ``vocab_size``, and an encoder whose builder
takes ``vocab_size`` and ``blank_id`` (the MoE-Conformer, for the CTC head of its shared
embedding) gets them too, the blank the model's (``model.blank_id``). With ``model.inter_decoder_layers``
the decoder section is built once more per intermediate layer (3M's intermediate attention
decoders), each with that layer's output size as ``encoder_dim``, and passed to the model
as ``inter_decoders``.

A decoder section holding ``_none_: true`` (conf/decoder/none.yaml; model/ctc.yaml adds it
too) means no attention decoder: a CTC-only model, whose ``ctc_weight`` ASRModel forces to 1.
Every other key of that section is ignored, so a preset's ``decoder:`` keys (d_model,
num_layers, ...) merged over ``decoder=none`` or ``model=ctc`` do no harm, and
``+experiment=synth/conformer decoder=none`` is the preset's model without its decoder;
``asrkit train`` warns about such overrides given on its command line
(asrkit.training.ignored_overrides).

Every section is checked against its target's annotated signature before anything is built
(asrkit.config.targets), so a misspelt key or a bad value fails at once with its dotted name.

    from asrkit.models.build import build_model
    model = build_model(config, vocab_size=4233)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from torch import nn

from asrkit.config import one_line
from asrkit.config.targets import check_section as check_target_section
from asrkit.config.validate import ConfigError
from asrkit.models.asr_model import ASRModel
from asrkit.models.encoder_interface import missing_members
from asrkit.models.intermediate import encoder_depth_dims, resolve_layers

# decoder-section marker of "no attention decoder" (conf/decoder/none.yaml)
NO_DECODER = "_none_"

# keys the builder passes itself, per section
FILLED_IN = {
    "encoder": ("vocab_size", "blank_id"),  # only for encoders that take them
    "decoder": ("vocab_size", "encoder_dim"),
    "transducer": ("vocab_size", "encoder_dim"),
    "model": ("encoder", "decoder", "vocab_size", "inter_decoders", "transducer"),
}


class ModelConfigError(ConfigError):
    """A model config section names an unknown target, an unknown key or misses a key."""


def check_section(section: Mapping[str, Any], name: str, filled_in: tuple[str, ...] = ()) -> None:
    """``asrkit.config.targets.check_section``, raising ModelConfigError."""
    try:
        check_target_section(section, name, filled_in)
    except ModelConfigError:
        raise
    except ConfigError as e:
        raise ModelConfigError(str(e)) from None


def has_decoder(config: Mapping[str, Any], name: str = "decoder") -> bool:
    """False for ``decoder=none`` / ``model=ctc``: a decoder section marked ``_none_: true``
    (whatever other keys a preset merged into it), or an empty or null one. ``name``:
    "transducer" asks the same of the transducer section."""
    section = config.get(name)
    return bool(section) and not (isinstance(section, Mapping) and section.get(NO_DECODER))


def decoder_section(config: Mapping[str, Any], name: str = "decoder") -> dict[str, Any] | None:
    """The decoder (or transducer) section to build (without the ``_none_`` marker), or
    None for none."""
    if not has_decoder(config, name):
        return None
    return {k: v for k, v in config[name].items() if k != NO_DECODER}


def check_model_config(config: Mapping[str, Any]) -> None:
    """Validate the encoder, decoder and model sections without building anything."""
    for name in ("encoder", "model"):
        if not isinstance(config.get(name), Mapping):
            raise ModelConfigError(f"{name}: missing config section")
        check_section(config[name], name, FILLED_IN[name])
    for name in ("decoder", "transducer"):
        if not has_decoder(config, name):
            continue
        if not isinstance(config[name], Mapping):
            raise ModelConfigError(f"{name}: must be a mapping, got {config[name]!r}")
        section = decoder_section(config, name)
        if "_target_" not in section:
            raise ModelConfigError(f"{name}: no _target_ (the class or function to build); "
                                   f"for none choose {name}=none")
        check_section(section, name, FILLED_IN[name])


def build_model(config: Mapping[str, Any], vocab_size: int | None = None) -> ASRModel:
    """Plain config dict -> ASRModel; ``vocab_size`` defaults to ``config['vocab_size']``."""
    vocab_size = config.get("vocab_size") if vocab_size is None else vocab_size
    if not isinstance(vocab_size, int) or vocab_size < 3:
        raise ModelConfigError(f"vocab_size: need an integer >= 3 (blank, unk, sos/eos), "
                               f"got {vocab_size!r}")
    check_model_config(config)
    encoder_section = dict(config["encoder"])
    takes = inspect.signature(get_object(encoder_section["_target_"])).parameters
    model_blank = dict(config["model"]).get("blank_id", 0)
    encoder_section |= {key: value for key, value in
                        (("vocab_size", vocab_size), ("blank_id", model_blank)) if key in takes}
    encoder: nn.Module = _instantiate(encoder_section, "encoder")
    if missing := missing_members(encoder):
        raise ModelConfigError(f"encoder._target_: {encoder_section['_target_']} lacks "
                               f"{', '.join(missing)} of the encoder contract "
                               f"(asrkit.models.encoder_interface)")
    decoder = None
    if has_decoder(config):
        decoder = _instantiate(decoder_section(config), "decoder", vocab_size=vocab_size,
                               encoder_dim=encoder.output_dim)
    model_section = dict(config["model"])
    inter_decoders = _build_inter_decoders(config, encoder, vocab_size)
    if inter_decoders:
        model_section["inter_decoders"] = inter_decoders
    if has_decoder(config, "transducer"):
        model_section["transducer"] = _instantiate(
            decoder_section(config, "transducer"), "transducer", vocab_size=vocab_size,
            encoder_dim=encoder.output_dim)
    return _instantiate(model_section, "model", encoder=encoder, decoder=decoder,
                        vocab_size=vocab_size)


def _instantiate(section: Mapping[str, Any], name: str, **filled_in: Any) -> Any:
    """Build a checked section. A builder's ValueError is a config error; one whose message
    starts with one of the section's keys (``num_heads: d_model 144 is not divisible ...``)
    is named ``<name>.<key>``."""
    try:
        return instantiate(dict(section), **filled_in)
    except InstantiationException as e:
        cause = e.__cause__
        if not isinstance(cause, ValueError):
            raise
        message = one_line(cause)
        key = message.split(":", 1)[0]
        prefix = f"{name}." if key in section else f"{name}: "
        raise ModelConfigError(prefix + message) from None


def _build_inter_decoders(config: Mapping[str, Any], encoder: nn.Module,
                          vocab_size: int) -> list[nn.Module]:
    """One decoder (from the decoder section) per ``model.inter_decoder_layers`` entry."""
    layers = config["model"].get("inter_decoder_layers") or ()
    if not layers:
        return []
    if not has_decoder(config):
        raise ModelConfigError("model.inter_decoder_layers: needs an attention decoder "
                               "(this config has decoder=none)")
    try:
        dims = encoder_depth_dims(encoder)
        resolved = resolve_layers(layers, len(dims), "model.inter_decoder_layers")
    except ValueError as e:
        raise ModelConfigError(str(e)) from e
    return [instantiate(decoder_section(config), vocab_size=vocab_size,
                        encoder_dim=dims[layer - 1]) for layer in resolved]
