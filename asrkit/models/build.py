"""Build an ``ASRModel`` from a plain config dict (the composed ``conf/train.yaml``, or the
resolved config a checkpoint stores).

The config has three sections, each naming its builder with Hydra's ``_target_`` and giving
its keyword arguments flat::

    encoder: {_target_: asrkit.models.encoders.conformer.ConformerEncoder, input_dim: 80, ...}
    decoder: {_target_: asrkit.models.decoders.transformer.TransformerDecoder, ...}
    decoder: {_none_: true}   # decoder=none / model=ctc: no decoder (also {} or None)
    model:   {_target_: asrkit.models.asr_model.ASRModel, ctc_weight: 0.3, ...}
    vocab_size: 4233

The builder fills in what one section needs from another: the decoder gets ``vocab_size``
and ``encoder_dim`` (the encoder's ``output_dim``), the model gets ``encoder``, ``decoder``
and ``vocab_size``, and an encoder whose builder takes ``vocab_size`` (the MoE-Conformer,
for the CTC head of its shared embedding) gets it too. With ``model.inter_decoder_layers``
the decoder section is built once more per intermediate layer (3M's intermediate attention
decoders), each with that layer's output size as ``encoder_dim``, and passed to the model
as ``inter_decoders``.

A decoder section holding ``_none_: true`` (conf/decoder/none.yaml; model/ctc.yaml adds it
too) means no attention decoder: a CTC-only model, whose ``ctc_weight`` ASRModel forces to 1.
Every other key of that section is ignored, so a preset's ``decoder:`` keys (d_model,
num_layers, ...) merged over ``decoder=none`` or ``model=ctc`` do no harm, and
``+experiment=synth/conformer decoder=none`` is the preset's model without its decoder.

Every section is checked against its target's signature before anything is built, so a
misspelt key fails at once with its dotted name.

    from asrkit.models.build import build_model
    model = build_model(config, vocab_size=4233)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from hydra.utils import get_object, instantiate
from torch import nn

from asrkit.models.asr_model import ASRModel
from asrkit.models.intermediate import encoder_depth_dims, resolve_layers

# decoder-section marker of "no attention decoder" (conf/decoder/none.yaml)
NO_DECODER = "_none_"

# keys the builder passes itself, per section
FILLED_IN = {
    "encoder": ("vocab_size",),  # only for encoders that take it
    "decoder": ("vocab_size", "encoder_dim"),
    "model": ("encoder", "decoder", "vocab_size", "inter_decoders"),
}


class ModelConfigError(ValueError):
    """A model config section names an unknown target, an unknown key or misses a key."""


def check_section(section: Mapping[str, Any], name: str, filled_in: tuple[str, ...] = ()) -> None:
    """Check ``section`` (with ``_target_``) against its target's signature.

    Raises ModelConfigError naming ``<name>.<key>`` for a key the target does not take, a key
    the builder fills in itself, or a required argument that is missing."""
    if "_target_" not in section:
        raise ModelConfigError(f"{name}: no _target_ (the class or function to build)")
    target = section["_target_"]
    try:
        signature = inspect.signature(get_object(target))
    except Exception as e:  # any import or lookup failure is a config error
        raise ModelConfigError(f"{name}._target_: cannot load {target!r}: {e}") from e
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    keys = [k for k in section if not k.startswith("_")]
    for key in keys:
        if key in filled_in:
            raise ModelConfigError(f"{name}.{key}: set by the model builder, remove it")
        if key not in params and not takes_any:
            known = ", ".join(k for k in params if k not in filled_in)
            raise ModelConfigError(f"{name}.{key}: not an option of {target} (options: {known})")
    for key, param in params.items():
        required = param.default is inspect.Parameter.empty and param.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if required and key not in keys and key not in filled_in:
            raise ModelConfigError(f"{name}.{key}: missing (required by {target})")


def has_decoder(config: Mapping[str, Any]) -> bool:
    """False for ``decoder=none`` / ``model=ctc``: a decoder section marked ``_none_: true``
    (whatever other keys a preset merged into it), or an empty or null one."""
    section = config.get("decoder")
    return bool(section) and not (isinstance(section, Mapping) and section.get(NO_DECODER))


def decoder_section(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The decoder section to build (without the ``_none_`` marker), or None for none."""
    if not has_decoder(config):
        return None
    return {k: v for k, v in config["decoder"].items() if k != NO_DECODER}


def check_model_config(config: Mapping[str, Any]) -> None:
    """Validate the encoder, decoder and model sections without building anything."""
    for name in ("encoder", "model"):
        if not isinstance(config.get(name), Mapping):
            raise ModelConfigError(f"{name}: missing config section")
        check_section(config[name], name, FILLED_IN[name])
    if not has_decoder(config):
        return
    if not isinstance(config["decoder"], Mapping):
        raise ModelConfigError(f"decoder: must be a mapping, got {config['decoder']!r}")
    decoder = decoder_section(config)
    if "_target_" not in decoder:
        raise ModelConfigError("decoder: no _target_ (the class or function to build); "
                               "for a CTC-only model choose decoder=none or model=ctc")
    check_section(decoder, "decoder", FILLED_IN["decoder"])


def build_model(config: Mapping[str, Any], vocab_size: int | None = None) -> ASRModel:
    """Plain config dict -> ASRModel; ``vocab_size`` defaults to ``config['vocab_size']``."""
    vocab_size = config.get("vocab_size") if vocab_size is None else vocab_size
    if not isinstance(vocab_size, int) or vocab_size < 3:
        raise ModelConfigError(f"vocab_size: need an integer >= 3 (blank, unk, sos/eos), "
                               f"got {vocab_size!r}")
    check_model_config(config)
    encoder_section = dict(config["encoder"])
    if "vocab_size" in inspect.signature(get_object(encoder_section["_target_"])).parameters:
        encoder_section["vocab_size"] = vocab_size
    encoder: nn.Module = instantiate(encoder_section)
    decoder = None
    if has_decoder(config):
        decoder = instantiate(decoder_section(config), vocab_size=vocab_size,
                              encoder_dim=encoder.output_dim)
    model_section = dict(config["model"])
    inter_decoders = _build_inter_decoders(config, encoder, vocab_size)
    if inter_decoders:
        model_section["inter_decoders"] = inter_decoders
    return instantiate(model_section, encoder=encoder, decoder=decoder, vocab_size=vocab_size)


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
