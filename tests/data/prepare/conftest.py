"""Tiny audio files for the corpus-preparer tests: tones, corrupt files, empty files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SAMPLE_RATE = 16000


class AudioFiles:
    """Writes the audio a test tree needs; every method creates parent directories."""

    @staticmethod
    def tone(path: Path, seconds: float) -> float:
        """A 440 Hz sine of `seconds` (wav or flac from the suffix); returns its exact duration."""
        path.parent.mkdir(parents=True, exist_ok=True)
        num_samples = round(seconds * SAMPLE_RATE)
        t = np.arange(num_samples) / SAMPLE_RATE
        sf.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), SAMPLE_RATE, subtype="PCM_16")
        return num_samples / SAMPLE_RATE

    @staticmethod
    def corrupt(path: Path) -> None:
        """Random bytes under an audio name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(np.random.default_rng(0).bytes(2000))

    @classmethod
    def streamed(cls, path: Path, seconds: float) -> None:
        """A FLAC tone whose STREAMINFO gives no length (total_samples = 0), as a FLAC
        written to a stream has."""
        cls.tone(path, seconds)
        data = bytearray(path.read_bytes())
        data[21] &= 0xF0  # the low 36 bits of bytes 18..25: total_samples
        data[22:26] = bytes(4)
        path.write_bytes(bytes(data))

    @classmethod
    def truncated(cls, path: Path, seconds: float) -> None:
        """A WAV tone cut to half its bytes (its header still declares the whole)."""
        cls.tone(path, seconds)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    @staticmethod
    def empty(path: Path) -> None:
        """A valid header and no samples.

        libsndfile writes 0 bytes for an empty FLAC, so the FLAC is built by hand: "fLaC" and
        a STREAMINFO block with total_samples = 0 (all the FLAC format can say about length 0).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix != ".flac":
            sf.write(str(path), np.zeros(0), SAMPLE_RATE, subtype="PCM_16")
            return
        channels, bits, total_samples = 1, 16, 0
        packed = (SAMPLE_RATE << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total_samples
        streaminfo = struct.pack(">HH", 4096, 4096) + bytes(6) + packed.to_bytes(8, "big") + bytes(16)
        path.write_bytes(b"fLaC" + bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo)


@pytest.fixture
def audio() -> AudioFiles:
    return AudioFiles()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def lines():
    """`lines(path, [...])` writes a text file, one entry per line (UTF-8)."""
    return write_lines
