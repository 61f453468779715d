"""Audio sources for the player and the drift-free 20 ms pacer (pure: no asyncio, no clock).

Issue 4 item 5 (player): what a :class:`~cloudpbx.media.stream.MediaStream` plays into a call
comes from an :class:`AudioSource`, a pull interface of 16-bit signed little-endian mono PCM
at 8 kHz::

    source.read(samples) -> bytes | None     # None: finished (the play ends)

A source returns ``2 * samples`` bytes, or fewer for its last piece (the stream pads it with
silence), or ``None`` once it has nothing more. Sources:

* :class:`FileSource` — an 8 kHz mono WAV file, 16-bit PCM (what ``media/importer.py`` and
  ``media/prompts.py`` write) or G.711 A-law/μ-law, read in blocks of half a second, never
  the whole file at once; ``loop=True`` starts over at the end (music on hold, forever).
* :class:`PcmSource` — PCM already in memory (generated audio, tests), ``loop`` too.
* :class:`ToneSource` — a :class:`~cloudpbx.media.tones.Tone` through its
  :class:`~cloudpbx.media.tones.ToneGenerator` (ringback, busy, the voicemail beep).
* :class:`SilenceSource` — silence, for ``seconds`` or forever.

:class:`Pacer` decides when each 20 ms frame goes out: frame *n* is due at
``start + n * ptime`` on one monotonic clock, computed from ``n``, never by adding up sleeps, so
timer error never accumulates (no drift over a 10-minute play, issue 4 item 5). When the event
loop was late by more than ``max_catchup`` frames, the oldest overdue frames are *skipped*
(their RTP timestamps are advanced, their audio dropped) instead of bursting every missed frame
at once: a burst after a 200 ms stall would arrive too late for the peer's jitter buffer anyway
and only flood it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol, runtime_checkable

from cloudpbx.media.codecs import alaw_decode, ulaw_decode
from cloudpbx.media.tones import Tone, ToneGenerator
from cloudpbx.media.wavfile import (
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    WavError,
    WavReader,
)

__all__ = [
    "FRAME_SAMPLES",
    "PTIME",
    "SAMPLE_RATE",
    "AudioSource",
    "FileSource",
    "Pacer",
    "PacerStats",
    "PcmSource",
    "SilenceSource",
    "ToneSource",
]

SAMPLE_RATE: Final = 8000
FRAME_SAMPLES: Final = 160  # 20 ms at 8 kHz (RFC 3551 §4.5: G.711 default packetization)
PTIME: Final = 0.020
_BLOCK_FRAMES: Final = 4000  # samples read from a file at a time: half a second


@runtime_checkable
class AudioSource(Protocol):
    """Pulls 16-bit LE mono 8 kHz PCM; ``None`` when finished (see the module docstring)."""

    def read(self, samples: int) -> bytes | None: ...


# --- sources -------------------------------------------------------------------------------


class PcmSource:
    """PCM held in memory; ``loop`` repeats it (a zero-length buffer is always finished)."""

    __slots__ = ("_pcm", "_pos", "loop")

    def __init__(self, pcm: bytes, *, loop: bool = False) -> None:
        if len(pcm) % 2:
            raise ValueError("16-bit PCM must have an even length")
        self._pcm = bytes(pcm)
        self._pos = 0
        self.loop = loop

    def read(self, samples: int) -> bytes | None:
        want = 2 * samples
        pcm = self._pcm
        if not pcm or (self._pos >= len(pcm) and not self.loop):
            return None
        out = bytearray()
        while len(out) < want:
            if self._pos >= len(pcm):
                if not self.loop:
                    break
                self._pos = 0
            take = min(want - len(out), len(pcm) - self._pos)
            out += pcm[self._pos : self._pos + take]
            self._pos += take
        return bytes(out)


Decoder = Callable[[bytes], bytes]


def _decoder_for(encoding: int) -> Decoder | None:
    """The G.711 decoder for a playable WAV encoding, None for 16-bit PCM."""
    if encoding == WAVE_FORMAT_PCM:
        return None
    if encoding == WAVE_FORMAT_ALAW:
        return alaw_decode
    if encoding == WAVE_FORMAT_MULAW:
        return ulaw_decode
    raise WavError(f"cannot play WAV encoding {encoding:#06x}: need 16-bit PCM or G.711")


class FileSource:
    """An 8 kHz mono WAV file (16-bit PCM, A-law or μ-law), read half a second at a time.

    The header is checked when the source is made (:class:`~.wavfile.WavError`, a
    ``ValueError``, says why a file cannot be played). ``loop=True`` starts over at the end
    (music on hold). The file stays open until the end of a one-shot play or :meth:`close`.
    """

    __slots__ = ("_buf", "_decode", "_f", "_pos", "_reader", "loop", "path")

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.path = Path(path)
        self.loop = loop
        self._f: BinaryIO | None = self.path.open("rb")
        try:
            self._reader = WavReader(self._f)
            fmt = self._reader.info.format
            if fmt.channels != 1 or fmt.sample_rate != SAMPLE_RATE:
                raise WavError(f"need 8 kHz mono, got {fmt.sample_rate} Hz x {fmt.channels}")
            decode = _decoder_for(fmt.encoding)
            if fmt.encoding == WAVE_FORMAT_PCM and fmt.bits_per_sample != 16:
                raise WavError(f"need 16-bit PCM, got {fmt.bits_per_sample}-bit")
        except BaseException:
            self._f.close()
            raise
        self._decode = decode
        self._buf = b""
        self._pos = 0
        if self._reader.info.frames == 0:
            self.loop = False  # an empty file would loop without ever producing a sample

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return self._reader.info.frames / SAMPLE_RATE

    def _refill(self) -> bool:
        f = self._f
        if f is None:
            return False
        data = self._reader.read(_BLOCK_FRAMES)
        if not data and self.loop:
            f.seek(0)  # a new reader walks the header again and starts at the audio
            self._reader = WavReader(f)
            data = self._reader.read(_BLOCK_FRAMES)
        if not data:
            self.close()
            return False
        decode = self._decode
        self._buf = data if decode is None else decode(data)
        self._pos = 0
        return True

    def read(self, samples: int) -> bytes | None:
        want = 2 * samples
        if self._pos >= len(self._buf) and not self._refill():
            return None
        if self._pos + want <= len(self._buf):  # the common case: one slice
            out = self._buf[self._pos : self._pos + want]
            self._pos += want
            return out
        parts = []
        have = 0
        while have < want and (self._pos < len(self._buf) or self._refill()):
            take = min(want - have, len(self._buf) - self._pos)
            parts.append(self._buf[self._pos : self._pos + take])
            self._pos += take
            have += take
        return b"".join(parts)

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent); further reads return ``None``."""
        if self._f is not None:
            self._f.close()
            self._f = None
        self._buf = b""
        self._pos = 0


class ToneSource:
    """A call-progress tone (media/tones.py); a one-shot tone finishes, a cadence repeats."""

    __slots__ = ("generator",)

    def __init__(self, tone: Tone) -> None:
        self.generator = ToneGenerator(tone)

    def read(self, samples: int) -> bytes | None:
        data = self.generator.read(samples)
        return data or None


class SilenceSource:
    """Silence for ``seconds`` (whole samples), or forever with ``None``."""

    __slots__ = ("_left",)

    def __init__(self, seconds: float | None = None) -> None:
        if seconds is not None and seconds < 0:
            raise ValueError("seconds must not be negative")
        self._left = None if seconds is None else round(seconds * SAMPLE_RATE)

    def read(self, samples: int) -> bytes | None:
        if self._left is None:
            return bytes(2 * samples)
        if self._left <= 0:
            return None
        take = min(samples, self._left)
        self._left -= take
        return bytes(2 * take)


# --- pacing --------------------------------------------------------------------------------


@dataclass(slots=True)
class PacerStats:
    """What the pacer saw: frames handed out, frames skipped, how late the caller came."""

    frames: int = 0  # frames due and sent
    skipped: int = 0  # frames due but dropped because the caller was too late
    late_calls: int = 0  # calls that found more than one frame due
    max_late: float = 0.0  # seconds: the worst lateness of a due frame at a call


class Pacer:
    """Frame *n* is due at ``start + n * ptime`` (see the module docstring).

    Each call to :meth:`due` with the current time says how many frames are due now: how many
    to skip first (too late to be worth sending) and how many to send. :meth:`deadline` is when
    the next frame is due (re-arm the timer for it).
    """

    __slots__ = ("max_catchup", "next_frame", "ptime", "start", "stats")

    def __init__(self, start: float, *, ptime: float = PTIME, max_catchup: int = 3) -> None:
        if ptime <= 0 or max_catchup < 1:
            raise ValueError("ptime must be positive and max_catchup at least 1")
        self.start = start
        self.ptime = ptime
        self.max_catchup = max_catchup
        self.next_frame = 0  # index of the next frame to hand out
        self.stats = PacerStats()

    def time_of(self, frame: int) -> float:
        """When frame ``frame`` is due: computed, never accumulated."""
        return self.start + frame * self.ptime

    def deadline(self) -> float:
        return self.time_of(self.next_frame)

    def due(self, now: float) -> tuple[int, int]:
        """``(skip, send)`` for a call at ``now``; advances past both."""
        # 1e-9: a timer firing exactly on time must not miss its frame to rounding
        last = math.floor((now - self.start) / self.ptime + 1e-9)
        count = last - self.next_frame + 1
        if count <= 0:
            return 0, 0
        stats = self.stats
        stats.max_late = max(stats.max_late, now - self.time_of(self.next_frame))
        if count > 1:
            stats.late_calls += 1
        skip = max(0, count - self.max_catchup)
        send = count - skip
        stats.skipped += skip
        stats.frames += send
        self.next_frame += count
        return skip, send
