"""WAV headers and the streaming writer (cloudpbx.media.wavfile)."""

from __future__ import annotations

import io
import struct
import wave

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.media.codecs import alaw_decode, alaw_encode
from cloudpbx.media.wavfile import (
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_EXTENSIBLE,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    WavError,
    WavFormat,
    WavHeader,
    WavReader,
    WavWriter,
    read_info,
    wav_bytes,
)


def stdlib_wav(data: bytes, channels: int, rate: int, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return out.getvalue()


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


PCM16 = WavFormat.pcm16()
FMT16 = bytes(PCM16)


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "rate"), [(1, 8000), (2, 8000), (1, 16000), (2, 44100)])
def test_pcm_header_is_byte_identical_to_stdlib_wave(channels: int, rate: int) -> None:
    data = bytes(range(256)) * 10 * channels
    ours = wav_bytes(WavFormat.pcm16(channels, rate), data)
    assert ours == stdlib_wav(data, channels, rate)
    assert len(bytes(WavHeader(WavFormat.pcm16(channels, rate)))) == 44


def test_g711_header_has_cbsize_and_fact() -> None:
    """RIFF spec: non-PCM data gets an 18-byte fmt (cbSize) and a fact chunk."""
    fmt = WavFormat.g711("PCMA")
    assert (fmt.format_tag, fmt.bits_per_sample, fmt.block_align, fmt.byte_rate) == (
        WAVE_FORMAT_ALAW,
        8,
        1,
        8000,
    )
    assert WavFormat.g711("ulaw").format_tag == WAVE_FORMAT_MULAW
    header = bytes(WavHeader(fmt, 161))
    assert len(header) == 58 == WavHeader(fmt, 161).size
    riff_size, fmt_size = (
        struct.unpack_from("<I", header, 4)[0],
        struct.unpack_from("<I", header, 16)[0],
    )
    assert fmt_size == 18
    assert header[36:38] == b"\0\0"  # cbSize
    assert header[38:42] == b"fact"
    assert struct.unpack_from("<II", header, 42) == (4, 161)
    assert header[50:54] == b"data"
    assert struct.unpack_from("<I", header, 54)[0] == 161
    assert riff_size == 58 - 8 + 161 + 1  # odd data: the pad byte counts
    with pytest.raises(ValueError, match=r"G\.711"):
        WavFormat.g711("gsm")


def test_format_validation_and_names() -> None:
    assert WavFormat.pcm16(2, 8000).name == "16-bit PCM"
    assert WavFormat.g711("alaw").name == "G.711 A-law"
    assert PCM16.is_telephony
    assert not WavFormat.pcm16(2).is_telephony
    assert not WavFormat.linear(1, 8000, 8).is_telephony
    with pytest.raises(ValueError, match="8, 16, 24 or 32"):
        WavFormat.linear(1, 8000, 12)
    with pytest.raises(ValueError, match="channels"):
        WavFormat(1, 0, 8000, 16, 2, 16000)
    with pytest.raises(ValueError, match="data size"):
        WavHeader(PCM16, -1)


def test_extensible_subformat_is_understood() -> None:
    guid = struct.pack("<H", WAVE_FORMAT_PCM) + b"\0\0\0\0\x10\0\x80\0\0\xaa\0\x38\x9b\x71"
    extra = struct.pack("<HI", 24, 0x3) + guid
    body = struct.pack("<HHIIHHH", WAVE_FORMAT_EXTENSIBLE, 2, 48000, 288000, 6, 24, 22) + extra
    data = bytes(6 * 10)
    info = read_info(io.BytesIO(riff(chunk(b"fmt ", body), chunk(b"data", data))))
    assert info.format.format_tag == WAVE_FORMAT_EXTENSIBLE
    assert info.format.encoding == WAVE_FORMAT_PCM
    assert info.format.name == "24-bit PCM"
    assert info.frames == 10
    assert bytes(info.format) == body  # round trip keeps cbSize and the extension


# --- reading ------------------------------------------------------------------------------


def test_reader_skips_unknown_chunks_in_any_order() -> None:
    data = bytes(range(200))
    blob = riff(
        chunk(b"LIST", b"INFOISFT\x05\0\0\0sox!\0"),  # odd size: padded
        chunk(b"fmt ", FMT16),
        chunk(b"junk", bytes(3)),
        chunk(b"data", data),
        chunk(b"LIST", b"trailing"),
    )
    info = read_info(io.BytesIO(blob))
    assert (info.data_size, info.frames, info.duration_ms) == (200, 100, 12)
    assert not info.truncated
    assert not info.streamed
    assert blob[info.data_offset : info.data_offset + 200] == data
    reader = WavReader(io.BytesIO(blob))
    got = b""
    while block := reader.read(33):
        assert len(block) % 2 == 0
        got += block
    assert got == data


def test_truncated_and_streamed_sizes() -> None:
    full = wav_bytes(PCM16, bytes(1000))
    info = read_info(io.BytesIO(full[:600]))
    assert info.truncated
    assert info.available == 556
    assert info.declared_size == 1000
    # espeak-ng --stdout / unfinalised writers: "unknown" sizes mean "to the end of the file"
    for size in (0xFFFFFFFF, 0x7FFFF000):
        blob = riff(chunk(b"fmt ", FMT16)) + b"data" + struct.pack("<I", size) + bytes(300)
        info = read_info(io.BytesIO(blob))
        assert info.streamed
        assert not info.truncated
        assert info.data_size == 300
        assert info.frames == 150


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (b"", "not a RIFF/WAVE"),
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "not a RIFF/WAVE"),
        (b"RIFF\0\0\0\0AVI LIST", "not a RIFF/WAVE"),
        (b"RF64\xff\xff\xff\xffWAVE" + bytes(40), "RF64"),
        (riff(chunk(b"data", bytes(4))), "data chunk before the fmt"),
        (riff(chunk(b"fmt ", FMT16)), "no data chunk"),
        (riff(), "no fmt chunk"),
        (riff(chunk(b"fmt ", FMT16[:12])), "fmt chunk too short"),
        (riff(chunk(b"fmt ", FMT16[:2] + b"\0\0" + FMT16[4:])), "0 channels"),
        (riff(chunk(b"fmt ", FMT16[:4] + bytes(4) + FMT16[8:])), "0 Hz"),
        (riff(chunk(b"fmt ", FMT16 + b"\x10\0")), "cbSize"),
        (riff() + b"fmt " + struct.pack("<I", 16) + FMT16[:6], "truncated"),
        (riff() + b"LIST" + struct.pack("<I", 1000) + bytes(10), "truncated 'LIST'"),
    ],
)
def test_bad_files_raise_wav_error(blob: bytes, words: str) -> None:
    with pytest.raises(WavError, match=words):
        read_info(io.BytesIO(blob))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_wav_error(blob: bytes) -> None:
    for data in (blob, b"RIFF" + blob[:4] + b"WAVE" + blob[4:]):
        try:
            info = read_info(io.BytesIO(data))
        except WavError:
            continue
        assert 0 <= info.data_size <= len(data)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["pcm16", "pcm8", "alaw", "ulaw"]),
    st.integers(1, 2),
    st.sampled_from([8000, 16000, 48000]),
    st.integers(0, 300),
)
def test_round_trip(kind: str, channels: int, rate: int, frames: int) -> None:
    fmt = {
        "pcm16": WavFormat.pcm16(channels, rate),
        "pcm8": WavFormat.linear(channels, rate, 8),
        "alaw": WavFormat.g711("alaw", channels, rate),
        "ulaw": WavFormat.g711("ulaw", channels, rate),
    }[kind]
    data = bytes(i * 7 % 256 for i in range(frames * fmt.block_align))
    blob = wav_bytes(fmt, data)
    assert len(blob) % 2 == 0
    assert struct.unpack_from("<I", blob, 4)[0] == len(blob) - 8
    info = read_info(io.BytesIO(blob))
    assert info.format == fmt
    assert info.frames == frames
    assert info.fact_samples == (None if kind.startswith("pcm") else frames)
    assert blob[info.data_offset : info.data_offset + info.data_size] == data
    assert WavHeader.parse(blob) == WavHeader(fmt, len(data))


# --- streaming writer ---------------------------------------------------------------------


class CountingFile(io.BytesIO):
    """Remembers the largest single write: the writer must not gather the audio."""

    biggest = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.biggest = max(self.biggest, memoryview(data).nbytes)
        return super().write(data)


def test_writer_streams_and_patches_sizes_at_close() -> None:
    f = CountingFile()
    frame = bytes(range(256)) + bytes(64)  # 320 bytes: one 20 ms 16-bit frame
    writer = WavWriter(f, PCM16)
    assert read_info(io.BytesIO(f.getvalue())).declared_size == 0  # header written at once
    for _ in range(500):
        writer.write_frames(frame)
    assert (writer.frames, writer.duration_ms) == (80000, 10000)
    writer.close()
    writer.close()  # idempotent
    blob = f.getvalue()
    assert f.biggest == 320
    assert len(blob) == 44 + 160000
    assert struct.unpack_from("<I", blob, 4)[0] == len(blob) - 8
    with wave.open(io.BytesIO(blob)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 8000, 80000)
        assert w.readframes(160) == frame
    with pytest.raises(ValueError, match="closed"):
        writer.write_frames(frame)


def test_writer_g711_odd_length_pads_and_sox_compatible_layout() -> None:
    f = io.BytesIO()
    pcm = struct.pack("<5h", 0, 1000, -1000, 8000, -32768)
    with WavWriter(f, WavFormat.g711("alaw")) as writer:
        writer.write_frames(alaw_encode(pcm))
    blob = f.getvalue()
    assert len(blob) == 58 + 5 + 1
    info = read_info(io.BytesIO(blob))
    assert (info.format.format_tag, info.frames, info.fact_samples) == (WAVE_FORMAT_ALAW, 5, 5)
    payload = blob[info.data_offset : info.data_offset + info.data_size]
    assert alaw_decode(payload) == alaw_decode(alaw_encode(pcm))


def test_writer_sync_leaves_a_playable_file_and_truncate() -> None:
    f = io.BytesIO()
    writer = WavWriter(f, WavFormat.pcm16(2))
    writer.write_frames(bytes(4 * 800))
    writer.sync()
    snapshot = f.getvalue()  # as a crash would leave it
    with wave.open(io.BytesIO(snapshot)) as w:
        assert w.getnframes() == 800
    writer.write_frames(bytes(4 * 800))
    writer.truncate(1000)
    writer.close()
    with wave.open(io.BytesIO(f.getvalue())) as w:
        assert w.getnframes() == 1000
    assert len(f.getvalue()) == 44 + 4000


def test_writer_refuses_misuse() -> None:
    writer = WavWriter(io.BytesIO(), WavFormat.pcm16(2))
    with pytest.raises(ValueError, match="whole number"):
        writer.write_frames(bytes(6))
    with pytest.raises(ValueError, match="cannot keep"):
        writer.truncate(1)

    class Pipe(io.BytesIO):
        def seekable(self) -> bool:
            return False

    with pytest.raises(ValueError, match="seekable"):
        WavWriter(Pipe(), PCM16)
    with pytest.raises(ValueError, match="whole number"):
        wav_bytes(PCM16, b"\0")


def test_writer_starts_at_the_current_position() -> None:
    """A WAV inside a bigger file (e.g. after a prefix) keeps its sizes relative to itself."""
    f = io.BytesIO()
    f.write(b"prefix")
    with WavWriter(f, PCM16) as writer:
        writer.write_frames(bytes(20))
    blob = f.getvalue()[6:]
    assert blob == wav_bytes(PCM16, bytes(20))
