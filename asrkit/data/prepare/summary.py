"""What a corpus preparer kept and skipped, per split, with the reason for each skip."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SplitSummary:
    kept: int = 0
    hours: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (utterance id, reason)
    written: bool = True  # False: nothing kept, so no manifest was written for it

    @property
    def reasons(self) -> Counter:
        return Counter(reason for _, reason in self.skipped)


@dataclass
class PrepareSummary:
    """Collects per-split counts while a preparer runs; `format()` is what the CLI prints."""

    corpus: str
    splits: dict[str, SplitSummary] = field(default_factory=dict)

    def split(self, name: str) -> SplitSummary:
        return self.splits.setdefault(name, SplitSummary())

    def keep(self, split: str, duration: float) -> None:
        s = self.split(split)
        s.kept += 1
        s.hours += duration / 3600.0

    def skip(self, split: str, utt_id: str, reason: str) -> None:
        self.split(split).skipped.append((utt_id, reason))

    @property
    def total_kept(self) -> int:
        return sum(s.kept for s in self.splits.values())

    @property
    def total_skipped(self) -> int:
        return sum(len(s.skipped) for s in self.splits.values())

    def format(self, max_ids: int = 5) -> str:
        lines = [f"prepared {self.corpus}: kept {self.total_kept}, skipped {self.total_skipped}"]
        for name, s in self.splits.items():
            unwritten = "" if s.written else " (not written: an existing manifest is left as it was)"
            lines.append(f"  {name}: kept {s.kept} ({s.hours:.2f} h), skipped {len(s.skipped)}"
                         + unwritten)
            for reason, count in sorted(s.reasons.items()):
                ids = [u for u, r in s.skipped if r == reason]
                shown = ", ".join(ids[:max_ids]) + (", ..." if len(ids) > max_ids else "")
                lines.append(f"    {count} x {reason}: {shown}")
        return "\n".join(lines)
