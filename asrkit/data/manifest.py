"""Utterance manifests: JSONL files with one utterance per line.

Each line holds `id`, `audio` (a path; relative paths are resolved against the manifest's
own directory), `duration` (seconds), `text` and `speaker`, and optionally `start`/`end`
(seconds) when the utterance is a segment of a longer recording. Reading validates every
line and raises `ManifestError` naming the file, line and key; writing is atomic.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from asrkit.atomic_text import write_error
from asrkit.deferred_signals import deferred_signals

log = logging.getLogger(__name__)

REQUIRED_FIELDS = {"id": str, "audio": str, "duration": (int, float), "text": str, "speaker": str}
OPTIONAL_FIELDS = {"start": (int, float), "end": (int, float)}


# Characters that end a line in Python's str.splitlines() (and for most editors and line
# tools): a transcript is one line, and "<id> <text>" files (ref.txt, hyp.txt, Kaldi's text)
# written from manifests must read back as one utterance per line wherever they are read.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


class ManifestError(ValueError):
    """A manifest line is malformed; the message names the file, line and key."""


DURATION_DECIMALS = 4  # places a prepared manifest's durations are rounded to (0.1 ms)


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str
    duration: float
    text: str
    speaker: str
    start: float | None = None
    end: float | None = None

    def to_json(self) -> dict:
        record = asdict(self)
        return {k: v for k, v in record.items() if v is not None or k not in OPTIONAL_FIELDS}


def validate_record(record: object, where: str) -> Utterance:
    """Check one decoded JSON line; `where` (e.g. "train.jsonl:12") prefixes errors."""
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key, kind in REQUIRED_FIELDS.items():
        if key not in record:
            raise ManifestError(f"{where}: missing key '{key}'")
        if not isinstance(record[key], kind) or isinstance(record[key], bool) or \
                not _finite(record[key]):
            raise ManifestError(f"{where}: key '{key}' has bad value {record[key]!r}")
    for key, kind in OPTIONAL_FIELDS.items():
        value = record.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)
                                  or not _finite(value) or value < 0):
            raise ManifestError(f"{where}: key '{key}' has bad value {value!r}")
    unknown = set(record) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS)
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {sorted(unknown)}")
    if not record["id"] or any(c.isspace() for c in record["id"]):
        raise ManifestError(f"{where}: key 'id' must be non-empty without whitespace: {record['id']!r}")
    if breaks := sorted(LINE_BREAKS.intersection(record["text"])):
        raise ManifestError(f"{where}: key 'text' holds a line break ({breaks[0]!r}); "
                            "a transcript is one line")
    if record["duration"] <= 0:
        raise ManifestError(f"{where}: key 'duration' must be > 0, got {record['duration']}")
    start, end = record.get("start"), record.get("end")
    if start is not None and end is not None and end <= start:
        raise ManifestError(f"{where}: key 'end' ({end}) must exceed 'start' ({start})")
    return Utterance(
        id=record["id"],
        audio=record["audio"],
        duration=float(record["duration"]),
        text=record["text"],
        speaker=record["speaker"],
        start=None if start is None else float(start),
        end=None if end is None else float(end),
    )


def _finite(value: object) -> bool:
    """False for a NaN or infinite float (JSON's NaN/Infinity, which json.loads accepts)."""
    return not isinstance(value, float) or math.isfinite(value)


def _decode_line(raw: bytes, where: str) -> str:
    """One line of a text file as str; `where` ("file:line") names it in the error."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at byte "
                            f"{e.start + 1} of the line: {e.reason})") from None


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read and validate a manifest; duplicate ids are an error."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    base = path.parent
    utterances: list[Utterance] = []
    seen: dict[str, int] = {}
    with path.open("rb") as f:  # decoded line by line, so that an error can name its line
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            line = _decode_line(raw, where)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{where}: not valid JSON ({e.msg})") from None
            utt = validate_record(record, where)
            if utt.id in seen:
                raise ManifestError(f"{where}: duplicate id '{utt.id}' (first on line {seen[utt.id]})")
            seen[utt.id] = lineno
            if not os.path.isabs(utt.audio):
                utt = Utterance(**{**asdict(utt), "audio": str(base / utt.audio)})
            utterances.append(utt)
    return utterances


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> int:
    """Write utterances as JSONL atomically (temp file + rename); returns the count. A
    non-finite number (NaN, inf: not JSON) is an error naming the utterance, and nothing is
    written; so is an id written twice (``read_manifest`` refuses it), naming both audio
    files."""
    return write_manifests({Path(path): utterances})[0]


def write_manifests(manifests: Mapping[Path, Iterable[Utterance]],
                    before_rename: Callable[[], Callable[[], None] | None] | None = None,
                    after_rename: Callable[[], None] | None = None) -> list[int]:
    """Write several manifests as one (``write_manifest``'s checks): each to a temp file
    first, so that an error in any leaves every one as it was. Then, with Ctrl-C and
    SIGTERM held (asrkit.deferred_signals): ``before_rename`` (a preparer moving the files
    the manifests name into place; it returns what undoes that, or None), the renames over
    the old manifests (each path names a whole manifest, old or new, at every moment), and
    ``after_rename`` (a preparer's commit point). A failure in the renames or in
    ``after_rename`` puts back the manifests already renamed and calls the undo, so the
    manifests and their files stay as they were. Until ``after_rename`` has run, each old
    manifest also has a second name (``.<name>.old<pid>``) and each new one without an old
    one a mark (``.<name>.new<pid>``), from which a preparer can undo a killed run (asrkit
    .data.prepare.synth.swap); they go afterwards (a failure there only warns). Returns
    the counts."""
    staged: list[tuple[Path, Path, int]] = []
    done: list[tuple[Path, Path]] = []  # (path, its trace)
    committed = False
    try:
        for path, utterances in manifests.items():
            staged.append((Path(path), *_write_temp(Path(path), utterances)))
        with deferred_signals():  # a signal held comes out here, once all is in place
            undo = before_rename() if before_rename is not None else None
            try:
                _replace_all([(path, tmp) for path, tmp, _ in staged], done)
                if after_rename is not None:
                    after_rename()
            except BaseException:
                _put_back(done)
                if undo is not None:
                    undo()
                raise
            committed = True
    finally:
        for _, tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for _, trace in done if committed else ():
            try:
                trace.unlink(missing_ok=True)
            except OSError as e:
                log.warning("%s: could not be removed (%s); it is left over", trace,
                            e.strerror or e)
    return [count for *_, count in staged]


def _replace_all(renames: list[tuple[Path, Path]], done: list[tuple[Path, Path]]) -> None:
    """Rename each temp file over its path, appending to ``done`` (path, its trace): the
    old file's second name (a hard link, else a copy) or, for a path that had none, an
    empty ``.new`` mark, made before the rename."""
    for path, tmp in renames:
        try:
            if path.exists():
                trace = _second_name(path)
            else:
                trace = path.with_name(f".{path.name}.new{os.getpid()}")
                trace.touch()
            done.append((path, trace))
            os.replace(tmp, path)
        except OSError as e:
            raise write_error(path, e) from None


def _put_back(done: list[tuple[Path, Path]]) -> None:
    """Undo ``_replace_all``: each old file back from its second name, each new one gone."""
    for path, trace in reversed(done):
        if trace.name.startswith(f".{path.name}.old"):  # else a .new mark
            os.replace(trace, path)
            trace.unlink(missing_ok=True)  # a link to the file at path: rename leaves it
        else:
            path.unlink(missing_ok=True)
            trace.unlink(missing_ok=True)


def _second_name(path: Path) -> Path:
    """``path``'s file also under ``.<name>.old<pid>`` beside it (``path`` stays)."""
    kept = path.with_name(f".{path.name}.old{os.getpid()}")
    kept.unlink(missing_ok=True)
    try:
        os.link(path, kept)
    except OSError:  # a file system without hard links
        shutil.copyfile(path, kept)
    return kept


def _write_temp(path: Path, utterances: Iterable[Utterance]) -> tuple[Path, int]:
    """The manifest written to a temp file beside ``path``: (that file, the count)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    count = 0
    audio_of: dict[str, str] = {}
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for utt in utterances:
                if utt.id in audio_of:
                    raise ManifestError(f"{path}: utterance id '{utt.id}' twice: "
                                        f"{audio_of[utt.id]} and {utt.audio}")
                audio_of[utt.id] = str(utt.audio)
                try:
                    line = json.dumps(utt.to_json(), ensure_ascii=False, allow_nan=False)
                except ValueError:
                    raise ManifestError(f"{path}: utterance '{utt.id}' has a non-finite "
                                        f"number: {utt.to_json()}") from None
                f.write(line + "\n")
                count += 1
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk: the error names no file
            raise write_error(path, e) from None
        raise
    return tmp, count
