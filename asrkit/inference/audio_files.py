"""The recordings ``asrkit transcribe`` is given: files, directories (searched recursively
for audio files by extension) and ``-`` (a list of paths on standard input, one a line).

    paths = collect_audio(["talk.wav", "corpus/", "-"], sys.stdin)

A file named explicitly is taken whatever its extension (reading it says whether it is
audio); in a directory only files ending in ``AUDIO_SUFFIXES`` are taken, sorted. A path
that does not exist, or a directory without audio files, is a usage error
(``AudioPathError``) naming it, found before the model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from asrkit.decoding.plan import AUDIO_SUFFIXES


class AudioPathError(ValueError):
    """A path given to transcribe does not exist or holds no audio files."""


def audio_files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def collect_audio(arguments: Sequence[str], stdin: TextIO | None = None) -> list[Path]:
    """Every recording the arguments name, in order (module docstring)."""
    paths: list[Path] = []
    for argument in arguments:
        if argument == "-":
            if stdin is None:
                raise AudioPathError("-: no standard input to read paths from")
            listed = [line.strip() for line in stdin]
            listed = [p for p in listed if p and not p.startswith("#")]
            if not listed:
                raise AudioPathError("-: no paths on standard input")
            paths += collect_audio(listed)
            continue
        path = Path(argument)
        if path.is_dir():
            found = audio_files_under(path)
            if not found:
                raise AudioPathError(f"{path}: no audio files ({' '.join(AUDIO_SUFFIXES)}) "
                                     f"in it or below")
            paths += found
        elif path.exists():
            paths.append(path)
        else:
            raise AudioPathError(f"{path}: no such file or directory")
    return paths
