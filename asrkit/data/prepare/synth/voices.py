"""The synth corpus's voices: espeak-ng voice+variant combinations and flite voices.

Each voice is one "speaker" of the corpus (`Voice.speaker`, e.g. `espeak-en-us+m3`,
`flite-slt`). A fixed subset is held out of training for the `test_unseen` split. The
held-out espeak voices pair an accent and a variant that both occur in training, but
never together, so test_unseen measures new speakers rather than a new synthesiser.
Voices whose engine, accent or variant is not installed are dropped; with no engine at
all, `discover_voices` raises a one-line error pointing at tools/install_deps.sh.

    python -m asrkit.data.prepare.synth.voices      # list the voices installed here
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

ESPEAK, FLITE = "espeak-ng", "flite"
INSTALL_HINT = "run tools/install_deps.sh (Debian packages espeak-ng and flite)"

# Variants left out on purpose: whisper, croak, Demonic and the like are unintelligible,
# and the mbrola voices (mb-*) need databases that are not installed.
ESPEAK_TRAIN = (
    "en-us+m1", "en-us+m3", "en-us+f2", "en-us+klatt", "en-us-nyc+m4",
    "en-gb+m2", "en-gb+f1", "en-gb+f4", "en-gb+klatt2", "en-gb-scotland+m5",
    "en-gb-x-rp+f3", "en-gb-x-rp+m7", "en-029+m6", "en-gb-x-gbclan+f5", "en-gb-x-gbcwmd+klatt3",
)
ESPEAK_UNSEEN = ("en-gb+m3", "en-us+f4", "en-gb-scotland+f2")
# flite voice -> its mean F0 in Hz (measured), the centre of the pitch we draw. kal (8 kHz)
# is the same speaker as kal16 and awb_time only says the time, so both are left out.
FLITE_TRAIN = {"kal16": 95.0, "awb": 130.0, "slt": 170.0}
FLITE_UNSEEN = {"rms": 105.0}


@dataclass(frozen=True)
class Voice:
    engine: str           # ESPEAK or FLITE
    name: str             # what the engine calls it: "en-us+m3", "slt"
    f0: float = 0.0       # flite: mean pitch in Hz; espeak uses its own pitch scale

    @property
    def speaker(self) -> str:
        return f"{'espeak' if self.engine == ESPEAK else self.engine}-{self.name}"


@dataclass(frozen=True)
class VoiceSet:
    train: tuple[Voice, ...]   # voices of train, dev and test
    unseen: tuple[Voice, ...]  # voices of test_unseen only
    notes: tuple[str, ...]     # what is missing, for the user


def installed_espeak() -> tuple[set[str], set[str]] | None:
    """(English accents, variants) espeak-ng offers, or None when it is not installed."""
    if shutil.which(ESPEAK) is None:
        return None
    try:
        accents = _list_column(ESPEAK, "--voices=en", column=1)
        variants = {f.split("/", 1)[1] for f in _list_column(ESPEAK, "--voices=variant", column=4)}
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        log.warning("espeak-ng is installed but cannot list its voices (%s)", e)
        return None
    return accents, variants


def installed_flite() -> set[str] | None:
    """Voices `flite -lv` lists, or None when flite is not installed."""
    if shutil.which(FLITE) is None:
        return None
    try:
        listing = subprocess.run([FLITE, "-lv"], capture_output=True, text=True, timeout=30,
                                 check=False)
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("flite is installed but cannot list its voices (%s)", e)
        return None
    return set(listing.stdout.split(":", 1)[-1].split())


def _list_column(binary: str, flag: str, column: int) -> set[str]:
    out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30, check=True)
    return {line.split()[column] for line in out.stdout.splitlines()[1:] if line.strip()}


def select_voices(
    espeak: tuple[set[str], set[str]] | None, flite: set[str] | None
) -> VoiceSet:
    """The train and held-out voices among what is installed (see installed_*)."""
    if espeak is None and flite is None:
        raise FileNotFoundError(f"neither {ESPEAK} nor {FLITE} is installed: {INSTALL_HINT}")
    notes = []

    def espeak_voices(names: tuple[str, ...]) -> list[Voice]:
        if espeak is None:
            return []
        accents, variants = espeak
        return [Voice(ESPEAK, n) for n in names
                if n.split("+")[0] in accents and n.split("+")[1] in variants]

    def flite_voices(table: dict[str, float]) -> list[Voice]:
        return [Voice(FLITE, n, f0) for n, f0 in table.items() if flite and n in flite]

    if espeak is None:
        notes.append(f"{ESPEAK} not found: using {FLITE} voices only ({INSTALL_HINT})")
    if flite is None:
        notes.append(f"{FLITE} not found: using {ESPEAK} voices only ({INSTALL_HINT})")
    train = espeak_voices(ESPEAK_TRAIN) + flite_voices(FLITE_TRAIN)
    unseen = espeak_voices(ESPEAK_UNSEEN) + flite_voices(FLITE_UNSEEN)
    if not train or not unseen:
        raise FileNotFoundError(
            f"no usable synth voices (train: {len(train)}, held out: {len(unseen)}); {INSTALL_HINT}"
        )
    return VoiceSet(tuple(train), tuple(unseen), tuple(notes))


def discover_voices() -> VoiceSet:
    """The voices of this machine's espeak-ng and flite, split into train and held out."""
    return select_voices(installed_espeak(), installed_flite())


if __name__ == "__main__":
    found = discover_voices()
    print("train: ", " ".join(v.speaker for v in found.train))
    print("unseen:", " ".join(v.speaker for v in found.unseen))
    for note in found.notes:
        print("note:", note)
