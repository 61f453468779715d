"""Signal-level checks for media tests, in pure Python (no numpy): a radix-2 FFT, the
power of one DFT bin, the dominant frequency of a stretch of PCM, the normalised
cross-correlation of a recording with its original (lag searched by FFT), in-band DTMF
through :class:`cloudpbx.media.dtmf.DtmfDetector`, and WAV files in and out.

PCM everywhere is 16-bit signed little-endian mono at 8 kHz, as the PBX and the pjsua2 test
phones use it.
"""

from __future__ import annotations

import cmath
import itertools
import math
import wave
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from sys import byteorder

from cloudpbx.media.dtmf import DtmfDetector
from cloudpbx.media.tones import synthesize

RATE = 8000
FRAME = 160  # samples in 20 ms


# --- PCM and WAV ---------------------------------------------------------------------------


def samples(pcm: bytes) -> list[int]:
    """16-bit LE PCM -> integers."""
    a = array("h", pcm)
    if byteorder == "big":
        a.byteswap()
    return a.tolist()


def pcm_bytes(values: Sequence[int]) -> bytes:
    a = array("h", values)
    if byteorder == "big":
        a.byteswap()
    return a.tobytes()


def read_wav(path: Path) -> bytes:
    """The PCM of an 8 kHz mono 16-bit WAV file (what pjsua2's recorder writes)."""
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE), path
        return w.readframes(w.getnframes())


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return path


def tone_pcm(freq: float, seconds: float, level_dbm0: float = -10.0) -> bytes:
    return synthesize([(freq, level_dbm0)], round(seconds * RATE), ramp_in=40, ramp_out=40)


def chirp_pcm(seconds: float, low: float = 300.0, high: float = 3000.0) -> bytes:
    """A speech-band test signal without periodicity: a sweep from ``low`` to ``high`` Hz with
    a 3 Hz syllable-like envelope (a pure tone would correlate at every period)."""
    count = round(seconds * RATE)
    rate = (high - low) / count
    out = []
    for n in range(count):
        phase = 2 * math.pi * (low * n + rate * n * n / 2) / RATE
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 3 * n / RATE)
        out.append(round(9000 * envelope * math.sin(phase)))
    return pcm_bytes(out)


def active_span(pcm: bytes, threshold: int = 300) -> tuple[int, int]:
    """(first, last + 1) 20 ms frame index whose mean absolute level passes ``threshold``,
    in samples; (0, 0) for silence."""
    x = samples(pcm)
    loud = [
        i
        for i in range(0, len(x) - FRAME + 1, FRAME)
        if sum(map(abs, x[i : i + FRAME])) > threshold * FRAME
    ]
    return (loud[0], loud[-1] + FRAME) if loud else (0, 0)


# --- spectrum ------------------------------------------------------------------------------


def power_at(x: Sequence[int], freq: float) -> float:
    """|DFT|² of ``x`` at ``freq`` Hz."""
    w = 2 * math.pi * freq / RATE
    re = sum(v * math.cos(w * n) for n, v in enumerate(x))
    im = sum(v * math.sin(w * n) for n, v in enumerate(x))
    return re * re + im * im


def spectrum(pcm: bytes, lo: int = 200, hi: int = 3800, step: int = 50) -> dict[int, float]:
    x = samples(pcm)
    return {f: power_at(x, f) for f in range(lo, hi, step)}


def dominant_frequency(pcm: bytes, lo: int = 200, hi: int = 3800, step: int = 50) -> int:
    power = spectrum(pcm, lo, hi, step)
    return max(power, key=power.__getitem__)


def assert_tone_at(pcm: bytes, freq: int, *, ratio: float = 1000.0) -> None:
    """The strongest of the 50 Hz bins 200-3800 Hz is ``freq`` and at least ``ratio`` times
    any bin 200 Hz or more away (a clean tone; G.711 noise is ~35 dB down)."""
    power = spectrum(pcm)
    peak = max(power, key=power.__getitem__)
    assert peak == freq, f"tone at {peak} Hz, not {freq} Hz"
    others = max(p for f, p in power.items() if abs(f - freq) >= 200)
    assert power[freq] > ratio * others, f"{freq} Hz only {power[freq] / others:.0f}x the rest"


# --- correlation ---------------------------------------------------------------------------


def fft(x: Sequence[complex], *, inverse: bool = False) -> list[complex]:
    """Iterative radix-2 FFT (``len(x)`` a power of two); unscaled both ways."""
    n = len(x)
    a = list(x)
    j = 0
    for i in range(1, n):  # bit-reversal permutation
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            a[i], a[j] = a[j], a[i]
    sign = 1 if inverse else -1
    size = 2
    while size <= n:
        half = size // 2
        twiddles = [cmath.exp(sign * 2j * math.pi * k / size) for k in range(half)]
        for start in range(0, n, size):
            for k, w in enumerate(twiddles):
                u, v = a[start + k], a[start + k + half] * w
                a[start + k], a[start + k + half] = u + v, u - v
        size *= 2
    return a


@dataclass(frozen=True, slots=True)
class Match:
    """Where the original was found in the recording: at ``lag`` samples, with normalised
    correlation ``peak`` (1.0 = identical up to scale) over ``overlap`` samples."""

    lag: int
    peak: float
    overlap: int


def correlate(original: bytes, recording: bytes) -> Match:
    """Find ``original`` in ``recording``: the lag of the cross-correlation maximum (any
    lag, by FFT), then the normalised correlation of the two at that lag."""
    x = samples(original)
    return Correlator(samples(recording), len(x)).find(x)


class Correlator:
    """A recording, transformed once, searched for pieces of at most ``longest`` samples."""

    def __init__(self, y: list[int], longest: int) -> None:
        self.y = y
        self.size = 1 << (len(y) + longest).bit_length()
        self.fy = fft([complex(v) for v in y] + [0j] * (self.size - len(y)))
        self.energy = list(itertools.accumulate((v * v for v in y), initial=0))

    def find(self, x: list[int]) -> Match:
        size = self.size
        assert len(x) + len(self.y) <= size, "piece longer than announced"
        fx = fft([complex(v) for v in x] + [0j] * (size - len(x)))
        raw = fft([a.conjugate() * b for a, b in zip(fx, self.fy, strict=True)], inverse=True)
        # Lag k lives at raw[k] (k >= 0) or raw[size + k] (x starting before y). The raw
        # maximum favours loud stretches of y: divide by the energy of the y under x.
        n = len(x)
        energy = self.energy

        def score(k: int) -> float:
            lag = k if k < len(self.y) else k - size
            lo, hi = max(0, lag), min(len(self.y), lag + n)
            local = energy[hi] - energy[lo] if hi > lo else 0
            return raw[k].real / math.sqrt(local) if local > 0 else 0.0

        best = max(range(size), key=score)
        lag = best if best < len(self.y) else best - size
        return Match(lag, *_normalised(x, self.y, lag))


def correlate_windows(
    original: bytes,
    recording: bytes,
    *,
    window: int = 1600,
    search: int = 800,
    min_level: int = 300,
) -> list[tuple[int, Match]]:
    """(offset, match) for each ``window``-sample piece of ``original`` that is not quiet
    (mean absolute level ``min_level``), each searched on its own within ``search`` samples
    of where the whole original matched: a jitter buffer that drops or inserts a frame
    shifts the pieces after it, but leaves each piece intact."""
    x, y = samples(original), samples(recording)
    start = Correlator(y, len(x)).find(x).lag
    found = []
    for offset in range(0, len(x) - window + 1, window):
        piece = x[offset : offset + window]
        if sum(map(abs, piece)) < min_level * window:
            continue
        low = max(0, offset + start - search)
        region = y[low : offset + start + window + search]
        match = Correlator(region, window).find(piece)
        found.append((offset, Match(low + match.lag - offset, match.peak, match.overlap)))
    return found


def _normalised(x: list[int], y: list[int], lag: int) -> tuple[float, int]:
    """Pearson-style correlation (no mean removal: audio has none) of x[n] with y[n + lag]."""
    start = max(0, -lag)
    stop = min(len(x), len(y) - lag)
    if stop <= start:
        return 0.0, 0
    xs, ys = x[start:stop], y[start + lag : stop + lag]
    dot = sum(a * b for a, b in zip(xs, ys, strict=True))
    energy = math.sqrt(sum(a * a for a in xs) * sum(b * b for b in ys))
    return (dot / energy if energy else 0.0), stop - start


# --- DTMF ----------------------------------------------------------------------------------


def inband_digits(pcm: bytes) -> str:
    """The DTMF digits a Goertzel detector finds in ``pcm``, in order."""
    detector = DtmfDetector()
    found = detector.feed(pcm) + detector.flush()
    return "".join(d.digit for d in found)
