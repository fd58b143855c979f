"""Where the Hydra config tree lives: ``conf/`` next to the ``asrkit`` package (repo root).

    from asrkit.config_paths import config_dir
    with hydra.initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"): ...
"""

from __future__ import annotations

from pathlib import Path

import asrkit


def config_dir() -> Path:
    """The absolute path of the repository's ``conf/`` directory."""
    return (Path(asrkit.__file__).resolve().parent.parent / "conf").resolve()
