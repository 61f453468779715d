"""DTMF three ways: RFC 4733 telephone-events, SIP INFO bodies, and in-band tones (Goertzel).

Everything here is pure: time is the RTP timestamp (RFC 4733) or the count of samples fed (in-band),
never a clock. All three produce the same :class:`DigitDetected` (digit, start, duration), once
per key press.

* :class:`TelephoneEvent` — the 4-byte payload (RFC 4733 §2.3), with raw helpers
  :func:`parse_event_raw` / :func:`pack_event_raw` for the hot path.
* :class:`DtmfSender` — digit + duration → the packet schedule: a start packet with the marker
  bit, updates every 50 ms carrying the same timestamp and the growing duration, and the end packet
  sent three times (§2.5.1.4); events longer than 0xFFFF samples are split in segments (§2.5.1.3).
* :class:`DtmfReceiver` — packets (lost, duplicated, reordered) → one digit per event: an event is
  reported at its first end packet, or when a later event starts without the earlier one's end
  packet having arrived, or by :meth:`DtmfReceiver.expire` after a silence.
* :func:`parse_dtmf_relay` / :func:`parse_dtmf_body` / :func:`parse_info_body` — SIP INFO with
  ``application/dtmf-relay`` (``Signal=5`` / ``Duration=160``) or ``application/dtmf``.
* :class:`DtmfDetector` — in-band detection over 8 kHz PCM: Goertzel-style DFT at the eight
  frequencies over blocks of 102 samples (configurable up to 205), with level, twist, relative
  peak, tone-to-total-energy (and optionally second-harmonic) checks and on/off debouncing.
* :func:`dtmf_pcm` — the tone pair of a digit as PCM, for in-band sending and for tests.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul
from sys import byteorder
from typing import Final

from cloudpbx.media.tones import SAMPLE_RATE, dbm0_to_amplitude, synthesize

__all__ = [
    "COL_FREQS",
    "DTMF_DIGITS",
    "DTMF_FREQS",
    "ROW_FREQS",
    "DigitDetected",
    "DtmfDetector",
    "DtmfError",
    "DtmfReceiver",
    "DtmfSender",
    "EventPacket",
    "InfoDtmf",
    "TelephoneEvent",
    "digit_to_event",
    "dtmf_pcm",
    "event_to_digit",
    "format_dtmf_relay",
    "pack_event_raw",
    "parse_dtmf_body",
    "parse_dtmf_relay",
    "parse_event_raw",
    "parse_info_body",
]

#: RFC 4733 §3.2 event codes 0-15, in order.
DTMF_DIGITS: Final = "0123456789*#ABCD"
ROW_FREQS: Final = (697, 770, 852, 941)  # low group (Q.23)
COL_FREQS: Final = (1209, 1336, 1477, 1633)  # high group
_KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
#: digit → (low, high) frequency in Hz.
DTMF_FREQS: Final[dict[str, tuple[int, int]]] = {
    key: (ROW_FREQS[r], COL_FREQS[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)
}

_U32: Final = 1 << 32
_MAX_DURATION: Final = 0xFFFF


class DtmfError(Exception):
    """Malformed DTMF input from a peer (bad payload, unparsable INFO body)."""


def digit_to_event(digit: str) -> int:
    """``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"`` → RFC 4733 event code 0-15."""
    code = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


def event_to_digit(code: int) -> str | None:
    """RFC 4733 event code → digit, ``None`` for non-DTMF events (16+: reserved, fax, ...)."""
    return DTMF_DIGITS[code] if 0 <= code < 16 else None


@dataclass(frozen=True, slots=True)
class DigitDetected:
    """One key press: ``start_ts`` and ``duration`` in samples (8 kHz units).

    For RFC 4733 ``start_ts`` is the event's RTP timestamp; for in-band detection it is the
    index of the first sample of the tone in the stream fed to the detector.
    """

    digit: str
    start_ts: int
    duration: int


# --- RFC 4733 payload ---------------------------------------------------------------------

_EVENT: Final = struct.Struct("!BBH")


def parse_event_raw(payload: bytes | bytearray | memoryview) -> tuple[int, bool, int, int]:
    """(event, end, volume, duration) from a telephone-event payload (RFC 4733 §2.3).

    Only the first 4 bytes are read; raises :class:`DtmfError` if there are fewer.
    """
    if len(payload) < 4:
        raise DtmfError(f"telephone-event payload too short: {len(payload)} bytes")
    event, flags, duration = _EVENT.unpack_from(payload)
    return event, bool(flags & 0x80), flags & 0x3F, duration


def pack_event_raw(event: int, end: bool, volume: int, duration: int) -> bytes:
    """The 4-byte payload; the reserved R bit is always sent as 0 (§2.3)."""
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """RFC 4733 §2.3 payload: event code, E bit, volume (0..63, -dBm0), duration (samples)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise ValueError(f"event code out of range: {self.event}")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"volume out of range: {self.volume}")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise ValueError(f"duration out of range: {self.duration}")

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> TelephoneEvent:
        return cls(*parse_event_raw(payload))

    def __bytes__(self) -> bytes:
        return pack_event_raw(self.event, self.end, self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        return event_to_digit(self.event)


# --- RFC 4733 sender ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One telephone-event packet to send ``send_at`` samples after the key went down.

    The RTP layer adds sequence number and SSRC; ``timestamp`` is already modulo 2**32.
    """

    send_at: int
    timestamp: int
    marker: bool
    event: TelephoneEvent

    def __bytes__(self) -> bytes:
        return bytes(self.event)


class DtmfSender:
    """Packet schedule for one key press (RFC 4733 §2.5.1).

    * start packet at ``send_at=0`` with the marker bit (§2.5.1.2); its duration is
      ``start_duration`` (one audio packet, 160) rather than 0, which has a special meaning
      for state events (§2.3.5) and which some receivers drop;
    * updates every ``update_interval`` samples (400 = 50 ms), same timestamp, growing duration;
    * the end packet (E bit, final duration) ``end_repeats`` times (3, §2.5.1.4), the copies
      ``end_spacing`` samples apart (0 = back to back);
    * beyond 0xFFFF samples the event continues in a new segment whose timestamp is the old one
      + 0xFFFF, without the marker bit (§2.5.1.3).
    """

    __slots__ = ("end_repeats", "end_spacing", "start_duration", "update_interval", "volume")

    def __init__(
        self,
        *,
        volume: int = 10,
        update_interval: int = 400,
        start_duration: int = 160,
        end_repeats: int = 3,
        end_spacing: int = 160,
    ) -> None:
        if update_interval <= 0 or end_repeats < 1 or end_spacing < 0:
            raise ValueError("update_interval > 0, end_repeats >= 1 and end_spacing >= 0")
        if not 0 < start_duration <= update_interval:
            raise ValueError("start_duration must be in (0, update_interval]")
        if not 0 <= volume <= 63:
            raise ValueError(f"volume out of range: {volume}")
        self.volume = volume
        self.update_interval = update_interval
        self.start_duration = start_duration
        self.end_repeats = end_repeats
        self.end_spacing = end_spacing

    def packets(self, digit: str, timestamp: int, duration: int) -> list[EventPacket]:
        """All packets for ``digit`` pressed at RTP ``timestamp`` for ``duration`` samples."""
        code = digit_to_event(digit)
        if duration <= 0:
            raise ValueError("duration must be positive")
        out: list[EventPacket] = []

        def report(at: int, elapsed: int, *, end: bool = False, first: bool = False) -> None:
            segment = (elapsed - 1) // _MAX_DURATION  # a full segment reports 0xFFFF, not 0
            seg_elapsed = elapsed - segment * _MAX_DURATION
            ts = (timestamp + segment * _MAX_DURATION) % _U32
            event = TelephoneEvent(code, end, self.volume, seg_elapsed)
            out.append(EventPacket(at, ts, first, event))

        report(0, min(self.start_duration, duration), first=True)
        at = self.update_interval
        boundary = _MAX_DURATION
        while at < duration:
            while boundary < at:  # close a full segment before reporting into the next one
                report(boundary, boundary)
                boundary += _MAX_DURATION
            report(at, at)
            at += self.update_interval
        while boundary < duration:
            report(boundary, boundary)
            boundary += _MAX_DURATION
        for i in range(self.end_repeats):
            report(duration + i * self.end_spacing, duration, end=True)
        return out


# --- RFC 4733 receiver --------------------------------------------------------------------


def _ts_diff(a: int, b: int) -> int:
    """a - b in RTP timestamp serial arithmetic (RFC 3550 §5.1), in [-2**31, 2**31)."""
    return ((a - b + (1 << 31)) % _U32) - (1 << 31)


class _Event:
    __slots__ = ("code", "seg_duration", "seg_ts", "start_ts")

    def __init__(self, code: int, ts: int, duration: int) -> None:
        self.code = code
        self.start_ts = ts
        self.seg_ts = ts  # timestamp of the current segment (long events, §2.5.1.3)
        self.seg_duration = duration

    @property
    def duration(self) -> int:
        return _ts_diff(self.seg_ts, self.start_ts) + self.seg_duration

    def detected(self) -> DigitDetected:
        return DigitDetected(DTMF_DIGITS[self.code], self.start_ts, self.duration)


class DtmfReceiver:
    """Telephone-event packets → exactly one :class:`DigitDetected` per key press.

    An event is identified by its RTP timestamp (§2.5.2): packets for a timestamp already
    reported (redundant end packets, duplicates, stragglers) are dropped; a packet with a newer
    timestamp while an event is open means the open one's end packets were lost, so it is
    reported with the last duration seen; a packet with an older, unknown timestamp (heavy
    reordering) is reported at once. :meth:`expire` closes an event whose updates stopped
    (all end packets lost and no next event), given the current RTP time. Reset on SSRC change.
    """

    __slots__ = ("_current", "_done", "_newest", "malformed", "timeout")

    def __init__(self, *, timeout: int = 4000, memory: int = 64) -> None:
        self.timeout = timeout  # samples without news after the last known end (0.5 s)
        self._current: _Event | None = None
        self._done: deque[int] = deque(maxlen=memory)
        self._newest: int | None = None  # start timestamp of the newest event seen
        self.malformed = 0

    @property
    def active(self) -> str | None:
        """The digit currently held down (an open event), if any."""
        return DTMF_DIGITS[self._current.code] if self._current else None

    def reset(self) -> None:
        self._current = None
        self._newest = None
        self._done.clear()

    def feed(
        self,
        timestamp: int,
        payload: bytes | bytearray | memoryview | TelephoneEvent,
        *,
        marker: bool = False,
    ) -> list[DigitDetected]:
        """Process one telephone-event packet; returns the digits it completes (0, 1 or 2)."""
        if isinstance(payload, TelephoneEvent):
            code, end, duration = payload.event, payload.end, payload.duration
        else:
            try:
                code, end, _volume, duration = parse_event_raw(payload)
            except DtmfError:
                self.malformed += 1
                return []
        if code >= 16 or timestamp in self._done:
            return []
        out: list[DigitDetected] = []
        cur = self._current
        if cur is not None:
            if timestamp == cur.seg_ts:
                cur.seg_duration = max(cur.seg_duration, duration)
                if end:
                    out.append(self._close())
                return out
            if not marker and code == cur.code and _ts_diff(timestamp, cur.seg_ts) == _MAX_DURATION:
                cur.seg_ts, cur.seg_duration = timestamp, duration  # next segment, same press
                if end:
                    out.append(self._close())
                return out
        if self._newest is not None and _ts_diff(timestamp, self._newest) < 0:
            # a straggler from an earlier press we never saw: report it, keep the open one
            self._done.append(timestamp)
            return [DigitDetected(DTMF_DIGITS[code], timestamp, duration)]
        if cur is not None:
            out.append(self._close())  # a newer event: the open one's end packets were lost
        self._newest = timestamp
        self._current = _Event(code, timestamp, duration)
        if end:
            out.append(self._close())
        return out

    def _close(self) -> DigitDetected:
        cur = self._current
        assert cur is not None
        self._current = None
        ts = cur.start_ts
        while ts != cur.seg_ts:  # remember every segment's timestamp
            self._done.append(ts)
            ts = (ts + _MAX_DURATION) % _U32
        self._done.append(cur.seg_ts)
        return cur.detected()

    def expire(self, now_ts: int) -> list[DigitDetected]:
        """Close the open event if RTP time ``now_ts`` is ``timeout`` past its last known end."""
        cur = self._current
        if cur is not None and _ts_diff(now_ts, cur.seg_ts) - cur.seg_duration > self.timeout:
            return [self._close()]
        return []

    def flush(self) -> list[DigitDetected]:
        """Close the open event now (end of call, SSRC change)."""
        return [self._close()] if self._current is not None else []


# --- SIP INFO -----------------------------------------------------------------------------

_MAX_INFO_BODY: Final = 1024
_MAX_INFO_DURATION_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class InfoDtmf:
    """A digit from a SIP INFO body; ``duration_ms`` is ``None`` when absent or unusable."""

    digit: str
    duration_ms: int | None = None


def _text(body: bytes | str) -> str:
    if len(body) > _MAX_INFO_BODY:
        raise DtmfError(f"DTMF INFO body too long ({len(body)} bytes)")
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return body


def _signal(value: str) -> str:
    value = value.strip()
    if len(value) == 1 and value.upper() in DTMF_DIGITS:
        return value.upper()
    if value.isdigit() and value.isascii() and 10 <= int(value) <= 15:  # event codes for */#/A-D
        return DTMF_DIGITS[int(value)]
    raise DtmfError(f"not a DTMF signal: {value[:20]!r}")


def parse_dtmf_relay(body: bytes | str) -> InfoDtmf:
    """``application/dtmf-relay`` body (``Signal=5\\r\\nDuration=160``, duration in ms).

    Keys are case-insensitive, lines may end in CRLF or LF, unknown keys are ignored; ``Signal``
    may be a digit, ``*``, ``#``, ``A``-``D`` or the event codes 10-15. A missing or bad
    ``Duration`` gives ``None``; a missing or bad ``Signal`` raises :class:`DtmfError`.
    """
    signal: str | None = None
    duration: int | None = None
    for line in _text(body).splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "signal" and signal is None:
            signal = _signal(value)
        elif key == "duration" and duration is None:
            value = value.strip()
            if value.isdigit() and value.isascii() and int(value) <= _MAX_INFO_DURATION_MS:
                duration = int(value)
    if signal is None:
        raise DtmfError("dtmf-relay body without a Signal line")
    return InfoDtmf(signal, duration)


def parse_dtmf_body(body: bytes | str) -> InfoDtmf:
    """``application/dtmf`` body: the digit alone (or its event code 10-15)."""
    return InfoDtmf(_signal(_text(body)))


def parse_info_body(content_type: str, body: bytes | str) -> InfoDtmf | None:
    """Dispatch on an INFO's Content-Type; ``None`` if it is not a DTMF type."""
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/dtmf-relay":
        return parse_dtmf_relay(body)
    if media == "application/dtmf":
        return parse_dtmf_body(body)
    return None


def format_dtmf_relay(digit: str, duration_ms: int = 250) -> bytes:
    """An ``application/dtmf-relay`` body for sending a digit by INFO."""
    digit_to_event(digit)
    return f"Signal={digit.upper()}\r\nDuration={duration_ms}\r\n".encode()


# --- in-band generation -------------------------------------------------------------------


def dtmf_pcm(
    digit: str,
    duration_ms: int = 100,
    *,
    low_dbm0: float = -8.0,
    high_dbm0: float = -6.0,
    sample_rate: int = SAMPLE_RATE,
    ramp_ms: float = 2.0,
) -> bytes:
    """16-bit LE PCM of one digit's tone pair (high group 2 dB above low: usual pre-emphasis)."""
    low, high = DTMF_FREQS[digit.upper()]
    count = duration_ms * sample_rate // 1000
    ramp = min(round(ramp_ms * sample_rate / 1000), count // 2)
    return synthesize(
        [(low, low_dbm0), (high, high_dbm0)],
        count,
        sample_rate=sample_rate,
        ramp_in=ramp,
        ramp_out=ramp,
        total=count,
    )


# --- in-band detection --------------------------------------------------------------------


def _db(ratio_db: float) -> float:
    return math.pow(10.0, ratio_db / 10.0)


class DtmfDetector:
    """In-band DTMF over 16-bit PCM at 8 kHz (ITU-T Q.23 frequencies, Q.24-style checks).

    The stream is cut into blocks of ``block_size`` samples (102 = 12.75 ms by default; 205 gives
    finer frequency resolution but coarser timing). Per block, the DFT power at the eight
    frequencies is computed exactly at each frequency (the Goertzel bins, as precomputed
    cos/sin dot products), and a block "hits" a digit when:

    * the strongest row and column tones are each at least ``min_level_dbm0``;
    * twist: the low group is at most ``twist_low_db`` (8 dB) above the high group and the high
      group at most ``twist_high_db`` (4 dB) above the low group;
    * each winner is ``relative_peak_db`` above every other tone of its group;
    * the two tones carry at least ``min_tone_fraction`` of the block's energy (this rejects
      speech and noise, which spread their energy);
    * optionally (``harmonic_db``), neither tone has a second harmonic within ``harmonic_db`` of
      it (voiced speech does, a DTMF pair does not).

    Debouncing: a digit starts after the number of consecutive hit blocks that any tone of
    ``min_on_ms`` fully contains (2 blocks of 102 for 40 ms), and ends after the number of
    consecutive other blocks that any gap of ``min_off_ms`` at least half covers (3 for 40 ms;
    so a 10 ms drop-out never splits a digit). It is reported once, at its end, with its start
    sample and duration (whole blocks: start within one block, duration within two).
    """

    __slots__ = (
        "_active",
        "_active_end",
        "_active_start",
        "_buf",
        "_col_tables",
        "_harm_tables",
        "_min_energy",
        "_min_power",
        "_n",
        "_off_count",
        "_row_tables",
        "_run_digit",
        "_run_len",
        "_run_start",
        "harmonic_ratio",
        "min_fraction",
        "off_blocks",
        "on_blocks",
        "peak_ratio",
        "position",
        "twist_high",
        "twist_low",
    )

    def __init__(
        self,
        *,
        sample_rate: int = SAMPLE_RATE,
        block_size: int = 102,
        min_level_dbm0: float = -30.0,
        twist_low_db: float = 8.0,
        twist_high_db: float = 4.0,
        relative_peak_db: float = 8.0,
        min_tone_fraction: float = 0.7,
        harmonic_db: float | None = None,
        min_on_ms: int = 40,
        min_off_ms: int = 40,
    ) -> None:
        if not 64 <= block_size <= 512:
            raise ValueError("block_size must be in 64..512 samples")
        if not 0.5 < min_tone_fraction <= 1.0:
            raise ValueError("min_tone_fraction must be in (0.5, 1]")
        n = block_size
        self._n = n

        def tables(freq: float) -> tuple[list[float], list[float]]:
            w = 2.0 * math.pi * freq / sample_rate
            return [math.cos(w * i) for i in range(n)], [math.sin(w * i) for i in range(n)]

        self._row_tables = [tables(f) for f in ROW_FREQS]
        self._col_tables = [tables(f) for f in COL_FREQS]
        self._harm_tables = (
            [tables(2 * f) for f in ROW_FREQS] + [tables(2 * f) for f in COL_FREQS]
            if harmonic_db is not None
            else []
        )
        self.harmonic_ratio = _db(-harmonic_db) if harmonic_db is not None else 0.0
        amplitude = dbm0_to_amplitude(min_level_dbm0)
        self._min_power = (amplitude * n / 2.0) ** 2  # |DFT|² of a sine at that level
        self._min_energy = n * amplitude * amplitude  # two tones at that level
        self.twist_low = _db(twist_low_db)
        self.twist_high = _db(twist_high_db)
        self.peak_ratio = _db(relative_peak_db)
        self.min_fraction = min_tone_fraction
        # a tone of L samples always holds (L - n + 1) // n whole blocks
        self.on_blocks = max(1, (min_on_ms * sample_rate // 1000 - n + 1) // n)
        # a gap of L samples always holds floor(L / n) blocks that are at least half silent,
        # and those never pass the energy-fraction check (min_tone_fraction > 0.5)
        self.off_blocks = max(1, min_off_ms * sample_rate // 1000 // n)
        self._buf: list[int] = []
        self.position = 0  # samples consumed into whole blocks
        self._run_digit: str | None = None
        self._run_len = 0
        self._run_start = 0
        self._active: str | None = None
        self._active_start = 0
        self._active_end = 0
        self._off_count = 0

    @staticmethod
    def _power(block: Sequence[int], table: tuple[list[float], list[float]]) -> float:
        re: float = sum(map(mul, block, table[0]))
        im: float = sum(map(mul, block, table[1]))
        return re * re + im * im

    def classify(self, block: Sequence[int]) -> str | None:
        """The digit one block carries, or ``None``."""
        energy: float = sum(map(mul, block, block))
        if energy < self._min_energy:
            return None
        power = self._power
        rows = [power(block, t) for t in self._row_tables]
        r = max(range(4), key=rows.__getitem__)
        row = rows[r]
        if row < self._min_power:
            return None
        cols = [power(block, t) for t in self._col_tables]
        c = max(range(4), key=cols.__getitem__)
        col = cols[c]
        if col < self._min_power:
            return None
        if row > col * self.twist_low or col > row * self.twist_high:
            return None
        peak = self.peak_ratio
        if any(i != r and rows[i] * peak > row for i in range(4)):
            return None
        if any(i != c and cols[i] * peak > col for i in range(4)):
            return None
        if (row + col) * 2.0 / self._n < self.min_fraction * energy:
            return None
        if self._harm_tables:
            ratio = self.harmonic_ratio
            if power(block, self._harm_tables[r]) > row * ratio:
                return None
            if power(block, self._harm_tables[4 + c]) > col * ratio:
                return None
        return _KEYPAD[r][c]

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[DigitDetected]:
        """Feed 16-bit signed little-endian PCM of any length; returns digits that ended."""
        samples = array("h")
        samples.frombytes(pcm)
        if byteorder == "big":
            samples.byteswap()
        return self.feed_samples(samples)

    def feed_samples(self, samples: Sequence[int]) -> list[DigitDetected]:
        """Feed samples as integers; returns digits that ended."""
        buf = self._buf
        buf.extend(samples)
        n = self._n
        out: list[DigitDetected] = []
        start = 0
        while len(buf) - start >= n:
            block = buf[start : start + n]
            start += n
            detected = self._step(self.classify(block))
            if detected is not None:
                out.append(detected)
        del buf[:start]
        return out

    def _step(self, hit: str | None) -> DigitDetected | None:
        block_start = self.position
        self.position += self._n
        if hit is not None and hit == self._run_digit:
            self._run_len += 1
        else:
            self._run_digit, self._run_len, self._run_start = hit, 1, block_start
        detected = None
        if self._active is not None:
            if hit == self._active:
                self._off_count = 0
                self._active_end = self.position
                return None
            self._off_count += 1
            if self._off_count < self.off_blocks:
                return None
            detected = self._end()
        if self._run_digit is not None and self._run_len >= self.on_blocks:
            self._active = self._run_digit
            self._active_start = self._run_start
            self._active_end = self.position
            self._off_count = 0
        return detected

    def _end(self) -> DigitDetected:
        assert self._active is not None
        detected = DigitDetected(
            self._active, self._active_start, self._active_end - self._active_start
        )
        self._active = None
        return detected

    def flush(self) -> list[DigitDetected]:
        """End of stream: report a digit still held (the partial block is discarded)."""
        self._buf.clear()
        return [self._end()] if self._active is not None else []
