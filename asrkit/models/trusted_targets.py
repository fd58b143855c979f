"""What a config read back from a file may build: asrkit's own building blocks, by name.

A checkpoint, an averaged model, an experiment directory or an exported model stores the
config it was trained with, and building the model from it runs Hydra's ``instantiate`` on
every ``_target_`` in it — nested ones included. Such a file must not be able to call
anything else (``builtins.open`` in write mode, ``shutil.copyfile``, ...): every ``_target_``
of a config from a file is checked against ``BUILDING_BLOCKS``, an explicit list of dotted
names compared whole (no prefix rule, which ``asrkit.models.encoders.conformer.torch.save``
would pass), before anything is imported or called. Anything else is refused with one line
naming the file and the target. So is any ``${...}`` interpolation in those sections:
Hydra resolves interpolations before it instantiates, and ``${oc.create:{_target_: ...}}``
would make a target appear only then (stored configs are saved resolved, so none has one).

Configs typed by the user (the command line, ``conf/``, ``--config-dir``) may name their own
classes; a model trained with one is loaded back only when the user names the module they
trust (``trust_modules=[my_package]`` for ``asrkit decode``, ``--trust-module my_package``
for ``asrkit compare``): then targets defined in that module or its submodules are allowed
too (not what it merely imports: ``my_package.os.makedirs`` is refused).

    check_trusted(checkpoint["config"], "exp/a/avg_3.pt")            # raises on anything else
    check_trusted(config, "exp/a/avg_3.pt", trusted_modules=["my_package"])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from asrkit.config import one_line
from asrkit.config.validate import ConfigError

# Every class a stored model config may name. A new building block is added here (a test
# checks that every target in conf/'s encoder, decoder and model groups is listed).
BUILDING_BLOCKS = frozenset({
    "asrkit.models.asr_model.ASRModel",
    "asrkit.models.encoders.transformer.TransformerEncoder",
    "asrkit.models.encoders.conformer.ConformerEncoder",
    "asrkit.models.encoders.moe_conformer.MoEConformerEncoder",
    "asrkit.models.encoders.contextnet.ContextNetEncoder",
    "asrkit.models.decoders.transformer.TransformerDecoder",
    "asrkit.models.transducer.build.transducer_head",
})
# Hydra keys that make instantiate call something other than the target
_HYDRA_CALL_KEYS = ("_args_", "_partial_")


class UntrustedTargetError(ConfigError):
    """A config read from a file names something that is not an asrkit building block."""


def iter_targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every ``_target_`` in a nested config, lists included."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}".lstrip(".")
            if key == "_target_":
                yield child, value
            else:
                yield from iter_targets(value, child)
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from iter_targets(item, f"{path}[{index}]")


def _within(module: str, trusted_modules: Sequence[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in trusted_modules if m)


def _named_trusted(target: str, trusted_modules: Sequence[str]) -> bool:
    """A building block, or a name under a trusted module (checked further by
    ``_defined_in``)."""
    return target in BUILDING_BLOCKS or _within(target.rpartition(".")[0], trusted_modules)


def _defined_in(target: str, trusted_modules: Sequence[str]) -> bool:
    """Whether a target under a trusted module is defined there: the name is looked up
    (importing the trusted module, as building it would) and the object's own
    ``__module__`` must be trusted too, since ``my_package.os.makedirs`` is a name under
    ``my_package`` for anything that module imports. LookupError if it cannot be imported."""
    from hydra.utils import get_object

    try:
        found = get_object(target)
    except Exception as e:  # noqa: BLE001 - any import failure: not a trusted target
        raise LookupError(one_line(e)) from None
    return _within(getattr(found, "__module__", None) or "", trusted_modules)


def _untrusted(source: str, path: str, target: Any) -> UntrustedTargetError:
    return UntrustedTargetError(
        f"{source}: {path} names {target!r}, which is not an asrkit building block; refused "
        f"without calling it (a model of your own module loads with trust_modules=[<module>] "
        f"for asrkit decode, --trust-module <module>, or trusted_modules=[...] in Python)")


MODEL_SECTIONS = ("encoder", "decoder", "transducer", "model")  # what building a model instantiates


def check_trusted(config: Any, source: str, trusted_modules: Sequence[str] = ()) -> None:
    """Raise UntrustedTargetError, naming ``source`` (the file) and the target, for any
    ``_target_`` in the model sections of ``config`` (the only ones a model is built from)
    that is not a building block (or in a trusted module), and for any interpolation or
    Hydra call key there; those are checked first, so nothing is imported for them."""
    if not isinstance(config, dict):
        raise UntrustedTargetError(f"{source}: the stored config is not a mapping; refused")
    config = {key: config.get(key) for key in MODEL_SECTIONS}
    for path, value in _iter_strings(config):
        if "${" in value:  # instantiate resolves it: ${oc.create:{_target_: ...}} would call
            raise UntrustedTargetError(
                f"{source}: {path} holds an interpolation ({value[:60]!r}); a stored model "
                "config is saved resolved, so this one was edited; refused")
    for path, _ in _iter_keys(config, _HYDRA_CALL_KEYS):
        raise UntrustedTargetError(f"{source}: {path} is not allowed in a stored model config; "
                                   f"refused")
    targets = list(iter_targets(config))
    for path, target in targets:  # by name first: nothing is imported for a file that
        if not isinstance(target, str) or not _named_trusted(target, trusted_modules):
            raise _untrusted(source, path, target)  # names anything untrusted
    for path, target in targets:
        if target in BUILDING_BLOCKS:
            continue
        try:
            if not _defined_in(target, trusted_modules):
                raise UntrustedTargetError(
                    f"{source}: {path} names {target!r}, which lies under a trusted module "
                    f"but is defined outside it (an import of that module); refused without "
                    f"calling it")
        except LookupError as e:
            raise UntrustedTargetError(f"{source}: {path} names {target!r}, which cannot be "
                                       f"imported ({e})") from None


def _iter_keys(node: Any, keys: Sequence[str], path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}".lstrip(".")
            if key in keys:
                yield child, value
            yield from _iter_keys(value, keys, child)
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _iter_keys(item, keys, f"{path}[{index}]")


def _iter_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, value) of every string value in a nested config, lists included."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _iter_strings(value, f"{path}.{key}".lstrip("."))
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _iter_strings(item, f"{path}[{index}]")
