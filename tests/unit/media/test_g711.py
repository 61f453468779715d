"""G.711 (cloudpbx.media.codecs.g711): ITU reference behaviour, error bounds, speed, signal."""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
import timeit
import warnings
from array import array
from operator import mul
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudpbx.media.codecs import (
    ALAW_DECODE,
    ALAW_SILENCE,
    ALAW_TO_ULAW,
    PCMA,
    PCMU,
    ULAW_DECODE,
    ULAW_SILENCE,
    ULAW_TO_ALAW,
    alaw_decode,
    alaw_decode_sample,
    alaw_encode,
    alaw_encode_sample,
    alaw_to_ulaw,
    codec_by_name,
    codec_by_payload_type,
    transcoder,
    ulaw_decode,
    ulaw_decode_sample,
    ulaw_encode,
    ulaw_encode_sample,
    ulaw_to_alaw,
)
from cloudpbx.media.tones import dbm0_to_amplitude

ALL_SAMPLES = range(-32768, 32768)
ALL_PCM = struct.pack(f"<{len(ALL_SAMPLES)}h", *ALL_SAMPLES)


# --- an independent port of the ITU-T G.191 STL reference (ulaw_compress / alaw_compress) ---


def stl_ulaw_compress(x: int) -> int:
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    code = (high_nibble << 4) | low_nibble
    return code | 0x80 if x >= 0 else code


def stl_alaw_compress(x: int) -> int:
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def stl_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x07
    segment = exponent + 1
    mantissa &= 0x0F
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


def stl_alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0x0F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def pcm(samples: list[int] | range) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def unpcm(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


# --- code points ---------------------------------------------------------------------------


def test_known_code_points() -> None:
    # μ-law: 0xFF / 0x7F are the two zeros, 0x80 / 0x00 the extremes (G.711 Table 2a)
    assert ULAW_DECODE[0xFF] == 0
    assert ULAW_DECODE[0x7F] == 0
    assert ULAW_DECODE[0x80] == 32124
    assert ULAW_DECODE[0x00] == -32124
    assert ULAW_DECODE[0xFE] == 8
    assert ULAW_DECODE[0x7E] == -8
    # A-law: even bits inverted; 0xD5 / 0x55 are ±8 (the smallest level), 0xAA / 0x2A ±32256
    assert ALAW_DECODE[0xD5] == 8
    assert ALAW_DECODE[0x55] == -8
    assert ALAW_DECODE[0xAA] == 32256
    assert ALAW_DECODE[0x2A] == -32256
    assert ulaw_encode_sample(0) == ULAW_SILENCE == 0xFF
    assert alaw_encode_sample(0) == ALAW_SILENCE == 0xD5
    assert ulaw_encode_sample(-1) == 0x7F  # one's complement: -1 is "negative zero"
    assert alaw_encode_sample(-1) == 0x55
    assert ulaw_encode_sample(32767) == 0x80
    assert ulaw_encode_sample(-32768) == 0x00
    assert alaw_encode_sample(32767) == 0xAA
    assert alaw_encode_sample(-32768) == 0x2A
    assert ulaw_decode_sample(0x80) == 32124
    assert alaw_decode_sample(0xD5) == 8


@pytest.mark.parametrize(
    ("decode", "sequence"),
    [
        (ulaw_decode, bytes.fromhex("1E0B0B1E9E8B8B9E")),  # G.711 Table 5: μ-law
        (alaw_decode, bytes.fromhex("34212134B4A1A1B4")),  # Table 6: A-law
    ],
)
def test_digital_milliwatt_is_1khz_at_0_dbm0(decode: object, sequence: bytes) -> None:
    """The standard's periodic sequences decode to a 1 kHz sine of 0 dBm0 (our level scale)."""
    assert callable(decode)
    values = unpcm(decode(sequence))
    assert values[:4] == [-v for v in values[4:]]  # half-period antisymmetry: 8 samples = 1 ms
    rms = math.sqrt(sum(v * v for v in values) / len(values))
    level = 20 * math.log10(rms * math.sqrt(2) / dbm0_to_amplitude(0.0))
    assert abs(level) < 0.1


def test_decode_tables_match_the_stl_reference() -> None:
    assert list(ULAW_DECODE) == [stl_ulaw_expand(c) for c in range(256)]
    assert list(ALAW_DECODE) == [stl_alaw_expand(c) for c in range(256)]


def test_encode_matches_the_stl_reference_for_every_16_bit_input() -> None:
    assert ulaw_encode(ALL_PCM) == bytes(stl_ulaw_compress(x) for x in ALL_SAMPLES)
    assert alaw_encode(ALL_PCM) == bytes(stl_alaw_compress(x) for x in ALL_SAMPLES)
    assert all(ulaw_encode_sample(x) == stl_ulaw_compress(x) for x in range(-40, 40))
    assert all(alaw_encode_sample(x) == stl_alaw_compress(x) for x in range(-40, 40))


def _audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop  # gone in Python 3.13
        except ImportError:
            return None
    return audioop


@pytest.mark.skipif(_audioop() is None, reason="audioop removed from this Python")
def test_against_audioop_where_it_still_exists() -> None:
    """A-law is bit-exact; μ-law differs (Sun negates, the ITU reference complements) by one
    step, only for negative inputs."""
    audioop = _audioop()
    assert audioop is not None
    assert audioop.lin2alaw(ALL_PCM, 2) == alaw_encode(ALL_PCM)
    assert audioop.ulaw2lin(bytes(range(256)), 2) == ulaw_decode(bytes(range(256)))
    assert audioop.alaw2lin(bytes(range(256)), 2) == alaw_decode(bytes(range(256)))
    theirs = audioop.lin2ulaw(ALL_PCM, 2)
    ours = ulaw_encode(ALL_PCM)
    for x, a, b in zip(ALL_SAMPLES, theirs, ours, strict=True):
        if x >= 0:
            assert a == b
        elif a != b:
            assert abs(a - b) == 1, x  # adjacent code words (same sign)


# --- quantisation error, monotonicity, symmetry ---------------------------------------------


def test_round_trip_error_is_at_most_half_a_step_for_every_input() -> None:
    u = ulaw_decode(ulaw_encode(ALL_PCM))
    a = alaw_decode(alaw_encode(ALL_PCM))
    ucodes, acodes = ulaw_encode(ALL_PCM), alaw_encode(ALL_PCM)
    for x, yu, cu, ya, ca in zip(ALL_SAMPLES, unpcm(u), ucodes, unpcm(a), acodes, strict=True):
        exponent_u = ((cu ^ 0xFF) >> 4) & 7  # step 8 << e
        if abs(x) <= 32124:
            assert abs(yu - x) <= 4 << exponent_u, x
        else:  # clipped to the largest level
            assert yu == math.copysign(32124, x)
        exponent_a = ((ca ^ 0x55) >> 4) & 7  # step 16 << max(e - 1, 0)
        if abs(x) <= 32256:
            assert abs(ya - x) <= 8 << max(exponent_a - 1, 0), x
        else:
            assert ya == math.copysign(32256, x)


def test_quantisers_are_monotonic() -> None:
    u = unpcm(ulaw_decode(ulaw_encode(ALL_PCM)))
    a = unpcm(alaw_decode(alaw_encode(ALL_PCM)))
    assert all(p <= q for p, q in itertools.pairwise(u))
    assert all(p <= q for p, q in itertools.pairwise(a))
    assert len(set(u)) == 255  # 256 code words, two of them zero
    assert len(set(a)) == 256


def test_exact_symmetry() -> None:
    for code in range(256):
        assert ULAW_DECODE[code ^ 0x80] == -ULAW_DECODE[code]
        assert ALAW_DECODE[code ^ 0x80] == -ALAW_DECODE[code]
    for x in range(0, 32768):  # ~x mirrors x; the code differs only in the sign bit
        assert ulaw_encode_sample(~x) == ulaw_encode_sample(x) ^ 0x80
        assert alaw_encode_sample(~x) == alaw_encode_sample(x) ^ 0x80


def test_decoded_values_encode_back_to_their_code() -> None:
    for code in range(256):
        expected = 0xFF if code == 0x7F else code  # "negative zero" becomes zero
        assert ulaw_encode_sample(ULAW_DECODE[code]) == expected
        assert alaw_encode_sample(ALAW_DECODE[code]) == code


# --- transcoding ---------------------------------------------------------------------------


def test_transcoding_tables_are_g711_tables_3_and_4() -> None:
    # digests of the standard's tables as published with spandsp (independently transcribed)
    assert (
        hashlib.sha256(ULAW_TO_ALAW).hexdigest()
        == "021355cc78820e9e43a87564118844f4b6e443f355675db65083435a181e3f61"
    )
    assert (
        hashlib.sha256(ALAW_TO_ULAW).hexdigest()
        == "c1515c134eca6f1dd608e1bdf78e3e66c83d349952ab8b966ae41dad8f230c0a"
    )
    assert ULAW_TO_ALAW[0xFF] == 0xD5
    assert ULAW_TO_ALAW[0x80] == 0xAA
    assert ALAW_TO_ULAW[0xD5] == 0xFE  # +8 → +8
    assert ALAW_TO_ULAW[0xAA] == 0x80


def _step_u(code: int) -> int:
    return 8 << (((code ^ 0xFF) >> 4) & 7)


def _step_a(code: int) -> int:
    return 16 << max((((code ^ 0x55) >> 4) & 7) - 1, 0)


def test_transcoding_keeps_sign_order_and_level() -> None:
    for u in range(256):
        a = ULAW_TO_ALAW[u]
        assert (a & 0x80) == (u & 0x80)
        assert abs(ALAW_DECODE[a] - ULAW_DECODE[u]) <= _step_a(a)
    for a in range(256):
        u = ALAW_TO_ULAW[a]
        assert (a & 0x80) == (u & 0x80)
        assert abs(ULAW_DECODE[u] - ALAW_DECODE[a]) <= _step_u(u)
    by_level = sorted(range(256), key=ULAW_DECODE.__getitem__)
    transcoded = [ALAW_DECODE[ULAW_TO_ALAW[u]] for u in by_level]
    assert transcoded == sorted(transcoded)


def test_transcode_frames() -> None:
    frame = ulaw_encode(pcm([round(8000 * math.sin(i / 7)) for i in range(160)]))
    assert ulaw_to_alaw(frame) == bytes(ULAW_TO_ALAW[c] for c in frame)
    assert alaw_to_ulaw(bytearray(frame)) == bytes(ALAW_TO_ULAW[c] for c in frame)
    assert transcoder("PCMU", "pcma") is ulaw_to_alaw
    assert transcoder("PCMA", "PCMU") is alaw_to_ulaw
    assert transcoder("pcmu", "PCMU")(frame) == frame


# --- frame API -----------------------------------------------------------------------------


@given(st.lists(st.integers(-32768, 32767), max_size=400))
def test_frame_api_equals_per_sample_api(samples: list[int]) -> None:
    data = pcm(samples)
    assert ulaw_encode(data) == bytes(ulaw_encode_sample(x) for x in samples)
    assert alaw_encode(memoryview(data)) == bytes(alaw_encode_sample(x) for x in samples)
    codes = bytes(ulaw_encode_sample(x) for x in samples)
    assert unpcm(ulaw_decode(codes)) == [ULAW_DECODE[c] for c in codes]
    assert unpcm(alaw_decode(bytearray(codes))) == [ALAW_DECODE[c] for c in codes]


def test_frame_api_edges() -> None:
    assert ulaw_encode(b"") == b""
    assert alaw_decode(b"") == b""
    with pytest.raises(ValueError, match="even length"):
        ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="16-bit"):
        alaw_encode_sample(40000)
    # a memoryview with another format and an unaligned slice still work
    ints = array("h", [1000, -1000, 5, -5])
    assert ulaw_encode(memoryview(ints)) == bytes(ulaw_encode_sample(x) for x in ints)
    assert alaw_encode(pcm([0, 1000, -1000])[2:]) == bytes(
        alaw_encode_sample(x) for x in (1000, -1000)
    )


def test_codec_descriptors() -> None:
    assert (PCMU.name, PCMU.payload_type, PCMU.clock_rate) == ("PCMU", 0, 8000)
    assert (PCMA.name, PCMA.payload_type) == ("PCMA", 8)
    assert codec_by_name("pcmu") is PCMU
    assert codec_by_payload_type(8) is PCMA
    assert PCMU.silence_frame() == b"\xff" * 160
    assert PCMA.silence_frame(80) == b"\xd5" * 80
    assert PCMA.decode(PCMA.silence_frame(2)) == pcm([8, 8])
    with pytest.raises(KeyError):
        codec_by_name("G729")


# --- signal level ------------------------------------------------------------------------


def tone(freq: float, level_dbm0: float, count: int = 8000) -> list[int]:
    amplitude = dbm0_to_amplitude(level_dbm0)
    return [round(amplitude * math.sin(2 * math.pi * freq * n / 8000)) for n in range(count)]


def power_at(samples: list[int], freq: float) -> float:
    w = 2 * math.pi * freq / 8000
    re = sum(map(mul, samples, [math.cos(w * n) for n in range(len(samples))]))
    im = sum(map(mul, samples, [math.sin(w * n) for n in range(len(samples))]))
    return float(re * re + im * im)


def snr_db(reference: list[int], received: list[int]) -> float:
    noise = sum((a - b) ** 2 for a, b in zip(reference, received, strict=True))
    return 10 * math.log10(sum(a * a for a in reference) / noise)


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
@pytest.mark.parametrize(("level", "min_snr"), [(-10.0, 35.0), (-30.0, 33.0), (0.0, 35.0)])
def test_1khz_tone_survives_the_codec(law: str, level: float, min_snr: float) -> None:
    """G.712-style check: signal-to-quantisation-noise of a 1 kHz (well, 1020 Hz) sine."""
    codec = codec_by_name(law)
    x = tone(1020, level)
    y = unpcm(codec.decode(codec.encode(pcm(x))))
    assert snr_db(x, y) >= min_snr
    scan = {f: power_at(y[:1600], f) for f in range(100, 4000, 40)}
    assert max(scan, key=scan.__getitem__) == 1020


def test_transcoded_tone_keeps_frequency_and_level() -> None:
    x = tone(1020, -10.0)
    via_alaw = unpcm(alaw_decode(ulaw_to_alaw(ulaw_encode(pcm(x)))))
    assert snr_db(x, via_alaw) >= 30.0
    ratio = power_at(via_alaw[:1600], 1020) / power_at(x[:1600], 1020)
    assert abs(10 * math.log10(ratio)) < 0.2


# --- speed ---------------------------------------------------------------------------------


def test_a_20ms_frame_takes_microseconds() -> None:
    """Guard against per-sample Python creeping in (the real numbers are ~3 µs and < 1 µs)."""
    frame = pcm(tone(440, -10.0, 160))
    coded = ulaw_encode(frame)
    n = 2000
    encode = timeit.timeit(lambda: ulaw_encode(frame), number=n) / n
    decode = timeit.timeit(lambda: ulaw_decode(coded), number=n) / n
    transcode = timeit.timeit(lambda: ulaw_to_alaw(coded), number=n) / n
    assert encode < 50e-6
    assert decode < 20e-6
    assert transcode < 10e-6
