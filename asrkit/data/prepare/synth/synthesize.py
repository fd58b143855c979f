"""Synthesise one utterance to a 16 kHz mono 16-bit wav file with espeak-ng or flite.

The engine reads the text at a drawn speaking rate and pitch; the result is resampled to
16 kHz, trimmed to `MARGIN` seconds of silence either side of the speech, mixed with white
or pink noise at a drawn SNR (when asked), scaled to a drawn peak level and written
atomically. Everything random comes from the request, so the bytes depend only on it.

Resampling is done in the frequency domain with numpy (an ideal low-pass; the signal is
padded with silence first so the FFT's wrap-around is harmless): it is exact, bit-for-bit
repeatable and needs no thread pool of its own inside our worker threads.

    python -m asrkit.data.prepare.synth.synthesize "en-us+m3" "the cat sat on the mat" /tmp/a.wav
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asrkit.atomic_text import write_error
from asrkit.data.audio import write_wav
from asrkit.data.prepare.synth.voices import ESPEAK, FLITE, FLITE_TRAIN, FLITE_UNSEEN, Voice

SAMPLE_RATE = 16000
MARGIN = 0.15              # seconds of silence kept before and after the speech
SILENCE_DB = -40.0         # 10 ms frames this far below the loudest frame are silence
ESPEAK_WPM = 160           # espeak-ng words per minute at rate 1.0 (its default is 175)
TIMEOUT = 60.0             # seconds one synthesis may take before it counts as failed


class SynthesisError(RuntimeError):
    """One utterance could not be synthesised; the message is the reason to report."""


@dataclass(frozen=True)
class SynthRequest:
    voice: Voice
    text: str                   # what the engine reads (punctuation sets the intonation)
    rate: float = 1.0           # speaking-rate factor, 1.0 = the voice's normal rate
    pitch: float = 0.0          # -1..1: espeak pitch 30..70, flite F0 -3..+3 semitones
    level: float = 0.7          # peak amplitude of the written wav
    noise_snr: float | None = None  # dB; None for no noise
    noise_color: str = "white"  # "white" or "pink"
    noise_seed: int = 0


def engine_command(request: SynthRequest) -> list[str]:
    """The command line that writes the request's speech as wav to stdout."""
    voice = request.voice
    if voice.engine == ESPEAK:
        speed = round(ESPEAK_WPM * request.rate)
        pitch = round(50 + 20 * request.pitch)
        return [ESPEAK, "-v", voice.name, "-s", str(speed), "-p", str(pitch), "--stdout",
                request.text]
    if voice.engine == FLITE:
        f0 = voice.f0 * 2.0 ** (3.0 * request.pitch / 12.0)
        return [FLITE, "-voice", voice.name,
                "--setf", f"duration_stretch={1.0 / request.rate:.4f}",
                "--setf", f"int_f0_target_mean={f0:.2f}",
                "-t", request.text, "-o", "/dev/stdout"]
    raise ValueError(f"voice {voice.speaker}: unknown engine '{voice.engine}'")


def run_engine(request: SynthRequest) -> tuple[np.ndarray, int]:
    """(float64 waveform, sample rate) as the engine produced it."""
    command = engine_command(request)
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"{command[0]} timed out") from None
    except OSError as e:
        raise SynthesisError(f"{command[0]} failed to start ({e.strerror})") from None
    if done.returncode != 0:
        raise SynthesisError(f"{command[0]} exited with status {done.returncode}")
    try:
        wave, rate = sf.read(io.BytesIO(done.stdout), dtype="float64", always_2d=True)
    except sf.SoundFileError:
        raise SynthesisError(f"{command[0]} wrote no readable audio") from None
    return wave[:, 0], rate


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling by truncating or zero-padding the spectrum."""
    if orig_rate == new_rate:
        return wave
    step = orig_rate // math.gcd(orig_rate, new_rate)  # input lengths that map to whole outputs
    padded = fft_length(len(wave), multiple=step)
    out_len = padded * new_rate // orig_rate
    spectrum = np.fft.rfft(wave, n=padded)  # zero-pads the end: FFTs of odd sizes are slow
    bins = out_len // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), spectrum.dtype)])
    resampled = np.fft.irfft(spectrum, n=out_len) * (out_len / padded)
    return resampled[: round(len(wave) * new_rate / orig_rate)]


def fft_length(n: int, multiple: int = 1) -> int:
    """The smallest multiple of `multiple` >= n whose quotient has no prime factor above 7."""
    m = max(1, -(-n // multiple))
    while True:
        rest = m
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m * multiple
        m += 1


def trim(wave: np.ndarray, rate: int, margin: float = MARGIN) -> np.ndarray:
    """Cut silence beyond `margin` seconds before the first and after the last speech frame."""
    frame = rate // 100
    frames = len(wave) // frame
    energy = np.sqrt(np.mean(wave[: frames * frame].reshape(frames, frame) ** 2, axis=1))
    if frames == 0 or energy.max() == 0.0:
        raise SynthesisError("engine produced silence")
    active = np.flatnonzero(energy > energy.max() * 10.0 ** (SILENCE_DB / 20.0))
    pad = round(margin * rate)
    return wave[max(0, active[0] * frame - pad): (active[-1] + 1) * frame + pad]


def add_noise(wave: np.ndarray, snr_db: float, color: str, seed: int) -> np.ndarray:
    """`wave` plus white or pink (1/f power) noise at `snr_db` relative to the whole signal."""
    length = fft_length(len(wave))
    noise = np.random.default_rng(seed).standard_normal(length)
    if color == "pink":
        spectrum = np.fft.rfft(noise)
        spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum), dtype=np.float64))
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=length)
    elif color != "white":
        raise ValueError(f"noise color must be 'white' or 'pink', got '{color}'")
    noise = noise[: len(wave)]
    signal_power = np.mean(wave**2)
    noise *= np.sqrt(signal_power / (10.0 ** (snr_db / 10.0) * np.mean(noise**2)))
    return wave + noise


def synthesize(request: SynthRequest, path: str | os.PathLike) -> int:
    """Write the request's utterance to `path` (16 kHz mono PCM-16); returns its samples."""
    wave, rate = run_engine(request)
    if len(wave) == 0:
        raise SynthesisError(f"{request.voice.engine} produced no audio")
    pad = np.zeros(round(MARGIN * rate))
    wave = resample(np.concatenate([pad, wave, pad]), rate, SAMPLE_RATE)
    wave = trim(wave, SAMPLE_RATE)
    if request.noise_snr is not None:
        wave = add_noise(wave, request.noise_snr, request.noise_color, request.noise_seed)
    wave = wave * (request.level / np.abs(wave).max())
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.wav")
    try:
        write_wav(tmp, wave, SAMPLE_RATE)
        os.replace(tmp, path)
    except (OSError, sf.SoundFileError) as e:  # a full disk: libsndfile says "System error"
        raise write_error(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)
    return len(wave)


if __name__ == "__main__":
    name, text, out = sys.argv[1:4]
    flite_f0 = {**FLITE_TRAIN, **FLITE_UNSEEN}
    voice = Voice(FLITE, name, flite_f0[name]) if name in flite_f0 else Voice(ESPEAK, name)
    samples = synthesize(SynthRequest(voice, text), out)
    print(f"{out}: {samples / SAMPLE_RATE:.2f} s")
