"""T.30 fax over G.711 audio (FAX-1): a ctypes binding of spandsp 0.0.6 and PDF conversion.

The fax modems (V.21 control, V.27ter/V.29/V.17 image data) and the T.30 protocol run in
spandsp (Debian ``libspandsp2``, loaded at first use; nothing to compile). This module binds
only the few functions it needs, each with its ``argtypes``/``restype`` set from the 0.0.6
headers, and wraps them in two media endpoints that work on 16-bit signed little-endian mono
PCM at 8 kHz, 20 ms (160 samples) at a time:

* :class:`FaxReceiver` ``(tiff_path, *, local_ident)`` — the answering side (CED, DIS, ...);
  the received pages go to a TIFF/F file (T.4 1D/2D or T.6, as negotiated);
* :class:`FaxSender` ``(tiff_path, *, local_ident)`` — the calling side (CNG, DCS, ...),
  sending the pages of a bilevel TIFF (tests; later outbound fax).

Both are a media *sink* and *source* at once (contract B, for MediaStream):
``write(pcm)`` feeds received audio, ``None`` standing for a lost 20 ms frame (concealed by
replaying the last frame — phase-continuous for every T.30 modem — or, with
``concealment="fillin"``, by spandsp's ``fax_rx_fillin``; see :meth:`_FaxEndpoint.write`);
``read(samples)`` returns exactly ``samples`` samples to send (transmit-on-idle: silence when
the modem has nothing to say). Everything is sample-driven — spandsp's T.30 timers count the
samples fed in, never a clock — so the caller paces it (MediaStream: one frame each way every
20 ms, ``None`` for a gap, so the timers keep running).

When T.30 reaches phase E (success or failure) :attr:`done` turns true, ``on_done`` (if
given) is called with the :class:`FaxResult`, and :attr:`result` holds it: ``ok``, pages
transferred, the far end's ident (TSI/CSI), an error text (spandsp's description of the
T.30 completion code), the TIFF path and the last page's resolution in dpi. :meth:`close`
ends the session (a call hung up early → phase E with "call dropped") and frees the
spandsp state; the TIFF file is complete only after it (spandsp closes it on release).
spandsp 0.0.6 hangs forever when the sender's final DCN is lost; the receiver ends such a
session itself 10 s (of audio) after the last page's EOP (``code`` 29, ``ok`` if every page
was confirmed).

:func:`tiff_to_pdf` runs ``tiff2pdf`` (libtiff-tools) off the event loop. Fax pages are not
square-pixelled (204×98 dpi standard, 204×196 fine); tiff2pdf sizes each page from the
TIFF's X/Y resolution, so a standard page is not squashed. A TIFF page without resolution
tags gets the fax default given (``-r d``), never a square guess.

Audio path requirements for fax legs (the MediaStream/B2BUA side): G.711 only, no VAD or
silence suppression, no comfort noise, no echo cancellation, no transcoding through a lossy
codec; spandsp does its own DC removal.

Errors: :class:`FaxUnavailableError` when libspandsp is missing, :class:`FaxError` for a
failed PDF conversion or misuse (an ident T.30 cannot carry).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import struct
import sys
import weakref
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "FRAME_SAMPLES",
    "MAX_IDENT_LEN",
    "SAMPLE_RATE",
    "BilevelPage",
    "FaxError",
    "FaxReceiver",
    "FaxResult",
    "FaxSender",
    "FaxUnavailableError",
    "completion_text",
    "tiff_to_pdf",
    "write_bilevel_tiff",
]

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 8000
FRAME_SAMPLES: Final = 160  # 20 ms: what one lost packet (write(None)) stands for

# t30.h: T30_MAX_IDENT_LEN; T.30 §5.3.6.2.4: the ident is up to 20 digits, '+' and space.
MAX_IDENT_LEN: Final = 20

# t30.h enums (spandsp 0.0.6).
_T30_ERR_OK: Final = 0
_T30_ERR_RX_T2EXPDCN: Final = 29  # "Timer T2 expired while waiting for DCN"
_T30_ERR_CALLDROPPED: Final = 49  # "The call dropped prematurely"
# t30_fcf.h: post-page commands a receiver's phase D handler is called with.
_T30_EOP: Final = 0x2E
_T30_PRI_EOP: Final = 0x3E
_T30_SUPPORT_V27TER: Final = 0x01
_T30_SUPPORT_V29: Final = 0x02
_T30_SUPPORT_V17: Final = 0x04
_T30_SUPPORT_T4_1D: Final = 0x02
_T30_SUPPORT_T4_2D: Final = 0x04
_T30_SUPPORT_T6: Final = 0x08  # only usable with ECM (T.30 Annex A)
_T30_SUPPORT_STANDARD: Final = 0x01
_T30_SUPPORT_FINE: Final = 0x02
_T30_SUPPORT_SUPERFINE: Final = 0x04
_T30_SUPPORT_R8: Final = 0x20000
_T30_SUPPORT_R16: Final = 0x40000
_T30_SUPPORT_215MM: Final = 0x01
_T30_SUPPORT_255MM: Final = 0x02
_T30_SUPPORT_303MM: Final = 0x04
_T30_SUPPORT_UNLIMITED_LENGTH: Final = 0x10000
_T30_SUPPORT_A4_LENGTH: Final = 0x20000
_T30_SUPPORT_B4_LENGTH: Final = 0x40000
_T30_SUPPORT_US_LETTER_LENGTH: Final = 0x80000
_T30_SUPPORT_US_LEGAL_LENGTH: Final = 0x100000
_SPAN_LOG_NONE: Final = 0
_SPAN_LOG_FLOW: Final = 5
_SPAN_LOG_SHOW_TAG: Final = 0x2000
_SPAN_LOG_SHOW_SEVERITY: Final = 0x0400

_MODEMS: Final = _T30_SUPPORT_V27TER | _T30_SUPPORT_V29 | _T30_SUPPORT_V17
_RESOLUTIONS: Final = (
    _T30_SUPPORT_STANDARD
    | _T30_SUPPORT_FINE
    | _T30_SUPPORT_SUPERFINE
    | _T30_SUPPORT_R8
    | _T30_SUPPORT_R16
)
_IMAGE_SIZES: Final = (
    _T30_SUPPORT_215MM
    | _T30_SUPPORT_255MM
    | _T30_SUPPORT_303MM
    | _T30_SUPPORT_UNLIMITED_LENGTH
    | _T30_SUPPORT_A4_LENGTH
    | _T30_SUPPORT_B4_LENGTH
    | _T30_SUPPORT_US_LETTER_LENGTH
    | _T30_SUPPORT_US_LEGAL_LENGTH
)

_LIBRARY_NAMES: Final = ("libspandsp.so.2", "libspandsp.so")
_INCH_PER_METRE: Final = 0.0254


class FaxError(Exception):
    """A fax operation failed (PDF conversion) or was misused (a bad ident)."""


class FaxUnavailableError(FaxError):
    """libspandsp (Debian ``libspandsp2``) cannot be loaded on this machine."""


@dataclass(frozen=True, slots=True)
class FaxResult:
    """The outcome of one fax session, at T.30 phase E.

    ``ok`` is T.30 completion code 0 (every page confirmed); ``pages`` counts the pages
    transferred (received for a receiver, sent for a sender) even when ``ok`` is false
    (a call dropped after page 2 keeps 2 pages in the TIFF). ``error`` is "" when ok, else
    spandsp's text for ``code`` (t30.h ``T30_ERR_*``). Resolutions are those of the last
    page, in dots per inch (0 when no page came); ``bit_rate``/``ecm`` what was negotiated.
    """

    ok: bool
    pages: int
    remote_ident: str
    error: str
    tiff_path: Path
    x_resolution: int = 0
    y_resolution: int = 0
    code: int = _T30_ERR_OK
    bit_rate: int = 0
    ecm: bool = False
    bad_rows: int = 0


# --- the binding ---------------------------------------------------------------------------


class _T30Stats(ctypes.Structure):
    """``t30_stats_t`` of spandsp 0.0.6 t30.h: 15 ints (the two RTP/RTN event counters
    after ``current_status`` are under ``#if 0`` and not part of the struct). Resolutions
    are in pixels per metre."""

    _fields_ = [
        ("bit_rate", ctypes.c_int),
        ("error_correcting_mode", ctypes.c_int),
        ("pages_tx", ctypes.c_int),
        ("pages_rx", ctypes.c_int),
        ("pages_in_file", ctypes.c_int),
        ("x_resolution", ctypes.c_int),
        ("y_resolution", ctypes.c_int),
        ("width", ctypes.c_int),
        ("length", ctypes.c_int),
        ("image_size", ctypes.c_int),
        ("encoding", ctypes.c_int),
        ("bad_rows", ctypes.c_int),
        ("longest_bad_row_run", ctypes.c_int),
        ("error_correcting_mode_retries", ctypes.c_int),
        ("current_status", ctypes.c_int),
    ]


# void (t30_phase_e_handler_t)(t30_state_t *s, void *user_data, int completion_code)
_PhaseEHandler = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
# int (t30_phase_d_handler_t)(t30_state_t *s, void *user_data, int result)
_PhaseDHandler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
# typedef void (*message_handler_func_t)(int level, const char *text)
_MessageHandler = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p)

_P = ctypes.c_void_p
_I = ctypes.c_int
_S = ctypes.c_char_p
_SIGNATURES: Final[dict[str, tuple[Any, tuple[Any, ...]]]] = {
    # fax.h
    "fax_init": (_P, (_P, _I)),
    "fax_free": (_I, (_P,)),
    "fax_rx": (_I, (_P, ctypes.POINTER(ctypes.c_int16), _I)),
    "fax_rx_fillin": (_I, (_P, _I)),
    "fax_tx": (_I, (_P, ctypes.POINTER(ctypes.c_int16), _I)),
    "fax_set_transmit_on_idle": (None, (_P, _I)),
    "fax_get_t30_state": (_P, (_P,)),
    "fax_get_logging_state": (_P, (_P,)),
    # t30.h / t30_api.h
    "t30_set_tx_ident": (_I, (_P, _S)),
    "t30_get_rx_ident": (_S, (_P,)),
    "t30_set_rx_file": (None, (_P, _S, _I)),
    "t30_set_tx_file": (None, (_P, _S, _I, _I)),
    "t30_set_ecm_capability": (_I, (_P, _I)),
    "t30_set_supported_modems": (_I, (_P, _I)),
    "t30_set_supported_compressions": (_I, (_P, _I)),
    "t30_set_supported_resolutions": (_I, (_P, _I)),
    "t30_set_supported_image_sizes": (_I, (_P, _I)),
    "t30_set_phase_d_handler": (None, (_P, _PhaseDHandler, _P)),
    "t30_set_phase_e_handler": (None, (_P, _PhaseEHandler, _P)),
    "t30_get_transfer_statistics": (None, (_P, ctypes.POINTER(_T30Stats))),
    "t30_get_logging_state": (_P, (_P,)),
    "t30_terminate": (None, (_P,)),
    "t30_call_active": (_I, (_P,)),
    # t30_logging.h
    "t30_completion_code_to_str": (_S, (_I,)),
    # logging.h
    "span_log_set_level": (_I, (_P, _I)),
    "span_log_set_message_handler": (None, (_P, _MessageHandler)),
}


def _load_cdll() -> ctypes.CDLL:
    errors: list[str] = []
    names = [*_LIBRARY_NAMES]
    found = ctypes.util.find_library("spandsp")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise FaxUnavailableError(
        "spandsp is not installed (Debian package libspandsp2): " + "; ".join(errors)
    )


@cache
def _lib() -> ctypes.CDLL:
    """libspandsp with every function this module calls typed (loaded once, on first use)."""
    cdll = _load_cdll()
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError as exc:
            raise FaxUnavailableError(f"libspandsp lacks {name} (need 0.0.6)") from exc
        fn.restype = restype
        fn.argtypes = argtypes
    return cdll


def _spandsp_log(level: int, text: bytes | None) -> None:
    if text:
        log.debug("spandsp[%d] %s", level, text.decode("latin-1").rstrip())


# One for the process: spandsp keeps only the function pointer, so it must outlive them all.
_MESSAGE_HANDLER: Final = _MessageHandler(_spandsp_log)


def _set_logging(lib: ctypes.CDLL, log_state: int | None, debug: bool) -> None:
    """spandsp logs nothing unless asked (``debug`` routes T.30 flow messages to the
    ``cloudpbx.media.fax`` logger at DEBUG, for diagnosing a failed fax)."""
    if not log_state:
        return
    if debug:
        lib.span_log_set_message_handler(log_state, _MESSAGE_HANDLER)
        lib.span_log_set_level(log_state, _SPAN_LOG_FLOW | _SPAN_LOG_SHOW_TAG)
    else:
        lib.span_log_set_level(log_state, _SPAN_LOG_NONE)


def completion_text(code: int) -> str:
    """spandsp's short description of a T.30 phase E completion code."""
    text: bytes | None = _lib().t30_completion_code_to_str(code)
    return text.decode("latin-1") if text else f"T.30 completion code {code}"


def _dpi(pixels_per_metre: int) -> int:
    return round(pixels_per_metre * _INCH_PER_METRE)


def _check_ident(ident: str) -> bytes:
    """T.30 idents (TSI/CSI) are up to 20 characters of digits, '+' and space (T.30
    §5.3.6.2.4); spandsp sends any printable ASCII, so only length and charset are checked."""
    if len(ident) > MAX_IDENT_LEN or not all(" " <= c <= "~" for c in ident):
        raise FaxError(f"fax ident {ident!r}: at most {MAX_IDENT_LEN} printable ASCII characters")
    return ident.encode("ascii")


# --- the endpoints -------------------------------------------------------------------------


Concealment = Literal["repeat", "fillin"]

# A receiver that confirmed the last page (EOP) waits at most this long for the sender's
# DCN: spandsp 0.0.6 never leaves that state when the DCN is lost (its T4 timeout finds
# "nothing to repeat"), so the session is ended here. T.30's T2 is 6 s.
_FINAL_DCN_WAIT_SAMPLES: Final = 10 * SAMPLE_RATE


class _FaxEndpoint:
    """One spandsp ``fax_state_t`` (audio fax terminal) and its T.30 engine; the constructor
    (with its defaults) is the one both :class:`FaxReceiver` and :class:`FaxSender` take."""

    _calling_party: bool = False

    def __init__(
        self,
        tiff_path: str | os.PathLike[str],
        *,
        local_ident: str,
        ecm: bool = True,
        concealment: Concealment = "repeat",
        on_done: Callable[[FaxResult], None] | None = None,
        debug: bool = False,
    ) -> None:
        if concealment not in ("repeat", "fillin"):
            raise ValueError(f"concealment {concealment!r}: 'repeat' or 'fillin'")
        self.tiff_path = Path(tiff_path)
        self.concealment = concealment
        self.on_done = on_done
        self._result: FaxResult | None = None
        self._phase_e_code: int | None = None
        self._remote_ident = ""
        self._stats = _T30Stats()
        self._rx_buf = (ctypes.c_int16 * FRAME_SAMPLES)()
        self._tx_buf = (ctypes.c_int16 * FRAME_SAMPLES)()
        self._last_frame = b""  # the last full frame received, for "repeat" concealment
        self._samples_in = 0
        self._eop_at: int | None = None  # sample count when the final page's EOP came
        ident = _check_ident(local_ident)
        self._check_file()
        lib = _lib()
        self._lib = lib
        state: int | None = lib.fax_init(None, int(self._calling_party))
        if not state:
            raise FaxError("spandsp fax_init failed")
        self._state: int | None = state
        self._finalizer = weakref.finalize(self, lib.fax_free, state)
        self._t30: int = lib.fax_get_t30_state(state)
        # Kept on self: spandsp holds only the pointers, a collected thunk would crash it.
        ref = weakref.ref(self)
        self._phase_d = _PhaseDHandler(_phase_d_trampoline(ref))
        self._phase_e = _PhaseEHandler(_phase_e_trampoline(ref))
        self._configure(ident, ecm, debug)

    def _configure(self, ident: bytes, ecm: bool, debug: bool) -> None:
        lib, t30 = self._lib, self._t30
        _set_logging(lib, lib.fax_get_logging_state(self._state), debug)
        _set_logging(lib, lib.t30_get_logging_state(t30), debug)
        lib.fax_set_transmit_on_idle(self._state, 1)
        lib.t30_set_tx_ident(t30, ident)
        lib.t30_set_ecm_capability(t30, int(ecm))
        lib.t30_set_supported_modems(t30, _MODEMS)
        compressions = _T30_SUPPORT_T4_1D | _T30_SUPPORT_T4_2D
        lib.t30_set_supported_compressions(t30, compressions | (_T30_SUPPORT_T6 if ecm else 0))
        lib.t30_set_supported_resolutions(t30, _RESOLUTIONS)
        lib.t30_set_supported_image_sizes(t30, _IMAGE_SIZES)
        lib.t30_set_phase_d_handler(t30, self._phase_d, None)
        lib.t30_set_phase_e_handler(t30, self._phase_e, None)
        self._set_file(os.fsencode(self.tiff_path))

    def _check_file(self) -> None:
        raise NotImplementedError

    def _set_file(self, path: bytes) -> None:
        raise NotImplementedError

    # -- media sink / source (contract B) --

    def write(self, pcm: bytes | None) -> None:
        """Feed received audio: PCM16 LE mono 8 kHz, or ``None`` for one lost 20 ms frame.

        A lost frame is concealed by ``concealment``: "repeat" plays the last frame again —
        20 ms is a whole number of carrier cycles and symbols for V.21, V.27ter, V.29 and
        V.17, so the repeat is phase-continuous and a demodulator in training or carrying
        data keeps its lock; "fillin" is spandsp's ``fax_rx_fillin`` (the modem coasts on
        nothing; with 0.0.6 a loss during a training sequence then fails it). Either way
        the T.30 timers advance by the frame.
        """
        state = self._state
        if state is None:
            return
        if pcm is None:
            self._conceal(state)
        else:
            for start in range(0, len(pcm) - 1, 2 * FRAME_SAMPLES):
                self._rx_chunk(state, pcm[start : start + 2 * FRAME_SAMPLES])
        self._watchdog()
        self._check_done()

    def _conceal(self, state: int) -> None:
        if self.concealment == "repeat" and self._last_frame:
            self._rx_chunk(state, self._last_frame)
        else:
            self._lib.fax_rx_fillin(state, FRAME_SAMPLES)
            self._samples_in += FRAME_SAMPLES

    def _rx_chunk(self, state: int, pcm: bytes) -> None:
        n = len(pcm) // 2
        if n == FRAME_SAMPLES:
            self._last_frame = pcm
        data = pcm[: 2 * n] if sys.byteorder == "little" else _byteswapped(pcm[: 2 * n])
        ctypes.memmove(self._rx_buf, data, 2 * n)
        # fax_rx filters the buffer in place (DC restore): never hand it Python bytes.
        self._lib.fax_rx(state, self._rx_buf, n)
        self._samples_in += n

    def read(self, samples: int = FRAME_SAMPLES) -> bytes:
        """Exactly ``samples`` samples (PCM16 LE) to send; silence when the modem is idle,
        after phase E and after :meth:`close` (transmit-on-idle)."""
        out = bytearray()
        while len(out) < 2 * samples:
            want = min(FRAME_SAMPLES, samples - len(out) // 2)
            state = self._state
            got = 0 if state is None else max(0, self._lib.fax_tx(state, self._tx_buf, want))
            chunk = ctypes.string_at(self._tx_buf, 2 * got) + bytes(2 * (want - got))
            out += chunk if sys.byteorder == "little" else _byteswapped(chunk)
        self._check_done()
        return bytes(out)

    # -- outcome --

    @property
    def done(self) -> bool:
        """T.30 reached phase E (or :meth:`close` ended the session)."""
        return self._result is not None

    @property
    def result(self) -> FaxResult:
        """The outcome; raises :class:`FaxError` while the fax is still in progress."""
        if self._result is None:
            raise FaxError("fax still in progress (not at phase E; close() to end it)")
        return self._result

    def close(self) -> FaxResult:
        """End the session: a fax still in progress ends as "call dropped" (the pages
        received so far stay in the TIFF); frees spandsp's state and closes the TIFF.
        Idempotent; returns :attr:`result`."""
        state = self._state
        if state is not None:
            self._terminate(_T30_ERR_CALLDROPPED)
            self._state = None
            self._finalizer()
        self._check_done()
        return self.result

    def _terminate(self, code: int) -> None:
        """Record ``code`` unless phase E came already, then let spandsp wind down (it
        calls the phase E handler, now a no-op, and closes the TIFF)."""
        if self._phase_e_code is None:
            self._on_phase_e(code)
        self._lib.t30_terminate(self._t30)

    def _watchdog(self) -> None:
        eop_at = self._eop_at
        if eop_at is None or self._phase_e_code is not None:
            return
        if self._samples_in - eop_at >= _FINAL_DCN_WAIT_SAMPLES:
            log.info("fax: no DCN after the final page's MCF; ending the session")
            self._terminate(_T30_ERR_RX_T2EXPDCN)

    def _on_phase_d(self, fcf: int) -> None:
        """Post-page command received (T.30 phase D): note when the final page ended."""
        if fcf in (_T30_EOP, _T30_PRI_EOP):
            self._eop_at = self._samples_in

    def _on_phase_e(self, code: int) -> None:
        """Runs inside spandsp (fax_rx/fax_tx/t30_terminate): only records, Python-side
        consequences (``on_done``) run after spandsp returns."""
        if self._phase_e_code is not None:
            return
        self._phase_e_code = code
        self._lib.t30_get_transfer_statistics(self._t30, ctypes.byref(self._stats))
        ident: bytes | None = self._lib.t30_get_rx_ident(self._t30)
        self._remote_ident = ident.decode("latin-1").strip() if ident else ""

    def _pages(self, stats: _T30Stats) -> int:
        raise NotImplementedError

    def _ok(self, code: int) -> bool:
        """Phase E OK; or, for the lost final DCN, every page confirmed with no T.30 error."""
        if code == _T30_ERR_RX_T2EXPDCN and self._eop_at is not None:
            return self._stats.current_status == _T30_ERR_OK and self._pages(self._stats) > 0
        return code == _T30_ERR_OK

    def _check_done(self) -> None:
        code = self._phase_e_code
        if code is None or self._result is not None:
            return
        st = self._stats
        ok = self._ok(code)
        self._result = FaxResult(
            ok=ok,
            pages=self._pages(st),
            remote_ident=self._remote_ident,
            error="" if ok else completion_text(code),
            tiff_path=self.tiff_path,
            x_resolution=_dpi(st.x_resolution),
            y_resolution=_dpi(st.y_resolution),
            code=code,
            bit_rate=st.bit_rate,
            ecm=bool(st.error_correcting_mode),
            bad_rows=st.bad_rows,
        )
        if self.on_done is not None:
            self.on_done(self._result)


def _byteswapped(data: bytes) -> bytes:
    samples = array("h", data)
    samples.byteswap()
    return samples.tobytes()


def _phase_d_trampoline(
    ref: weakref.ReferenceType[_FaxEndpoint],
) -> Callable[[int | None, int | None, int], int]:
    def handler(_t30: int | None, _user: int | None, fcf: int) -> int:
        endpoint = ref()
        if endpoint is not None:
            try:
                endpoint._on_phase_d(fcf)
            except Exception:  # an exception cannot cross back into C: log it
                log.exception("fax phase D handler failed")
        return _T30_ERR_OK

    return handler


def _phase_e_trampoline(
    ref: weakref.ReferenceType[_FaxEndpoint],
) -> Callable[[int | None, int | None, int], None]:
    """The C callbacks hold only a weak reference, so an endpoint dropped without close()
    is still collected (and its spandsp state freed by the finalizer)."""

    def handler(_t30: int | None, _user: int | None, code: int) -> None:
        endpoint = ref()
        if endpoint is None:
            return
        try:
            endpoint._on_phase_e(code)
        except Exception:  # an exception cannot cross back into C: log it
            log.exception("fax phase E handler failed")

    return handler


class FaxReceiver(_FaxEndpoint):
    """Receive a fax into ``tiff_path`` as the answering terminal (FAX-1).

    ``local_ident`` is our CSI (≤ 20 characters, usually the called number in E.164);
    ``ecm`` offers T.30 Annex A error correction (recommended over RTP: a lost packet
    costs a retransmitted frame instead of damaged rows). See the module docstring.
    """

    _calling_party = False

    def _check_file(self) -> None:
        if not self.tiff_path.parent.is_dir():
            raise FaxError(f"fax receive directory {self.tiff_path.parent} does not exist")

    def _set_file(self, path: bytes) -> None:
        self._lib.t30_set_rx_file(self._t30, path, -1)

    def _pages(self, stats: _T30Stats) -> int:
        return int(stats.pages_rx)


class FaxSender(_FaxEndpoint):
    """Send the pages of the TIFF ``tiff_path`` as the calling terminal (tests, outbound
    fax). The TIFF must be bilevel with fax widths (1728 px at 204 dpi for A4/letter) and a
    fax resolution (204×98, 204×196, ...); spandsp reports a bad file at phase E."""

    _calling_party = True

    def _check_file(self) -> None:
        if not self.tiff_path.is_file():
            raise FaxError(f"fax to send: no file {self.tiff_path}")

    def _set_file(self, path: bytes) -> None:
        self._lib.t30_set_tx_file(self._t30, path, -1, -1)

    def _pages(self, stats: _T30Stats) -> int:
        return int(stats.pages_tx)


# --- TIFF ----------------------------------------------------------------------------------

_TIFF_SHORT: Final = 3
_TIFF_LONG: Final = 4
_TIFF_RATIONAL: Final = 5


@dataclass(frozen=True, slots=True)
class BilevelPage:
    """One fax page image: ``rows`` of packed 1-bit pixels, most significant bit first,
    1 = black (TIFF WhiteIsZero, the fax convention), each ``ceil(width / 8)`` bytes."""

    width: int
    rows: tuple[bytes, ...]
    dpi: tuple[int, int] = (204, 98)  # x, y: T.4 standard resolution

    def __post_init__(self) -> None:
        stride = (self.width + 7) // 8
        if self.width <= 0 or not self.rows or any(len(r) != stride for r in self.rows):
            raise ValueError(f"need 1+ rows of {stride} bytes for width {self.width}")


def _tiff_entry(tag: int, kind: int, value: int) -> bytes:
    """A 12-byte IFD entry with one value (or an offset, for rationals) in place."""
    if kind == _TIFF_SHORT:
        return struct.pack("<HHIHH", tag, kind, 1, value, 0)
    return struct.pack("<HHII", tag, kind, 1, value)


def _tiff_page(page: BilevelPage, number: int, total: int, at: int) -> tuple[bytes, int]:
    """Image data, two rationals and the IFD of one page placed at file offset ``at``;
    returns them and the IFD's offset. The IFD comes last, its next-IFD link 0 (patched
    when another page follows)."""
    data = b"".join(page.rows)
    rationals = struct.pack("<IIII", page.dpi[0], 1, page.dpi[1], 1)
    entries = [
        _tiff_entry(256, _TIFF_LONG, page.width),  # ImageWidth
        _tiff_entry(257, _TIFF_LONG, len(page.rows)),  # ImageLength
        _tiff_entry(258, _TIFF_SHORT, 1),  # BitsPerSample
        _tiff_entry(259, _TIFF_SHORT, 1),  # Compression: none
        _tiff_entry(262, _TIFF_SHORT, 0),  # Photometric: WhiteIsZero
        _tiff_entry(266, _TIFF_SHORT, 1),  # FillOrder: MSB first
        _tiff_entry(273, _TIFF_LONG, at),  # StripOffsets
        _tiff_entry(277, _TIFF_SHORT, 1),  # SamplesPerPixel
        _tiff_entry(278, _TIFF_LONG, len(page.rows)),  # RowsPerStrip: one strip
        _tiff_entry(279, _TIFF_LONG, len(data)),  # StripByteCounts
        _tiff_entry(282, _TIFF_RATIONAL, at + len(data)),  # XResolution
        _tiff_entry(283, _TIFF_RATIONAL, at + len(data) + 8),  # YResolution
        _tiff_entry(284, _TIFF_SHORT, 1),  # PlanarConfiguration: contiguous
        _tiff_entry(296, _TIFF_SHORT, 2),  # ResolutionUnit: inch
        struct.pack("<HHIHH", 297, _TIFF_SHORT, 2, number, total),  # PageNumber
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0)
    return data + rationals + ifd, at + len(data) + len(rationals)


def write_bilevel_tiff(path: str | os.PathLike[str], pages: Sequence[BilevelPage]) -> Path:
    """Write an uncompressed bilevel multi-page TIFF that spandsp can send (a generated
    page: test pages, a cover sheet). Little-endian, one strip per page, resolution in
    inches. Returns the path."""
    if not pages:
        raise ValueError("a TIFF needs at least one page")
    out = bytearray(b"II*\x00") + struct.pack("<I", 0)
    for number, page in enumerate(pages):
        chunk, ifd_offset = _tiff_page(page, number, len(pages), len(out))
        # Link the header (first page) or the previous IFD, which ends ``out``, to this IFD.
        struct.pack_into("<I", out, 4 if number == 0 else len(out) - 4, ifd_offset)
        out += chunk
    dst = Path(path)
    dst.write_bytes(bytes(out))
    return dst


# --- TIFF → PDF ----------------------------------------------------------------------------


async def tiff_to_pdf(
    tiff: str | os.PathLike[str],
    pdf: str | os.PathLike[str],
    *,
    default_dpi: tuple[int, int] = (204, 196),
    tiff2pdf: str = "tiff2pdf",
) -> Path:
    """Convert a received fax TIFF to PDF with ``tiff2pdf`` in a subprocess (the event loop
    keeps running). Pages are sized from each page's X/Y resolution, so 204×98 dpi pages
    keep their proportions; a page lacking resolution tags gets ``default_dpi`` (x, y).
    The PDF appears atomically (written beside, then renamed); raises :class:`FaxError`
    if tiff2pdf is missing or fails (its message included)."""
    src, dst = Path(tiff), Path(pdf)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    args = ["-u", "i", "-x", str(default_dpi[0]), "-y", str(default_dpi[1]), "-r", "d"]
    try:
        proc = await asyncio.create_subprocess_exec(
            tiff2pdf,
            *args,
            "-o",
            str(tmp),
            str(src),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise FaxError(f"{tiff2pdf} not found (install libtiff-tools)") from exc
    out, err = await proc.communicate()
    if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        detail = (err or out).decode(errors="replace").strip()
        raise FaxError(f"tiff2pdf failed on {src} (exit {proc.returncode}): {detail}")
    tmp.replace(dst)
    return dst
