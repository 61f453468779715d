"""Media import: an uploaded audio file → the telephony format, 8 kHz mono 16-bit PCM WAV.

Issue 4 item 8. Accepted: WAV (integer PCM 8–32 bit, float, G.711 A-law/μ-law, IMA/MS ADPCM,
GSM 6.10; up to 8 channels; any rate), MP3 (MPEG-1/2 audio layers I–III), Ogg Vorbis and FLAC.
The conversion is done by SoX from Debian (``sox``, ``libsox-fmt-mp3``) in a child process,
never through a shell and never on the event loop: :func:`import_audio` awaits an
``asyncio`` subprocess, :func:`import_audio_sync` (for FastAPI's sync routes, which run in a
worker thread) uses ``subprocess.run`` with the very same arguments (:func:`sox_command`).

The file type is told by its first bytes (:func:`identify`), never by its name, and the header
is read where that is cheap (:func:`probe`: WAV fmt/data, FLAC STREAMINFO, the Ogg Vorbis
identification header) so that too many channels, a truncated WAV or an hour-long FLAC are
refused before any decoding. Everything refused raises :class:`ImportRefused` with an HTTP-ish
status (413 too big or too long, 415 not a format we take, 422 corrupt) and a reason a person
can act on, e.g. "not an audio file (looks like a PNG image)" or "MP3 could not be decoded:
…" with SoX's own words. Silence is audio: a silent file is accepted.

Conversion choices (docs/media-import.md):

* output ``-t wav -b 16 -e signed-integer`` through the effects ``channels 1`` (channels are
  averaged, so a stereo file cannot clip when mixed down) and ``rate -h 8000`` (SoX's
  high-quality resampler, anti-alias low-pass at about 3.8 kHz), named explicitly so that
  the optional normalisation comes after them.
* ``-D`` (no dither): 16-bit quantisation noise is some 40 dB under G.711's own, so dither buys
  nothing on a phone line, and without it the output is deterministic (the same upload gives the
  same bytes and SHA-256) and digital silence stays silent.
* ``-G``: SoX guards against clipping from resampling overshoot by lowering the gain only
  where needed; there is no loudness normalisation by default (a recording keeps its level; a
  quiet file is not pumped up with its hiss). ``ImportLimits.normalize_dbfs`` adds a peak
  normalisation (``gain -n``) for generated prompts.
* ``trim 0 <max + 1 s>`` bounds the decoding of anything whose length the header does not
  tell (MP3, Ogg): the output can never grow past the limit, and anything longer is refused.
* The child runs under ``prlimit`` (util-linux): address space, CPU seconds, output file size,
  no core dumps; a wall-clock timeout kills it.

A WAV already in the telephony format, complete, is stored as uploaded (no SoX needed).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cloudpbx.media.wavfile import WavError, WavInfo, read_info

__all__ = [
    "ACCEPTED",
    "TELEPHONY_RATE",
    "ConverterMissingError",
    "ImportLimits",
    "ImportRefused",
    "ImportResult",
    "Probe",
    "find_sox",
    "identify",
    "import_audio",
    "import_audio_sync",
    "probe",
    "sox_command",
]

TELEPHONY_RATE: Final = 8000
ACCEPTED: Final = "WAV, MP3, Ogg Vorbis or FLAC"
_HEAD: Final = 64
_CHUNK: Final = 1 << 16
_MAX_STDERR: Final = 64 * 1024

# WAV encodings SoX decodes (format tags; WAVE_FORMAT_EXTENSIBLE's sub-format counts).
_WAV_ENCODINGS: Final = frozenset({0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031})


# N818: the agreed public name; "except ImportRefused" reads as what it means.
class ImportRefused(Exception):  # noqa: N818
    """The upload cannot become a media file; ``reason`` says why, for the person uploading.

    ``status`` is the HTTP answer the API gives: 413 (too big or too long), 415 (not a format
    we take) or 422 (corrupt, undecodable); ``code`` the API error code.
    """

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def _too_large(reason: str) -> ImportRefused:
    return ImportRefused(413, "too_large", reason)


def _unsupported(reason: str) -> ImportRefused:
    return ImportRefused(415, "unsupported_media_type", reason)


def _invalid(reason: str) -> ImportRefused:
    return ImportRefused(422, "invalid", reason)


class ConverterMissingError(RuntimeError):
    """SoX is not installed (an installation problem, not the upload's: HTTP 503)."""


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What an import may cost. ``max_bytes`` is the installation's ``max_upload_bytes``."""

    max_bytes: int = 20 * 1024 * 1024
    max_seconds: float = 3600.0
    max_channels: int = 8
    timeout: float = 120.0  # wall clock for one conversion
    memory_bytes: int = 512 * 1024 * 1024  # the converter's address space
    normalize_dbfs: float | None = None  # peak normalisation, off for uploads

    @property
    def max_output_bytes(self) -> int:
        return 44 + 2 * TELEPHONY_RATE * (math.ceil(self.max_seconds) + 2)


@dataclass(frozen=True, slots=True)
class Probe:
    """What the header says about an upload, before any decoding."""

    kind: str  # "WAV" | "MP3" | "OGG" | "FLAC"
    sox_type: str  # the SoX file type (``-t``)
    description: str  # e.g. "WAV, 24-bit PCM, 2 channels, 44100 Hz"
    channels: int | None = None
    seconds: float | None = None  # when the header tells
    telephony: bool = False  # a complete 8 kHz mono 16-bit PCM WAV: store as is

    @property
    def label(self) -> str:
        """The kind as people say it: "Ogg Vorbis" for OGG."""
        return "Ogg Vorbis" if self.kind == "OGG" else self.kind


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The stored file: always an 8 kHz mono 16-bit PCM WAV."""

    path: Path
    size: int
    sha256: str
    duration_ms: int
    source: str  # the probe's description of what was uploaded
    converted: bool  # False: a telephony WAV stored as uploaded


# --- telling the type -----------------------------------------------------------------------

_NOT_AUDIO: Final = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or an Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ", "a Windows program"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"{\\rtf", "an RTF document"),
)
_OTHER_AUDIO: Final = (
    (b"#!AMR", "AMR audio"),
    (b".snd", "Sun/NeXT audio"),
    (b"0&\xb2\x75\x8e\x66\xcf\x11", "WMA/ASF audio"),
    (b"MThd", "a MIDI file"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (b"wvpk", "WavPack audio"),
    (b"MAC ", "Monkey's Audio"),
)


def _mpeg_audio(head: bytes) -> bool:
    """An MPEG-1/2/2.5 audio frame header: 11 sync bits, a valid version and layer."""
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    return (head[1] >> 3) & 3 != 1 and (head[1] >> 1) & 3 != 0


def _adts(head: bytes) -> bool:
    """An AAC ADTS frame header (sync bits with layer 00)."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the head is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return bool(text) and all(c.isprintable() or c in "\r\n\t" for c in text)


def _unsupported_audio(name: str) -> ImportRefused:
    return _unsupported(f"{name} is not supported: upload {ACCEPTED}")


def identify(head: bytes) -> str:
    """The kind of an upload from its first bytes (at least 12, 64 is best): ``"WAV"``,
    ``"MP3"``, ``"OGG"`` or ``"FLAC"``; :class:`ImportRefused` (415) for anything else, naming
    what it looks like. An ID3 tag means MP3 here (:func:`probe` looks behind it)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"RF64" and head[8:12] == b"WAVE":
        raise _unsupported_audio("RF64 (WAV over 4 GiB)")
    if head.startswith(b"ID3") or _mpeg_audio(head):
        return "MP3"
    if head.startswith(b"OggS"):
        return "OGG"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if _adts(head):
        raise _unsupported_audio("AAC audio")
    if head[4:8] == b"ftyp":
        raise _unsupported_audio("MP4/M4A (AAC) audio")
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        raise _unsupported_audio("AIFF audio")
    if head[:4] == b"RIFF":
        what = {b"AVI ": "an AVI video", b"WEBP": "a WebP image"}.get(head[8:12], "a RIFF file")
        raise _unsupported(f"not an audio file (looks like {what})")
    for magic, name in _OTHER_AUDIO:
        if head.startswith(magic):
            raise _unsupported_audio(name)
    for magic, what in _NOT_AUDIO:
        if head.startswith(magic):
            raise _unsupported(f"not an audio file (looks like {what})")
    if _looks_like_text(head):
        raise _unsupported("not an audio file (looks like text)")
    raise _unsupported(f"not a supported audio file ({ACCEPTED} expected)")


# --- reading headers ------------------------------------------------------------------------


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _check_channels(kind: str, channels: int, limits: ImportLimits) -> None:
    if channels > limits.max_channels:
        raise _unsupported(
            f"{kind} with {channels} channels: at most {limits.max_channels} are accepted"
        )


def _check_seconds(seconds: float, limits: ImportLimits) -> None:
    if seconds > limits.max_seconds:
        raise _too_large(
            f"{_duration_text(seconds)} long: longer than the limit of "
            f"{_duration_text(limits.max_seconds)}"
        )


def _duration_text(seconds: float) -> str:
    """3600 → "1 hour", 3601 → "1 h 1 s", 150 → "2 min 30 s", 2.25 → "2.2 s"."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return _plural(int(seconds // 3600), "hour")
    if seconds < 60:
        return f"{round(seconds, 1):g} s"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    parts.append(f"{secs} s" if secs else "")
    return " ".join(part for part in parts if part)


def _probe_wav(path: Path, limits: ImportLimits) -> Probe:
    try:
        with path.open("rb") as f:
            info = read_info(f)
    except WavError as exc:
        raise _invalid(f"corrupt WAV file ({exc})") from exc
    fmt = info.format
    desc = f"WAV, {fmt.name}, {_plural(fmt.channels, 'channel')}, {fmt.sample_rate} Hz"
    if fmt.encoding not in _WAV_ENCODINGS:
        raise _unsupported(
            f"WAV encoding {fmt.name} is not supported: use PCM, float, A-law or μ-law"
        )
    _check_channels("WAV", fmt.channels, limits)
    if not 1000 <= fmt.sample_rate <= 384_000:
        raise _invalid(f"corrupt WAV file (sample rate {fmt.sample_rate} Hz)")
    if info.truncated:
        raise _invalid(
            f"truncated WAV file ({info.available} of {info.declared_size} bytes of audio present)"
        )
    if info.data_size == 0:
        raise _invalid("the WAV file has no audio")
    seconds = _wav_seconds(info)
    if seconds is not None:
        _check_seconds(seconds, limits)
    telephony = fmt.is_telephony and not info.streamed and info.data_size % 2 == 0
    return Probe("WAV", "wav", desc, fmt.channels, seconds, telephony)


def _wav_seconds(info: WavInfo) -> float | None:
    if info.frames:
        return info.frames / info.format.sample_rate
    return None  # ADPCM/GSM without a fact chunk: SoX's trim bounds it


def _id3_size(head: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start (ID3v2.4 §3.1: syncsafe size, footer flag)."""
    if len(head) < 10 or not head.startswith(b"ID3"):
        return 0
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)


def _probe_mp3(path: Path, head: bytes) -> Probe:
    skip = _id3_size(head)
    after = _read_at(path, skip, 8) if skip else head
    if skip and after.startswith(b"fLaC"):
        return Probe("FLAC", "flac", "FLAC with an ID3 tag")
    if _adts(after) and not _mpeg_audio(after):
        raise _unsupported_audio("AAC audio")
    # anything else is left to the decoder, which says what is wrong with it
    return Probe("MP3", "mp3", "MP3", None)


def _probe_ogg(head: bytes, limits: ImportLimits) -> Probe:
    """RFC 3533 page header (27 bytes + segment table), then the first packet: Vorbis I §4.2.2
    identification header (``\\x01vorbis``, version, channels, rate)."""
    if len(head) < 28:
        raise _invalid("corrupt Ogg file (shorter than one page header)")
    packet = head[27 + head[26] :]
    if packet.startswith(b"\x01vorbis") and len(packet) >= 16:
        channels = packet[11]
        rate = int.from_bytes(packet[12:16], "little")
        _check_channels("Ogg Vorbis", channels, limits)
        return Probe(
            "OGG", "ogg", f"Ogg Vorbis, {_plural(channels, 'channel')}, {rate} Hz", channels
        )
    for magic, name in (
        (b"OpusHead", "Ogg Opus"),
        (b"Speex", "Ogg Speex"),
        (b"\x7fFLAC", "Ogg FLAC"),
    ):
        if packet.startswith(magic):
            raise _unsupported_audio(name)
    if packet.startswith((b"\x80theora", b"\x01video")):
        raise _unsupported("not an audio file (looks like an Ogg video)")
    raise _invalid("Ogg file without a Vorbis stream (corrupt or not audio)")


def _probe_flac(head: bytes, limits: ImportLimits) -> Probe:
    """FLAC format: ``fLaC``, then the STREAMINFO block (type 0, 34 bytes): 20-bit rate,
    3-bit channels - 1, 5-bit bits - 1, 36-bit total samples (0 = unknown)."""
    if len(head) < 8 + 34 or head[4] & 0x7F != 0:
        raise _invalid("corrupt FLAC file (no STREAMINFO block)")
    info = int.from_bytes(head[18:26], "big")
    rate = info >> 44
    channels = ((info >> 41) & 0x7) + 1
    bits = ((info >> 36) & 0x1F) + 1
    total = info & 0xFFFFFFFFF
    if rate == 0:
        raise _invalid("corrupt FLAC file (sample rate 0 Hz)")
    _check_channels("FLAC", channels, limits)
    seconds = total / rate if total else None
    if seconds is not None:
        _check_seconds(seconds, limits)
    desc = f"FLAC, {bits}-bit, {_plural(channels, 'channel')}, {rate} Hz"
    return Probe("FLAC", "flac", desc, channels, seconds)


def probe(path: Path, limits: ImportLimits | None = None) -> Probe:
    """Identify an upload and check what its header tells against ``limits``."""
    limits = limits or ImportLimits()
    size = path.stat().st_size
    if size == 0:
        raise _invalid("the file is empty")
    if size > limits.max_bytes:
        raise _too_large(f"larger than the upload limit of {limits.max_bytes} bytes")
    head = _read_at(path, 0, _HEAD)
    kind = identify(head)
    if kind == "WAV":
        return _probe_wav(path, limits)
    if kind == "MP3":
        return _probe_mp3(path, head)
    if kind == "OGG":
        return _probe_ogg(head, limits)
    return _probe_flac(head, limits)


# --- converting -----------------------------------------------------------------------------


def find_sox() -> str:
    """The ``sox`` executable; :class:`ConverterMissingError` when it is not installed."""
    sox = shutil.which("sox")
    if sox is None:
        raise ConverterMissingError(
            "media conversion is unavailable: sox is not installed "
            "(Debian: apt-get install sox libsox-fmt-mp3)"
        )
    return sox


def sox_command(
    src: Path,
    dst: Path,
    sox_type: str,
    limits: ImportLimits,
    *,
    sox: str = "sox",
    prlimit: str | None = None,
) -> list[str]:
    """The argument vector (no shell) converting ``src`` of SoX type ``sox_type`` to ``dst``,
    shared by the async and the sync path. ``prlimit`` (util-linux) wraps it in limits."""
    args = [sox, "-V1", "--no-glob", "-D", "-R"]
    if limits.normalize_dbfs is None:
        args.append("-G")
    args += ["-t", sox_type, str(src)]
    args += ["-t", "wav", "-r", str(TELEPHONY_RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
    # the effects, in order: stop decoding past the limit, mix down, resample, [normalise]
    args += [str(dst), "trim", "0", f"{limits.max_seconds + 1:g}"]
    args += ["channels", "1", "rate", "-h", str(TELEPHONY_RATE)]
    if limits.normalize_dbfs is not None:
        args += ["gain", "-n", f"{limits.normalize_dbfs:g}"]
    if prlimit is None:
        return args
    return [
        prlimit,
        f"--as={limits.memory_bytes}",
        f"--cpu={math.ceil(limits.timeout)}",
        f"--fsize={limits.max_output_bytes + _CHUNK}",
        "--core=0",
        "--",
        *args,
    ]


def _command(src: Path, dst: Path, found: Probe, limits: ImportLimits) -> list[str]:
    return sox_command(
        src, dst, found.sox_type, limits, sox=find_sox(), prlimit=shutil.which("prlimit")
    )


def _sox_detail(stderr: str, paths: Sequence[Path]) -> str:
    """SoX's complaint, made readable: no "sox FAIL formats:" prefix, no temporary paths."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    failing = [line for line in lines if " FAIL " in line] or lines
    text = "; ".join(failing)
    for path in paths:
        text = text.replace(str(path), "")
    text = re.sub(r"(?:\S*/)?sox (?:FAIL|WARN) [\w-]+: ", "", text)
    text = re.sub(r" ?`[^']*'", "", text)
    text = text.replace("can't open input file", "").strip(" :;")
    text = re.sub(r":? ?Invalid argument$", "", text).strip(" :;")
    return text[:300]


def _refusal(found: Probe, returncode: int, stderr: str, paths: Sequence[Path]) -> None:
    """Raise for a failed conversion; SoX also reports some decoding errors with status 0."""
    failed = " FAIL " in stderr
    if returncode == 0 and not failed:
        return
    if returncode in (126, 127):  # the loader or prlimit could not start SoX: our problem
        raise ConverterMissingError(f"media conversion failed to start: {stderr.strip()[:300]}")
    if returncode < 0 or returncode > 128:
        raise _invalid(f"{found.label} could not be converted: the converter exceeded its limits")
    detail = _sox_detail(stderr, paths) or f"no valid {found.label} audio found"
    raise _invalid(f"{found.label} could not be decoded: {detail}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _finish(dst: Path, found: Probe, limits: ImportLimits, converted: bool) -> ImportResult:
    """Check what was produced and describe it."""
    try:
        with dst.open("rb") as f:
            info = read_info(f)
    except (OSError, WavError) as exc:
        raise _invalid(f"{found.label} could not be decoded: no audio came out ({exc})") from exc
    if not info.format.is_telephony or info.truncated:
        raise _invalid(f"{found.label} could not be converted to 8 kHz mono 16-bit PCM")
    if info.frames == 0:
        raise _invalid(f"{found.label} could not be decoded: it holds no audio")
    _check_seconds(info.frames / TELEPHONY_RATE, limits)
    return ImportResult(
        path=dst,
        size=dst.stat().st_size,
        sha256=_sha256(dst),
        duration_ms=info.duration_ms,
        source=found.description,
        converted=converted,
    )


def _timed_out(found: Probe, limits: ImportLimits) -> ImportRefused:
    return _invalid(f"{found.label} could not be converted within {limits.timeout:g} s")


# Sync conversions at once (FastAPI runs sync routes in a pool of 40 threads).
_SLOTS: Final = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


def import_audio_sync(src: Path, dst: Path, limits: ImportLimits | None = None) -> ImportResult:
    """Convert ``src`` into ``dst`` (an 8 kHz mono 16-bit WAV), blocking: for worker threads.

    Raises :class:`ImportRefused` (the upload's fault) or :class:`ConverterMissingError`. ``dst``
    is removed again when the import is refused.
    """
    limits = limits or ImportLimits()
    found = probe(src, limits)
    try:
        if found.telephony:
            shutil.copyfile(src, dst)
            return _finish(dst, found, limits, converted=False)
        command = _command(src, dst, found, limits)
        with _SLOTS:
            try:
                done = subprocess.run(  # noqa: S603 - a fixed argument vector, no shell
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    timeout=limits.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:  # run() has killed it
                raise _timed_out(found, limits) from exc
        stderr = done.stderr[:_MAX_STDERR].decode("utf-8", "replace")
        _refusal(found, done.returncode, stderr, (src, dst))
        return _finish(dst, found, limits, converted=True)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


async def import_audio(src: Path, dst: Path, limits: ImportLimits | None = None) -> ImportResult:
    """As :func:`import_audio_sync`, for the event loop: SoX runs as an asyncio subprocess and
    the file reads (header probe, hash) run in a worker thread."""
    limits = limits or ImportLimits()
    found = await asyncio.to_thread(probe, src, limits)
    try:
        if found.telephony:
            await asyncio.to_thread(shutil.copyfile, src, dst)
            return await asyncio.to_thread(_finish, dst, found, limits, False)
        command = _command(src, dst, found, limits)
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), limits.timeout)
        except TimeoutError as exc:
            raise _timed_out(found, limits) from exc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = err[:_MAX_STDERR].decode("utf-8", "replace")
        _refusal(found, proc.returncode or 0, stderr, (src, dst))
        return await asyncio.to_thread(_finish, dst, found, limits, True)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
