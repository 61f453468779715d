"""Media import (cloudpbx.media.importer): type detection, limits, conversion by SoX.

SoX is a test requirement (scripts/install-system-deps.sh installs it for `make run` and
`make test`): when it is missing these tests fail and say so, they are not skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import shutil
import struct
import subprocess
import time
import wave
from pathlib import Path

import pytest

from cloudpbx.media.codecs import alaw_encode
from cloudpbx.media.importer import (
    ConverterMissingError,
    ImportLimits,
    ImportRefused,
    identify,
    import_audio,
    import_audio_sync,
    probe,
    sox_command,
)
from cloudpbx.media.wavfile import WavFormat, WavWriter, wav_bytes

SOX = shutil.which("sox")


def need_sox() -> str:
    assert SOX, (
        "sox is not installed: run scripts/install-system-deps.sh "
        "(Debian packages sox and libsox-fmt-mp3)"
    )
    return SOX


def sox_make(path: Path, options: str, effects: str) -> Path:
    """``sox -n <options> <path> <effects>``: a generated test input."""
    subprocess.run(
        [need_sox(), "-R", "-n", *options.split(), str(path), *effects.split()], check=True
    )
    return path


def amplitude_at(pcm: bytes, freq: float, rate: int = 8000) -> float:
    """Goertzel: the amplitude of the ``freq`` component of 16-bit mono PCM."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return 2 * math.sqrt(max(s1 * s1 + s2 * s2 - coeff * s1 * s2, 0.0)) / len(samples)


def read_telephony(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return w.readframes(w.getnframes())


def refused(src: Path, tmp_path: Path, limits: ImportLimits | None = None) -> ImportRefused:
    dst = tmp_path / "out.wav"
    with pytest.raises(ImportRefused) as caught:
        import_audio_sync(src, dst, limits)
    assert not dst.exists()  # nothing left behind
    return caught.value


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def flac_header(rate: int, channels: int, bits: int, total: int) -> bytes:
    """fLaC + a last-block STREAMINFO (FLAC format §METADATA_BLOCK_STREAMINFO)."""
    packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + packed.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + bytes([0x80, 0, 0, 34]) + info


# --- type by magic bytes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"RIFF\0\0\0\0WAVEfmt ", "WAV"),
        (b"ID3\x04\0\0\0\0\0\0", "MP3"),
        (b"\xff\xfb\x90\x64" + bytes(8), "MP3"),  # MPEG-1 layer III
        (b"\xff\xf3\x90\x64" + bytes(8), "MP3"),  # MPEG-2 layer III
        (b"\xff\xfd\x90\x64" + bytes(8), "MP3"),  # MPEG-1 layer II
        (b"OggS\0\x02" + bytes(8), "OGG"),
        (b"fLaC\0\0\0\x22" + bytes(8), "FLAC"),
    ],
)
def test_identify_accepted_kinds(head: bytes, kind: str) -> None:
    assert identify(head) == kind


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "not an audio file (looks like a PNG image)"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF\0", "looks like a JPEG image"),
        (b"%PDF-1.7\n%\xe2\xe3", "looks like a PDF document"),
        (b"PK\x03\x04\x14\0\x06\0", "looks like a ZIP archive"),
        (b"\x7fELF\x02\x01\x01\0", "looks like a program"),
        (b"RIFF\0\0\0\0AVI LIST", "looks like an AVI video"),
        (b"Hello, \xd0\xbc\xd0\xb8\xd1\x80!\n", "looks like text"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "AAC audio is not supported"),  # ADTS
        (b"\0\0\0\x20ftypM4A \0\0\0\0", "MP4/M4A (AAC) audio is not supported"),
        (b"FORM\0\0\0\0AIFFCOMM", "AIFF audio is not supported"),
        (b"#!AMR\n" + bytes(6), "AMR audio is not supported"),
        (b"RF64\xff\xff\xff\xffWAVEds64", "RF64"),
        (bytes([0, 1, 2, 3, 250, 251, 252, 253, 9, 10, 11, 12]), "not a supported audio file"),
    ],
)
def test_identify_refuses_with_a_reason(head: bytes, words: str) -> None:
    with pytest.raises(ImportRefused) as caught:
        identify(head)
    assert caught.value.status == 415
    assert words in caught.value.reason


def test_probe_looks_behind_an_id3_tag(tmp_path: Path) -> None:
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0])  # syncsafe size 128
    flac = write(tmp_path, "x", tag + bytes(128) + flac_header(44100, 2, 16, 44100))
    assert probe(flac).kind == "FLAC"
    aac = write(tmp_path, "y", tag + bytes(128) + b"\xff\xf1\x50\x80\x02\x1f\xfc")
    with pytest.raises(ImportRefused, match="AAC"):
        probe(aac)


def test_probe_reads_headers_and_checks_limits(tmp_path: Path) -> None:
    found = probe(write(tmp_path, "a.flac", flac_header(48000, 2, 24, 48000 * 90)))
    assert (found.kind, found.channels, found.seconds) == ("FLAC", 2, 90.0)
    assert found.description == "FLAC, 24-bit, 2 channels, 48000 Hz"
    long = write(tmp_path, "b.flac", flac_header(8000, 1, 16, 8000 * 3601))
    err = refused(long, tmp_path)
    assert (err.status, err.reason) == (413, "1 h 1 s long: longer than the limit of 1 hour")
    wav = wav_bytes(WavFormat.pcm16(1, 8000), bytes(16000))
    assert probe(write(tmp_path, "t.wav", wav)).telephony
    assert not probe(write(tmp_path, "s.wav", wav_bytes(WavFormat.pcm16(2), bytes(64)))).telephony
    nine = wav_bytes(WavFormat.pcm16(9), bytes(18 * 10))
    assert refused(write(tmp_path, "9.wav", nine), tmp_path).status == 415
    big = write(tmp_path, "big.wav", wav)
    err = refused(big, tmp_path, ImportLimits(max_bytes=1024))
    assert (err.status, err.code) == (413, "too_large")
    assert refused(write(tmp_path, "e", b""), tmp_path).reason == "the file is empty"


# --- the SoX command -----------------------------------------------------------------------


def test_sox_command_is_an_argument_vector_with_explicit_types() -> None:
    limits = ImportLimits(max_seconds=3600, timeout=120, memory_bytes=256 << 20)
    args = sox_command(Path("/t/in.part"), Path("/t/out.part"), "mp3", limits)
    assert args == [
        "sox",
        "-V1",
        "--no-glob",
        "-D",
        "-R",
        "-G",
        "-t",
        "mp3",
        "/t/in.part",
        "-t",
        "wav",
        "-r",
        "8000",
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed-integer",
        "/t/out.part",
        "trim",
        "0",
        "3601",
        "channels",
        "1",
        "rate",
        "-h",
        "8000",
    ]
    wrapped = sox_command(
        Path("a"), Path("b"), "flac", limits, sox="/usr/bin/sox", prlimit="/usr/bin/prlimit"
    )
    assert wrapped[:6] == [
        "/usr/bin/prlimit",
        f"--as={256 << 20}",
        "--cpu=120",
        f"--fsize={limits.max_output_bytes + 65536}",
        "--core=0",
        "--",
    ]
    assert wrapped[6] == "/usr/bin/sox"
    normalised = sox_command(Path("a"), Path("b"), "wav", ImportLimits(normalize_dbfs=-3))
    assert "-G" not in normalised
    assert normalised[-3:] == ["gain", "-n", "-3"]


# --- conversion ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("in.mp3", "-r 44100 -c 2"),
        ("in.ogg", "-r 44100 -c 2"),
        ("in.flac", "-r 48000 -c 2 -b 24"),
        ("in.wav", "-r 16000 -c 2 -b 16"),
        ("alaw.wav", "-r 8000 -c 1 -e a-law"),
        ("float.wav", "-r 22050 -c 1 -e floating-point -b 32"),
    ],
)
def test_converts_to_telephony_with_the_tone_intact(
    tmp_path: Path, name: str, options: str
) -> None:
    src = sox_make(tmp_path / name, options, "synth 1 sine 440 vol 0.5")
    dst = tmp_path / "out.wav"
    result = import_audio_sync(src, dst)
    assert result.converted
    pcm = read_telephony(dst)
    assert result.duration_ms == len(pcm) // 16
    assert 1000 <= result.duration_ms <= 1060  # MP3: encoder delay
    assert result.size == dst.stat().st_size == 44 + len(pcm)
    assert result.sha256 == hashlib.sha256(dst.read_bytes()).hexdigest()
    middle = pcm[2000:14000]
    peak = amplitude_at(middle, 440)
    assert peak == pytest.approx(0.5 * 32767, rel=0.1)
    assert max(amplitude_at(middle, f) for f in (220, 880, 1320, 3000)) < peak / 100
    # no dither: converting again gives the very same bytes
    again = import_audio_sync(src, tmp_path / "again.wav")
    assert again.sha256 == result.sha256


def test_our_g711_wav_is_read_by_sox(tmp_path: Path) -> None:
    """Cross-check of wavfile's G.711 layout (fmt 18 + fact) with an independent reader."""
    src = tmp_path / "ours.wav"
    pcm = struct.pack(
        "<8000h", *(round(8000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(8000))
    )
    with src.open("wb") as f, WavWriter(f, WavFormat.g711("alaw")) as writer:
        writer.write_frames(alaw_encode(pcm))
    result = import_audio_sync(src, tmp_path / "out.wav")
    assert result.duration_ms == 1000
    assert amplitude_at(read_telephony(tmp_path / "out.wav"), 1000) == pytest.approx(8000, rel=0.03)


def test_telephony_wav_is_stored_as_uploaded_without_sox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = wav_bytes(WavFormat.pcm16(), bytes(range(256)) * 25)
    src = write(tmp_path, "t.wav", data)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    result = import_audio_sync(src, tmp_path / "out.wav")
    assert not result.converted
    assert (tmp_path / "out.wav").read_bytes() == data
    assert (result.duration_ms, result.size) == (400, len(data))
    stereo = write(tmp_path, "s.wav", wav_bytes(WavFormat.pcm16(2), bytes(64)))
    with pytest.raises(ConverterMissingError, match="sox is not installed"):
        import_audio_sync(stereo, tmp_path / "out2.wav")


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("bad.mp3", b"ID3\x04\x00" + bytes(100), "MP3 could not be decoded: no valid MP3 audio"),
        ("bad2.mp3", b"\xff\xfb\x90\x00" + bytes(100), "MP3 could not be decoded"),
        ("bad.ogg", b"OggS" + bytes(100), "Ogg file without a Vorbis stream"),
        ("bad.flac", b"fLaC" + bytes(100), "corrupt FLAC file"),
        ("bad.wav", b"RIFF\x10\0\0\0WAVEfmt \x10\0\0\0", "corrupt WAV file (truncated fmt chunk)"),
        ("empty.wav", wav_bytes(WavFormat.pcm16(), b""), "the WAV file has no audio"),
    ],
)
def test_corrupt_files_are_refused_with_a_reason(
    tmp_path: Path, name: str, data: bytes, words: str
) -> None:
    err = refused(write(tmp_path, name, data), tmp_path)
    assert err.status == 422
    assert words in err.reason


def test_truncated_inputs(tmp_path: Path) -> None:
    """A cut WAV or FLAC is refused (SoX reports the FLAC one even with exit status 0); a cut
    MP3 is a shorter MP3 (the format is a stream of independent frames)."""
    wav = sox_make(tmp_path / "w.wav", "-r 8000 -c 1 -b 16", "synth 1 sine 440")
    cut = write(tmp_path, "cut.wav", wav.read_bytes()[:3000])
    assert "truncated WAV file (2956 of 16000 bytes" in refused(cut, tmp_path).reason
    flac = sox_make(tmp_path / "f.flac", "-r 48000 -c 2", "synth 1 sine 440")
    cut = write(tmp_path, "cut.flac", flac.read_bytes()[:3000])
    err = refused(cut, tmp_path)
    assert err.status == 422
    assert err.reason.startswith("FLAC could not be decoded: ")
    assert "/" not in err.reason  # no temporary paths in what users read
    mp3 = sox_make(tmp_path / "m.mp3", "-r 44100 -c 2", "synth 1 sine 440")
    cut = write(tmp_path, "cut.mp3", mp3.read_bytes()[:3000])
    assert 0 < import_audio_sync(cut, tmp_path / "out.wav").duration_ms < 500


def test_silence_is_accepted(tmp_path: Path) -> None:
    src = sox_make(tmp_path / "s.ogg", "-r 44100 -c 1", "synth 1 sine 440 vol 0")
    result = import_audio_sync(src, tmp_path / "out.wav")
    assert result.duration_ms == 1000
    assert max(abs(x) for x in struct.unpack("<8000h", read_telephony(tmp_path / "out.wav"))) <= 1


def test_length_limit_applies_to_streams_without_a_length(tmp_path: Path) -> None:
    """MP3/Ogg headers do not say how long they are: SoX's trim stops decoding at the limit
    plus a second, and the result is refused as too long."""
    src = sox_make(tmp_path / "l.mp3", "-r 8000 -c 1", "synth 5 sine 440")
    err = refused(src, tmp_path, ImportLimits(max_seconds=2))
    assert err.status == 413
    assert "longer than the limit of 2 s" in err.reason


def test_resource_limits_stop_the_converter(tmp_path: Path) -> None:
    src = sox_make(tmp_path / "t.flac", "-r 48000 -c 2", "synth 20 sine 440")
    err = refused(src, tmp_path, ImportLimits(timeout=0.001))
    assert err.reason == "FLAC could not be converted within 0.001 s"
    if shutil.which("prlimit"):
        with pytest.raises(ConverterMissingError, match="failed to start"):
            import_audio_sync(src, tmp_path / "o.wav", ImportLimits(memory_bytes=1 << 20))


def test_async_import_does_not_block_the_loop(tmp_path: Path) -> None:
    """The same conversion awaited: a 5 ms ticker keeps running while SoX works."""
    src = sox_make(tmp_path / "long.flac", "-r 48000 -c 2", "synth 120 sine 440")

    async def main() -> tuple[float, float, int]:
        lag = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal lag
            while not done.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.005)
                lag = max(lag, time.perf_counter() - before - 0.005)

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        result = await import_audio(src, tmp_path / "out.wav")
        took = time.perf_counter() - started
        done.set()
        await task
        return lag, took, result.duration_ms

    lag, took, duration_ms = asyncio.run(main())
    assert duration_ms == 120_000
    assert took > 0.1  # there was real work to block on
    assert lag < max(0.05, took / 4)


def test_async_import_refuses_like_the_sync_one(tmp_path: Path) -> None:
    src = write(tmp_path, "bad.mp3", b"ID3\x04\x00" + bytes(100))
    with pytest.raises(ImportRefused, match="MP3 could not be decoded"):
        asyncio.run(import_audio(src, tmp_path / "out.wav"))
    assert not (tmp_path / "out.wav").exists()
    src = sox_make(tmp_path / "t.flac", "-r 48000 -c 2", "synth 20 sine 440")
    with pytest.raises(ImportRefused, match="within"):
        asyncio.run(import_audio(src, tmp_path / "out.wav", ImportLimits(timeout=0.001)))


def test_stdlib_wave_reads_every_output(tmp_path: Path) -> None:
    """The stored files are plain 44-byte-header WAVs that any reader takes."""
    src = sox_make(tmp_path / "x.ogg", "-r 32000 -c 2", "synth 0.3 sine 700")
    import_audio_sync(src, tmp_path / "out.wav")
    blob = (tmp_path / "out.wav").read_bytes()
    assert blob[36:40] == b"data"
    with wave.open(io.BytesIO(blob)) as w:
        assert w.getnframes() == 2400
