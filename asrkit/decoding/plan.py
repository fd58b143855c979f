"""From ``asrkit decode`` overrides to a checked plan, before anything heavy is loaded.

    plan = make_plan(["exp_dir=exp/conformer", "test_sets=[data/synth/test.jsonl]",
                      "methods=[ctc_greedy,attention_rescoring]",
                      "search.attention_rescoring.beam=20"])
    plan.methods["attention_rescoring"].settings()   # {"beam": 20, "ctc_weight": 0.3, ...}

The decode config (conf/decode.yaml, typed by asrkit.config.decode) is composed twice: once
to learn which methods are listed, then with each listed method's section added from its
group (``+search@search.<name>=<name>``: conf/search/<name>.yaml, or a directory given with
``--config-dir``), so that ``search.<name>.<key>=...`` overrides are checked like any other
key. Each section is checked against its class's annotated fields (asrkit.config.targets)
and built. Every test-set manifest is read and checked here too: a malformed line, an empty
set, a path that is audio rather than a manifest, or two sets of the same name fail at
once (exit status 2), naming it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from asrkit.cli_checks import check_device, out_dir_problem
from asrkit.config import ConfigError, compose_config, config_dir
from asrkit.config.suggest import did_you_mean
from asrkit.config.targets import check_section
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.decoding.search import SearchMethod
from asrkit.scoring.normalize import TextNormalizer

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".sph", ".aiff", ".aif")
# keys of the decode config before search methods had sections of their own -> where they are
MOVED_KEYS = {
    "length_penalty": ("search.attention.length_penalty", "search.joint.length_penalty"),
    "length_norm": ("search.attention.length_norm", "search.joint.length_norm"),
    "ctc_top_k": ("search.ctc_prefix_beam.top_k", "search.attention_rescoring.top_k"),
    "pre_beam": ("search.joint.pre_beam",),
    "max_len_ratio": ("search.attention.max_len_ratio", "search.joint.max_len_ratio"),
    "rescoring_beam": ("search.attention_rescoring.beam",),
}


@dataclass
class DecodePlan:
    config: dict[str, Any]
    test_sets: dict[str, tuple[Path, list[Utterance]]]   # set name -> (manifest, utterances)
    methods: dict[str, SearchMethod]                     # name -> method, in the order listed
    normalizer: TextNormalizer


def set_name_of(manifest: Path) -> str:
    """A test set's name: the manifest's file stem, made safe as one directory name."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", manifest.stem).strip(".")
    return name or "set"


def _listed_methods(overrides: Sequence[str], config_dirs: Sequence[str | Path]) -> list[str]:
    listed = [o for o in overrides if o.split("=", 1)[0] == "methods"]
    methods = compose_config("decode", listed, config_dirs)["methods"]
    methods = [methods] if isinstance(methods, str) else list(methods or [])
    if not methods:
        raise ConfigError("methods: empty (e.g. methods=[ctc_greedy,attention_rescoring])")
    for name in methods:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ConfigError(f"methods: {name!r} is not a method name")
    if len(set(methods)) != len(methods):
        twice = next(m for m in methods if methods.count(m) > 1)
        raise ConfigError(f"methods: {twice!r} listed twice")
    return methods


def _has_group_option(name: str, config_dirs: Sequence[str | Path]) -> bool:
    return any((Path(d) / "search" / f"{name}.yaml").is_file()
               for d in (config_dir(), *config_dirs))


def compose_decode_config(overrides: Sequence[str],
                          config_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """conf/decode.yaml with a ``search.<name>`` section for every method listed."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key in MOVED_KEYS:
            raise ConfigError(f"{key}: now an option of each search method that has it: "
                              f"{', '.join(MOVED_KEYS[key])}")
    methods = _listed_methods(overrides, config_dirs)
    known = sorted(p.stem for d in (config_dir(), *config_dirs)
                   for p in (Path(d) / "search").glob("*.yaml"))
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        parts = key.split(".")
        if len(parts) > 2 and parts[0] == "search" and parts[1] in known \
                and parts[1] not in methods:
            raise ConfigError(f"{key}: an option of {parts[1]}, which is not among the methods "
                              f"used ({', '.join(methods)})")
    additions = []
    for name in methods:
        if _has_group_option(name, config_dirs):
            additions.append(f"+search@search.{name}={name}")
        elif not any(o.lstrip("+").startswith(f"search.{name}.") for o in overrides):
            raise ConfigError(f"methods: unknown method {name!r}{did_you_mean(name, known)} "
                              f"(known: {', '.join(known)}; a new one is conf/search/"
                              f"{name}.yaml or +search.{name}._target_=...)")
    config = compose_config("decode", [*additions, *overrides], config_dirs)
    config["methods"] = methods
    return config


def build_methods(config: dict[str, Any], model: Any | None = None) -> dict[str, SearchMethod]:
    """The search methods of a composed decode config, each checked against its class;
    with ``model``, a method that needs an attention decoder on a CTC-only model fails."""
    methods = {}
    for name in config["methods"]:
        section = (config.get("search") or {}).get(name)
        if section is None:
            raise ConfigError(f"search.{name}: missing (methods lists {name!r})")
        check_section(section, f"search.{name}")
        try:
            method = instantiate(section)
        except InstantiationException as e:  # a check of the method's own (__post_init__)
            if isinstance(e.__cause__, ValueError):
                raise ConfigError(str(e.__cause__)) from None
            raise
        if not isinstance(method, SearchMethod):
            raise ConfigError(f"search.{name}._target_: {section['_target_']} is not a "
                              f"SearchMethod (asrkit.decoding.search)")
        if model is not None:
            for part, needed in (("an attention decoder", method.needs_decoder and
                                  model.decoder is None),
                                 ("a CTC head", method.needs_ctc and
                                  getattr(model, "ctc", None) is None),
                                 ("a transducer", method.needs_transducer and
                                  getattr(model, "transducer", None) is None)):
                if needed:
                    raise ConfigError(f"methods: {name!r} needs {part}, which this model "
                                      f"has not (its methods: {_usable(model)})")
        methods[name] = method
    return methods


def _usable(model: Any) -> str:
    """The built-in methods a model can run, for error messages."""
    ctc = getattr(model, "ctc", None) is not None
    names = ["ctc_greedy", "ctc_prefix_beam"] if ctc else []
    if model.decoder is not None:
        names += ["attention"] + (["attention_rescoring", "joint"] if ctc else [])
    if getattr(model, "transducer", None) is not None:
        names += ["transducer_greedy", "transducer_modified_beam", "transducer_beam"]
        if ctc and model.decoder is not None:
            names.append("transducer_rescoring")
    return ", ".join(names)


def search_methods(names: Sequence[str], overrides: Sequence[str] = (),
                   model: Any | None = None) -> dict[str, SearchMethod]:
    """Methods by name with conf/search's options, e.g. for a benchmark or a test:
    ``search_methods(["attention_rescoring"], ["beam=4"])``."""
    config = compose_decode_config([f"methods=[{','.join(names)}]", *overrides])
    return build_methods(config, model)


def read_test_sets(test_sets: Any) -> dict[str, tuple[Path, list[Utterance]]]:
    if isinstance(test_sets, str):
        test_sets = [test_sets]
    if not test_sets:
        raise ConfigError("test_sets: required, e.g. test_sets=[data/synth/test.jsonl]")
    sets: dict[str, tuple[Path, list[Utterance]]] = {}
    for manifest in map(Path, test_sets):
        if manifest.suffix.lower() in AUDIO_SUFFIXES:
            raise ConfigError(f"test_sets: {manifest} is an audio file, not a manifest; to "
                              f"transcribe audio files use `asrkit transcribe EXP_DIR "
                              f"{manifest}`")
        if not manifest.is_file():
            raise ConfigError(f"test_sets: {manifest} not found")
        name = set_name_of(manifest)
        if name in sets:
            raise ConfigError(f"test_sets: {sets[name][0]} and {manifest} would both be "
                              f"named {name!r}")
        utterances = read_manifest(manifest)
        if not utterances:
            # scored, it would show as 0.00 % WER over 0 utterances in results.md and compare
            raise ConfigError(f"test_sets: {manifest} has no utterances")
        sets[name] = (manifest, utterances)
    return sets


def make_plan(overrides: Sequence[str], config_dirs: Sequence[str | Path] = ()) -> DecodePlan:
    """Compose and check everything ``asrkit decode`` was given (module docstring)."""
    config = compose_decode_config(overrides, config_dirs)
    if not config.get("exp_dir"):
        raise ConfigError("exp_dir: required (the experiment directory to decode with)")
    if not Path(config["exp_dir"]).is_dir():
        raise ConfigError(f"exp_dir: {config['exp_dir']} is not a directory")
    if config.get("out_dir") and (problem := out_dir_problem(config["out_dir"])) is not None:
        raise ConfigError(f"out_dir: {problem}")
    try:
        check_device(str(config["device"]), "device:")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    methods = build_methods(config)
    return DecodePlan(config, read_test_sets(config["test_sets"]), methods,
                      TextNormalizer.from_dict(config["normalize"]))
