"""ITU-T G.711 μ-law (PCMU) and A-law (PCMA), table driven, pure Python (no ``audioop``).

Linear audio is 16-bit signed little-endian PCM (``bytes``, 2 bytes a sample); G.711 audio is
one byte a sample. Everything is precomputed once at import:

* decoding: the 256 code words' linear values (G.711 Tables 1a/2a), applied with two
  ``bytes.translate`` calls (low and high byte of the result) and an interleaving slice
  assignment — well under 1 µs for a 20 ms frame;
* encoding: a 65536-entry table indexed by the raw 16-bit sample (the μ-law result only depends
  on the top 14 bits and the A-law one on the top 13, so the tables are built from 16384- and
  8192-entry ones), applied with one ``operator.itemgetter`` call over a ``memoryview`` cast —
  about 4 µs a frame;
* transcoding: G.711 Tables 3 and 4 (direct μ-law ↔ A-law, not a decode/encode round trip),
  one ``bytes.translate``.

Encoding follows the ITU-T G.191 reference software (STL ``g711.c``): a negative sample is
quantised through its one's complement (``~x``), which makes both laws exactly symmetric
(``encode(~x) == encode(x) ^ 0x80``). A-law is bit-exact with the classic Sun ``g711.c`` and the
old ``audioop``; for μ-law those two use ``-x`` instead and differ from the ITU reference by one
step for some negative inputs. Decoding is the same everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Final

__all__ = [
    "ALAW_DECODE",
    "ALAW_SILENCE",
    "ALAW_TO_ULAW",
    "PCMA",
    "PCMU",
    "ULAW_DECODE",
    "ULAW_SILENCE",
    "ULAW_TO_ALAW",
    "BytesLike",
    "G711Codec",
    "alaw_decode",
    "alaw_decode_sample",
    "alaw_encode",
    "alaw_encode_sample",
    "alaw_to_ulaw",
    "codec_by_name",
    "codec_by_payload_type",
    "transcoder",
    "ulaw_decode",
    "ulaw_decode_sample",
    "ulaw_encode",
    "ulaw_encode_sample",
    "ulaw_to_alaw",
]

BytesLike = bytes | bytearray | memoryview

#: The code words for a zero sample: μ-law 0xFF ("positive zero"), A-law 0xD5 (+8).
ULAW_SILENCE: Final = 0xFF
ALAW_SILENCE: Final = 0xD5


# --- reference quantisers (G.711 §§2-3, as coded in ITU-T G.191 STL ulaw_/alaw_compress) ----


def _ulaw_compress14(x14: int) -> int:
    """μ-law code word for a signed 14-bit sample (G.711 Table 2a decision values)."""
    magnitude = x14 if x14 >= 0 else ~x14  # one's complement for negative samples
    biased = min(magnitude + 33, 0x1FFF)  # 33: offset between the A-law and μ-law thresholds
    segment = biased.bit_length() - 5  # 1..8 (biased >= 33 has at least 6 bits)
    mantissa = (biased >> segment) & 0x0F
    code = ((8 - segment) << 4) | (0x0F - mantissa)  # code words are sent inverted
    return code | 0x80 if x14 >= 0 else code


def _alaw_compress13(x13: int) -> int:
    """A-law code word for a signed 13-bit sample (G.711 Table 1a decision values)."""
    magnitude = (x13 if x13 >= 0 else ~x13) >> 1  # 12-bit magnitude, one's complement
    if magnitude > 15:
        exponent = magnitude.bit_length() - 4  # 1..7
        magnitude = (exponent << 4) | ((magnitude >> (exponent - 1)) & 0x0F)
    code = magnitude | 0x80 if x13 >= 0 else magnitude
    return code ^ 0x55  # even bits inverted on the line


def _ulaw_expand(code: int) -> int:
    """16-bit linear value of a μ-law code word (G.711 Table 2a, scaled by 4)."""
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    value = ((((inverted & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return -value if inverted & 0x80 else value


def _alaw_expand(code: int) -> int:
    """16-bit linear value of an A-law code word (G.711 Table 1a, scaled by 8)."""
    toggled = code ^ 0x55
    exponent = (toggled >> 4) & 0x07
    mantissa = toggled & 0x0F
    # segment 0 has no implied leading one; each higher segment doubles the step
    value = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return value if toggled & 0x80 else -value


# --- tables -------------------------------------------------------------------------------

#: Linear value (16-bit scale) of every code word; ULAW_DECODE[0xFF] == 0, ALAW_DECODE[0xD5] == 8.
ULAW_DECODE: Final[tuple[int, ...]] = tuple(_ulaw_expand(c) for c in range(256))
ALAW_DECODE: Final[tuple[int, ...]] = tuple(_alaw_expand(c) for c in range(256))

# Encoders on the significant bits only: μ-law is indexed by (sample >> 2) & 0x3FFF,
# A-law by (sample >> 3) & 0x1FFF (the index read as a signed 14- / 13-bit number).
_ULAW_ENCODE14: Final = bytes(_ulaw_compress14(v - (v & 0x2000) * 2) for v in range(0x4000))
_ALAW_ENCODE13: Final = bytes(_alaw_compress13(v - (v & 0x1000) * 2) for v in range(0x2000))


def _widen(table: bytes, shift: int) -> bytes:
    """Index by the unsigned 16-bit sample: entry u is ``table[u >> shift]``."""
    out = bytearray(0x10000)
    for k in range(1 << shift):
        out[k :: 1 << shift] = table
    return bytes(out)


def _native_order(table: bytes) -> bytes:
    """Re-index a little-endian-sample table by the host's ``memoryview.cast('H')`` value."""
    if sys.byteorder == "little":
        return table
    return bytes(table[((i & 0xFF) << 8) | (i >> 8)] for i in range(0x10000))


# Lists: the fastest container for C-level indexing.
_ULAW_ENCODE: Final[list[int]] = list(_native_order(_widen(_ULAW_ENCODE14, 2)))
_ALAW_ENCODE: Final[list[int]] = list(_native_order(_widen(_ALAW_ENCODE13, 3)))

_ULAW_DEC_LO: Final = bytes(v & 0xFF for v in ULAW_DECODE)
_ULAW_DEC_HI: Final = bytes((v >> 8) & 0xFF for v in ULAW_DECODE)
_ALAW_DEC_LO: Final = bytes(v & 0xFF for v in ALAW_DECODE)
_ALAW_DEC_HI: Final = bytes((v >> 8) & 0xFF for v in ALAW_DECODE)

# G.711 Table 3 (μ-law → A-law) and Table 4 (A-law → μ-law), by magnitude: entry k is the
# target "magnitude index" (0 = the smallest level, 127 = the largest) for source index k.
# These are the standard's tables (with the 1994 erratum for μ 80 and A 79 applied), not
# decode-then-encode: they differ from it for 44 μ-law and 32 A-law code words.
# fmt: off
_U2A_MAGNITUDE: Final = (
    0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
    8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
    24, 26, 28, 30, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    45, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78,
    79, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
)
_A2U_MAGNITUDE: Final = (
    1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23,
    24, 25, 26, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35,
    36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 48, 49, 49,
    50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64,
    65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
)
# fmt: on


def _ulaw_index(code: int) -> tuple[int, bool]:
    """(magnitude index, positive) of a μ-law code word: 0xFF/0x7F are index 0."""
    return (code ^ 0xFF) & 0x7F, bool(code & 0x80)


def _alaw_index(code: int) -> tuple[int, bool]:
    """(magnitude index, positive) of an A-law code word: 0xD5/0x55 are index 0."""
    return (code ^ 0x55) & 0x7F, bool(code & 0x80)


def _ulaw_code(index: int, positive: bool) -> int:
    return (index ^ 0x7F) | (0x80 if positive else 0)


def _alaw_code(index: int, positive: bool) -> int:
    return (index | (0x80 if positive else 0)) ^ 0x55


def _build_u2a() -> bytes:
    out = bytearray(256)
    for code in range(256):
        index, positive = _ulaw_index(code)
        out[code] = _alaw_code(_U2A_MAGNITUDE[index], positive)
    return bytes(out)


def _build_a2u() -> bytes:
    out = bytearray(256)
    for code in range(256):
        index, positive = _alaw_index(code)
        out[code] = _ulaw_code(_A2U_MAGNITUDE[index], positive)
    return bytes(out)


#: ``bytes.translate`` tables for direct transcoding (G.711 Tables 3 and 4).
ULAW_TO_ALAW: Final = _build_u2a()
ALAW_TO_ULAW: Final = _build_a2u()


# --- frame API ----------------------------------------------------------------------------


def _samples(pcm: BytesLike) -> memoryview:
    view = memoryview(pcm)
    if view.nbytes % 2:
        raise ValueError(f"16-bit PCM must have an even length, got {view.nbytes} bytes")
    return view.cast("B").cast("H")


def _encode(pcm: BytesLike, table: list[int]) -> bytes:
    samples = _samples(pcm)
    if len(samples) > 1:  # itemgetter(a, b, ...) returns a tuple: one C call for the frame
        return bytes(itemgetter(*samples)(table))
    return bytes(map(table.__getitem__, samples))


def ulaw_encode(pcm: BytesLike) -> bytes:
    """16-bit signed little-endian PCM → μ-law, one byte a sample."""
    return _encode(pcm, _ULAW_ENCODE)


def alaw_encode(pcm: BytesLike) -> bytes:
    """16-bit signed little-endian PCM → A-law, one byte a sample."""
    return _encode(pcm, _ALAW_ENCODE)


def _decode(data: BytesLike, lo: bytes, hi: bytes) -> bytes:
    raw = bytes(data)
    out = bytearray(2 * len(raw))
    out[0::2] = raw.translate(lo)
    out[1::2] = raw.translate(hi)
    return bytes(out)


def ulaw_decode(data: BytesLike) -> bytes:
    """μ-law → 16-bit signed little-endian PCM."""
    return _decode(data, _ULAW_DEC_LO, _ULAW_DEC_HI)


def alaw_decode(data: BytesLike) -> bytes:
    """A-law → 16-bit signed little-endian PCM."""
    return _decode(data, _ALAW_DEC_LO, _ALAW_DEC_HI)


def ulaw_to_alaw(data: BytesLike) -> bytes:
    """μ-law → A-law with G.711 Table 3 (one translate, no linear detour)."""
    return bytes(data).translate(ULAW_TO_ALAW)


def alaw_to_ulaw(data: BytesLike) -> bytes:
    """A-law → μ-law with G.711 Table 4."""
    return bytes(data).translate(ALAW_TO_ULAW)


# --- single samples -----------------------------------------------------------------------


def _check_sample(x: int) -> int:
    if not -0x8000 <= x <= 0x7FFF:
        raise ValueError(f"not a 16-bit sample: {x}")
    return x & 0xFFFF


def ulaw_encode_sample(x: int) -> int:
    """μ-law code word for one signed 16-bit sample."""
    return _ULAW_ENCODE14[_check_sample(x) >> 2]


def alaw_encode_sample(x: int) -> int:
    """A-law code word for one signed 16-bit sample."""
    return _ALAW_ENCODE13[_check_sample(x) >> 3]


def ulaw_decode_sample(code: int) -> int:
    """Signed 16-bit value of one μ-law code word."""
    return ULAW_DECODE[code]


def alaw_decode_sample(code: int) -> int:
    """Signed 16-bit value of one A-law code word."""
    return ALAW_DECODE[code]


# --- codec descriptors --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class G711Codec:
    """A G.711 variant as the bridge / player / recorder see it (RFC 3551 §4.5.14)."""

    name: str  # SDP encoding name
    payload_type: int  # static RTP payload type (RFC 3551 Table 4)
    encode: Callable[[BytesLike], bytes]
    decode: Callable[[BytesLike], bytes]
    silence: int  # code word for a zero sample
    clock_rate: int = 8000

    def silence_frame(self, samples: int = 160) -> bytes:
        """``samples`` code words of silence (160 = one 20 ms packet)."""
        return bytes((self.silence,)) * samples


PCMU: Final = G711Codec("PCMU", 0, ulaw_encode, ulaw_decode, ULAW_SILENCE)
PCMA: Final = G711Codec("PCMA", 8, alaw_encode, alaw_decode, ALAW_SILENCE)
_BY_NAME: Final = {"PCMU": PCMU, "PCMA": PCMA}
_BY_PT: Final = {0: PCMU, 8: PCMA}


def codec_by_name(name: str) -> G711Codec:
    """``"PCMU"`` / ``"pcma"`` → descriptor; ``KeyError`` for anything else."""
    return _BY_NAME[name.upper()]


def codec_by_payload_type(payload_type: int) -> G711Codec:
    """0 → PCMU, 8 → PCMA; ``KeyError`` for anything else."""
    return _BY_PT[payload_type]


def _identity(data: BytesLike) -> bytes:
    return bytes(data)


def transcoder(source: str, target: str) -> Callable[[BytesLike], bytes]:
    """Payload converter from one G.711 law to another (identity when they match)."""
    src, dst = codec_by_name(source).name, codec_by_name(target).name
    if src == dst:
        return _identity
    return ulaw_to_alaw if src == "PCMU" else alaw_to_ulaw
