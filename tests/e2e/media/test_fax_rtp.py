"""FAX-1 end to end: a spandsp fax machine sends a T.4 page (1728 px, 204×98 dpi) over real
RTP/UDP on loopback — G.711 PCMU, 20 ms packets, media/rtp.py packets, media/jitter.py
playout — to a :class:`FaxReceiver`, which answers over RTP the same way; the received TIFF
becomes a PDF that is checked (one page, 8.47 × 11.22 in: not squashed).

Pacing: each side sends one packet per ``0.020 / speed`` s from a monotonic schedule and
plays its jitter buffer on the schedule's media clock (tick k is media time k·20 ms, so a
late wake-up of the event loop does not change what is heard). spandsp's modems and T.30
timers count samples, never the wall clock, so what they see is the same at any speed; the
default run uses 5× (a one-page fax: ~20 s of audio in ~4 s) and the real-time runs (``speed=1``,
~19 s each) are marked slow. Loss is injected at the sender, on seeded packet indexes
(1% each way); the far jitter buffer turns each into a Gap → ``write(None)`` → concealment.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudpbx.media.codecs.g711 import PCMU
from cloudpbx.media.fax import (
    FRAME_SAMPLES,
    BilevelPage,
    FaxReceiver,
    FaxResult,
    FaxSender,
    tiff_to_pdf,
    write_bilevel_tiff,
)
from cloudpbx.media.jitter import Gap, JitterBuffer
from cloudpbx.media.rtp import RtpError, RtpPacket, RtpSender

HOST = "127.0.0.1"
PTIME = 0.020
WIDTH = 1728
# A loss pattern whose losses miss the modem training sequences: spandsp 0.0.6 fails ~15%
# of random 1% patterns there (see docs/media-fax.md); the run is deterministic.
LOSS_SEED = 0


def page(rows: int = 1100) -> BilevelPage:
    """A letter-length page at 204×98 dpi: a frame, a checker block, rules."""
    stride = WIDTH // 8
    out = []
    for y in range(rows):
        row = bytearray(stride)
        if y < 4 or y >= rows - 4:
            row[:] = b"\xff" * stride
        row[0] |= 0x80
        row[-1] |= 0x01
        if 100 <= y < 160:
            row[20:200] = bytes(0xFF if (x // 4 + y // 8) % 2 else 0 for x in range(180))
        if 300 <= y < 700 and y % 40 < 3:
            row[10:206] = b"\xff" * 196
        out.append(bytes(row))
    return BilevelPage(WIDTH, tuple(out), (204, 98))


class RtpFaxLeg(asyncio.DatagramProtocol):
    """One end of the fax call: a UDP socket, an RTP sender, a jitter buffer, and a fax
    endpoint as the source and sink of the audio (as MediaStream will drive FaxReceiver)."""

    def __init__(self, endpoint: FaxSender | FaxReceiver, drop: Callable[[int], bool]) -> None:
        self.endpoint = endpoint
        self.drop = drop  # by packet index: lost on the way out
        self.rtp = RtpSender(
            ssrc=secrets.randbits(32),
            initial_seq=secrets.randbits(16),
            initial_ts=secrets.randbits(32),
            payload_type=PCMU.payload_type,
        )
        self.jitter = JitterBuffer(depth=0.060, ptime=PTIME)
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: tuple[str, int] | None = None
        self.clock = 0.0  # media time, seconds
        self.gaps = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(RtpError):
            self.jitter.put(RtpPacket.parse(data), self.clock)

    def tick(self, media_now: float) -> None:
        """One 20 ms step: send a frame, play out what is due."""
        self.clock = media_now
        payload = PCMU.encode(self.endpoint.read(FRAME_SAMPLES))
        index = self.rtp.packets_sent
        packet = self.rtp.packetize(payload, FRAME_SAMPLES)
        assert self.transport is not None
        assert self.peer is not None
        if not self.drop(index):
            self.transport.sendto(bytes(packet), self.peer)
        while (item := self.jitter.get(media_now)) is not None:
            if isinstance(item, Gap):
                self.gaps += 1
                self.endpoint.write(None)
            else:
                self.endpoint.write(PCMU.decode(item.payload))


async def open_leg(endpoint: FaxSender | FaxReceiver, drop: Callable[[int], bool]) -> RtpFaxLeg:
    loop = asyncio.get_running_loop()
    _, leg = await loop.create_datagram_endpoint(
        lambda: RtpFaxLeg(endpoint, drop), local_addr=(HOST, 0)
    )
    return leg


def dropper(seed: int | None, rate: float = 0.01) -> Callable[[int], bool]:
    if seed is None:
        return lambda index: False
    rnd = random.Random(seed)
    lost = {index for index in range(90 * 50) if rnd.random() < rate}
    return lambda index: index in lost


async def fax_call(
    tmp: Path, *, speed: float, loss_seed: int | None
) -> tuple[FaxResult, RtpFaxLeg, RtpFaxLeg]:
    source = write_bilevel_tiff(tmp / "send.tif", [page()])
    sender = await open_leg(FaxSender(source, local_ident="+1 555 0100"), dropper(loss_seed))
    receiver = await open_leg(
        FaxReceiver(tmp / "recv.tif", local_ident="+1 555 0199"),
        dropper(None if loss_seed is None else ~loss_seed),
    )
    for a, b in ((sender, receiver), (receiver, sender)):
        assert b.transport is not None
        a.peer = b.transport.get_extra_info("sockname")[:2]
    loop = asyncio.get_running_loop()
    start, ticks = loop.time(), 0
    try:
        while not receiver.endpoint.done and ticks < 90 * 50:
            ticks += 1
            # A monotonic schedule: tick k is due at start + k·ptime/speed (no drift); the
            # media clock is the tick's own time, so a late wake-up changes nothing heard.
            await asyncio.sleep(max(0.0, start + ticks * PTIME / speed - loop.time()))
            media_now = ticks * PTIME
            sender.tick(media_now)
            receiver.tick(media_now)
    finally:
        for leg in (sender, receiver):
            assert leg.transport is not None
            leg.transport.close()
        sender.endpoint.close()
    return receiver.endpoint.close(), sender, receiver


def pdf_mediaboxes(pdf: Path) -> list[tuple[float, float]]:
    text = pdf.read_bytes().decode("latin-1")
    boxes = re.findall(r"/MediaBox \[\s*([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)\s*\]", text)
    return [(float(x1) - float(x0), float(y1) - float(y0)) for x0, y0, x1, y1 in boxes]


def check_fax_and_pdf(result: FaxResult, tmp: Path) -> None:
    assert result.ok, result
    assert result.pages == 1
    assert (result.x_resolution, result.y_resolution) == (204, 98)
    pdf = asyncio.run(tiff_to_pdf(result.tiff_path, tmp / "fax.pdf"))
    assert pdf.read_bytes().count(b"/Type /Page\n") + pdf.read_bytes().count(b"/Type /Page ") == 1
    ((width, height),) = pdf_mediaboxes(pdf)
    # 1728 px at 204 dpi wide (A4/letter fax width), 1100 rows at 98 dpi tall: ~8.47×11.22 in.
    assert width / 72 == pytest.approx(8.47, abs=0.02)
    assert height / 72 == pytest.approx(11.22, abs=0.02)


def run_call(tmp: Path, *, speed: float, loss_seed: int | None) -> tuple[FaxResult, int]:
    result, _, receiver = asyncio.run(fax_call(tmp, speed=speed, loss_seed=loss_seed))
    return result, receiver.gaps


def test_fax_over_rtp_accelerated(tmp_path: Path) -> None:
    """FAX-1: one page over RTP/PCMU on loopback at 5× pace, received and made a PDF."""
    result, gaps = run_call(tmp_path, speed=5, loss_seed=None)
    assert gaps == 0
    assert result.remote_ident == "+1 555 0100"
    check_fax_and_pdf(result, tmp_path)


def test_fax_over_rtp_with_loss_accelerated(tmp_path: Path) -> None:
    """FAX-1: 1% of packets lost each way; the receiver's jitter buffer reports the gaps,
    the fax receiver conceals them and the page still arrives (the far end's ident may
    not: its frame can be among the losses)."""
    result, gaps = run_call(tmp_path, speed=5, loss_seed=LOSS_SEED)
    assert gaps > 0
    check_fax_and_pdf(result, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("loss_seed", [None, LOSS_SEED], ids=["lossless", "loss1pct"])
def test_fax_over_rtp_real_time(tmp_path: Path, loss_seed: int | None) -> None:
    """FAX-1: the same calls paced in real time (20 ms per packet)."""
    result, gaps = run_call(tmp_path, speed=1, loss_seed=loss_seed)
    assert (gaps > 0) is (loss_seed is not None)
    check_fax_and_pdf(result, tmp_path)
