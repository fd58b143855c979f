"""Where the repository's config tree lies."""

from __future__ import annotations

from pathlib import Path

import asrkit


def config_dir() -> Path:
    """The absolute path of the repository's `conf/` directory (next to the package)."""
    return (Path(asrkit.__file__).resolve().parent.parent / "conf").resolve()
