"""``--config-dir DIR`` on the command line of asrkit train, info and decode: more directories
on Hydra's config search path (asrkit.config.compose_config)."""

from __future__ import annotations

from asrkit.config.validate import ConfigError


def split_config_dirs(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the other arguments, the directories of every ``--config-dir DIR`` or
    ``--config-dir=DIR``)."""
    rest, dirs = [], []
    args = iter(argv)
    for arg in args:
        if arg == "--config-dir":
            value = next(args, None)
            if value is None:
                raise ConfigError("--config-dir: needs a directory")
            dirs.append(value)
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return rest, dirs


def config_dir_args(dirs: list[str]) -> list[str]:
    """The arguments that give ``dirs`` again (for processes started with the same config)."""
    return [arg for directory in dirs for arg in ("--config-dir", directory)]
