"""Hydra's and OmegaConf's composition errors as one line that starts with the full key.

    trainer.max_epoch: unknown key (did you mean max_epochs?)
    trainer.max_epochs: must be an integer, got 'abc'
    encoder: no option 'transfomer' (did you mean transformer?; options: conformer, ...)

Hydra answers a misspelt key with "To append to your config use +trainer.max_epoch=3",
which leads users to add the typo; here the neighbours of the key are looked up instead
(by composing once more without the failing override) and the closest is suggested.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from asrkit.config.paths import config_dir
from asrkit.config.suggest import did_you_mean

_FULL_KEY = re.compile(r"full_key: (\S+)")
_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_NOT_IN = re.compile(r"Key '([^']+)' (?:is )?not in")
_CONVERT = re.compile(r"Value '(.*)' of type '\w+' could not be converted to (\w+)")
_NOT_VALID = re.compile(r"Value '(.*)' is not a valid (\w+) \(type")
_NOT_A_LIST = re.compile(r"Invalid value assigned: \w+ is not a ListConfig")
_NOT_FOUND = re.compile(r"Could not find '([^']+)'")
_AVAILABLE = re.compile(r"Available options in '[^']+':\s*((?:\n\t\S+)+)")
_TYPE_NAMES = {"Integer": "an integer", "Float": "a number", "Boolean": "a boolean (true/false)",
               "bool": "a boolean (true/false)", "String": "a string"}


def _chain(error: BaseException) -> list[BaseException]:
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _parent(key: str, overrides: list[str],
            compose: Callable[[Sequence[str]], DictConfig]) -> DictConfig | None:
    """``key``'s parent section in the config composed without the overrides of ``key``
    (None if that fails too, or the parent is not a mapping)."""
    parent_path, _, _ = key.rpartition(".")
    rest = [o for o in overrides if _override_key(o) != key]
    try:
        node: Any = compose(rest)
        for part in filter(None, parent_path.split(".")):
            node = node[part]
    except (HydraException, OmegaConfBaseException, KeyError):
        return None
    return node if isinstance(node, DictConfig) else None


def _neighbours(node: DictConfig | None) -> list[str]:
    """The keys beside a key: its parent's keys, plus the parameters of the parent's
    ``_target_`` if it has one."""
    if node is None:
        return []
    keys = [str(k) for k in node]
    target = node.get("_target_")
    if isinstance(target, str):
        from asrkit.config.targets import signature_parameters

        keys += [p for p in signature_parameters(target) if p not in keys]
    return keys


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _group_options(group: str) -> list[str]:
    """The YAML files of ``conf/<group>/`` (Hydra lists none for a nested group)."""
    directory = config_dir() / group
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []


def explain(error: BaseException, overrides: list[str],
            compose: Callable[[Sequence[str]], DictConfig]) -> str:
    """One line for a Hydra/OmegaConf composition error (``compose`` recomposes with other
    overrides, to find the neighbours of an unknown key)."""
    text = "\n".join(str(e) for e in _chain(error))
    full_key = _FULL_KEY.search(text)
    unknown = _COULD_NOT_OVERRIDE.search(text)
    if unknown or (_NOT_IN.search(text) and full_key):
        key = unknown.group(1) if unknown else full_key.group(1)
        name = key.rpartition(".")[2]
        parent = _parent(key, overrides, compose)
        value = next((o.split("=", 1)[1] for o in overrides
                      if _override_key(o) == key and "=" in o), "VALUE")
        if parent is not None and parent.get("_none_") and key.count(".") == 1:
            section = key.split(".")[0]  # decoder=none / model=ctc, transducer=none
            return (f"{key}: this model has no {section}, so the key would do nothing; to "
                    f"keep it in a shared override list write +{key}={value} (asrkit train "
                    f"then warns that it is ignored)")
        neighbours = _neighbours(parent)
        if name in neighbours:  # a parameter of the section's builder its YAML leaves out
            return (f"{key}: a valid key that the chosen config does not list; add it "
                    f"with +{key}={value}")
        return f"{key}: unknown key{did_you_mean(name, neighbours)}"
    converted = _CONVERT.search(text) or _NOT_VALID.search(text)
    if converted and full_key:
        value, kind = converted.groups()
        shown = value if _is_number(value) else repr(value)
        return f"{full_key.group(1)}: must be {_TYPE_NAMES.get(kind, kind)}, got {shown}"
    if _NOT_A_LIST.search(text) and full_key:
        key = full_key.group(1)
        value = next((o.split("=", 1)[1] for o in overrides if _override_key(o) == key), "")
        return f"{key}: must be a list such as [{value or 'a,b'}], got {value!r}"
    missing = _NOT_FOUND.search(text)
    if missing:
        group, _, option = missing.group(1).rpartition("/")
        available = _AVAILABLE.search(text)
        options = available.group(1).split() if available else _group_options(group)
        listing = f"; options: {', '.join(options)}" if options else ""
        key = "+experiment" if group.startswith("experiment") else group
        return (f"{key}: no option '{missing.group(1).split('/', 1)[1]}' in conf/{group}/"
                f"{did_you_mean(option, options)}{listing}")
    first = str(error).strip().splitlines()
    return " ".join(" ".join(first).split()) if first else type(error).__name__
