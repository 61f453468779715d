"""MediaStream: one call leg whose media the PBX itself terminates (asyncio shell).

Issue 4 items 5-6 and contract A (``/tmp``-independent summary in docs/media-player.md). Prompts,
music on hold, ringback, voice menus, voicemail, recording and fax all talk to the peer through
one :class:`MediaStream`: an RTP socket on an even port and its RTCP neighbour (RFC 3550 §11),
allocated from :class:`~cloudpbx.media.ports.RtpPortAllocator`.

Public API (stable; other modules build on it)::

    stream = await MediaStream.open(host, port_allocator)   # binds RTP + RTCP
    stream.local_address                                     # (host, port) for our SDP
    stream.configure(remote, media)                          # peer address + LegMedia (PTs)
    result = await stream.play(source, interrupt_digits="#") # PlayResult(completed, digit)
    stream.stop_playing()
    digit = await stream.digits.get()                        # RFC 4733, in-band, SIP INFO
    stream.feed_info_digit("5")                              # from a SIP INFO request
    stream.add_sink(sink); stream.remove_sink(sink)          # sink.write(pcm | None) / 20 ms
    await stream.send_dtmf("1")                              # RFC 4733 (in-band without it)
    stream.stats()                                           # StreamStats for the call detail
    stream.on_inactive = callback                            # peer silent for the timeout
    stream.close()                                           # releases the port pair

One clock drives everything: a :class:`~cloudpbx.media.player.Pacer` tick every 20 ms (frame
*n* at ``start + n * 20 ms`` on ``time.monotonic``, so no drift). Each tick

* sends one frame: the playing source's audio (G.711-encoded for the negotiated PT), an RFC
  4733 event packet while a digit is being sent, or — idle — silence (``idle_silence=True``,
  the default: keeps the peer's RTP timeout and NAT bindings alive while we only listen, e.g.
  recording a voicemail) or nothing (the RTP timestamp still advances, RFC 3550 §5.1). The
  sequence number and timestamp run on across plays; the marker bit flags the first packet
  after a pause (RFC 3551 §4.1);
* takes one frame out of the :class:`~cloudpbx.media.jitter.JitterBuffer` (60 ms deep),
  decodes it and hands it to every sink: PCM bytes, or ``None`` for a lost frame, a slot with
  nothing due (buffering, a silent or held peer) or a telephone-event packet;
* runs the in-band DTMF detector on that audio, closes RFC 4733 events whose end packets were
  all lost, sends RTCP when due (SR when we sent since the last report, else RR; every 5 s
  randomised 0.5-1.5x, RFC 3550 §6.2, §6.3.1) and checks the inactivity timer.

A late loop (a stall) makes the tick handle every overdue slot at once: received frames are
all delivered (sinks stay on the call clock); of the frames to send, at most three are sent
and older ones skipped (timestamps advanced), see :class:`~cloudpbx.media.player.Pacer`.

DTMF decision (avoid double detection): when the peer negotiated ``telephone-event``, digits
come from RFC 4733 only and the in-band detector is off (a phone that sends both — RFC 4733
§2.6 allows audio alongside events — would otherwise report every key twice); without it, the
Goertzel detector runs on the decoded audio. ``inband_dtmf=True`` / ``False`` forces it.
SIP INFO digits (:meth:`MediaStream.feed_info_digit`) are always taken. A digit in
``interrupt_digits`` of the running play ends it and is returned in the :class:`PlayResult`
*instead of* being queued; every other digit goes to :attr:`MediaStream.digits`.

Security: the peer's media is taken only from the address the :class:`~cloudpbx.media.rtp.Latch`
accepts — learned in the first packets only, the signalled address preferred ("RTP bleed",
CVE-2017-14099) — and RTCP only from the latched peer's IP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import random
import secrets
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from cloudpbx.media.codecs import G711Codec, codec_by_name
from cloudpbx.media.dtmf import (
    DigitDetected,
    DtmfDetector,
    DtmfReceiver,
    DtmfSender,
    EventPacket,
    digit_to_event,
    dtmf_pcm,
)
from cloudpbx.media.inbound import AudioSink, AudioSinks, decode_slot, expire_event, write_sinks
from cloudpbx.media.jitter import JitterBuffer, JitterStats
from cloudpbx.media.player import FRAME_SAMPLES, AudioSource, Pacer, PacerStats
from cloudpbx.media.ports import RtpPortAllocator, bind_rtp_pair
from cloudpbx.media.relay import LegMedia, canonical_address
from cloudpbx.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    looks_like_rtcp,
    ntp_from_unix,
    ntp_middle,
    parse_compound,
    serialize_compound,
)
from cloudpbx.media.rtp import (
    Address,
    InactivityTimer,
    Latch,
    ReceptionSnapshot,
    RtpError,
    RtpPacket,
    RtpReceiverStats,
    RtpSender,
)

__all__ = [
    "AudioSink",
    "MediaStream",
    "MediaStreamError",
    "PlayResult",
    "RemoteReport",
    "StreamStats",
]

log = logging.getLogger(__name__)

_HEADER: Final = struct.Struct("!BBHII")  # RFC 3550 §5.1 fixed header, no CSRC
_FRAME_BYTES: Final = 2 * FRAME_SAMPLES
_RTCP_INTERVAL: Final = 5.0
_DTMF_GAP_MS: Final = 60  # in-band: silence after a tone so two equal digits stay apart
_monotonic: Final = time.monotonic


class MediaStreamError(Exception):
    """The stream cannot do what was asked (closed, no bindable port)."""


@dataclass(frozen=True, slots=True)
class PlayResult:
    """How a play ended: ``completed`` (the source finished) or interrupted by ``digit``
    (``None`` when stopped by :meth:`MediaStream.stop_playing`, a new play or close)."""

    completed: bool
    digit: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteReport:
    """What the peer's last RTCP report block said about our stream (RFC 3550 §6.4.1)."""

    fraction_lost: float  # 0..1 over its last interval
    cumulative_lost: int
    jitter_ms: float
    rtt_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStats:
    """Figures for the call detail (loss/jitter both ways) and for tests."""

    packets_sent: int
    octets_sent: int
    received: ReceptionSnapshot  # what we received (loss RFC 3550 A.3, jitter A.8)
    jitter_buffer: JitterStats
    pacer: PacerStats
    remote: RemoteReport | None  # the peer's view of our stream, from its RTCP
    rtcp_sent: int
    rtcp_received: int
    refused_source: int  # packets the latch refused
    refused_payload_type: int
    malformed: int
    latched: Address | None


class _Rtcp(asyncio.DatagramProtocol):
    """The odd port: hands datagrams to the stream."""

    def __init__(self, stream: MediaStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.stream._rtcp_received(data, (addr[0], addr[1]))


class _Play:
    """A running play; reads one frame ahead so that it ends (and the next play can start)
    right after its last frame went out, with no idle slot in between."""

    __slots__ = ("ahead", "future", "interrupt", "source")

    def __init__(
        self, source: AudioSource, interrupt: str, future: asyncio.Future[PlayResult]
    ) -> None:
        self.source = source
        self.interrupt = interrupt
        self.future = future
        self.ahead: bytes | None = None

    def pull(self) -> bytes | None:
        try:
            pcm = self.source.read(FRAME_SAMPLES)
        except Exception:
            log.exception("audio source failed; play stopped")
            return None
        if not pcm:
            return None
        if len(pcm) < _FRAME_BYTES:
            pcm = pcm.ljust(_FRAME_BYTES, b"\0")  # the last piece: pad with silence
        return pcm[:_FRAME_BYTES]


class MediaStream(AudioSinks, asyncio.DatagramProtocol):
    """One PBX-terminated call leg; see the module docstring. Make it with :meth:`open`."""

    def __init__(
        self,
        port: int,
        allocator: RtpPortAllocator | None,
        *,
        inactivity_timeout: float = 30.0,
        jitter_depth: float = 0.060,
        idle_silence: bool = True,
        inband_dtmf: bool | None = None,
        latch_window: float = 2.0,
        latch_packets: int = 10,
        cname: str | None = None,
        rtcp_interval: float = _RTCP_INTERVAL,
    ) -> None:
        self.port = port
        self._allocator = allocator
        self.local_address: Address = ("", port)
        self.media = LegMedia()
        self.remote: Address | None = None
        self.idle_silence = idle_silence
        self.rtcp_interval = rtcp_interval
        self.inband_dtmf = inband_dtmf
        self.on_inactive: Callable[[MediaStream], None] | None = None
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.closed = False
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._latch = Latch(window=latch_window, max_packets=latch_packets)
        self._timer = InactivityTimer(inactivity_timeout)
        self._inactive_fired = False
        self._rx_stats = RtpReceiverStats(8000, probation=1)
        self._jitter = JitterBuffer(depth=jitter_depth, max_depth=max(0.2, jitter_depth))
        self._dtmf_rx = DtmfReceiver()
        self._detector: DtmfDetector | None = None
        self._sinks: list[AudioSink] = []
        self._decoders: dict[int, Callable[[bytes], bytes]] = {}
        self._event_pt: int | None = None
        self._codec: G711Codec = codec_by_name("PCMU")
        self._send_pt = 0
        self._sends = True  # the peer wants media (its direction is sendrecv or recvonly)
        self._sender = RtpSender(
            ssrc=secrets.randbits(32),
            initial_seq=secrets.randbits(16),
            initial_ts=secrets.randbits(32),
            payload_type=0,
        )
        self._cname = cname or f"cloudpbx-{self._sender.ssrc:08x}"
        self._talking = False  # the previous slot carried audio (no marker on the next)
        self._play: _Play | None = None
        self._dtmf_out: deque[tuple[str, int, asyncio.Future[None]]] = deque()
        self._event: list[EventPacket] | None = None  # packets of the event being sent
        self._event_elapsed = 0
        self._event_future: asyncio.Future[None] | None = None
        self._inband_out: bytes = b""
        self._pacer = Pacer(_monotonic())
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._frame_time = 0.0
        self._rtcp_due = 0.0
        self._rtcp_dest: Address | None = None
        self._rtcp_sent = 0
        self._rtcp_in = 0
        self._sent_since_report = False
        self._remote_report: RemoteReport | None = None
        self._last_event_at: tuple[int, float] | None = None  # (RTP ts, arrival) of events
        self._refused_pt = 0
        self._malformed = 0
        self._configured = False

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        host: str,
        port_allocator: RtpPortAllocator,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        bind_attempts: int = 16,
        **options: Any,
    ) -> MediaStream:
        """Bind an RTP/RTCP pair on ``host`` from ``port_allocator`` and start the 20 ms tick.

        ``options`` go to the constructor: ``inactivity_timeout`` (30 s), ``jitter_depth``
        (0.060 s), ``idle_silence`` (True), ``inband_dtmf`` (None = automatic),
        ``latch_window`` / ``latch_packets``, ``cname``, ``rtcp_interval`` (5 s). Raises
        :class:`~cloudpbx.media.ports.PortsExhaustedError` or :class:`MediaStreamError`.
        """
        loop = loop or asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(bind_attempts):
            port = port_allocator.allocate()
            try:
                rtp_sock, rtcp_sock = bind_rtp_pair(host, port)
            except OSError as exc:
                port_allocator.release(port)
                if exc.errno != errno.EADDRINUSE:
                    raise
                last = exc
                continue
            stream = cls(port, port_allocator, **options)
            try:
                await stream._attach(loop, rtp_sock, rtcp_sock)
            except BaseException:
                stream.close()
                rtp_sock.close()
                rtcp_sock.close()
                raise
            stream._start(loop)
            return stream
        raise MediaStreamError(f"no bindable RTP port after {bind_attempts} tries") from last

    async def _attach(
        self, loop: asyncio.AbstractEventLoop, rtp: socket.socket, rtcp: socket.socket
    ) -> None:
        await loop.create_datagram_endpoint(lambda: self, sock=rtp)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Rtcp(self), sock=rtcp)
        self._rtcp_transport = transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        if sockname is not None:
            self.local_address = (sockname[0], sockname[1])

    def error_received(self, exc: Exception) -> None:
        """ICMP unreachable from a peer not listening (yet): not our failure."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        now = _monotonic()
        self._pacer = Pacer(now)
        self._rtcp_due = now + self.rtcp_interval * random.uniform(0.5, 1.5)
        self._arm()

    # --- signalling --------------------------------------------------------------------------

    @property
    def rtcp_address(self) -> Address:
        return (self.local_address[0], self.local_address[1] + 1)

    @property
    def frame_time(self) -> float:
        """Monotonic time of the frame being handed to sinks (their clock, for recorders)."""
        return self._frame_time

    @property
    def playing(self) -> bool:
        return self._play is not None

    def configure(self, remote: Address | None, media: LegMedia) -> None:
        """Apply (re-)negotiated media: the peer's address (``remote``, or ``media.remote``
        when None) and payload types; the first PT naming PCMU/PCMA is the one we send.

        A changed address reopens the latch (a re-INVITE moved the peer). ``media.direction``
        is the peer's (RFC 3264 §5.1): we send nothing to a ``sendonly``/``inactive`` peer, and
        the inactivity countdown (from the first configuration) is suspended while the peer
        is ``recvonly``/``inactive`` (it is not expected to send).
        """
        if self.closed:
            raise MediaStreamError("stream closed")
        remote = remote if remote is not None else media.remote
        if remote is not None:
            # 4-tuples and long IPv6 forms compare equal to what the socket reports (latching).
            remote = canonical_address(remote, ipv6_socket=":" in self.local_address[0])
        self.remote = remote
        self.media = media
        self._latch.strict = media.strict
        self._latch.on_signalled(remote)
        self._apply_payload_types(media.payload_types)
        self._sends = media.direction in ("sendrecv", "recvonly")
        now = _monotonic()
        if media.direction in ("sendrecv", "sendonly"):
            if not self._configured or self._timer.suspended:
                self._timer.resume(now)
        else:
            self._timer.suspend()
        self._configured = True
        self._inactive_fired = False

    def _apply_payload_types(self, payload_types: Mapping[int, str]) -> None:
        decoders: dict[int, Callable[[bytes], bytes]] = {}
        send: tuple[int, G711Codec] | None = None
        event_pt: int | None = None
        for pt in sorted(payload_types):
            name = payload_types[pt].split("/", 1)[0].strip().upper()
            if name in ("PCMU", "PCMA"):
                codec = codec_by_name(name)
                decoders[pt] = codec.decode
                send = send or (pt, codec)
            elif name == "TELEPHONE-EVENT" and event_pt is None:
                event_pt = pt
        if send is None:
            raise MediaStreamError(f"no G.711 payload type in {dict(payload_types)}")
        self._send_pt, self._codec = send
        self._decoders = decoders
        self._event_pt = event_pt
        inband = self.inband_dtmf if self.inband_dtmf is not None else event_pt is None
        if inband and self._detector is None:
            self._detector = DtmfDetector()
        elif not inband:
            self._detector = None

    # --- playing -----------------------------------------------------------------------------

    async def play(self, source: AudioSource, *, interrupt_digits: str = "") -> PlayResult:
        """Play ``source`` from the next 20 ms tick until it finishes (``completed=True``), a
        digit in ``interrupt_digits`` arrives (returned, not queued), or it is stopped.

        A play already running is stopped first (its result: ``completed=False``).
        Cancelling the awaiting task stops the play.
        """
        if self.closed:
            raise MediaStreamError("stream closed")
        self._finish_play(PlayResult(False))
        loop = self._loop or asyncio.get_running_loop()
        play = _Play(source, interrupt_digits, loop.create_future())
        self._play = play
        try:
            return await asyncio.shield(play.future)
        except asyncio.CancelledError:
            if self._play is play:
                self._finish_play(PlayResult(False))
            raise

    def stop_playing(self) -> None:
        """End the current play, if any (its result: ``completed=False, digit=None``)."""
        self._finish_play(PlayResult(False))

    def _finish_play(self, result: PlayResult) -> None:
        play = self._play
        if play is None:
            return
        self._play = None
        if not play.future.done():
            play.future.set_result(result)

    # --- digits (sinks: add_sink / remove_sink from AudioSinks) -------------------------------

    def feed_info_digit(self, digit: str) -> None:
        """A digit from a SIP INFO request (dtmf.parse_info_body)."""
        digit_to_event(digit)  # DtmfError for anything that is not a DTMF key
        self._on_digit(digit.upper())

    def flush_digits(self) -> list[str]:
        """Take the digits queued so far (e.g. type-ahead before a menu)."""
        out = []
        while not self.digits.empty():
            out.append(self.digits.get_nowait())
        return out

    def _on_digit(self, digit: str) -> None:
        play = self._play
        if play is not None and digit in play.interrupt:
            self._finish_play(PlayResult(False, digit))
            return
        self.digits.put_nowait(digit)

    def _on_detected(self, detected: list[DigitDetected]) -> None:
        for d in detected:
            self._on_digit(d.digit)

    # --- DTMF out ----------------------------------------------------------------------------

    async def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Send one key press: RFC 4733 events (end packet three times, §2.5.1.4) when the peer
        negotiated telephone-event, else the tone pair in-band. Returns once it is sent;
        presses queue up. While a digit is sent, the playing source pauses."""
        if self.closed:
            raise MediaStreamError("stream closed")
        digit_to_event(digit)
        if duration_ms < 40:
            raise ValueError("a DTMF press lasts at least 40 ms")
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._dtmf_out.append((digit.upper(), duration_ms, future))
        await future

    def _next_dtmf_frame(self) -> bytes | list[EventPacket] | None:
        """What DTMF sending puts in this slot: PCM (in-band), event packets, or None."""
        if self._event is None and not self._inband_out and self._dtmf_out:
            digit, duration_ms, future = self._dtmf_out.popleft()
            self._event_future = future
            if self._event_pt is not None:
                sender = DtmfSender(update_interval=FRAME_SAMPLES)
                self._event = sender.packets(digit, self._sender.timestamp, duration_ms * 8)
                self._event_elapsed = 0
            else:
                self._inband_out = dtmf_pcm(digit, duration_ms) + bytes(16 * _DTMF_GAP_MS)
        if self._event is not None:
            return self._take_event_packets()
        if self._inband_out:
            frame = self._inband_out[:_FRAME_BYTES].ljust(_FRAME_BYTES, b"\0")
            self._inband_out = self._inband_out[_FRAME_BYTES:]
            if not self._inband_out:
                self._dtmf_done()
            return frame
        return None

    def _take_event_packets(self) -> list[EventPacket]:
        event = self._event
        assert event is not None
        out = []
        while event and event[0].send_at <= self._event_elapsed:
            out.append(event.pop(0))
        self._event_elapsed += FRAME_SAMPLES
        if not event:
            self._event = None
            self._dtmf_done()
        return out

    def _dtmf_done(self) -> None:
        future, self._event_future = self._event_future, None
        if future is not None and not future.done():
            future.set_result(None)

    # --- the tick ----------------------------------------------------------------------------

    def _arm(self) -> None:
        loop = self._loop
        if loop is None or self.closed:
            return
        delay = self._pacer.deadline() - _monotonic()
        self._handle = loop.call_later(max(0.0, delay), self._tick)

    def _tick(self) -> None:
        self._handle = None
        now = _monotonic()
        pacer = self._pacer
        first = pacer.next_frame
        skip, send = pacer.due(now)
        try:
            for i in range(skip + send):
                self._frame_time = pacer.time_of(first + i)
                self._receive_slot(self._frame_time)
                self._send_slot(transmit=i >= skip)
            self._housekeeping(now)
        except Exception:
            log.exception("media stream tick failed")
        self._arm()

    def _send_slot(self, *, transmit: bool) -> None:
        dtmf = self._next_dtmf_frame() if transmit else None
        if dtmf is None:
            pcm = self._read_source()
        elif isinstance(dtmf, bytes):
            pcm = dtmf
        else:
            self._send_events(dtmf)
            self._sender.skip(FRAME_SAMPLES)
            return
        if pcm is None and self.idle_silence and self._configured:
            pcm = bytes(_FRAME_BYTES)
        if pcm is None or not transmit:
            self._sender.skip(FRAME_SAMPLES)
            self._talking = False
            return
        self._send_audio(pcm)

    def _read_source(self) -> bytes | None:
        play = self._play
        if play is None:
            return None
        pcm = play.ahead if play.ahead is not None else play.pull()
        play.ahead = None if pcm is None else play.pull()
        if play.ahead is None:
            self._finish_play(PlayResult(True))  # this is the last frame (or none was left)
        return pcm

    def _destination(self) -> Address | None:
        if not self._sends or self._transport is None:
            return None
        return self._latch.destination

    def _send_audio(self, pcm: bytes) -> None:
        sender = self._sender
        dest = self._destination()
        if dest is None:
            sender.skip(FRAME_SAMPLES)
            self._talking = False
            return
        payload = self._codec.encode(pcm)
        marker = 0 if self._talking else 0x80
        header = _HEADER.pack(
            0x80, marker | self._send_pt, sender.sequence, sender.timestamp, sender.ssrc
        )
        self._sendto(header + payload, dest)
        sender.sequence = (sender.sequence + 1) & 0xFFFF
        sender.timestamp = (sender.timestamp + FRAME_SAMPLES) & 0xFFFF_FFFF
        sender.packets_sent += 1
        sender.octets_sent += len(payload)
        self._talking = True

    def _send_events(self, packets: list[EventPacket]) -> None:
        dest = self._destination()
        sender = self._sender
        pt = self._event_pt
        for packet in packets:
            if dest is None or pt is None:
                continue
            payload = bytes(packet)
            header = _HEADER.pack(
                0x80,
                (0x80 if packet.marker else 0) | pt,
                sender.sequence,
                packet.timestamp,
                sender.ssrc,
            )
            self._sendto(header + payload, dest)
            sender.sequence = (sender.sequence + 1) & 0xFFFF
            sender.packets_sent += 1
            sender.octets_sent += len(payload)
        self._talking = False  # the audio after the event starts a talkspurt

    def _sendto(self, data: bytes, dest: Address) -> None:
        transport = self._transport
        if transport is not None:
            transport.sendto(data, dest)
            self._sent_since_report = True

    # --- receiving ---------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = _monotonic()
        src: Address = (addr[0], addr[1])
        if looks_like_rtcp(data):  # RTCP multiplexed on the RTP port (RFC 5761 §4)
            self._rtcp_received(data, src)
            return
        if not self._configured or not self._latch.on_packet(src, now):
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self._malformed += 1
            return
        pt = packet.payload_type
        if pt not in self._decoders and pt != self._event_pt:
            self._refused_pt += 1
            return
        self._timer.on_packet(now)
        self._rx_stats.on_packet(packet, now)
        self._jitter.put(packet, now)
        if pt == self._event_pt:
            self._last_event_at = (packet.timestamp, now)
            digits = self._dtmf_rx.feed(packet.timestamp, packet.payload, marker=packet.marker)
            self._on_detected(digits)

    def _receive_slot(self, at: float) -> None:
        """One 20 ms slot of received audio to the sinks and the in-band detector."""
        pcm = decode_slot(self._jitter, self._decoders, at)
        detector = self._detector
        if detector is not None and pcm is not None:
            self._on_detected(detector.feed(pcm))
        write_sinks(self._sinks, pcm, "media")

    def _housekeeping(self, now: float) -> None:
        self._on_detected(expire_event(self._dtmf_rx, self._last_event_at, now))
        if now >= self._rtcp_due:
            self._rtcp_due = now + self.rtcp_interval * random.uniform(0.5, 1.5)
            self._send_rtcp(now)
        if self._configured and not self._inactive_fired and self._timer.expired(now):
            self._inactive_fired = True
            callback = self.on_inactive
            if callback is not None:
                try:
                    callback(self)
                except Exception:
                    log.exception("on_inactive callback failed")

    # --- RTCP --------------------------------------------------------------------------------

    def _rtcp_received(self, data: bytes, src: Address) -> None:
        latched = self._latch.destination
        if latched is None or src[0] != latched[0]:
            return  # only from the peer we talk to (RTCP cannot steer our media, but it is fed
            # into the call record)
        try:
            packets = parse_compound(data)
        except RtcpError:
            self._malformed += 1
            return
        now = _monotonic()
        self._rtcp_in += 1
        if self._rtcp_dest is None and src[1] != latched[1]:
            self._rtcp_dest = src  # symmetric RTCP (where the peer's reports come from)
        for packet in packets:
            self._on_rtcp(packet, now)

    def _on_rtcp(self, packet: RtcpPacket, now: float) -> None:
        if isinstance(packet, SenderReport) and packet.ssrc == self._rx_stats.ssrc:
            self._rx_stats.note_sender_report(ntp_middle(packet.ntp_timestamp), now)
        if not isinstance(packet, SenderReport | ReceiverReport):
            return
        for block in packet.reports:
            if block.ssrc != self._sender.ssrc:
                continue
            rtt = block.round_trip_time(ntp_from_unix(time.time()))
            self._remote_report = RemoteReport(
                fraction_lost=block.fraction_lost / 256.0,
                cumulative_lost=block.cumulative_lost,
                jitter_ms=block.jitter / 8.0,
                rtt_s=rtt,
            )

    def _report(self, now: float) -> RtcpPacket:
        blocks = []
        if self._rx_stats.ssrc is not None:
            blocks.append(ReportBlock.from_stats(self._rx_stats, now))
        sender = self._sender
        if self._sent_since_report:
            # the RTP timestamp of "now": the next packet's, less the time until it is due
            ahead = round((self._pacer.deadline() - now) * 8000)
            return SenderReport.from_sender(
                sender,
                ntp_timestamp=ntp_from_unix(time.time()),
                rtp_timestamp=(sender.timestamp - ahead) & 0xFFFF_FFFF,
                reports=blocks,
            )
        return ReceiverReport(ssrc=sender.ssrc, reports=tuple(blocks))

    def _send_rtcp(self, now: float, *, bye: bool = False) -> None:
        transport = self._rtcp_transport
        dest = self._rtcp_dest
        if dest is None and self._latch.destination is not None:
            rtp = self._latch.destination
            dest = (rtp[0], rtp[1] + 1)  # RFC 3550 §11: RTCP on the next port
        if transport is None or dest is None or not self._configured:
            return
        packets = [self._report(now), SourceDescription.with_cname(self._sender.ssrc, self._cname)]
        if bye:
            packets.append(Bye(sources=(self._sender.ssrc,), reason=None))
        transport.sendto(serialize_compound(packets), dest)
        self._sent_since_report = False
        self._rtcp_sent += 1

    # --- results and teardown ----------------------------------------------------------------

    def stats(self) -> StreamStats:
        return StreamStats(
            packets_sent=self._sender.packets_sent,
            octets_sent=self._sender.octets_sent,
            received=self._rx_stats.snapshot(),
            jitter_buffer=dataclasses.replace(self._jitter.stats),
            pacer=dataclasses.replace(self._pacer.stats),
            remote=self._remote_report,
            rtcp_sent=self._rtcp_sent,
            rtcp_received=self._rtcp_in,
            refused_source=self._latch.dropped,
            refused_payload_type=self._refused_pt,
            malformed=self._malformed,
            latched=self._latch.latched,
        )

    def close(self) -> None:
        """Stop playing (``completed=False``), send RTCP BYE, close both sockets and give the
        port pair back. Idempotent."""
        if self.closed:
            return
        self._finish_play(PlayResult(False))
        while self._dtmf_out:
            future = self._dtmf_out.popleft()[2]
            if not future.done():
                future.cancel()
        self._event = None
        self._inband_out = b""
        self._dtmf_done()
        try:
            self._send_rtcp(_monotonic(), bye=True)
        except (OSError, ValueError):
            log.debug("RTCP BYE not sent", exc_info=True)
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        for transport in (self._transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._transport = self._rtcp_transport = None
        self._sinks.clear()
        if self._allocator is not None:
            self._allocator.release(self.port)
            self._allocator = None
