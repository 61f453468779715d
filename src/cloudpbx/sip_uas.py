"""A small SIP user agent for interop tests and benchmarks, built on :class:`SipEndpoint`.

As a server (UAS) it is a registrar with Digest authentication (RFC 3261 §10.3, §22; realm
``cloudpbx``, users from a ``login -> password`` dict, bindings in memory) and answers
OPTIONS (200) and INVITE (180 then 200 with an SDP answer, RFC 3264; 488 without a common
codec), optionally behind a 407 challenge. It keeps just enough dialog state (RFC 3261 §12:
Call-ID, tags, remote target, CSeq; no route set -- it never sees Record-Route in tests) to
take the ACK, a re-INVITE (200 with the same answer), BYE (200) and CANCEL (200 + 487); an
in-dialog request for an unknown dialog gets 481 (§12.2.2).

As a client (UAC) it calls a registered phone or any address (:meth:`TestUas.call`), ACKs
the 2xx (§13.2.2.4) and hangs up with BYE (:meth:`TestUas.hangup`). It relays nothing.

Conventions for tests: a Request-URI user starting with ``noanswer`` rings (180) until
CANCELled; ``busy`` gets 486.

Media mode (issue 4 signal tests): by default the SDP names ``media_port`` and no RTP is sent
or read. With a :class:`MediaMode` -- for every call (``UasConfig.media``), per called user
(``UasConfig.media_by_user``, INVITEs it answers) or per call (``call_uri(media=...)``) -- the
agent terminates the call's audio in a :class:`~cloudpbx.media.stream.MediaStream` (its port
in the SDP, configured from the negotiated SDP once answered) and plays a WAV file, records
what the peer sends to a WAV file, echoes it back, and collects the peer's DTMF (RFC 4733,
in-band, SIP INFO) into :attr:`CallMedia.digits`. ``TestUas.media`` maps Call-ID to
:class:`CallMedia`; the stream closes (and the recording is completed) when the call ends.
``MediaMode(external_port=N)`` opens no stream: the SDP names port ``N`` of someone else's
socket (a :class:`~cloudpbx.media.relay.RelaySession` leg in the relay tests).

CLI: ``python -m cloudpbx.sip_uas --port 5080 --user alice:secret ...`` (see ``--help``).
This module does I/O, so it lives outside ``cloudpbx.sip`` (which stays sans-I/O).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudpbx.media.dtmf import DtmfError, parse_info_body
from cloudpbx.media.player import FileSource
from cloudpbx.media.ports import PortsExhaustedError, RtpPortAllocator
from cloudpbx.media.relay import LegMedia
from cloudpbx.media.stream import MediaStream, MediaStreamError, PlayResult
from cloudpbx.media.wavfile import WavFormat, WavWriter
from cloudpbx.sip.auth import AuthOutcome, Credentials, DigestServer
from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.events import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from cloudpbx.sip.headers import Headers, HeaderValue
from cloudpbx.sip.message import Request, Response, make_response
from cloudpbx.sip.sdp import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    NoCommonCodecError,
    SdpError,
    SessionDescription,
    make_answer,
    make_offer,
    versioned,
)
from cloudpbx.sip.uri import STAR, NameAddr, SipURI
from cloudpbx.transport.base import Address, Flow, TransportKind
from cloudpbx.transport.endpoint import GC_MODES, SipEndpoint, configure_gc, run

__all__ = [
    "Binding",
    "Call",
    "CallMedia",
    "Dialog",
    "MediaMode",
    "RequestFailedError",
    "TestUas",
    "UasConfig",
    "main",
]

logger = logging.getLogger(__name__)

REALM = "cloudpbx"
CODECS = (PCMU, PCMA, TELEPHONE_EVENT)
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE"
SUPPORTED_METHODS = frozenset(m.strip() for m in ALLOW.split(","))
# RFC 3261 §8.2.1: a method we know but do not implement gets 405 (with Allow), an unknown
# one 501.
KNOWN_METHODS = SUPPORTED_METHODS | {"PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER", "MESSAGE"}
DIALOG_ONLY = frozenset({"BYE", "INFO", "UPDATE", "PRACK"})  # §15.1.2: out of dialog, 481
SDP = "application/sdp"
USER_AGENT = "cloudpbx-test-uas"


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaMode:
    """What the agent does with one call's audio (see the module docstring)."""

    play: Path | None = None  # a WAV file (8 kHz mono PCM16/G.711) played once answered
    loop: bool = False  # play it over and over
    record: Path | None = None  # what the peer sends, as an 8 kHz 16-bit mono WAV
    echo: bool = False  # send back what the peer sends
    inband_dtmf: bool | None = None  # the stream's Goertzel detector; None: when no 4733
    codecs: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)  # offered / accepted
    external_port: int | None = None  # announce this port, open no stream

    def __post_init__(self) -> None:
        if self.play is not None and self.echo:
            raise ValueError("a call either plays a file or echoes, not both")


@dataclass(slots=True, kw_only=True)
class UasConfig:
    """What the test UAS accepts and how it answers."""

    users: dict[str, str] = field(default_factory=dict)  # login -> password
    realm: str = REALM
    invite_auth: bool = False  # challenge INVITEs with 407 (RFC 3261 §22.3)
    answer_delay: float = 0.0  # seconds between 180 and 200
    min_expires: int = 60  # RFC 3261 §10.3 step 7: shorter gets 423
    max_expires: int = 3600
    default_expires: int = 3600
    media_port: int = 40000  # announced in SDP; no RTP is sent or read
    media: MediaMode | None = None  # every call terminates its audio (media mode)
    media_by_user: dict[str, MediaMode] = field(default_factory=dict)  # per called user
    rtp_host: str = "127.0.0.1"
    rtp_ports: tuple[int, int] | None = None  # RTP port range; None: one picked per process
    max_server_transactions: int = 100_000


@dataclass(slots=True, kw_only=True)
class Binding:
    """One registered contact of an address of record (RFC 3261 §10.3)."""

    aor: str
    contact: NameAddr
    flow: Flow  # the way the REGISTER came: requests to the phone go back that way
    expires_at: float  # loop time
    call_id: str
    cseq: int


@dataclass(slots=True, eq=False, kw_only=True)
class Dialog:
    """The dialog state of RFC 3261 §12 this agent needs (no route set)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # our From (UAC) or To (UAS) value, tag included
    remote_party: str
    remote_target: str  # the peer's Contact URI
    flow: Flow
    local_cseq: int
    remote_cseq: int | None
    invite_cseq: int
    answer: SessionDescription | None = None
    confirmed: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)


@dataclass(slots=True, eq=False, kw_only=True)
class Call:
    """A call this agent placed (UAC)."""

    invite: Request
    tx_key: TransactionKey
    flow: Flow
    provisional: list[int] = field(default_factory=list)
    status: int = 0  # the final response's status, 0 while none
    dialog: Dialog | None = None
    ack: Request | None = None
    response: Response | None = None  # the final response


class RequestFailedError(Exception):
    """A client transaction ended without a response: Timer B/F (408) or a transport error
    (503), as RFC 3261 §8.1.3.1 tells the TU to treat them."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status


@dataclass(slots=True, eq=False)
class _Pending:
    """A client transaction the agent waits on."""

    final: asyncio.Future[Response]
    call: Call | None = None


@dataclass(slots=True, eq=False)
class _Incoming:
    """An INVITE ringing (early dialog) until answered or CANCELled."""

    request: Request
    dialog: Dialog
    answer: SessionDescription
    handle: asyncio.TimerHandle | None = None


class _WavSink:
    """A MediaStream sink writing what the peer sends to a WAV file; a missing frame is
    written as silence, so the file keeps the call's time line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("wb")
        self._writer = WavWriter(self._file, WavFormat.pcm16())

    def write(self, pcm: bytes | None) -> None:
        self._writer.write_frames(pcm if pcm is not None else bytes(320))

    def close(self) -> None:
        if not self._writer.closed:
            self._writer.close()
            self._file.close()


class _Echo:
    """Sink and source at once: what the peer sends is played back 20 ms later."""

    def __init__(self) -> None:
        self._frames: deque[bytes] = deque(maxlen=10)

    def write(self, pcm: bytes | None) -> None:
        self._frames.append(pcm if pcm is not None else bytes(320))

    def read(self, samples: int) -> bytes:
        return self._frames.popleft() if self._frames else bytes(2 * samples)


@dataclass(slots=True, eq=False, kw_only=True)
class CallMedia:
    """The audio of one call in media mode: the stream, what it does, what it heard."""

    call_id: str
    mode: MediaMode
    stream: MediaStream | None = None  # None with ``external_port``
    digits: list[str] = field(default_factory=list)  # DTMF received, in order
    played: asyncio.Future[PlayResult] | None = None  # the file's play, once started
    recorder: _WavSink | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    ended: bool = False

    @property
    def port(self) -> int:
        if self.stream is not None:
            return self.stream.local_address[1]
        assert self.mode.external_port is not None
        return self.mode.external_port


def _leg_media(
    peer: SessionDescription, answer: SessionDescription, fallback_host: str
) -> LegMedia:
    """The peer's RTP address (from its SDP) and the payload types the answer kept (RFC 3264
    §6.1: the answer lists the offer's payload type numbers)."""
    theirs, agreed = peer.audio(), answer.audio()
    if theirs is None or agreed is None:
        raise SdpError("no audio stream")
    names = {c.payload_type: c.name for c in agreed.codecs}
    return LegMedia(remote=(theirs.host or fallback_host, theirs.port), payload_types=names)


def _default_rtp_ports() -> tuple[int, int]:
    # Apart per process (pytest-xdist workers); a port taken anyway is skipped at bind.
    base = 20000 + (os.getpid() % 400) * 20
    return base, base + 19


def _client_key(request: Request) -> TransactionKey:
    """RFC 3261 §17.1.3: a client transaction is its branch and method."""
    return TransactionKey(request.via[0].branch or "", "", request.method, False)


def _retrieved(future: asyncio.Future[Response]) -> None:
    """Mark a failure as seen: whoever awaits the future still gets it raised."""
    if not future.cancelled():
        future.exception()


def _now() -> float:
    # Digest nonces carry wall-clock time (docs/sip-auth-sdp.md): nodes sharing the key
    # must agree on what a timestamp means.
    return time.time()


class TestUas:
    """The test user agent (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: UasConfig | None = None) -> None:
        self.config = config if config is not None else UasConfig()
        self.endpoint = SipEndpoint(
            self.handle, max_server_transactions=self.config.max_server_transactions
        )
        self.digest = DigestServer(self.config.realm, secrets.token_bytes(32), rand=os.urandom)
        self.bindings: dict[str, dict[str, Binding]] = {}
        self.dialogs: dict[tuple[str, str, str], Dialog] = {}
        self.counters: Counter[str] = Counter()
        self._incoming: dict[TransactionKey, _Incoming] = {}
        self._client: dict[TransactionKey, _Pending] = {}
        self._session_id = secrets.randbelow(2**31)
        self.media: dict[str, CallMedia] = {}  # Call-ID -> the call's audio (media mode)
        self._tasks: set[asyncio.Task[Any]] = set()
        low, high = self.config.rtp_ports or _default_rtp_ports()
        self.rtp_ports = RtpPortAllocator(low, high)

    # --- life cycle --------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, tcp: bool = False) -> Address:
        """Listen on UDP (and TCP on the same port when ``tcp``); returns the UDP address."""
        if tcp:
            addr = await self.endpoint.listen_udp_tcp(host, port)
        else:
            addr = await self.endpoint.listen_udp(host, port)
        return addr

    async def close(self) -> None:
        for incoming in self._incoming.values():
            if incoming.handle is not None:
                incoming.handle.cancel()
        for call_id in list(self.media):
            self._end_media(call_id)
        for task in list(self._tasks):
            task.cancel()
        await self.endpoint.close()

    def contacts(self, aor: str) -> list[Binding]:
        """The live bindings of ``aor``, newest first."""
        now = self.endpoint.loop.time()
        live = [b for b in self.bindings.get(aor, {}).values() if b.expires_at > now]
        return sorted(live, key=lambda b: b.expires_at, reverse=True)

    # --- events from the endpoint --------------------------------------------------------

    def handle(self, event: TransactionEvent) -> None:
        """The endpoint's event handler (the transaction user)."""
        match event:
            case RequestReceived(tx_key=key, request=request, addr=flow):
                self._on_request(key, request, flow)
            case CancelReceived(tx_key=key, invite_key=invite_key):
                self._on_cancel(key, invite_key)
            case AckReceived(request=ack):
                self._on_ack(ack)
            case ResponseReceived(tx_key=key, response=response):
                self._on_response(key, response)
            case TransactionTimeout(tx_key=key):
                self._fail(key, 408, "Request Timeout")
            case TransportError(tx_key=key):
                self._fail(key, 503, "Service Unavailable")
            case TransactionTerminated(tx_key=key):
                self._on_terminated(key)
            case AckTimeout(call_id=call_id, local_tag=local, remote_tag=remote):
                self._on_ack_timeout((call_id, local, remote))

    # --- requests ------------------------------------------------------------------------

    def _on_request(self, key: TransactionKey, request: Request, flow: Flow) -> None:
        self.counters[f"in {request.method}"] += 1
        try:
            status = self._check(request)
            if status is not None:
                self._reject(key, request, status)
            elif request.to.tag is not None and request.method != "REGISTER":
                self._in_dialog(key, request)
            else:
                self._out_of_dialog(key, request, flow)
        except ParseError as exc:
            # A header only the TU reads (Expires, a Contact parameter...) is malformed.
            self._respond(key, request, 400, exc.reason_phrase)

    def _check(self, request: Request) -> int | None:
        """RFC 3261 §8.2.1-§8.2.3: method, URI scheme, Require, body type, Accept."""
        method = request.method
        if method not in SUPPORTED_METHODS:
            return 405 if method in KNOWN_METHODS else 501
        if not isinstance(request.uri, SipURI):
            return 416  # §8.2.2.1 (RFC 4475 §3.3.4 unkscm, §3.3.5 novelsc)
        if method != "CANCEL" and request.headers.values("require"):
            return 420  # §8.2.2.3: we support no extension (RFC 4475 §3.3.8 bext01)
        if method == "INVITE":
            return self._check_invite_body(request)
        return None

    @staticmethod
    def _check_invite_body(request: Request) -> int | None:
        content_type = request.content_type
        if request.body and (content_type or "").split(";")[0].strip().lower() != SDP:
            return 415  # §8.2.3 (RFC 4475 §3.3.12 invut)
        accept = request.headers.values("accept")
        if accept and not any(
            a.split(";")[0].strip().lower() in (SDP, "application/*", "*/*") for a in accept
        ):
            return 406  # §21.4.7: our 200 would carry SDP (RFC 4475 §3.3.15 sdp01)
        return None

    def _reject(self, key: TransactionKey, request: Request, status: int) -> None:
        extra: list[tuple[str, HeaderValue]] = []
        if status == 405:
            extra.append(("Allow", ALLOW))  # §21.4.6
        elif status == 415:
            extra.append(("Accept", SDP))  # §21.4.13
        elif status == 420:
            extra += [("Unsupported", tag) for tag in request.headers.values("require")]
        self._respond(key, request, status, headers=extra)

    def _out_of_dialog(self, key: TransactionKey, request: Request, flow: Flow) -> None:
        method = request.method
        if method == "REGISTER":
            self._on_register(key, request, flow)
        elif method == "OPTIONS":
            self._respond(key, request, 200, headers=self._capabilities())
        elif method == "INVITE":
            self._on_invite(key, request, flow)
        elif method in DIALOG_ONLY:  # without a To tag: no dialog (§15.1.2 for BYE)
            self._respond(key, request, 481)
        else:
            self._reject(key, request, 405)

    def _capabilities(self) -> list[tuple[str, HeaderValue]]:
        return [("Allow", ALLOW), ("Accept", SDP)]

    def _respond(
        self,
        key: TransactionKey,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, HeaderValue]] = (),
        tag: str | None = None,
        body: bytes = b"",
    ) -> None:
        # RFC 3261 §8.2.6.2: a UAS response carries a To tag (the dialog's, or a new one).
        response = make_response(request, status, reason, to_tag=tag or self.endpoint.new_tag())
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.set_body(body, SDP)
        self.counters[f"out {status}"] += 1
        self.endpoint.send_response(response, tx_key=key)

    # --- authentication (RFC 3261 §22, RFC 2617) -------------------------------------------

    def _authenticate(self, key: TransactionKey, request: Request, *, proxy: bool) -> str | None:
        """The authenticated user, or ``None`` once a 401/407/403 went out."""
        name = "Proxy-Authorization" if proxy else "Authorization"
        values = request.headers.get_all(name)
        result = None
        for value in values:
            result = self.digest.verify(request.method, value, _now(), self._lookup)
            if result.ok:
                return result.username
        if result is not None and result.outcome is AuthOutcome.BAD_CREDENTIALS:
            # Wrong password or unknown user (never told apart): do not invite a retry.
            self.counters["auth failed"] += 1
            self._respond(key, request, 403)
            return None
        stale = result is not None and result.rechallenge_stale
        challenge = self.digest.challenge(_now(), stale=stale)
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        self._respond(key, request, 407 if proxy else 401, headers=[(header, c) for c in challenge])
        return None

    def _lookup(self, username: str) -> Credentials | None:
        password = self.config.users.get(username)
        return None if password is None else Credentials(password=password)

    # --- REGISTER (RFC 3261 §10.3) -----------------------------------------------------------

    def _on_register(self, key: TransactionKey, request: Request, flow: Flow) -> None:
        to_uri = request.to.uri
        if not isinstance(to_uri, SipURI) or not to_uri.user:
            self._respond(key, request, 400, "Invalid AOR")  # RFC 4475 §3.3.6 unksm2
            return
        user = self._authenticate(key, request, proxy=False)
        if user is None:
            return
        if user != to_uri.user:  # §10.3 step 6: may this user change this AOR?
            self._respond(key, request, 403, "Not Your AOR")
            return
        problem = self._update_bindings(user, request, flow)
        if problem is not None:
            self._respond(key, request, problem[0], headers=problem[1])
            return
        self.counters["registered"] += 1
        self._respond(key, request, 200, headers=self._binding_headers(user))

    def _update_bindings(
        self, aor: str, request: Request, flow: Flow
    ) -> tuple[int, list[tuple[str, HeaderValue]]] | None:
        """§10.3 steps 6-8; returns an error status and headers, or ``None``."""
        contacts = request.contact
        header_expires = request.expires
        bindings = self.bindings.setdefault(aor, {})
        if contacts is STAR:
            if header_expires != 0:
                return 400, []  # step 6: "*" only with Expires: 0
            bindings.clear()
            return None
        updates = []
        for contact in contacts:
            expires = contact.expires
            expires = header_expires if expires is None else expires
            expires = self.config.default_expires if expires is None else expires
            if 0 < expires < self.config.min_expires:
                return 423, [("Min-Expires", self.config.min_expires)]  # step 7
            updates.append((contact, min(expires, self.config.max_expires)))
        now = self.endpoint.loop.time()
        for contact, expires in updates:
            uri = str(contact.uri)
            if expires == 0:
                bindings.pop(uri, None)
                continue
            bindings[uri] = Binding(
                aor=aor,
                contact=contact,
                flow=flow,
                expires_at=now + expires,
                call_id=request.call_id,
                cseq=request.cseq.number,
            )
        return None

    def _binding_headers(self, aor: str) -> list[tuple[str, HeaderValue]]:
        # §10.3 step 8: the 200 lists every current binding with its expiration.
        now = self.endpoint.loop.time()
        return [
            ("Contact", f"<{b.contact.uri}>;expires={max(0, round(b.expires_at - now))}")
            for b in self.contacts(aor)
        ]

    # --- INVITE as UAS (RFC 3261 §13.3) ------------------------------------------------------

    def _on_invite(self, key: TransactionKey, request: Request, flow: Flow) -> None:
        if self.config.invite_auth and self._authenticate(key, request, proxy=True) is None:
            return
        user = request.uri.user if isinstance(request.uri, SipURI) else None
        if user is not None and user.startswith("busy"):
            self._respond(key, request, 486)
            return
        mode = self.config.media_by_user.get(user or "", self.config.media)
        if mode is None:
            self._accept_invite(key, request, flow, None)
        elif mode.external_port is not None:
            self._accept_invite(key, request, flow, CallMedia(call_id=request.call_id, mode=mode))
        else:
            self._spawn(self._invite_with_stream(key, request, flow, mode))

    async def _invite_with_stream(
        self, key: TransactionKey, request: Request, flow: Flow, mode: MediaMode
    ) -> None:
        if not request.body:  # media mode needs the offer in the INVITE
            self._respond(key, request, 488, "Media Mode Needs An Offer")
            return
        try:
            media = await self._open_media(request.call_id, mode)
        except (OSError, MediaStreamError, PortsExhaustedError) as exc:
            logger.warning("no RTP port for %s: %s", request.call_id, exc)
            self._respond(key, request, 503)
            return
        if not self._accept_invite(key, request, flow, media):
            self._end_media(request.call_id)

    def _accept_invite(
        self, key: TransactionKey, request: Request, flow: Flow, media: CallMedia | None
    ) -> bool:
        """Ring, then answer (now, after ``answer_delay``, or never for ``noanswer``)."""
        if media is not None:
            self.media[request.call_id] = media
        answer = self._answer_for(key, request, flow, None)
        if answer is None:
            return False
        contacts = request.contact
        if contacts is STAR or not contacts:
            self._respond(key, request, 400, "Missing Contact")  # §8.1.1.8
            return False
        dialog = self._uas_dialog(request, flow, contacts[0])
        incoming = _Incoming(request, dialog, answer)
        self._incoming[key] = incoming
        self._respond(key, request, 180, tag=dialog.local_tag, headers=self._contact(flow))
        user = request.uri.user if isinstance(request.uri, SipURI) else None
        if user is not None and user.startswith("noanswer"):
            return True  # rings until CANCEL
        delay = self.config.answer_delay
        if delay > 0:
            incoming.handle = self.endpoint.loop.call_later(delay, self._answer, key)
        else:
            self._answer(key)
        return True

    def _answer_for(
        self,
        key: TransactionKey,
        request: Request,
        flow: Flow,
        previous: SessionDescription | None,
    ) -> SessionDescription | None:
        """The SDP answer (or offer, for an INVITE without one: §13.2.1); ``None`` once a
        400/488 went out."""
        try:
            sdp = self._sdp_answer(request, flow, previous)
        except SdpError as exc:
            self._respond(key, request, 400, f"Bad SDP: {exc}"[:120])
            return None
        except NoCommonCodecError:
            self.counters["no common codec"] += 1
            self._respond(key, request, 488)  # §13.3.1.3 / RFC 3264 §6
            return None
        return sdp

    def _sdp_answer(
        self, request: Request, flow: Flow, previous: SessionDescription | None
    ) -> SessionDescription:
        host = self._media_host(request, flow)
        version = 0 if previous is None else previous.origin.version
        media = self.media.get(request.call_id)
        port = self.config.media_port if media is None else media.port
        codecs = CODECS if media is None else media.mode.codecs
        if request.body:
            offer = SessionDescription.parse(request.body)
            sdp = make_answer(
                offer,
                local_addr=host,
                port=port,
                supported=codecs,
                session_id=self._session_id,
                version=version,
            )
        else:
            sdp = make_offer(
                local_addr=host,
                port=port,
                codecs=codecs,
                session_id=self._session_id,
                version=version,
            )
        return versioned(sdp, previous)

    @staticmethod
    def _media_host(request: Request, flow: Flow) -> str:
        """The address our SDP names: the local address of the flow, unless it is a
        wildcard; then the Request-URI host if it is an IP."""
        host = flow.local[0]
        if host not in ("0.0.0.0", "::"):  # noqa: S104 -- comparing, not binding
            return host
        uri = request.uri
        host = uri.host.strip("[]") if isinstance(uri, SipURI) else ""
        return host if host[:1].isdigit() or ":" in host else "127.0.0.1"

    def _uas_dialog(self, request: Request, flow: Flow, contact: NameAddr) -> Dialog:
        """§12.1.1: the dialog a 2xx (or 1xx) to this INVITE creates."""
        local_tag = self.endpoint.new_tag()
        return Dialog(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_party=f"{request.headers.get('to')};tag={local_tag}",
            remote_party=request.headers.get("from", ""),
            remote_target=str(contact.uri),
            flow=flow,
            local_cseq=secrets.randbelow(2**16),
            remote_cseq=request.cseq.number,
            invite_cseq=request.cseq.number,
        )

    def _answer(self, key: TransactionKey) -> None:
        incoming = self._incoming.pop(key, None)
        if incoming is None:
            return  # CANCELled or timed out meanwhile
        dialog = incoming.dialog
        dialog.answer = incoming.answer
        self.dialogs[dialog.key] = dialog
        self.counters["answered"] += 1
        self._respond(
            key,
            incoming.request,
            200,
            tag=dialog.local_tag,
            headers=[*self._contact(dialog.flow), *self._capabilities()],
            body=bytes(incoming.answer),
        )
        media = self.media.get(dialog.call_id)
        if media is not None and incoming.request.body:
            offer = SessionDescription.parse(incoming.request.body)
            self._start_media(media, offer, incoming.answer, dialog.flow.remote[0])

    def _contact(self, flow: Flow) -> list[tuple[str, HeaderValue]]:
        host, port = flow.local
        host = f"[{host}]" if ":" in host else host
        transport = (
            "" if flow.kind is TransportKind.UDP else f";transport={flow.kind.value.lower()}"
        )
        return [("Contact", f"<sip:uas@{host}:{port}{transport}>")]

    def _on_cancel(self, key: TransactionKey, invite_key: TransactionKey | None) -> None:
        # RFC 3261 §9.2: 200 to the CANCEL, 487 to the INVITE with the same To tag.
        self.counters["in CANCEL"] += 1
        incoming = self._incoming.pop(invite_key, None) if invite_key is not None else None
        tag = None
        if incoming is not None:
            tag = incoming.dialog.local_tag
            if incoming.handle is not None:
                incoming.handle.cancel()
            self.counters["cancelled"] += 1
            self._end_media(incoming.request.call_id)
        self.endpoint.respond_487(key, to_tag=tag)

    def _on_ack(self, ack: Request) -> None:
        dialog = self.dialogs.get((ack.call_id, ack.to.tag or "", ack.from_.tag or ""))
        if dialog is None:
            self.counters["stray ACK"] += 1  # e.g. late, after BYE: nothing to do (§17)
            return
        dialog.confirmed = True
        self.counters["in ACK"] += 1

    def _on_terminated(self, key: TransactionKey) -> None:
        if key.server:
            incoming = self._incoming.pop(key, None)
            if incoming is not None and incoming.handle is not None:
                incoming.handle.cancel()
            return
        pending = self._client.pop(key, None)
        if pending is not None and not pending.final.done():
            pending.final.set_exception(RequestFailedError(408, "Transaction Terminated"))

    def _on_ack_timeout(self, dialog_key: tuple[str, str, str]) -> None:
        # RFC 3261 §13.3.1.4: no ACK for 64*T1: confirm the dialog, then end it with BYE.
        dialog = self.dialogs.pop(dialog_key, None)
        if dialog is not None:
            self.counters["ACK timeout"] += 1
            self._end_media(dialog.call_id)
            self._send_in_dialog(dialog, "BYE")

    # --- in-dialog requests (RFC 3261 §12.2.2) ---------------------------------------------

    def _in_dialog(self, key: TransactionKey, request: Request) -> None:
        dialog = self.dialogs.get((request.call_id, request.to.tag or "", request.from_.tag or ""))
        if dialog is None:
            self._respond(key, request, 481)
            return
        cseq = request.cseq.number
        if dialog.remote_cseq is not None and cseq < dialog.remote_cseq:
            self._respond(key, request, 500, "CSeq Out of Order", tag=dialog.local_tag)
            return
        dialog.remote_cseq = cseq
        method = request.method
        if method == "BYE":
            self._on_bye(key, request, dialog)
        elif method == "INVITE":
            self._on_reinvite(key, request, dialog)
        else:  # INFO, UPDATE without an offer, OPTIONS: acknowledged
            if method == "INFO":
                self._on_info(request)
            self._respond(key, request, 200, tag=dialog.local_tag)

    def _on_bye(self, key: TransactionKey, request: Request, dialog: Dialog) -> None:
        # §15.1.2: 200, and the session ends; a 2xx still waiting for its ACK stops.
        self.dialogs.pop(dialog.key, None)
        self.endpoint.layer.stop_2xx_retransmission(
            dialog.call_id, dialog.local_tag, dialog.remote_tag, dialog.invite_cseq
        )
        self.counters["hung up by peer"] += 1
        self._end_media(dialog.call_id)
        self._respond(key, request, 200, tag=dialog.local_tag)

    def _on_reinvite(self, key: TransactionKey, request: Request, dialog: Dialog) -> None:
        # §14.2: a target refresh; RFC 3264 §8: the same answer keeps its o= version.
        answer = self._answer_for(key, request, dialog.flow, dialog.answer)
        if answer is None:
            return
        contacts = request.contact
        if contacts is not STAR and contacts:
            dialog.remote_target = str(contacts[0].uri)
        dialog.answer = answer
        dialog.invite_cseq = request.cseq.number
        media = self.media.get(dialog.call_id)
        if media is not None and media.stream is not None and request.body:
            offer = SessionDescription.parse(request.body)
            media.stream.configure(None, _leg_media(offer, answer, dialog.flow.remote[0]))
        self._respond(
            key,
            request,
            200,
            tag=dialog.local_tag,
            headers=self._contact(dialog.flow),
            body=bytes(answer),
        )

    # --- media mode ------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.endpoint.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters["media error"] += 1
            logger.error("media task failed", exc_info=task.exception())

    async def _open_media(self, call_id: str, mode: MediaMode) -> CallMedia:
        stream = None
        if mode.external_port is None:
            stream = await MediaStream.open(
                self.config.rtp_host, self.rtp_ports, inband_dtmf=mode.inband_dtmf
            )
        media = CallMedia(call_id=call_id, mode=mode, stream=stream)
        self.media[call_id] = media
        return media

    def _start_media(
        self, media: CallMedia, peer: SessionDescription, answer: SessionDescription, host: str
    ) -> None:
        """The call is answered: point the stream at the peer, then play / record / echo."""
        stream = media.stream
        if stream is None or media.ended:
            return
        self.media[media.call_id] = media
        stream.configure(None, _leg_media(peer, answer, host))
        media.tasks.append(self._spawn(self._collect_digits(media, stream)))
        mode = media.mode
        if mode.record is not None:
            media.recorder = _WavSink(mode.record)
            stream.add_sink(media.recorder)
        if mode.play is not None:
            media.played = self._spawn(stream.play(FileSource(mode.play, loop=mode.loop)))
        elif mode.echo:
            echo = _Echo()
            stream.add_sink(echo)
            media.played = self._spawn(stream.play(echo))

    @staticmethod
    async def _collect_digits(media: CallMedia, stream: MediaStream) -> None:
        while True:
            media.digits.append(await stream.digits.get())

    def _on_info(self, request: Request) -> None:
        """SIP INFO DTMF (``application/dtmf-relay`` / ``application/dtmf``) to the stream."""
        media = self.media.get(request.call_id)
        if media is None or media.stream is None or media.ended:
            return
        try:
            info = parse_info_body(request.content_type or "", request.body)
        except DtmfError:
            self.counters["bad INFO"] += 1
            return
        if info is not None:
            media.stream.feed_info_digit(info.digit)

    def _end_media(self, call_id: str) -> None:
        """The call ended: stop its tasks, close the stream and complete the recording. The
        :class:`CallMedia` stays in :attr:`media` (tests read what it heard)."""
        media = self.media.get(call_id)
        if media is None or media.ended:
            return
        media.ended = True
        for task in media.tasks:
            task.cancel()
        if media.stream is not None:
            media.stream.close()
        if media.recorder is not None:
            media.recorder.close()

    # --- as a client: calls, ACK, BYE ------------------------------------------------------

    async def call(self, aor: str, *, timeout: float = 10.0) -> Call:
        """Call the newest binding of ``aor`` through the flow its REGISTER came on."""
        bindings = self.contacts(aor)
        if not bindings:
            raise LookupError(f"{aor} is not registered")
        binding = bindings[0]
        to = f"<sip:{aor}@{self.config.realm}>"
        return await self.call_uri(str(binding.contact.uri), binding.flow, to=to, timeout=timeout)

    async def call_uri(
        self,
        uri: str,
        dest: Flow | Address,
        *,
        to: str | None = None,
        timeout: float = 10.0,
        media: MediaMode | None = None,
    ) -> Call:
        """Send an INVITE with an offer to ``uri`` via ``dest``, ACK a 2xx (§13.2.2.4) and
        return the call once a final response came (``call.status``; 408/503 without one).
        With ``media`` (or ``UasConfig.media``) the call's audio is terminated here: see
        :attr:`media` (keyed by ``call.invite.call_id``)."""
        flow = dest if isinstance(dest, Flow) else await self.endpoint.flow_to(dest)
        local_tag = self.endpoint.new_tag()
        call_id = self.endpoint.new_call_id()
        mode = media or self.config.media
        call_media = None if mode is None else await self._open_media(call_id, mode)
        offer = make_offer(
            local_addr=flow.local[0],
            port=self.config.media_port if call_media is None else call_media.port,
            codecs=CODECS if mode is None else mode.codecs,
            session_id=self._session_id,
            version=0,
        )
        invite = self._request(
            "INVITE",
            uri,
            flow,
            from_=f"<sip:uas@{self.config.realm}>;tag={local_tag}",
            to=to or f"<{uri}>",
            call_id=call_id,
            cseq=1,
            body=bytes(offer),
        )
        call = Call(invite=invite, tx_key=_client_key(invite), flow=flow)
        pending = self._send(invite, flow, call)
        try:
            response = await asyncio.wait_for(pending.final, timeout)
        except RequestFailedError as exc:
            call.status = exc.status
        except TimeoutError:
            call.status = 408
        else:
            call.status = response.status
            call.response = response
        if call_media is not None:
            self._media_answered(call, call_media)
        return call

    def _media_answered(self, call: Call, media: CallMedia) -> None:
        """Start the call's media once a 2xx with an answer came; else release it."""
        response = call.response
        if response is None or not 200 <= response.status < 300 or not response.body:
            self._end_media(media.call_id)
            return
        answer = SessionDescription.parse(response.body)
        # The answer names the peer's address and the agreed payload types (RFC 3264 §6.1).
        self._start_media(media, answer, answer, call.flow.remote[0])

    async def hangup(self, dialog: Dialog, *, timeout: float = 10.0) -> int:
        """Send BYE in ``dialog`` (§15.1.1); returns the final status (408/503 without one)."""
        self.dialogs.pop(dialog.key, None)
        self._end_media(dialog.call_id)
        pending = self._send_in_dialog(dialog, "BYE")
        try:
            response = await asyncio.wait_for(pending.final, timeout)
        except RequestFailedError as exc:
            return exc.status
        except TimeoutError:
            return 408
        return response.status

    def _send_in_dialog(self, dialog: Dialog, method: str) -> _Pending:
        """§12.2.1.1: Request-URI = remote target, From/To from the dialog, next CSeq."""
        dialog.local_cseq += 1
        request = self._request(
            method,
            dialog.remote_target,
            dialog.flow,
            from_=dialog.local_party,
            to=dialog.remote_party,
            call_id=dialog.call_id,
            cseq=dialog.local_cseq,
            contact=method != "BYE",
        )
        return self._send(request, dialog.flow)

    def _send(self, request: Request, flow: Flow, call: Call | None = None) -> _Pending:
        """Start a client transaction; its events may arrive while it is being sent (a
        transport error), so the waiter is registered first."""
        final: asyncio.Future[Response] = self.endpoint.loop.create_future()
        final.add_done_callback(_retrieved)  # nobody awaits the BYE sent on an ACK timeout
        pending = _Pending(final, call)
        self._client[_client_key(request)] = pending
        self.counters[f"out {request.method}"] += 1
        self.endpoint.send_request(request, flow)
        return pending

    def _request(
        self,
        method: str,
        uri: str,
        flow: Flow,
        *,
        from_: str,
        to: str,
        call_id: str,
        cseq: int,
        contact: bool = True,
        body: bytes = b"",
    ) -> Request:
        """A request of ours (RFC 3261 §8.1.1): Via with a fresh branch, Max-Forwards..."""
        items: list[tuple[str, HeaderValue]] = [
            ("Via", self.endpoint.via_for(flow)),
            ("Max-Forwards", 70),
            ("From", from_),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if contact:
            items += self._contact(flow)
        items.append(("User-Agent", USER_AGENT))
        request = Request(method, uri, Headers(items))
        if body:
            request.set_body(body, SDP)
        return request

    def _on_response(self, key: TransactionKey, response: Response) -> None:
        pending = self._client.get(key)
        if pending is None:
            return  # a transaction we no longer wait on (a BYE sent on ACK timeout)
        status = response.status
        call = pending.call
        if status < 200:
            if call is not None:
                call.provisional.append(status)
            return
        if call is not None and status < 300:
            self._ack_2xx(call, response)
        if not pending.final.done():
            pending.final.set_result(response)

    def _ack_2xx(self, call: Call, response: Response) -> None:
        """§13.2.2.4: ACK every 2xx (retransmissions included: RFC 6026 passes them up),
        sent outside the transaction to the remote target, CSeq number of the INVITE."""
        if call.dialog is None:
            call.dialog = self._uac_dialog(call, response)
            self.dialogs[call.dialog.key] = call.dialog
            dialog = call.dialog
            ack = self._request(
                "ACK",
                dialog.remote_target,
                call.flow,
                from_=dialog.local_party,
                to=dialog.remote_party,
                call_id=dialog.call_id,
                cseq=call.invite.cseq.number,
                contact=False,
            )
            call.ack = ack
        if call.ack is not None:
            self.endpoint.send_stateless(call.ack, call.flow)

    def _uac_dialog(self, call: Call, response: Response) -> Dialog:
        """§12.1.2: the dialog a 2xx to our INVITE creates."""
        contacts = response.contact
        invite = call.invite
        target = str(contacts[0].uri) if contacts is not STAR and contacts else str(invite.uri)
        return Dialog(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_party=invite.headers.get("from", ""),
            remote_party=response.headers.get("to", ""),
            remote_target=target,
            flow=call.flow,
            local_cseq=invite.cseq.number,
            remote_cseq=None,
            invite_cseq=invite.cseq.number,
            confirmed=True,
        )

    def _fail(self, key: TransactionKey, status: int, reason: str) -> None:
        pending = self._client.get(key)
        if pending is not None and not pending.final.done():
            pending.final.set_exception(RequestFailedError(status, reason))


# --- command line -----------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cloudpbx.sip_uas", description="cloudpbx test SIP user agent"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5080)
    parser.add_argument("--tcp", action="store_true", help="listen on TCP too (same port)")
    parser.add_argument(
        "--user", action="append", default=[], metavar="LOGIN:PASSWORD", help="repeatable"
    )
    parser.add_argument("--users-csv", help="a SIPp -inf file: SEQUENTIAL, then login;password")
    parser.add_argument("--invite-auth", action="store_true", help="challenge INVITEs (407)")
    parser.add_argument("--answer-delay", type=float, default=0.0, help="seconds 180 -> 200")
    parser.add_argument("--max-transactions", type=int, default=400_000)
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument(
        "--gc", choices=GC_MODES, default="tuned", help="garbage collector policy (see docs)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def _users(args: argparse.Namespace) -> dict[str, str]:
    users: dict[str, str] = {}
    for item in args.user:
        login, sep, password = item.partition(":")
        if not sep:
            raise SystemExit(f"--user wants LOGIN:PASSWORD, got {item!r}")
        users[login] = password
    if args.users_csv:
        with open(args.users_csv, encoding="utf-8") as handle:
            for line in handle.read().splitlines()[1:]:
                login, _, rest = line.partition(";")
                if login:
                    users[login] = rest.split(";")[0]
    return users


async def _serve(args: argparse.Namespace) -> None:
    config = UasConfig(
        users=_users(args),
        invite_auth=args.invite_auth,
        answer_delay=args.answer_delay,
        max_server_transactions=args.max_transactions,
    )
    uas = TestUas(config)
    host, port = await uas.start(args.host, args.port, tcp=args.tcp)
    configure_gc(args.gc)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop_name = type(loop).__module__.split(".")[0]
    print(
        f"listening on {host}:{port} ({loop_name}, gc {args.gc}, {len(config.users)} users)",
        flush=True,
    )
    await stop.wait()
    stats = {**uas.counters, "layer dropped": uas.endpoint.layer.dropped}
    print(json.dumps({"counters": stats, "endpoint": _asdict(uas.endpoint)}), flush=True)
    await uas.close()


def _asdict(endpoint: SipEndpoint) -> dict[str, int]:
    stats = endpoint.stats
    return {name: getattr(stats, name) for name in stats.__slots__}


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        run(_serve(args), prefer_uvloop=not args.no_uvloop)


if __name__ == "__main__":
    main(sys.argv[1:])
