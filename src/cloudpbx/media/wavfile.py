"""WAV (RIFF/WAVE) headers and a streaming writer, pure (no clock, no OS calls of its own).

The file layout is Microsoft's RIFF WAVE ("Multimedia Programming Interface and Data
Specifications 1.0", 1991, chapter 3, and "Multiple channel audio data and WAVE files", 2001,
for ``WAVE_FORMAT_EXTENSIBLE``)::

    "RIFF" <riff size: 4 + everything after it> "WAVE"
    "fmt " <16 | 18 + cbSize>  format tag, channels, rate, byte rate, block align, bits [, cbSize…]
    "fact" <4>                 samples per channel (non-PCM formats only)
    "data" <n>                 the audio, then a pad byte when n is odd (chunks are word aligned)

All numbers are little-endian. What this module writes is that canonical layout: PCM with the
16-byte ``fmt`` chunk and no ``fact`` (as sox and the stdlib ``wave`` module do), any other
format tag (G.711 A-law 6, μ-law 7) with the 18-byte ``fmt`` (``cbSize`` = 0) and a ``fact``
chunk, as the 1991 specification asks of non-PCM data.

What it reads is any chunk order: unknown chunks (``LIST``, ``bext``, ``cue ``…) are skipped by
seeking, never read into memory; the walk stops at the ``data`` chunk. A ``data`` size that runs
past the end of the file is a truncated file, except the "size unknown" values streaming
writers leave behind (``0xFFFFFFFF``, or ``0x7FFFF000``-like sizes from ``espeak-ng --stdout``):
then the audio is whatever follows, up to the end of the file.

:class:`WavWriter` appends frames to a seekable binary file without keeping them in memory and
patches the sizes when closed (or at each :meth:`WavWriter.sync`, so that a crash leaves a
playable file up to the last sync).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO, Final

__all__ = [
    "MAX_DATA_SIZE",
    "WAVE_FORMAT_ALAW",
    "WAVE_FORMAT_EXTENSIBLE",
    "WAVE_FORMAT_IEEE_FLOAT",
    "WAVE_FORMAT_MULAW",
    "WAVE_FORMAT_PCM",
    "WavError",
    "WavFormat",
    "WavHeader",
    "WavInfo",
    "WavReader",
    "WavWriter",
    "format_name",
    "read_info",
    "wav_bytes",
]

WAVE_FORMAT_PCM: Final = 0x0001
WAVE_FORMAT_IEEE_FLOAT: Final = 0x0003
WAVE_FORMAT_ALAW: Final = 0x0006  # G.711 A-law
WAVE_FORMAT_MULAW: Final = 0x0007  # G.711 μ-law
WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE

_NAMES: Final = {
    0x0001: "PCM",
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    0x0006: "G.711 A-law",
    0x0007: "G.711 μ-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG",
    0x0055: "MPEG Layer 3",
    0x00FF: "AAC",
    0x0161: "Windows Media Audio",
    0xFFFE: "extensible",
}

#: The largest ``data`` chunk a RIFF file can describe (its sizes are 32-bit), less the header.
MAX_DATA_SIZE: Final = 0xFFFFFFFF - 64

# KSDATAFORMAT_SUBTYPE_* GUIDs are the old format tag followed by this fixed tail.
_GUID_TAIL: Final = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_ONE_BLOCK_A_FRAME: Final = (
    WAVE_FORMAT_PCM,
    WAVE_FORMAT_IEEE_FLOAT,
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
)
_MAX_FMT_SIZE: Final = 1024  # a real fmt chunk is 16..40 bytes
_STREAMED_MIN: Final = 0x7FFF0000  # data sizes from here up mean "unknown" when past the EOF


class WavError(ValueError):
    """The bytes are not a WAV file this module understands (the text says why)."""


def format_name(tag: int) -> str:
    """A human name for a format tag: ``6`` → ``"G.711 A-law"``, unknown → ``"0x1234"``."""
    return _NAMES.get(tag, f"0x{tag:04X}")


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The ``fmt `` chunk: how the samples in ``data`` are coded.

    ``extra`` is whatever follows ``cbSize`` (22 bytes for ``WAVE_FORMAT_EXTENSIBLE``: valid
    bits, channel mask and sub-format GUID).
    """

    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    block_align: int
    byte_rate: int
    extra: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.format_tag <= 0xFFFF:
            raise ValueError(f"format tag out of range: {self.format_tag}")
        if not 1 <= self.channels <= 0xFFFF:
            raise ValueError(f"channels out of range: {self.channels}")
        if not 1 <= self.sample_rate <= 0xFFFFFFFF:
            raise ValueError(f"sample rate out of range: {self.sample_rate}")
        if not 1 <= self.block_align <= 0xFFFF:
            raise ValueError(f"block align out of range: {self.block_align}")
        if not 0 <= self.bits_per_sample <= 0xFFFF or not 0 <= self.byte_rate <= 0xFFFFFFFF:
            raise ValueError("bits per sample or byte rate out of range")
        if len(self.extra) > 0xFFFF:
            raise ValueError("extra format bytes too long")

    @classmethod
    def linear(cls, channels: int = 1, sample_rate: int = 8000, bits: int = 16) -> WavFormat:
        """Integer PCM (8-bit unsigned or 16/24/32-bit signed, as WAV has them)."""
        if bits not in (8, 16, 24, 32):
            raise ValueError(f"PCM sample size must be 8, 16, 24 or 32 bits, not {bits}")
        align = channels * bits // 8
        return cls(WAVE_FORMAT_PCM, channels, sample_rate, bits, align, align * sample_rate)

    @classmethod
    def pcm16(cls, channels: int = 1, sample_rate: int = 8000) -> WavFormat:
        """16-bit signed little-endian PCM: what the recorder writes and the player reads."""
        return cls.linear(channels, sample_rate, 16)

    @classmethod
    def g711(cls, law: str, channels: int = 1, sample_rate: int = 8000) -> WavFormat:
        """G.711 as stored by telephony systems: ``law`` is ``"alaw"``/``"PCMA"`` (tag 6) or
        ``"ulaw"``/``"mulaw"``/``"PCMU"`` (tag 7), one byte a sample."""
        key = law.lower()
        if key in ("alaw", "a-law", "pcma"):
            tag = WAVE_FORMAT_ALAW
        elif key in ("ulaw", "mulaw", "μ-law", "u-law", "pcmu"):
            tag = WAVE_FORMAT_MULAW
        else:
            raise ValueError(f"not a G.711 law: {law!r}")
        return cls(tag, channels, sample_rate, 8, channels, channels * sample_rate)

    @property
    def encoding(self) -> int:
        """The format tag, or the sub-format's for ``WAVE_FORMAT_EXTENSIBLE`` (0 if unknown)."""
        if self.format_tag != WAVE_FORMAT_EXTENSIBLE:
            return self.format_tag
        guid = self.extra[6:22]
        if len(guid) == 16 and guid[2:] == _GUID_TAIL:
            return int.from_bytes(guid[:2], "little")
        return 0

    @property
    def name(self) -> str:
        """E.g. ``"16-bit PCM"``, ``"G.711 A-law"``, ``"32-bit IEEE float"``."""
        encoding = self.encoding
        base = format_name(encoding) if encoding else "unknown extensible"
        if encoding in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
            return f"{self.bits_per_sample}-bit {base}"
        return base

    @property
    def is_telephony(self) -> bool:
        """8 kHz mono 16-bit PCM with the plain tag: what the PBX stores and plays."""
        return (
            self.format_tag == WAVE_FORMAT_PCM
            and self.channels == 1
            and self.sample_rate == 8000
            and self.bits_per_sample == 16
            and self.block_align == 2
        )

    @classmethod
    def parse(cls, body: bytes) -> WavFormat:
        """The body of a ``fmt `` chunk (16, 18 or 18 + cbSize bytes); :class:`WavError`."""
        if len(body) < 16:
            raise WavError(f"fmt chunk too short ({len(body)} bytes)")
        tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", body)
        extra = b""
        if len(body) >= 18:
            (cb_size,) = struct.unpack_from("<H", body, 16)
            extra = bytes(body[18 : 18 + cb_size])
            if len(extra) < cb_size:
                raise WavError("fmt chunk shorter than its cbSize says")
        if channels == 0:
            raise WavError("fmt chunk says 0 channels")
        if rate == 0:
            raise WavError("fmt chunk says 0 Hz")
        if align == 0:
            raise WavError("fmt chunk says a block of 0 bytes")
        if tag == WAVE_FORMAT_EXTENSIBLE and len(extra) < 22:
            raise WavError("extensible fmt chunk without its sub-format")
        return cls(tag, channels, rate, bits, align, byte_rate, extra)

    def __bytes__(self) -> bytes:
        head = struct.pack(
            "<HHIIHH",
            self.format_tag,
            self.channels,
            self.sample_rate,
            self.byte_rate,
            self.block_align,
            self.bits_per_sample,
        )
        if self.format_tag == WAVE_FORMAT_PCM and not self.extra:
            return head
        return head + struct.pack("<H", len(self.extra)) + self.extra


@dataclass(frozen=True, slots=True)
class WavHeader:
    """The canonical header written before ``data_size`` bytes of audio.

    ``bytes(header)`` is the RIFF header, the ``fmt `` chunk, a ``fact`` chunk when the format is
    not PCM, and the ``data`` chunk header; :attr:`size` bytes in all (44 for PCM, 58 for
    G.711). The RIFF size counts the pad byte an odd ``data_size`` needs after the audio.
    """

    format: WavFormat
    data_size: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.data_size <= MAX_DATA_SIZE:
            raise ValueError(f"data size out of range for a RIFF file: {self.data_size}")

    @property
    def has_fact(self) -> bool:
        return self.format.format_tag != WAVE_FORMAT_PCM

    @property
    def size(self) -> int:
        fmt_len = len(bytes(self.format))
        return 12 + 8 + fmt_len + (12 if self.has_fact else 0) + 8

    @property
    def frames(self) -> int:
        return self.data_size // self.format.block_align

    def __bytes__(self) -> bytes:
        fmt = bytes(self.format)
        pad = self.data_size & 1
        riff_size = self.size - 8 + self.data_size + pad
        out = [b"RIFF", struct.pack("<I", riff_size), b"WAVE"]
        out += [b"fmt ", struct.pack("<I", len(fmt)), fmt]
        if self.has_fact:
            # samples per channel: exact for G.711 and other one-block-per-sample formats
            out += [b"fact", struct.pack("<II", 4, self.frames)]
        out += [b"data", struct.pack("<I", self.data_size)]
        return b"".join(out)

    @classmethod
    def parse(cls, data: bytes) -> WavHeader:
        """The header at the start of ``data`` (which may hold the whole file); the declared
        data size is kept as is, whether or not ``data`` holds that much."""
        info = read_info(io.BytesIO(data))
        return cls(info.format, min(info.declared_size, MAX_DATA_SIZE))


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What :func:`read_info` found in a file."""

    format: WavFormat
    data_offset: int  # where the audio starts, from the start of the RIFF header
    declared_size: int  # the data chunk's size field
    available: int  # bytes of the data chunk present in the file
    fact_samples: int | None
    streamed: bool  # the size field meant "unknown": the audio runs to the end of the file

    @property
    def truncated(self) -> bool:
        """The file ends before the audio its header announces."""
        return not self.streamed and self.available < self.declared_size

    @property
    def data_size(self) -> int:
        """Bytes of audio to read: the declared size, or what is present if less or unknown."""
        return self.available if self.streamed else min(self.declared_size, self.available)

    @property
    def frames(self) -> int:
        """Sample frames (one sample per channel) present, for formats with one frame a block;
        for block-coded formats (ADPCM, GSM) the ``fact`` count when there is one."""
        encoding = self.format.encoding
        if encoding not in _ONE_BLOCK_A_FRAME:
            return self.fact_samples or 0
        return self.data_size // self.format.block_align

    @property
    def duration_ms(self) -> int:
        return self.frames * 1000 // self.format.sample_rate


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def read_info(f: BinaryIO) -> WavInfo:
    """Walk the chunks of the WAV file at ``f``'s position up to the ``data`` chunk.

    ``f`` must be seekable (the file's end bounds every size). Leaves ``f`` at the start of the
    audio. Raises :class:`WavError` with the reason for anything that is not a usable WAV file.
    """
    base = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(base)
    head = _read_exact(f, 12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    if head[:4] != b"RIFF":
        raise WavError(f"{head[:4].decode()} WAV files are not supported")
    pos = base + 12
    fmt: WavFormat | None = None
    fact: int | None = None
    while True:
        chunk = _read_exact(f, 8)
        if len(chunk) < 8:
            raise WavError("no data chunk" if fmt else "no fmt chunk")
        cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        body_at = pos + 8
        if cid == b"fmt ":
            if size > _MAX_FMT_SIZE:
                raise WavError(f"fmt chunk of {size} bytes")
            body = _read_exact(f, size)
            if len(body) < size:
                raise WavError("truncated fmt chunk")
            fmt = WavFormat.parse(body)
        elif cid == b"fact" and size >= 4:
            body = _read_exact(f, 4)
            if len(body) < 4:
                raise WavError("truncated fact chunk")
            fact = int.from_bytes(body, "little")
        elif cid == b"data":
            if fmt is None:
                raise WavError("data chunk before the fmt chunk")
            available = max(0, end - body_at)
            streamed = size > available and (size == 0xFFFFFFFF or size >= _STREAMED_MIN)
            f.seek(body_at)
            return WavInfo(fmt, body_at - base, size, min(size, available), fact, streamed)
        pos = body_at + size + (size & 1)
        if pos > end:
            raise WavError(f"truncated {cid.decode('latin-1')!r} chunk")
        f.seek(pos)


class WavReader:
    """Reads the audio of a WAV file block by block (``read_info`` first, then :meth:`read`)."""

    __slots__ = ("_f", "_left", "info")

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.info = read_info(f)
        self._left = self.info.data_size

    def read(self, frames: int) -> bytes:
        """Up to ``frames`` whole blocks; ``b""`` at the end of the audio."""
        align = self.info.format.block_align
        want = min(frames * align, self._left - self._left % align)
        if want <= 0:
            return b""
        data = _read_exact(self._f, want)
        data = data[: len(data) - len(data) % align]
        # a short read means the file shrank under us: stop there
        self._left = self._left - len(data) if len(data) == want else 0
        return data


class WavWriter:
    """Streams audio into a WAV file: the header first, frames appended, sizes patched.

    ``f`` is a seekable binary file opened for writing (``open(path, "w+b")`` / ``"wb"``), at
    the position the WAV file starts. The writer never closes ``f`` (its owner does, after
    :meth:`close`). ``write_frames`` takes whole blocks (``format.block_align`` bytes: 2 for
    16-bit mono, 4 for stereo, 1 for G.711 mono). :meth:`sync` rewrites the header for the audio
    written so far; :meth:`close` writes the pad byte an odd size needs, then the final header.
    """

    __slots__ = ("_closed", "_data_size", "_f", "_header_size", "_start", "format")

    def __init__(self, f: BinaryIO, fmt: WavFormat) -> None:
        if not f.seekable():
            raise ValueError("WavWriter needs a seekable file to patch the sizes")
        self._f = f
        self.format = fmt
        self._start = f.tell()
        self._data_size = 0
        self._closed = False
        header = bytes(WavHeader(fmt, 0))
        self._header_size = len(header)
        f.write(header)

    @property
    def data_size(self) -> int:
        """Bytes of audio written so far."""
        return self._data_size

    @property
    def frames(self) -> int:
        """Sample frames written so far."""
        return self._data_size // self.format.block_align

    @property
    def duration_ms(self) -> int:
        return self.frames * 1000 // self.format.sample_rate

    @property
    def closed(self) -> bool:
        return self._closed

    def write_frames(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("write to a closed WavWriter")
        size = memoryview(data).nbytes
        if size % self.format.block_align:
            raise ValueError(
                f"{size} bytes is not a whole number of {self.format.block_align}-byte frames"
            )
        if self._data_size + size > MAX_DATA_SIZE:
            raise ValueError("a WAV file cannot hold more than 4 GiB of audio")
        self._f.write(data)
        self._data_size += size

    def _patch(self) -> None:
        here = self._f.tell()
        self._f.seek(self._start)
        self._f.write(bytes(WavHeader(self.format, self._data_size)))
        self._f.seek(here)

    def truncate(self, frames: int) -> None:
        """Drop the audio after the first ``frames`` frames (e.g. a voicemail's trailing
        silence); needs ``f`` to support ``truncate``."""
        if self._closed:
            raise ValueError("truncate a closed WavWriter")
        if not 0 <= frames <= self.frames:
            raise ValueError(f"cannot keep {frames} of {self.frames} frames")
        self._data_size = frames * self.format.block_align
        self._f.seek(self._start + self._header_size + self._data_size)
        self._f.truncate()

    def sync(self) -> None:
        """Make the file on disk complete up to here (the header tells the current sizes)."""
        if self._closed:
            return
        self._patch()
        self._f.flush()

    def close(self) -> None:
        """Pad to a word boundary, patch the header and flush; idempotent."""
        if self._closed:
            return
        if self._data_size & 1:
            self._f.write(b"\0")
        self._patch()
        self._f.flush()
        self._closed = True

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def wav_bytes(fmt: WavFormat, data: bytes) -> bytes:
    """A whole WAV file in memory: header, ``data``, pad byte if needed."""
    if len(data) % fmt.block_align:
        raise ValueError(f"{len(data)} bytes is not a whole number of frames")
    return bytes(WavHeader(fmt, len(data))) + data + b"\0" * (len(data) & 1)
