"""The FAXRECEIVER pump (engine/fax.py, FAX-1): one received frame per 20 ms tick whatever
arrives (packet, gap, nothing), the receiver's audio out, a short linger after phase E; and
the status a fax row gets."""

from __future__ import annotations

from pathlib import Path

from cloudpbx.engine.fax import LINGER_FRAMES, SILENCE, FaxPump, fax_status
from cloudpbx.media.codecs import codec_by_name
from cloudpbx.media.fax import FaxResult

PCMU = codec_by_name("PCMU")


class FakeReceiver:
    def __init__(self) -> None:
        self.written: list[bytes | None] = []
        self.done = False

    def write(self, pcm: bytes | None) -> None:
        self.written.append(pcm)

    def read(self, samples: int) -> bytes:
        return b"\x01\x00" * samples


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pump() -> tuple[FaxPump, FakeReceiver, Clock]:
    rx, clock = FakeReceiver(), Clock()
    return FaxPump(rx, codec=PCMU, payload_type=0, clock=clock), rx, clock  # type: ignore[arg-type]


def test_every_tick_writes_one_frame_even_without_packets() -> None:
    """FAX-1: spandsp's T.30 timers count samples: 20 ms of silence per tick while the
    caller sends nothing, and the receiver's audio goes out."""
    fax, rx, clock = pump()
    for _ in range(5):
        clock.now += 0.02
        assert fax.read(160) == b"\x01\x00" * 160
    assert rx.written == [SILENCE] * 5
    assert fax.silent == 5


def test_packets_in_order_and_a_gap_becomes_none() -> None:
    """The fixed 60 ms jitter buffer releases packets in order; a lost one is ``None``
    (the receiver conceals it)."""
    fax, rx, clock = pump()
    voice = PCMU.encode(b"\x10\x00" * 160)
    for seq in (1, 2, 4, 5, 6, 7):  # 3 lost
        fax.tap(0, seq, seq * 160, voice)
        fax.tap(101, seq, seq * 160, b"\x01\x02\x03\x04")  # an RFC 4733 event: ignored
    for _ in range(12):
        clock.now += 0.02
        fax.read(160)
    heard = [w for w in rx.written if w != SILENCE]
    assert len(heard) == 7  # six packets and the gap of the lost one
    assert heard[2] is None
    assert all(w is not None and len(w) == 320 for i, w in enumerate(heard) if i != 2)


def test_linger_after_phase_e_then_end() -> None:
    """After T.30 phase E the pump sends silence for a moment (the sender's DCN), then ends
    the play (None)."""
    fax, rx, _ = pump()
    rx.done = True
    out = [fax.read(160) for _ in range(LINGER_FRAMES + 1)]
    assert out[:-1] == [SILENCE] * LINGER_FRAMES
    assert out[-1] is None
    assert rx.written == []


def result(ok: bool, pages: int) -> FaxResult:
    return FaxResult(ok=ok, pages=pages, remote_ident="", error="", tiff_path=Path("x.tif"))


def test_fax_status() -> None:
    """The ``faxes`` row status: received, partial (pages, then a failure), failed."""
    assert fax_status(result(True, 2)) == "received"
    assert fax_status(result(False, 1)) == "partial"
    assert fax_status(result(False, 0)) == "failed"
    assert fax_status(result(True, 0)) == "failed"
