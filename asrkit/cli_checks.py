"""Values of the command line checked before anything is loaded or written: a device name
(``asrkit decode device=...``, ``asrkit transcribe --device ...``) that torch does not know,
or a CUDA device this machine does not have, is an error naming the option rather than a
failure to load the checkpoint onto it; an output file that is a directory, or lies in none,
an output directory that is a file or would be inside one, or an output that is one of the
command's inputs, is one before the work that would write it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def check_device(name: str, option: str) -> None:
    """ValueError ``<option> <name>: ...`` unless ``name`` is cpu or a CUDA device here."""
    import torch  # here: the commands that check only paths start without torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{option} {name}: not a device (cpu, cuda, cuda:N)") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise ValueError(f"{option} {name}: asrkit runs on cpu or cuda")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device.index or 0) >= count:
        raise ValueError(f"{option} {name}: this machine has {count} CUDA device(s)")


def check_out_file(out: Path, option: str = "--out") -> None:
    """ValueError ``<option> <out>: ...`` unless ``out`` can be created as a file."""
    if out.is_dir():
        raise ValueError(f"{option} {out}: is a directory (a file is written there)")
    if not out.parent.is_dir():
        raise ValueError(f"{option} {out}: no directory {out.parent}")


def out_dir_problem(out: str | Path) -> str | None:
    """Why the directory ``out`` cannot be made (``<out> is a file, not a directory``, or
    ``<out> would be inside <parent>, which is a file``: the nearest parent that exists), or
    None when it can. Callers put their key or option in front."""
    out = Path(out)
    above = next((d for d in (out, *out.absolute().parents) if d.exists()), None)
    if above is None or above.is_dir():
        return None
    if above is out:
        return f"{out} is a file, not a directory"
    return f"{out} would be inside {above}, which is a file"


def check_not_an_input(out: Path, inputs: Iterable[str | Path], option: str,
                       what: str) -> None:
    """ValueError ``<option> <out>: is <what>`` when ``out`` is one of ``inputs`` (the same
    file by its resolved path): writing it would destroy what the command reads."""
    if out.resolve() in {Path(path).resolve() for path in inputs}:
        raise ValueError(f"{option} {out}: is {what}")
