"""Validate a composed training config before anything heavy starts.

A misspelt key or a bad value fails in the first second, naming the key:

    trainer.max_epoch: unknown key (did you mean max_epochs?)
    optim.lr: must be > 0, got -0.001
    data.train: file not found: data/synth/trian.jsonl

Sections with a ``_target_`` (encoder, decoder, model, optim, scheduler) are checked
against their builder's signature (asrkit.models.build.check_section); ``data``,
``trainer`` and ``tokenizer`` against the keys and value types of their defaults in
``conf/``. Hydra itself already refuses ``key=value`` overrides of keys that do not exist;
this also catches ``+key=value`` additions and keys presets introduce. Values are
range-checked (sizes of the encoder and decoder > 0, ``d_model`` divisible by ``num_heads``,
dropouts in [0, 1), SpecAugment and filter values >= 0, seeds in [0, 2^32)). Finally the
model is built on the ``meta`` device (no memory, no time), and the optimiser and schedule
against it, so that impossible shapes and bad optimiser or schedule arguments
(``optim.betas``, ``scheduler.min_lr_ratio``) fail here too, before ``exp_dir`` is touched.

``hydra.*`` overrides are refused (``reject_hydra_overrides``): ``asrkit train`` composes the
config with Hydra's compose API and never runs Hydra's launcher, so ``hydra.run.dir`` and the
like would be silently ignored; the run directory is ``exp_dir``.

The built encoder also says how many input frames it turns into one output frame (its
``subsampling``: 4/6/8 for ``encoder.input_layer=conv2d4/6/8``, 1 for ``linear``, 8 for
ContextNet), and ``data.filters.subsampling`` must equal it: the data filter drops the
transcripts CTC cannot align from that factor, and with a smaller one they would pass and
train on a CTC loss of zero (infinite, zeroed by ``zero_infinity``) without a word. A mismatch is an error, not
silently corrected: the data section stays the one config the data loader reads, and
config.yaml records what was run.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from asrkit.config import config_dir

TOP_LEVEL = ("exp_dir", "vocab_size", "tokenizer", "data", "encoder", "decoder", "model",
             "optim", "scheduler", "trainer")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit unsigned
# sizes that must be > 0 wherever an encoder or decoder section has them
MODEL_SIZES = ("d_model", "num_heads", "ffn_dim", "num_layers", "input_channels", "num_experts",
               "top_k", "expert_ffn_dim", "embedding_dim", "kernel_size", "alpha",
               "layers_per_block", "se_reduction")
BEST_METRICS = ("dev_loss", "dev_wer", "dev_cer", "dev_acc")
ANY_TYPE = ("trainer.progress_bar",)  # auto | true | false: checked by value below


class TrainConfigError(ValueError):
    """A training config key is unknown or has a bad value; the message starts with the key."""


def _fail(key: str, message: str) -> None:
    raise TrainConfigError(f"{key}: {message}")


def _defaults(group: str) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(config_dir() / group / "default.yaml"))


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def check_against_defaults(section: Any, defaults: Mapping[str, Any], name: str) -> None:
    """Every key of ``section`` exists in ``defaults`` with a compatible type (recursively);
    a null default accepts anything."""
    if not isinstance(section, Mapping):
        _fail(name, f"must be a mapping, got {section!r}")
    for key, value in section.items():
        dotted = f"{name}.{key}"
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            _fail(dotted, f"unknown key{hint}; known: {', '.join(defaults)}")
        default = defaults[key]
        if default is None or value is None or dotted in ANY_TYPE:
            continue
        if isinstance(default, Mapping):
            check_against_defaults(value, default, dotted)
        elif isinstance(default, bool) or isinstance(value, bool):
            if not (isinstance(default, bool) and isinstance(value, bool)):
                _fail(dotted, f"must be {_type_name(default)}, got {value!r}")
        elif isinstance(default, float) and isinstance(value, (int, float)):
            continue
        elif isinstance(default, (int, float, str, list)) and not isinstance(value, type(default)):
            _fail(dotted, f"must be {_type_name(default)}, got {value!r}")


def _positive(section: Mapping[str, Any], name: str, keys: tuple[str, ...],
              strict: bool = True) -> None:
    for key in keys:
        value = section.get(key)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and (value < 0 or (strict and value == 0)):
            _fail(f"{name}.{key}", f"must be {'>' if strict else '>='} 0, got {value}")


def _existing(path: Any, key: str, kind: str = "file") -> None:
    if not path:
        _fail(key, f"required: set {key}=<path>")
    exists = Path(path).is_file() if kind == "file" else Path(path).is_dir()
    if not exists:
        _fail(key, f"{kind} not found: {path}")


def check_trainer(trainer: Mapping[str, Any]) -> None:
    _positive(trainer, "trainer", ("max_epochs", "accum_grad", "devices", "log_interval",
                                   "max_nan_in_a_row"))
    _positive(trainer, "trainer", ("valid_interval", "save_interval_steps", "keep_last",
                                   "keep_best", "num_attention_images"), strict=False)
    _seed(trainer.get("seed"), "trainer.seed")
    if trainer.get("grad_clip") is not None and trainer["grad_clip"] <= 0:
        _fail("trainer.grad_clip", f"must be > 0 or null, got {trainer['grad_clip']}")
    if trainer["precision"] not in PRECISIONS:
        _fail("trainer.precision", f"must be one of {', '.join(PRECISIONS)}, "
                                   f"got {trainer['precision']!r}")
    if trainer["device"] not in ("auto", "cpu", "cuda"):
        _fail("trainer.device", f"must be auto, cpu or cuda, got {trainer['device']!r}")
    if trainer["progress_bar"] not in ("auto", True, False):
        _fail("trainer.progress_bar", f"must be auto, true or false, got {trainer['progress_bar']!r}")
    metric = trainer["best_metric"]
    if metric not in BEST_METRICS and not metric.startswith("dev_loss_"):
        _fail("trainer.best_metric", f"must be one of {', '.join(BEST_METRICS)} or "
                                     f"dev_loss_<term>, got {metric!r}")
    if trainer["compile"] and trainer["activation_checkpointing"]:
        _fail("trainer.activation_checkpointing", "not together with trainer.compile=true "
              "(torch 2.11's inductor fails on checkpointed layers once lengths vary); "
              "choose one")
    if trainer["keep_last"] == 0 and trainer["keep_best"] == 0:
        _fail("trainer.keep_last", "keep_last and keep_best are both 0: no checkpoint would be kept")
    resume = trainer["resume"]
    if resume not in ("auto", "none", None) and not Path(str(resume)).is_file():
        _fail("trainer.resume", f"must be auto, none or a checkpoint file; not found: {resume}")
    if trainer.get("init_from") is not None:
        _existing(trainer["init_from"], "trainer.init_from")
    mwer = trainer["mwer"]
    if mwer["enabled"]:
        _positive(mwer, "trainer.mwer", ("nbest", "beam"))
        if mwer["beam"] < mwer["nbest"]:
            _fail("trainer.mwer.beam", f"must be >= trainer.mwer.nbest ({mwer['nbest']}), "
                                       f"got {mwer['beam']}")
        if trainer["compile"]:
            _fail("trainer.mwer.enabled", "not together with trainer.compile=true (the beam "
                  "search between steps defeats the compiled graph); choose one")


def check_data(data: Mapping[str, Any], check_files: bool = True) -> None:
    """Ranges of the data section; with ``check_files`` also that its files exist."""
    if check_files:
        _existing(data.get("train"), "data.train")
        _existing(data.get("dev"), "data.dev")
        if data.get("cmvn") is not None:
            _existing(data["cmvn"], "data.cmvn")
            _cmvn_matches_features(data["cmvn"], data["features"]["num_mel_bins"])
    _positive(data, "data", ("sample_rate",))
    _positive(data, "data", ("num_workers", "max_fail_fraction"), strict=False)
    _positive(data["sampler"], "data.sampler", ("max_frames", "num_buckets"))
    _seed(data["sampler"].get("seed"), "data.sampler.seed")
    _positive(data["features"], "data.features", ("num_mel_bins", "frame_length", "frame_shift"))
    _positive(data["features"], "data.features", ("dither",), strict=False)
    filters = data["filters"]
    _positive(filters, "data.filters", ("min_duration",), strict=False)
    _positive(filters, "data.filters", ("max_duration", "subsampling"))
    low, high = filters.get("min_duration"), filters.get("max_duration")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high < low:
        _fail("data.filters.max_duration", f"{high} is below data.filters.min_duration={low}")
    if isinstance(data.get("specaug"), Mapping):  # every value is a count, width or ratio
        _positive(data["specaug"], "data.specaug", tuple(data["specaug"]), strict=False)
    for factor in data.get("speed_perturb") or []:
        if not isinstance(factor, (int, float)) or factor <= 0:
            _fail("data.speed_perturb", f"factors must be numbers > 0, got {factor!r}")


def _seed(value: Any, key: str) -> None:
    if isinstance(value, int) and not 0 <= value <= MAX_SEED:
        _fail(key, f"must be in [0, 2^32 - 1] (numpy's seed range), got {value}")


def check_model_sizes(config: Mapping[str, Any]) -> None:
    """Sizes > 0, d_model divisible by num_heads and dropouts in [0, 1), in the encoder and
    decoder sections (the builders would fail later, or with a ZeroDivisionError)."""
    from asrkit.models.build import decoder_section

    sections = [("encoder", config.get("encoder")), ("decoder", decoder_section(config))]
    for name, section in sections:
        if not isinstance(section, Mapping):
            continue
        _positive(section, name, MODEL_SIZES)
        for key, value in section.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key.endswith("dropout") and numeric and not 0.0 <= value < 1.0:
                _fail(f"{name}.{key}", f"must be in [0, 1), got {value}")
        d_model, heads = section.get("d_model"), section.get("num_heads")
        if isinstance(d_model, int) and isinstance(heads, int) and d_model % heads:
            _fail(f"{name}.num_heads", f"{name}.d_model={d_model} is not divisible by "
                                       f"{name}.num_heads={heads}")


def check_optimizer_builds(config: Mapping[str, Any], model: Any) -> None:
    """Build the optimiser and the schedule against ``model`` (on the meta device): their own
    argument checks (``optim.betas``, ``scheduler.min_lr_ratio``, ...) run here."""
    from asrkit.training.optim import build_optimizer
    from asrkit.training.schedulers import build_scheduler

    try:
        optimizer = build_optimizer(config["optim"], model)
        build_scheduler(config["scheduler"], optimizer,
                        total_steps=max(1, config["trainer"]["max_epochs"]),  # a stand-in
                        d_model=model.encoder.output_dim)
    except (ValueError, TypeError) as e:
        message = " ".join(str(e).split())
        if not message.startswith(("optim", "scheduler")):
            message = f"optim/scheduler: {message}"
        raise TrainConfigError(message) from None


def reject_hydra_overrides(overrides: list[str]) -> None:
    """``hydra.*`` / ``hydra/...`` overrides would be ignored (module docstring): refuse them."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            _fail(key, "asrkit train does not use Hydra's run directory or launcher; the run "
                       "directory is exp_dir (set exp_dir=<dir>; -m sweeps write "
                       "exp_dir/<n>_<overrides>)")


def _cmvn_matches_features(path: str, num_mel_bins: int) -> None:
    from asrkit.data.cmvn import GlobalCMVN

    try:
        bins = GlobalCMVN.load(path).mean.numel()
    except ValueError as e:
        _fail("data.cmvn", str(e))
    if bins != num_mel_bins:
        _fail("data.cmvn", f"{path} holds statistics of {bins} mel bins but "
                           f"data.features.num_mel_bins is {num_mel_bins}; recompute them with "
                           f"`asrkit cmvn --num-mel-bins {num_mel_bins}` (recipes: --num_mel_bins "
                           f"{num_mel_bins} --stage 1 --force true)")


def check_optim_and_scheduler(config: Mapping[str, Any]) -> None:
    from asrkit.models.build import ModelConfigError, check_section

    for name, filled_in in (("optim", ("model",)), ("scheduler", ("optimizer",))):
        if not isinstance(config.get(name), Mapping):
            _fail(name, "missing config section")
        try:
            check_section(config[name], name, filled_in)
        except ModelConfigError as e:
            raise TrainConfigError(str(e)) from None
    _positive(config["optim"], "optim", ("lr", "eps"))
    _positive(config["optim"], "optim", ("weight_decay",), strict=False)
    _positive(config["scheduler"], "scheduler", ("warmup_steps", "total_steps", "d_model",
                                                 "min_lr_ratio"), strict=False)
    _positive(config["scheduler"], "scheduler", ("factor",))


def check_model_builds(config: Mapping[str, Any]) -> int:
    """Check the model sections and build the model on the meta device; returns vocab_size."""
    import torch

    from asrkit.config import resolve_vocab_size
    from asrkit.models.build import build_model, check_model_config

    check_model_config(config)
    check_model_sizes(config)
    vocab_size = resolve_vocab_size(config)
    tokenizer_dir = config["tokenizer"]["dir"]
    if config.get("vocab_size") is not None and tokenizer_dir:
        from asrkit.text.tokenizer import load_tokenizer

        actual = load_tokenizer(tokenizer_dir).vocab_size
        if actual != config["vocab_size"]:
            _fail("vocab_size", f"{config['vocab_size']} differs from the {actual} units of the "
                                f"tokenizer in {tokenizer_dir}; leave vocab_size=null")
    with torch.device("meta"):
        model = build_model(config, vocab_size)
    check_filter_subsampling(config, model.encoder)
    check_optimizer_builds(config, model)
    if config["trainer"]["mwer"]["enabled"] and model.decoder is None:
        _fail("trainer.mwer.enabled", "MWER fine-tuning needs an attention decoder "
                                      "(this model has decoder=none)")
    return vocab_size


def check_filter_subsampling(config: Mapping[str, Any], encoder: Any) -> None:
    """``data.filters.subsampling`` equals the encoder's frame-rate reduction (an encoder
    without a ``subsampling`` attribute is not checked)."""
    factor = getattr(encoder, "subsampling", None)
    wanted = config["data"]["filters"]["subsampling"]
    if factor is None or wanted == factor:
        return
    source = config["encoder"].get("input_layer")
    source = f"encoder.input_layer={source}" if source else type(encoder).__name__
    _fail("data.filters.subsampling", f"is {wanted} but the encoder ({source}) keeps one frame "
          f"in {factor}; set data.filters.subsampling={factor}, or transcripts too long for "
          f"CTC pass the filter and train with a zero loss")


def check_train_config(config: Mapping[str, Any], check_files: bool = True) -> int:
    """Raise TrainConfigError (or the model builder's error) naming the first bad key;
    returns the vocabulary size. ``check_files=False`` skips the existence of data files."""
    for key in config:
        if key not in TOP_LEVEL:
            close = difflib.get_close_matches(str(key), TOP_LEVEL, n=1)
            _fail(str(key), "unknown top-level key" + (f" (did you mean {close[0]}?)" if close else ""))
    if not config.get("exp_dir"):
        _fail("exp_dir", "required: set exp_dir=<experiment directory>")
    check_against_defaults(config["trainer"], _defaults("trainer"), "trainer")
    check_against_defaults(config["data"], _defaults("data"), "data")
    check_against_defaults(config.get("tokenizer") or {}, {"dir": None}, "tokenizer")
    check_trainer(config["trainer"])
    check_optim_and_scheduler(config)
    check_data(config["data"], check_files)
    if check_files:
        _existing((config.get("tokenizer") or {}).get("dir"), "tokenizer.dir", "directory")
    return check_model_builds(config)
