"""The experiment directory: one per experiment, the run directory of ``asrkit train``, and
the one module that knows its layout.

    exp/<name>/
      config.yaml        the resolved config as run (plain YAML; vocab_size filled in;
                         tokenizer.dir, data.cmvn point at the copies below; paths absolute)
      tokenizer/         copy of the tokenizer (asrkit.text.registry.load_tokenizer reads it)
      cmvn.json          copy of the CMVN statistics (absent when data.cmvn is null)
      train.log          rank 0's log (appended to by resumed runs)
      .train.lock        held by the run training in it (asrkit.training.train_lock)
      tensorboard/       scalars and attention images
      checkpoints/       epoch_N.pt, step_N.pt, last.pt (asrkit.training.checkpoint)
      avg_N.pt           averaged weights (`asrkit average`; avg_best_<metric>_N.pt: best N)
      averaged.json      which averaged file is the experiment's model (the newest average)
      decode/<checkpoint>/<set>/<method>[-<setting><value>...]/
                         one scored decode (asrkit.scoring.decode_dir): keyed by the
                         checkpoint and the search settings, so no decode overwrites another
      results.md         every decode's results (asrkit.scoring.results_md)

    exp = ExperimentDir("exp/conformer")
    exp.find_checkpoint("avg_3.pt")      # as given, in exp/, or in exp/checkpoints/
    exp.default_checkpoint()             # the averaged model, else checkpoints/last.pt

Decoding needs nothing outside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from asrkit.atomic_text import write_text_atomic

LAST_CHECKPOINT = "last.pt"  # in checkpoints/: a link to the newest (asrkit.training.checkpoint)


@dataclass(frozen=True)
class ExperimentDir:
    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def cmvn_file(self) -> Path:
        return self.path / "cmvn.json"

    @property
    def train_log(self) -> Path:
        return self.path / "train.log"

    @property
    def train_lock(self) -> Path:
        return self.path / ".train.lock"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def decode_dir(self) -> Path:
        return self.path / "decode"  # <checkpoint>/<set>/<method...>/ (asrkit.scoring.decode_dir)

    @property
    def results_md(self) -> Path:
        return self.path / "results.md"

    @property
    def averaged_record(self) -> Path:
        return self.path / "averaged.json"

    # ---- checkpoints ---------------------------------------------------------------------
    def checkpoint_path(self, name: str | Path) -> Path | None:
        """Where checkpoint ``name`` lies: a relative name in the experiment, then in its
        checkpoints/, then relative to the current directory; an absolute path as it is."""
        name = Path(name)
        inside = () if name.is_absolute() else (self.path / name, self.checkpoint_dir / name)
        for candidate in (*inside, name):
            if candidate.is_file():
                return candidate
        return None

    def find_checkpoint(self, name: str | Path) -> Path:
        """As ``checkpoint_path``; FileNotFoundError listing the checkpoints that exist."""
        path = self.checkpoint_path(name)
        if path is not None:
            return path
        found = [str(p.relative_to(self.path)) for p in sorted(self.path.glob("*.pt"))]
        found += [str(p.relative_to(self.path)) for p in sorted(self.checkpoint_dir.glob("*.pt"))]
        raise FileNotFoundError(f"checkpoint: {str(name)!r} not found in {self.path} "
                                f"(found: {', '.join(found) or 'none'})")

    def record_average(self, path: Path, averaged_from: list[str]) -> None:
        """Make ``path`` (in the experiment) the experiment's averaged model."""
        record = {"checkpoint": path.name, "averaged_from": averaged_from}
        write_text_atomic(self.averaged_record, json.dumps(record, indent=2) + "\n")

    def averaged_model(self) -> Path | None:
        """The averaged model ``asrkit average`` last wrote, if it is still there."""
        if not self.averaged_record.is_file():
            return None
        try:
            name = json.loads(self.averaged_record.read_text(encoding="utf-8"))["checkpoint"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise ValueError(f"{self.averaged_record}: not a record of an averaged model "
                             f"({type(e).__name__}); rerun `asrkit average`") from None
        path = self.path / Path(str(name)).name  # a name in the experiment, never elsewhere
        return path if path.is_file() else None

    def default_checkpoint(self) -> Path:
        """The model to use when none is named: the averaged model (``asrkit average``),
        else ``checkpoints/last.pt`` (the newest checkpoint)."""
        averaged = self.averaged_model()
        if averaged is not None:
            return averaged
        last = self.checkpoint_dir / LAST_CHECKPOINT
        if last.is_file():
            return last
        raise FileNotFoundError(f"checkpoint: {self.path} has no averaged model and no "
                                f"checkpoints/last.pt; train it first, or name one with "
                                f"checkpoint=<file>")

    def checkpoint_label(self, path: Path) -> str:
        """How decode directories and results name a checkpoint: its path relative to the
        experiment (``avg_3.pt``, ``checkpoints/epoch_6.pt``), else absolute; ``last.pt`` is
        resolved to the checkpoint it points at."""
        path = path.resolve()
        try:
            return str(path.relative_to(self.path.resolve()))
        except ValueError:
            return str(path)

