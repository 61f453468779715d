"""FAX-1: T.30 fax over G.711 audio through spandsp 0.0.6 (media/fax.py).

A :class:`FaxSender` and a :class:`FaxReceiver` are wired back to back in memory, PCM to PCM,
one 20 ms frame each way per step — the same framing MediaStream uses, but as fast as the CPU
goes (spandsp's T.30 timers count samples, not wall-clock time). The received TIFF is decoded
(``tiffcp -c none``) and compared pixel by pixel with what was sent; the PDF is checked for
its page count and page size.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import random
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudpbx.media import fax as fax_module
from cloudpbx.media.fax import (
    FRAME_SAMPLES,
    BilevelPage,
    FaxError,
    FaxReceiver,
    FaxSender,
    FaxUnavailableError,
    tiff_to_pdf,
    write_bilevel_tiff,
)

WIDTH = 1728  # T.4 A4/letter width at 204 dpi
FRAME_BYTES = 2 * FRAME_SAMPLES
MAX_FRAMES = 50 * 120  # two minutes of audio: far beyond any exchange here


def make_page(rows: int = 1100, dpi: tuple[int, int] = (204, 98), seed: int = 0) -> BilevelPage:
    """A page with some black: bars, a checker block and a frame (not just white)."""
    stride = WIDTH // 8
    rnd = random.Random(seed)
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
        if 800 <= y < 820:
            row[rnd.randrange(stride)] = 0xFF
        out.append(bytes(row))
    return BilevelPage(WIDTH, tuple(out), dpi)


def exchange(
    sender: FaxSender,
    receiver: FaxReceiver,
    *,
    lost_to_receiver: Callable[[int], bool] = lambda n: False,
    lost_to_sender: Callable[[int], bool] = lambda n: False,
    to_receiver: Callable[[int, bytes], bytes | None] | None = None,
    both: bool = False,
) -> int:
    """Run both ends frame by frame until the receiver (``both``: and the sender) is done;
    returns the frames run."""
    n = 0
    while not (receiver.done and (sender.done or not both)) and n < MAX_FRAMES:
        a, b = sender.read(FRAME_SAMPLES), receiver.read(FRAME_SAMPLES)
        assert len(a) == len(b) == FRAME_BYTES
        frame: bytes | None = None if lost_to_receiver(n) else a
        if to_receiver is not None and frame is not None:
            frame = to_receiver(n, frame)
        receiver.write(frame)
        sender.write(None if lost_to_sender(n) else b)
        n += 1
    return n


def decode_tiff(path: Path, tmp: Path) -> list[list[bytes]]:
    """Pages of packed rows (1 = black) via ``tiffcp -c none`` and a minimal IFD reader."""
    plain = tmp / f"{path.stem}.plain.tif"
    subprocess.run(["tiffcp", "-c", "none", str(path), str(plain)], check=True)
    data = plain.read_bytes()
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    pages = []
    while ifd:
        tags = _ifd_tags(data, order, ifd)
        stride = (tags[256][0] + 7) // 8
        strips = b"".join(data[o : o + c] for o, c in zip(tags[273], tags[279], strict=True))
        if tags.get(266, [1])[0] == 2:  # FillOrder LSB first: reverse the bits
            strips = bytes(int(f"{b:08b}"[::-1], 2) for b in strips)
        if tags[262][0] == 1:  # BlackIsZero: invert to 1 = black
            strips = bytes(b ^ 0xFF for b in strips)
        pages.append([strips[i : i + stride] for i in range(0, tags[257][0] * stride, stride)])
        (ifd,) = struct.unpack_from(order + "I", data, ifd + 2 + 12 * len(tags))
    return pages


def _ifd_tags(data: bytes, order: str, ifd: int) -> dict[int, list[int]]:
    (count,) = struct.unpack_from(order + "H", data, ifd)
    tags: dict[int, list[int]] = {}
    for i in range(count):
        tag, kind, n, raw = struct.unpack_from(order + "HHI4s", data, ifd + 2 + 12 * i)
        fmt, size = {3: ("H", 2), 4: ("I", 4)}.get(kind, ("I", 4))
        src = raw if n * size <= 4 else data[struct.unpack(order + "I", raw)[0] :]
        tags[tag] = list(struct.unpack_from(order + fmt * n, src)) if kind in (3, 4) else []
    return tags


def pdf_pages(pdf: Path) -> list[tuple[float, float]]:
    """(width, height) in points of each page's MediaBox (tiff2pdf writes them as text)."""
    text = pdf.read_bytes().decode("latin-1")
    boxes = re.findall(r"/MediaBox \[\s*([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)\s*\]", text)
    return [(float(x1) - float(x0), float(y1) - float(y0)) for x0, y0, x1, y1 in boxes]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_bilevel_tiff(tmp_path / "send.tif", [make_page()])


@pytest.mark.parametrize("ecm", [False, True])
def test_fax_received_pixel_exact(tmp_path: Path, source: Path, ecm: bool) -> None:
    """FAX-1: a 204×98 dpi page goes sender → receiver (with and without ECM); T.30 ends
    OK on both sides, idents are exchanged, and the TIFF holds exactly the page sent."""
    done: list[object] = []
    sender = FaxSender(source, local_ident="+1 555 0100", ecm=ecm)
    receiver = FaxReceiver(
        tmp_path / "recv.tif", local_ident="+1 555 0199", ecm=ecm, on_done=done.append
    )
    frames = exchange(sender, receiver, both=True)
    result = receiver.close()
    assert result.ok, result
    assert (result.pages, result.remote_ident, result.error) == (1, "+1 555 0100", "")
    assert (result.x_resolution, result.y_resolution) == (204, 98)
    assert result.ecm is ecm
    assert done == [result]  # on_done once, with the result
    assert 10 * 50 < frames < 40 * 50  # a one-page fax takes 10-40 s of audio
    assert sender.close().ok
    assert sender.result.remote_ident == "+1 555 0199"
    assert decode_tiff(result.tiff_path, tmp_path) == [list(make_page().rows)]


def test_two_fine_pages(tmp_path: Path) -> None:
    """FAX-1: a two-page fine-resolution (204×196) document arrives as two TIFF pages."""
    pages = [make_page(rows=2200, dpi=(204, 196), seed=s) for s in (1, 2)]
    source = write_bilevel_tiff(tmp_path / "send.tif", pages)
    receiver = FaxReceiver(tmp_path / "recv.tif", local_ident="200")
    exchange(FaxSender(source, local_ident="100"), receiver)
    result = receiver.close()
    assert result.ok
    assert result.pages == 2
    assert result.y_resolution == 196
    assert decode_tiff(result.tiff_path, tmp_path) == [list(p.rows) for p in pages]


def loss_pattern(seed: int, rate: float = 0.01) -> Callable[[int], bool]:
    rnd = random.Random(seed)
    lost = [rnd.random() < rate for _ in range(MAX_FRAMES)]
    return lambda n: lost[n]


def test_one_percent_loss_concealed(tmp_path: Path, source: Path) -> None:
    """FAX-1: with 1% of frames lost each way (None → concealment), most sessions still
    deliver the page. spandsp 0.0.6 fails some where a loss hits a modem training sequence
    (measured: 16/20 succeed with "repeat", 9/20 with spandsp's own fill-in); here at least
    14 of 20 seeded patterns must succeed, each in bounded time."""
    ok = 0
    for seed in range(20):
        receiver = FaxReceiver(tmp_path / f"recv{seed}.tif", local_ident="200")
        sender = FaxSender(source, local_ident="100")
        frames = exchange(
            sender,
            receiver,
            lost_to_receiver=loss_pattern(seed),
            lost_to_sender=loss_pattern(~seed),
        )
        assert receiver.done
        assert frames < 60 * 50
        sender.close()
        ok += receiver.close().ok
    assert ok >= 14


def test_fillin_concealment(tmp_path: Path, source: Path) -> None:
    """FAX-1: concealment="fillin" hands lost frames to spandsp's fax_rx_fillin; the page
    still arrives when the losses miss the training sequences (seed 2), intact thanks to ECM."""
    receiver = FaxReceiver(tmp_path / "recv.tif", local_ident="200", concealment="fillin")
    sender = FaxSender(source, local_ident="100", concealment="fillin")
    exchange(sender, receiver, lost_to_receiver=loss_pattern(2), lost_to_sender=loss_pattern(~2))
    result = receiver.close()
    assert result.ok
    assert result.pages == 1
    assert decode_tiff(result.tiff_path, tmp_path) == [list(make_page().rows)]


class _Probe(FaxReceiver):
    """A receiver that notes when the final page's EOP came (phase D)."""

    eop = False

    def _on_phase_d(self, fcf: int) -> None:
        super()._on_phase_d(fcf)
        self.eop = self.eop or fcf == 0x2E


def test_lost_final_dcn_ends_session(tmp_path: Path, source: Path) -> None:
    """FAX-1: if the line goes quiet after the last page was confirmed (the sender's DCN
    lost), spandsp 0.0.6 would wait forever; the receiver ends itself ~10 s later, with
    the page kept and the session counted as a success (code 29: T2 expired for DCN)."""
    receiver = _Probe(tmp_path / "recv.tif", local_ident="200")
    quiet = bytes(FRAME_BYTES)
    frames = exchange(
        FaxSender(source, local_ident="100"),
        receiver,
        to_receiver=lambda n, frame: quiet if receiver.eop else frame,
    )
    result = receiver.result
    assert receiver.eop
    assert result.ok
    assert result.code == 29
    assert result.pages == 1
    assert frames < 45 * 50
    receiver.close()
    assert decode_tiff(result.tiff_path, tmp_path) == [list(make_page().rows)]


def test_close_midway_is_call_dropped(tmp_path: Path, source: Path) -> None:
    """FAX-1: hanging up mid-fax (close()) ends T.30 as "call dropped", not ok."""
    sender = FaxSender(source, local_ident="100")
    receiver = FaxReceiver(tmp_path / "recv.tif", local_ident="200")
    with pytest.raises(FaxError, match="in progress"):
        _ = receiver.result
    for _ in range(5 * 50):
        receiver.write(sender.read(FRAME_SAMPLES))
        sender.write(receiver.read(FRAME_SAMPLES))
    assert not receiver.done
    result = receiver.close()
    assert receiver.done
    assert not result.ok
    assert result.pages == 0
    assert "dropped" in result.error
    assert receiver.close() is result  # idempotent
    receiver.write(bytes(FRAME_BYTES))  # a sink after close: ignored
    assert receiver.read(FRAME_SAMPLES) == bytes(FRAME_BYTES)  # silence


def test_read_returns_exactly_the_samples_asked(tmp_path: Path) -> None:
    """Contract B: read(n) always gives n samples (transmit-on-idle), any n."""
    receiver = FaxReceiver(tmp_path / "recv.tif", local_ident="200")
    for n in (160, 80, 400, 1):
        assert len(receiver.read(n)) == 2 * n
    receiver.write(bytes(3 * FRAME_BYTES + 1))  # several frames at once, odd byte ignored
    receiver.write(None)  # a loss before any audio: fill-in
    assert any(receiver.read(FRAME_SAMPLES) for _ in range(50))  # CED is playing
    receiver.close()


def test_bad_arguments(tmp_path: Path, source: Path) -> None:
    """Idents T.30 cannot carry, missing files and an unknown concealment are refused."""
    with pytest.raises(FaxError, match="at most 20"):
        FaxReceiver(tmp_path / "r.tif", local_ident="1" * 21)
    with pytest.raises(FaxError, match="printable"):
        FaxReceiver(tmp_path / "r.tif", local_ident="caf\u00e9")
    with pytest.raises(FaxError, match="no file"):
        FaxSender(tmp_path / "missing.tif", local_ident="1")
    with pytest.raises(FaxError, match="does not exist"):
        FaxReceiver(tmp_path / "no" / "r.tif", local_ident="1")
    with pytest.raises(ValueError, match="concealment"):
        FaxReceiver(tmp_path / "r.tif", local_ident="1", concealment="zeros")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rows"):
        BilevelPage(WIDTH, (b"\x00",))


def test_sender_reports_unreadable_tiff(tmp_path: Path) -> None:
    """A file that is not a TIFF fails the send at phase E with spandsp's reason."""
    bogus = tmp_path / "bogus.tif"
    bogus.write_bytes(b"not a tiff")
    sender = FaxSender(bogus, local_ident="1")
    receiver = FaxReceiver(tmp_path / "recv.tif", local_ident="2")
    exchange(sender, receiver, both=True)
    assert not receiver.result.ok
    assert sender.done
    assert not sender.result.ok
    assert "TIFF" in sender.result.error


def test_library_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libspandsp2 the binding says which package is missing."""
    monkeypatch.setattr(fax_module, "_LIBRARY_NAMES", ("libspandsp-missing.so.9",))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(FaxUnavailableError, match="libspandsp2"):
        fax_module._load_cdll()


def test_tiff_to_pdf_keeps_proportions(tmp_path: Path, source: Path) -> None:
    """FAX-1: the received 204×98 dpi TIFF becomes a one-page PDF of 1728/204 × 1100/98
    inches (not squashed into square pixels)."""
    receiver = FaxReceiver(tmp_path / "recv.tif", local_ident="200")
    exchange(FaxSender(source, local_ident="100"), receiver)
    assert receiver.close().ok
    pdf = asyncio.run(tiff_to_pdf(receiver.tiff_path, tmp_path / "fax.pdf"))
    ((width, height),) = pdf_pages(pdf)
    assert width == pytest.approx(1728 / 204 * 72, abs=0.5)
    assert height == pytest.approx(1100 / 98 * 72, abs=0.5)
    assert not list(tmp_path.glob(".*.tmp"))


def test_tiff_to_pdf_multi_page(tmp_path: Path) -> None:
    """Each TIFF page becomes a PDF page, sized from its own resolution."""
    pages = [make_page(rows=1100), make_page(rows=2200, dpi=(204, 196))]
    tiff = write_bilevel_tiff(tmp_path / "two.tif", pages)
    pdf = asyncio.run(tiff_to_pdf(tiff, tmp_path / "two.pdf"))
    sizes = pdf_pages(pdf)
    assert len(sizes) == 2
    for w, h in sizes:
        assert w / 72 == pytest.approx(8.47, abs=0.01)
        assert h / 72 == pytest.approx(11.22, abs=0.01)


def test_tiff_to_pdf_errors(tmp_path: Path) -> None:
    """A failed conversion raises FaxError with tiff2pdf's message and leaves no PDF."""
    bogus = tmp_path / "bogus.tif"
    bogus.write_bytes(b"not a tiff")
    with pytest.raises(FaxError, match=r"tiff2pdf failed.*exit"):
        asyncio.run(tiff_to_pdf(bogus, tmp_path / "out.pdf"))
    with pytest.raises(FaxError, match="not found"):
        asyncio.run(tiff_to_pdf(bogus, tmp_path / "out.pdf", tiff2pdf="/nonexistent/tiff2pdf"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.tif"]
