"""Call-progress tones as per-country data, and a frame generator that keeps exact time.

A :class:`Tone` is a list of :class:`ToneSegment` (frequencies + duration; no frequencies means
silence) that is played once or repeated; a :class:`TonePlan` names the tones of one country.
Russia (``"ru"``, GOST 45.223-2001 cadences) is the default plan, ``"us"`` (ANSI T1.401 "precise
tone plan") shows that it is data.

:class:`ToneGenerator` yields fixed frames (160 samples = 20 ms at 8 kHz) of 16-bit signed
little-endian PCM, or of G.711 when given an encoder:

* cadence is counted in whole samples (:class:`ToneCursor`), so a ringback tone is on for
  exactly 8000 samples every 40000, over any run length — no drift;
* every burst is rendered once (and cached, encoded too) from the absolute sample index inside
  the burst, so phase is continuous across frame boundaries, and each burst starts at phase 0 and
  fades in and out over a short raised-cosine ramp (4 ms by default) — no clicks at the cadence
  edges; a continuous tone repeats an exact period of its waveform (8000 / gcd(8000, freqs)
  samples: 320 for 425 Hz);
* the steady state is bytes slicing only (no per-sample Python work per frame).

Levels are in dBm0 per frequency component: 0 dBm0 is the sine whose peak is 3.14 dB below the
16-bit full scale (the G.711 A-law overload point, T_max = +3.14 dBm0; μ-law's is +3.17), i.e.
peak ≈ 22 826; -10 dBm0 ≈ 7 218 (0.22 of full scale).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from sys import byteorder
from typing import Final

__all__ = [
    "DEFAULT_LEVEL_DBM0",
    "FRAME_SAMPLES",
    "FULL_SCALE_DBM0",
    "SAMPLE_RATE",
    "TONE_PLANS",
    "Tone",
    "ToneCursor",
    "ToneGenerator",
    "TonePiece",
    "TonePlan",
    "ToneSegment",
    "dbm0_to_amplitude",
    "synthesize",
    "tone_plan",
]

SAMPLE_RATE: Final = 8000
FRAME_SAMPLES: Final = 160  # 20 ms
FULL_SCALE_DBM0: Final = 3.14  # level of a full-scale sine (G.711 A-law T_max)
DEFAULT_LEVEL_DBM0: Final = -10.0
_MAX_CACHED_SAMPLES: Final = 10 * SAMPLE_RATE  # longer finite bursts are split (never in plans)


def dbm0_to_amplitude(level_dbm0: float) -> float:
    """Peak amplitude (16-bit scale) of a sine at ``level_dbm0``."""
    return 32767.0 * math.pow(10.0, (level_dbm0 - FULL_SCALE_DBM0) / 20.0)


def synthesize(
    components: Sequence[tuple[float, float]],
    count: int,
    *,
    sample_rate: int = SAMPLE_RATE,
    start: int = 0,
    ramp_in: int = 0,
    ramp_out: int = 0,
    total: int | None = None,
) -> bytes:
    """16-bit LE PCM of a sum of sines: ``components`` = ((frequency Hz, level dBm0), ...).

    Sample ``n`` (``start <= n < start + count``) is computed from ``n`` itself, so consecutive
    calls join without a phase jump. ``ramp_in`` / ``ramp_out`` shape the first / last samples
    of a burst of ``total`` samples with a raised cosine.
    """
    length = total if total is not None else start + count
    omegas = [
        (2.0 * math.pi * f / sample_rate, dbm0_to_amplitude(level)) for f, level in components
    ]
    samples = array("h", bytes(2 * count))
    for i in range(count):
        n = start + i
        value = 0.0
        for omega, amplitude in omegas:
            value += amplitude * math.sin(omega * n)
        if n < ramp_in:
            value *= 0.5 - 0.5 * math.cos(math.pi * n / ramp_in)
        elif length - n <= ramp_out:
            value *= 0.5 - 0.5 * math.cos(math.pi * (length - n) / ramp_out)
        samples[i] = max(-32768, min(32767, round(value)))
    if byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


# --- tone data ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToneSegment:
    """One step of a cadence: ``freqs`` at ``level_dbm0`` each (no freqs = silence).

    ``duration_ms=None`` means "until stopped" (only as the last segment).
    """

    duration_ms: int | None
    freqs: tuple[int, ...] = ()
    level_dbm0: float = DEFAULT_LEVEL_DBM0

    def __post_init__(self) -> None:
        if self.duration_ms is not None and self.duration_ms <= 0:
            raise ValueError(f"segment duration must be positive, got {self.duration_ms} ms")
        for f in self.freqs:
            if not isinstance(f, int) or not 0 < f < SAMPLE_RATE // 2:
                raise ValueError(f"tone frequencies are whole Hz below 4000, got {f!r}")

    def samples(self, sample_rate: int = SAMPLE_RATE) -> int | None:
        """Exact length in samples (``None`` for an endless segment)."""
        if self.duration_ms is None:
            return None
        count, rest = divmod(self.duration_ms * sample_rate, 1000)
        if rest:
            raise ValueError(f"{self.duration_ms} ms is not a whole number of samples")
        return count

    @property
    def silent(self) -> bool:
        return not self.freqs


@dataclass(frozen=True, slots=True)
class Tone:
    """A named cadence: ``segments`` played in order, then again from the top if ``repeat``."""

    name: str
    segments: tuple[ToneSegment, ...]
    repeat: bool = True

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a tone needs at least one segment")
        if any(s.duration_ms is None for s in self.segments[:-1]):
            raise ValueError("only the last segment may be endless")
        if self.repeat and all(s.silent for s in self.segments):
            raise ValueError("a repeating tone must contain sound")

    @classmethod
    def continuous(
        cls, name: str, freqs: Sequence[int], level_dbm0: float = DEFAULT_LEVEL_DBM0
    ) -> Tone:
        """A steady tone (dial tone)."""
        return cls(name, (ToneSegment(None, tuple(freqs), level_dbm0),))

    @classmethod
    def cadence(
        cls,
        name: str,
        freqs: Sequence[int],
        on_ms: int,
        off_ms: int,
        level_dbm0: float = DEFAULT_LEVEL_DBM0,
        *,
        repeat: bool = True,
    ) -> Tone:
        """``on_ms`` of ``freqs`` then ``off_ms`` of silence (ringback, busy, ...)."""
        segments = [ToneSegment(on_ms, tuple(freqs), level_dbm0)]
        if off_ms:
            segments.append(ToneSegment(off_ms))
        return cls(name, tuple(segments), repeat)

    @property
    def endless(self) -> bool:
        """True if the tone never ends by itself (repeats, or ends with an endless segment)."""
        return self.repeat or self.segments[-1].duration_ms is None

    def cycle_samples(self, sample_rate: int = SAMPLE_RATE) -> int | None:
        """Samples in one pass over the segments (``None`` if a segment is endless)."""
        lengths = [s.samples(sample_rate) for s in self.segments]
        if any(n is None for n in lengths):
            return None
        return sum(n for n in lengths if n is not None)

    def on_samples(self, sample_rate: int = SAMPLE_RATE) -> int:
        """Sounding samples in one pass (endless segments excluded)."""
        return sum(s.samples(sample_rate) or 0 for s in self.segments if not s.silent)


@dataclass(frozen=True, slots=True)
class TonePlan:
    """The call-progress tones of one country, by name."""

    country: str
    description: str
    tones: tuple[Tone, ...] = field(default=())

    def __getitem__(self, name: str) -> Tone:
        for tone in self.tones:
            if tone.name == name:
                return tone
        raise KeyError(f"no tone {name!r} in plan {self.country!r}")

    def __contains__(self, name: object) -> bool:
        return any(t.name == name for t in self.tones)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tones)


# Russia, GOST 45.223-2001: all call-progress tones are 425 Hz.
# Before answer, busy/congestion are signalled by the SIP status (the phone plays its own tone);
# these are for in-band use (after answer, transfers, IVR, early media).
_RU_LEVEL: Final = -10.0
RU: Final = TonePlan(
    "ru",
    "Russia, GOST 45.223-2001 (425 Hz)",
    (
        Tone.continuous("dial", (425,), _RU_LEVEL),
        Tone.cadence("ringback", (425,), 1000, 4000, _RU_LEVEL),
        Tone.cadence("busy", (425,), 350, 350, _RU_LEVEL),
        Tone.cadence("congestion", (425,), 175, 175, _RU_LEVEL),
        Tone.cadence("call_waiting", (425,), 200, 4800, _RU_LEVEL),  # 0.2 s every 5 s
        Tone.cadence("beep", (1000,), 500, 0, _RU_LEVEL, repeat=False),  # voicemail "record now"
    ),
)

# United States, ANSI T1.401 / Telcordia precise tone plan (levels per frequency).
US: Final = TonePlan(
    "us",
    "United States, ANSI T1.401 precise tone plan",
    (
        Tone.continuous("dial", (350, 440), -13.0),
        Tone.cadence("ringback", (440, 480), 2000, 4000, -19.0),
        Tone.cadence("busy", (480, 620), 500, 500, -24.0),
        Tone.cadence("congestion", (480, 620), 250, 250, -24.0),  # "reorder"
        Tone.cadence("call_waiting", (440,), 300, 9700, -13.0),
        Tone.cadence("beep", (1000,), 500, 0, -10.0, repeat=False),
    ),
)

TONE_PLANS: Final[dict[str, TonePlan]] = {plan.country: plan for plan in (RU, US)}


def tone_plan(country: str) -> TonePlan:
    """Plan for an ISO 3166 country code (case-insensitive); ``KeyError`` if unknown."""
    return TONE_PLANS[country.lower()]


# --- cadence counting ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TonePiece:
    """``count`` samples of ``segment`` starting ``offset`` samples into it."""

    segment: int
    offset: int
    count: int


class ToneCursor:
    """Integer position inside a tone's cadence; :meth:`advance` cuts a span into pieces."""

    __slots__ = ("_lengths", "_repeat", "done", "offset", "position", "segment")

    def __init__(self, tone: Tone, sample_rate: int = SAMPLE_RATE) -> None:
        self._lengths = [s.samples(sample_rate) for s in tone.segments]
        self._repeat = tone.repeat
        self.segment = 0
        self.offset = 0
        self.position = 0  # samples handed out so far
        self.done = False

    def advance(self, count: int) -> list[TonePiece]:
        """The next ``count`` samples as pieces (fewer only when a one-shot tone ends)."""
        pieces: list[TonePiece] = []
        while count > 0 and not self.done:
            length = self._lengths[self.segment]
            take = count if length is None else min(count, length - self.offset)
            pieces.append(TonePiece(self.segment, self.offset, take))
            self.offset += take
            self.position += take
            count -= take
            if length is not None and self.offset == length:
                self.offset = 0
                self.segment += 1
                if self.segment == len(self._lengths):
                    self.segment = 0
                    self.done = not self._repeat
        return pieces


# --- rendering ----------------------------------------------------------------------------

Encoder = Callable[[bytes], bytes]


def _gcd_period(freqs: tuple[int, ...], sample_rate: int) -> int:
    return sample_rate // math.gcd(sample_rate, *freqs)


@lru_cache(maxsize=128)
def _burst(
    freqs: tuple[int, ...],
    level: float,
    count: int,
    sample_rate: int,
    ramp: int,
    encode: Encoder | None,
) -> bytes:
    """A whole finite burst, ramped at both ends, possibly encoded."""
    ramp = min(ramp, count // 2)
    pcm = synthesize(
        [(f, level) for f in freqs],
        count,
        sample_rate=sample_rate,
        ramp_in=ramp,
        ramp_out=ramp,
        total=count,
    )
    return encode(pcm) if encode else pcm


@lru_cache(maxsize=64)
def _endless(
    freqs: tuple[int, ...],
    level: float,
    sample_rate: int,
    ramp: int,
    min_span: int,
    encode: Encoder | None,
) -> tuple[bytes, int, bytes]:
    """(ramped head, period, periodic loop at least ``period + min_span`` long)."""
    components = [(f, level) for f in freqs]
    head = synthesize(components, ramp, sample_rate=sample_rate, ramp_in=ramp)
    period = _gcd_period(freqs, sample_rate)
    repeats = -(-(period + min_span) // period)
    loop = synthesize(components, period, sample_rate=sample_rate) * repeats
    if encode:
        return encode(head), period, encode(loop)
    return head, period, loop


class ToneGenerator:
    """Frames of a :class:`Tone`: 16-bit LE PCM, or G.711 if ``encode`` is given.

    ``read()`` returns the next frame (``frame_samples`` samples); a one-shot tone's last frame
    is padded with silence, after which ``read()`` returns ``b""`` and :attr:`finished` is set.
    Iterating yields frames until then (forever for a repeating tone).
    """

    __slots__ = (
        "_cursor",
        "_encode",
        "_frame",
        "_ramp",
        "_rate",
        "_silence",
        "_tone",
        "_width",
    )

    def __init__(
        self,
        tone: Tone,
        *,
        sample_rate: int = SAMPLE_RATE,
        frame_samples: int = FRAME_SAMPLES,
        ramp_ms: float = 4.0,
        encode: Encoder | None = None,
    ) -> None:
        if frame_samples <= 0:
            raise ValueError("frame_samples must be positive")
        self._tone = tone
        self._rate = sample_rate
        self._frame = frame_samples
        self._ramp = round(ramp_ms * sample_rate / 1000)
        self._encode = encode
        self._silence = encode(b"\0\0") if encode else b"\0\0"
        self._width = len(self._silence)
        self._cursor = ToneCursor(tone, sample_rate)
        for segment in tone.segments:  # validate and warm the caches up front
            segment.samples(sample_rate)
            if segment.freqs:
                self._piece(TonePiece(tone.segments.index(segment), 0, 1))

    @property
    def tone(self) -> Tone:
        return self._tone

    @property
    def position(self) -> int:
        """Samples produced so far (excluding end-of-tone padding)."""
        return self._cursor.position

    @property
    def finished(self) -> bool:
        return self._cursor.done

    def _piece(self, piece: TonePiece) -> bytes:
        segment = self._tone.segments[piece.segment]
        width = self._width
        if segment.silent:
            return self._silence * piece.count
        length = segment.samples(self._rate)
        if length is not None and length <= _MAX_CACHED_SAMPLES:
            buf = _burst(
                segment.freqs, segment.level_dbm0, length, self._rate, self._ramp, self._encode
            )
            return buf[piece.offset * width : (piece.offset + piece.count) * width]
        # endless (or very long) segment: ramped head, then an exact period of the waveform
        head, period, loop = _endless(
            segment.freqs, segment.level_dbm0, self._rate, self._ramp, self._frame, self._encode
        )
        out: list[bytes] = []
        offset, count = piece.offset, piece.count
        head_len = len(head) // width
        if offset < head_len:
            take = min(count, head_len - offset)
            out.append(head[offset * width : (offset + take) * width])
            offset += take
            count -= take
        span = len(loop) // width - period
        while count > 0:
            take = min(count, span)
            start = offset % period
            out.append(loop[start * width : (start + take) * width])
            offset += take
            count -= take
        return b"".join(out)

    def read(self, samples: int | None = None) -> bytes:
        """The next ``samples`` (default one frame) of audio, b"" once a one-shot tone ended."""
        if self._cursor.done:
            return b""
        wanted = self._frame if samples is None else samples
        pieces = self._cursor.advance(wanted)
        chunks = [self._piece(p) for p in pieces]
        produced = sum(p.count for p in pieces)
        if produced < wanted:
            chunks.append(self._silence * (wanted - produced))
        return b"".join(chunks)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        frame = self.read()
        if not frame:
            raise StopIteration
        return frame
