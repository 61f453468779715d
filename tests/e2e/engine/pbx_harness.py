"""An in-process cloudpbx engine for end-to-end call tests.

:func:`start_pbx` migrates a fresh SQLite database, seeds one client through the ORM (ports
with SIP secrets, internal numbers, dialplans, a media pack with a sound message and music on
hold) and starts :class:`~cloudpbx.engine.runtime.EngineRuntime` on 127.0.0.1, SIP on a free
port, in a :class:`LoopThread` (uvloop when available). Tests drive real phones (pjsua2
subprocesses, SIPp) against it and read the call records back from the database.
"""

from __future__ import annotations

import math
import struct
import time
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.config import Settings
from cloudpbx.db.migrate import sync_rights, upgrade
from cloudpbx.db.models import (
    Call,
    CallEvent,
    CallLeg,
    Client,
    Dialplan,
    DialplanStep,
    DialplanVersion,
    Fax,
    InternalNumber,
    MediaFile,
    MediaPack,
    Port,
    Recording,
)
from cloudpbx.db.session import make_engine, make_sessionmaker
from cloudpbx.engine.runtime import EngineRuntime
from cloudpbx.media.fax import BilevelPage
from cloudpbx.security import SecretBox

from ..sip.conftest import HOST, LoopThread, Phone

T = TypeVar("T")

SECRET_KEY = "engine-e2e-secret-key-0123456789abcdef"


def write_tone(path: Path, seconds: float, freq: float = 1000.0, level: float = 0.3) -> Path:
    """An 8 kHz mono 16-bit WAV of a sine tone (what media/importer.py produces)."""
    samples = int(seconds * 8000)
    amplitude = int(32767 * level)
    frames = b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * freq * n / 8000)))
        for n in range(samples)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    return path


def read_channel(path: Path, channel: int = 0) -> list[int]:
    """One channel of a 16-bit WAV as samples."""
    with wave.open(str(path), "rb") as wav:
        channels = wav.getnchannels()
        data = wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    return list(samples[channel::channels])


def tone_ratio(samples: list[int], freq: float, other: float = 440.0) -> float:
    """Goertzel power at ``freq`` over the power at ``other`` (a tone is there when >> 1)."""

    def power(f: float) -> float:
        coeff = 2 * math.cos(2 * math.pi * f / 8000)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + coeff * s1 - s2, s1
        return s1 * s1 + s2 * s2 - coeff * s1 * s2

    return power(freq) / max(power(other), 1.0)


@dataclass
class Seed:
    """What the test client has: SIP logins by name, ids by name."""

    client_id: int
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (login, pw)
    ports: dict[str, int] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    media: dict[str, int] = field(default_factory=dict)


StepSpec = dict[str, Any]


class Seeder:
    """Builds the client's configuration through the ORM (what the API writes)."""

    def __init__(self, session: Session, box: SecretBox, media_dir: Path) -> None:
        self.session = session
        self.box = box
        self.media_dir = media_dir
        client = Client(name="E2E", description="engine e2e", area_code="495")
        session.add(client)
        session.flush()
        self.seed = Seed(client.id)
        self.pack = MediaPack(client_id=client.id, name="default", is_default=True)
        session.add(self.pack)
        session.flush()

    def port(self, name: str, **options: Any) -> int:
        secret = f"pw-{name}-0123456789"
        port = Port(
            client_id=self.seed.client_id,
            name=name,
            sip_login=f"e2e-{name}",
            sip_secret_enc=self.box.seal(secret),
            **options,
        )
        self.session.add(port)
        self.session.flush()
        self.seed.logins[name] = (port.sip_login, secret)
        self.seed.ports[name] = port.id
        return port.id

    def caller_id(self, name: str, number: str) -> None:
        """The port's caller ID: one of the client's internal numbers (§3a)."""
        port = self.session.get(Port, self.seed.ports[name])
        assert port is not None
        port.callerid_internal_id = self.seed.numbers[number]
        self.session.flush()

    def media(self, name: str, wav: Path) -> int:
        row = MediaFile(
            client_id=self.seed.client_id,
            pack_id=self.pack.id,
            name=name,
            storage_path=str(wav.relative_to(self.media_dir)),
            content_type="audio/wav",
        )
        self.session.add(row)
        self.session.flush()
        self.seed.media[name] = row.id
        return row.id

    def number(self, number: str, steps: Iterable[StepSpec]) -> int:
        row = InternalNumber(client_id=self.seed.client_id, number=number, name=number)
        self.session.add(row)
        self.session.flush()
        self.seed.numbers[number] = row.id
        plan = Dialplan(
            client_id=self.seed.client_id,
            internal_number_id=row.id,
            name=f"plan {number}",
            current_version=1,
        )
        self.session.add(plan)
        self.session.flush()
        version = DialplanVersion(
            dialplan_id=plan.id,
            client_id=self.seed.client_id,
            number=1,
            steps=[DialplanStep(**spec) for spec in steps],
        )
        self.session.add(version)
        self.session.flush()
        return row.id


def step(level: int, action: str, timeout: int = 0, **rest: Any) -> StepSpec:
    rest.setdefault("conditions", {})
    return {"level": level, "action": action, "timeout_s": timeout, **rest}


@dataclass
class Pbx:
    runtime: EngineRuntime
    thread: LoopThread
    settings: Settings
    sessions: sessionmaker[Session]
    seed: Seed
    port: int
    since: int = 0  # records() shows calls with a higher id (one engine, many tests)
    ws_port: int | None = None  # the WebSocket listener (start_pbx(ws=True))

    def reset(self) -> None:
        """Forget the calls so far: the next test sees only its own records."""
        self.wait_idle()
        with self.sessions() as session:
            self.since = session.scalar(select(func.max(Call.id))) or 0

    def uri(self, number: str) -> str:
        return f"sip:{number}@{HOST}:{self.port}"

    def register(self, phone: Phone, name: str) -> dict[str, Any]:
        login, password = self.seed.logins[name]
        phone.send(
            cmd="register", registrar=f"sip:{HOST}:{self.port}", user=login, password=password
        )
        return phone.expect("reg", timeout=10)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self.thread.call(fn, *args)

    def active_calls(self) -> list[Any]:
        return self.call(self.runtime.registry.list, self.seed.client_id)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {timeout} s")
            time.sleep(0.05)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """No call left in the engine, and its records written."""
        self.wait_until(lambda: not self.call(lambda: bool(self.runtime.b2bua.calls)), timeout)
        self.thread.run(self.runtime.cdr.flush())

    def records(self) -> list[tuple[Call, list[CallLeg], list[CallEvent]]]:
        with self.sessions() as session:
            query = select(Call).where(Call.id > self.since).order_by(Call.id)
            calls = session.scalars(query).all()
            out = []
            for call in calls:
                legs = session.scalars(select(CallLeg).where(CallLeg.call_id == call.id)).all()
                events = session.scalars(
                    select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.id)
                ).all()
                session.expunge_all()
                out.append((call, list(legs), list(events)))
            return out

    def recordings(self) -> list[Recording]:
        with self.sessions() as session:
            query = select(Recording).where(Recording.call_id > self.since)
            rows = list(session.scalars(query.order_by(Recording.id)))
            session.expunge_all()
            return rows

    def stop(self) -> None:
        self.thread.run(self.runtime.stop(), timeout=30)


def build_client(s: Seeder) -> None:
    """The test client: ports alice (caller ID 100), bob (200), carol (201, never
    registered), dave (202, automatic recording), erin (203, a :class:`StackPhone`) and frank
    (204, ringback replaced by music); 300 rings bob 2 s then plays a 1.6 s message (1 kHz);
    301 rings carol, No route/Busy → the message; 500 plays the message; 400 does not exist.
    The message is in the default media pack, so it is the music on hold too."""
    alice = s.port("alice")
    bob = s.port("bob")
    carol = s.port("carol")
    dave = s.port("dave", services={"auto_recording": True})
    erin = s.port("erin")
    frank = s.port("frank", services={"ringback": "music"})
    message = s.media("message", write_tone(s.media_dir / "message.wav", 0.8, 1000.0))
    long_message = s.media("long", write_tone(s.media_dir / "long.wav", 1.6, 1000.0))
    s.number("100", [step(1, "ring_port", 20, port_id=alice)])
    s.number("200", [step(1, "ring_port", 20, port_id=bob)])
    s.number("201", [step(1, "ring_port", 20, port_id=carol)])
    s.number("202", [step(1, "ring_port", 20, port_id=dave)])
    s.number("203", [step(1, "ring_port", 20, port_id=erin)])
    s.number("204", [step(1, "ring_port", 20, port_id=frank)])
    s.number(
        "300",
        [
            step(1, "ring_port", 2, port_id=bob, conditions={"no_answer": 2}),
            step(2, "play_message", 0, media_file_id=long_message),
        ],
    )
    s.number(
        "301",
        [
            step(1, "ring_port", 5, port_id=carol, conditions={"no_route": 2, "busy": 2}),
            step(2, "play_message", 0, media_file_id=message),
        ],
    )
    s.number("500", [step(1, "play_message", 0, media_file_id=message)])
    s.caller_id("alice", "100")
    s.caller_id("bob", "200")


def pair(
    pbx: Pbx, phones: Callable[[], Phone], callee: str = "bob", *, answers: bool = True
) -> tuple[Phone, Phone]:
    """Alice and a callee, both registered; the callee answers at once or only rings."""
    alice, other = phones(), phones()
    # Before registering: the phone may take an INVITE before it reads a later command.
    other.send(cmd="set", auto_answer=answers)
    assert pbx.register(alice, "alice")["code"] == 200
    assert pbx.register(other, callee)["code"] == 200
    return alice, other


def start_pbx(
    tmp_path: Path, build: Callable[[Seeder], None], *, ws: bool = False, **settings: Any
) -> Pbx:
    """The engine on 127.0.0.1 (free ports), seeded by ``build``; ``ws``: with the WebSocket
    listener (``Pbx.ws_port``)."""
    data = tmp_path / "pbx"
    media_dir = data / "media"
    media_dir.mkdir(parents=True)
    config = Settings(
        data_dir=data,
        database_url=f"sqlite:///{data / 'pbx.db'}",
        secret_key=SECRET_KEY,
        sip_host=HOST,
        **settings,
    )
    upgrade(config.database_url)
    sessions = make_sessionmaker(make_engine(config.database_url))
    box = SecretBox(config.secret_key)
    with sessions() as session:
        sync_rights(session)
        seeder = Seeder(session, box, media_dir)
        build(seeder)
        session.commit()
        seed = seeder.seed
    thread = LoopThread()
    runtime = EngineRuntime(
        config, sessions, box, sip_port=0, ws_port=0 if ws else -1, qualify_interval=None
    )
    listening = thread.run(runtime.start(), timeout=30)
    pbx = Pbx(runtime, thread, config, sessions, seed, listening.udp[1])
    pbx.ws_port = listening.ws[1] if listening.ws is not None else None
    return pbx


class StackPhone:
    """A phone made of the engine's own :class:`~cloudpbx.engine.sipstack.SipStack` (as a
    UAC/UAS), for what pjsua2's test phone cannot do on command: hold (re-INVITE sendonly).
    It answers calls at once with PCMU towards a UDP socket it only reads. Use it from the
    engine's loop thread (``Pbx.thread``)."""

    def __init__(self, pbx: Pbx, name: str) -> None:
        from cloudpbx.engine.sipstack import SipStack

        self.pbx = pbx
        self.login, self.password = pbx.seed.logins[name]
        self.stack = SipStack()
        self.stack.dialog_handler = self._handle
        self.dialog_id: Any = None
        self.local_sdp = b""
        self.version = 1
        self.events: list[str] = []
        self.rtp: Any = None
        self.flow: Any = None

    async def start(self) -> None:
        import asyncio
        import socket

        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        self.rtp.setblocking(False)
        addr = await self.stack.listen_udp(HOST, 0)
        self.port = addr[1]
        self.flow = self.stack.udp_flow_to((HOST, self.pbx.port))
        response = await self._register(None)
        if response is not None and response.status == 401:
            from cloudpbx.sip.auth import DigestClient

            client = DigestClient(self.login, self.password)
            value = client.authorize(
                "REGISTER",
                f"sip:{HOST}:{self.pbx.port}",
                response.headers.get_all("www-authenticate"),
                cnonce_source=lambda n: bytes(range(n)),
            )
            response = await self._register(value)
        assert response is not None
        assert response.status == 200, response
        await asyncio.sleep(0)

    async def _register(self, authorization: str | None) -> Any:
        from cloudpbx.sip.message import Request

        self.cseq = getattr(self, "cseq", 0) + 1
        headers: list[tuple[str, Any]] = [
            ("Via", self.stack.via_for(self.flow)),
            ("Max-Forwards", 70),
            ("From", f"<sip:{self.login}@{HOST}>;tag=stackphone"),
            ("To", f"<sip:{self.login}@{HOST}>"),
            ("Call-ID", f"reg-{self.login}"),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", f"<sip:{self.login}@{HOST}:{self.port}>"),
            ("Expires", 300),
        ]
        if authorization is not None:
            headers.append(("Authorization", authorization))
        request = Request("REGISTER", f"sip:{HOST}:{self.pbx.port}", headers)
        return await self.stack.request(request, self.flow)

    def _sdp(self, direction: str) -> bytes:
        from cloudpbx.sip.sdp import PCMU, Direction, make_offer

        self.version += 1
        return make_offer(
            local_addr=HOST,
            port=self.rtp.getsockname()[1],
            codecs=[PCMU],
            session_id=4242,
            version=self.version,
            direction=Direction(direction),
        ).to_bytes()

    def _handle(self, event: Any) -> None:
        from cloudpbx.sip.events import DialogTerminated, IncomingCall

        self.events.append(type(event).__name__)
        if isinstance(event, IncomingCall):
            self.dialog_id = event.dialog_id
            self.stack.respond(event.tx_key, 180)
            self.local_sdp = self._sdp("sendrecv")
            self.stack.respond(
                event.tx_key, 200, body=self.local_sdp, content_type="application/sdp"
            )
        elif isinstance(event, DialogTerminated) and event.dialog_id == self.dialog_id:
            self.dialog_id = None

    def reinvite(self, direction: str) -> None:
        """Hold (``sendonly``) or resume (``sendrecv``) with a re-INVITE (RFC 3264 §8.4)."""
        self.stack.send_request(
            self.dialog_id, "INVITE", body=self._sdp(direction), content_type="application/sdp"
        )

    def hangup(self) -> None:
        if self.dialog_id is not None:
            self.stack.bye(self.dialog_id)

    async def close(self) -> None:
        await self.stack.close()
        if self.rtp is not None:
            self.rtp.close()


class _RtpIn:
    """The caller's RTP socket: packets into a jitter buffer (asyncio datagram protocol)."""

    def __init__(self) -> None:
        from cloudpbx.media.jitter import JitterBuffer

        self.jitter = JitterBuffer(depth=0.060, ptime=0.020)
        self.transport: Any = None
        self.packets = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, _addr: Any) -> None:
        import asyncio
        import contextlib

        from cloudpbx.media.rtp import RtpError, RtpPacket

        with contextlib.suppress(RtpError, ValueError):
            packet = RtpPacket.parse(data)
            if packet.payload_type == 0:
                self.packets += 1
                self.jitter.put(packet, asyncio.get_running_loop().time())

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        pass


class Listener:
    """A media endpoint that sends silence and keeps what it hears (PCM16 frames)."""

    def __init__(self) -> None:
        self.heard: list[bytes] = []

    def read(self, samples: int) -> bytes:
        return bytes(2 * samples)

    def write(self, pcm: bytes | None) -> None:
        self.heard.append(pcm if pcm is not None else bytes(320))

    def samples(self) -> list[int]:
        data = b"".join(self.heard)
        return list(struct.unpack(f"<{len(data) // 2}h", data))


class StackCaller:
    """A calling phone made of the engine's :class:`~cloudpbx.engine.sipstack.SipStack` as a
    UAC, for what pjsua2's test phone cannot do on command: answer the INVITE's 407 with
    Digest (RFC 3261 §22.3) over UDP or WebSocket (RFC 7118), send no RTP at all (a dead
    peer), negotiate a session timer it never refreshes (RFC 4028), or be a fax machine.
    Media (PCMU only): :meth:`media` runs an endpoint with ``read``/``write`` (a spandsp
    :class:`~cloudpbx.media.fax.FaxSender`, :class:`Listener`) in real time, 20 ms a packet
    from a monotonic schedule. Use it from the engine's loop thread (``Pbx.thread``)."""

    def __init__(
        self, pbx: Pbx, name: str, *, dialog_config: Any = None, ws_port: int | None = None
    ) -> None:
        from cloudpbx.engine.sipstack import SipStack

        self.pbx = pbx
        self.login, self.password = pbx.seed.logins[name]
        self.stack = SipStack(dialog_config=dialog_config)
        self.stack.dialog_handler = self._handle
        self.ws_port = ws_port
        self.flow: Any = None
        self.rtp = _RtpIn()
        self.remote_media: tuple[str, int] | None = None
        self.dialog_id: Any = None
        self.answered_response: Any = None
        self.bye_received = False
        self._results: dict[Any, Any] = {}
        self.ended: Any = None

    async def start(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()
        await loop.create_datagram_endpoint(lambda: self.rtp, local_addr=(HOST, 0))  # type: ignore[arg-type, return-value]
        if self.ws_port is None:
            await self.stack.listen_udp(HOST, 0)
            self.flow = self.stack.udp_flow_to((HOST, self.pbx.port))
        else:
            await self.stack.listen_ws(HOST, 0)
            assert self.stack._ws is not None
            self.flow = await self.stack._ws.connect((HOST, self.ws_port))

    def _offer(self) -> bytes:
        from cloudpbx.sip.sdp import PCMU, make_offer

        port = self.rtp.transport.get_extra_info("sockname")[1]
        return make_offer(
            local_addr=HOST, port=port, codecs=[PCMU], session_id=77, version=1
        ).to_bytes()

    async def call(self, number: str, timeout: float = 10.0) -> int:
        """INVITE ``number`` (with Digest after the 407); the final status."""
        import asyncio

        from cloudpbx.sip.auth import DigestClient

        uri = f"sip:{number}@{HOST}:{self.pbx.port}"
        body = self._offer()
        response = await asyncio.wait_for(self._invite(uri, number, body, None, 1), timeout)
        if response.status == 407:
            value = DigestClient(self.login, self.password).authorize(
                "INVITE",
                uri,
                response.headers.get_all("proxy-authenticate"),
                cnonce_source=lambda n: bytes(range(n)),
                body=body,
            )
            call_id = response.headers.get("call-id")
            response = await asyncio.wait_for(
                self._invite(uri, number, body, value, 2, call_id), timeout
            )
        if 200 <= response.status < 300:
            from cloudpbx.sip.sdp import SessionDescription

            audio = SessionDescription.parse(response.body).audio()
            assert audio is not None
            assert audio.host is not None
            self.remote_media = (audio.host, audio.port)
        return int(response.status)

    async def _invite(
        self,
        uri: str,
        number: str,
        body: bytes,
        authorization: str | None,
        cseq: int,
        call_id: str | None = None,
    ) -> Any:
        import asyncio

        headers = [] if authorization is None else [("Proxy-Authorization", authorization)]
        invite = self.stack.create_invite(
            request_uri=uri,
            from_=f"<sip:{self.login}@{HOST}>",
            to=f"<sip:{number}@{HOST}>",
            addr=self.flow,
            body=body,
            content_type="application/sdp",
            headers=headers,
            call_id=call_id,
            cseq=cseq,
        )
        future = asyncio.get_running_loop().create_future()
        key = self.stack.send_invite(invite, self.flow)
        self._results[key] = future
        return await future

    def _handle(self, event: Any) -> None:
        from cloudpbx.sip.events import ByeReceived, CallAnswered, CallFailed, DialogTerminated

        if isinstance(event, CallAnswered | CallFailed):
            future = self._results.pop(event.call, None)
            if isinstance(event, CallAnswered):
                self.dialog_id = event.dialog_id
                self.answered_response = event.response
            response = event.response
            if response is None:
                from cloudpbx.sip.message import Response

                response = Response(event.status, "no response")
            if future is not None and not future.done():
                future.set_result(response)
        elif isinstance(event, ByeReceived):
            self.bye_received = True
        elif (
            isinstance(event, DialogTerminated)
            and event.dialog_id == self.dialog_id
            and not self.ended.done()
        ):
            self.ended.set_result(event.reason)

    async def media(self, endpoint: Any, seconds: float, until: Callable[[], bool]) -> int:
        """Run ``endpoint`` for at most ``seconds`` (or until ``until()`` or the call ends)
        in real time; returns the ticks run."""
        import asyncio

        from cloudpbx.media.codecs.g711 import PCMU
        from cloudpbx.media.jitter import Gap
        from cloudpbx.media.rtp import RtpSender

        sender = RtpSender(ssrc=0x1234, initial_seq=100, initial_ts=1000, payload_type=0)
        loop = asyncio.get_running_loop()
        start, ticks = loop.time(), 0
        while ticks < seconds * 50 and not until() and not self.ended.done():
            ticks += 1
            await asyncio.sleep(max(0.0, start + ticks * 0.020 - loop.time()))
            packet = sender.packetize(PCMU.encode(endpoint.read(160)), 160)
            assert self.remote_media is not None
            self.rtp.transport.sendto(bytes(packet), self.remote_media)
            while (item := self.rtp.jitter.get(loop.time())) is not None:
                endpoint.write(None if isinstance(item, Gap) else PCMU.decode(item.payload))
        return ticks

    def hangup(self) -> None:
        if self.dialog_id is not None and not self.ended.done():
            self.stack.bye(self.dialog_id)

    async def close(self) -> None:
        await self.stack.close()
        if self.rtp.transport is not None:
            self.rtp.transport.close()


# --- fax (test_fax*.py) ---------------------------------------------------------------------


def build_fax_client(s: Seeder) -> None:
    """alice (a caller); 600 receives faxes."""
    s.port("alice")
    s.number("600", [step(1, "fax_receiver", 0)])


def faxes(pbx: Pbx) -> list[Any]:
    with pbx.sessions() as session:
        rows = list(session.scalars(select(Fax).where(Fax.call_id > pbx.since)))
        session.expunge_all()
        return rows


def short_page(rows: int = 200) -> BilevelPage:
    """A short fax page (1728 px at 204×98 dpi) with a frame and a few rules."""
    stride = 1728 // 8
    out = []
    for y in range(rows):
        row = bytearray(stride)
        if y < 4 or y >= rows - 4 or y % 40 < 2:
            row[:] = b"\xff" * stride
        row[0] |= 0x80
        row[-1] |= 0x01
        out.append(bytes(row))
    return BilevelPage(1728, tuple(out), (204, 98))


def jump_sip_clock(pbx: Pbx, seconds: float) -> None:
    """Run the engine's SIP timers as if ``seconds`` had passed (RFC 4028 session timers
    are >= 90 s: a test cannot wait for them). Only the timer processing sees the future
    time; what the handlers send meanwhile is stamped with the real clock."""

    def jump() -> None:
        stack = pbx.runtime.stack
        stack.dialogs.handle_timer(stack.now + seconds)
        stack._pump()

    pbx.call(jump)
