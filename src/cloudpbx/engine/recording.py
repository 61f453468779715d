"""Automatic call recording on the relay (PRODUCT.md §4.9 "automatic recording", CDR-1).

:class:`RelayRecording` taps both sides of a bridged call's
:class:`~cloudpbx.media.relay.RelaySession` (every packet accepted from a side, as it is sent
on), decodes the G.711 payloads and feeds a :class:`~cloudpbx.media.recorder.CallRecorder`:
a stereo WAV, the caller left, the callee right, placed on the arrival clock (the recorder
absorbs timer jitter and fills gaps with silence). RFC 4733 events and unknown payload types
are skipped. :meth:`RelayRecording.close` removes the taps, pads the file to the end and
returns what the call record needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from cloudpbx.media.codecs import codec_by_name
from cloudpbx.media.recorder import CallRecorder
from cloudpbx.media.relay import RelaySession

__all__ = ["RecordingResult", "RelayRecording"]

log = logging.getLogger(__name__)

Side = Literal["a", "b"]
Decoder = Callable[[bytes], bytes]


@dataclass(frozen=True, slots=True)
class RecordingResult:
    path: Path
    start_ms: int
    duration_ms: int
    size_bytes: int


class RelayRecording:
    """Records a relay session to ``path`` until :meth:`close` (see the module docstring)."""

    def __init__(
        self,
        relay: RelaySession,
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.relay = relay
        self.path = path
        self._clock = clock
        self.start_ms = time.time_ns() // 1_000_000
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("wb")
        self.recorder = CallRecorder(self._file, start=clock(), layout="stereo", sync_every=5.0)
        self.frames = 0
        for side in ("a", "b"):
            relay.set_tap(side, self._tap(side))

    def _tap(self, side: Side) -> Callable[[int, int, int, bytes], None]:
        # The tap sees the payload type as mapped for the OTHER side (what is sent there).
        target = self.relay.b if side == "a" else self.relay.a
        decoders: dict[int, Decoder | None] = {}

        def tap(pt: int, _seq: int, _ts: int, payload: bytes) -> None:
            if self.recorder.closed:
                return
            decode = decoders.get(pt, ...)
            if decode is ...:
                decode = _decoder(target.media.payload_types.get(pt, ""))
                decoders[pt] = decode
            if decode is not None and payload:
                self.frames += 1
                self.recorder.feed(side, self._clock(), decode(payload))

        return tap

    def close(self) -> RecordingResult:
        """Stop recording and finish the file (idempotent)."""
        if not self.relay.closed:
            for side in ("a", "b"):
                self.relay.set_tap(side, None)
        samples = self.recorder.close(end=self._clock())
        if not self._file.closed:
            self._file.close()
        size = self.path.stat().st_size if self.path.exists() else 0
        return RecordingResult(self.path, self.start_ms, samples * 1000 // 8000, size)


def _decoder(name: str) -> Decoder | None:
    encoding = name.split("/")[0].upper()
    if encoding not in ("PCMU", "PCMA"):
        return None
    return codec_by_name(encoding).decode
