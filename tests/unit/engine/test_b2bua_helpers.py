"""Pure pieces of the B2BUA (issue 5 item 4): the dialled number, SDP views for the relay,
leg states, the CDR outcome of a leg, and the leg player's RTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cloudpbx.engine.b2bua import _dialled, _leg_outcome, _media_from, offer_of
from cloudpbx.engine.call import Call, Leg, LegPlayer, LegState, LegStateError
from cloudpbx.media.codecs import codec_by_name
from cloudpbx.media.player import PcmSource
from cloudpbx.media.relay import LegMedia
from cloudpbx.media.rtp import RtpPacket
from cloudpbx.sip.message import Request

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def _call() -> Call:
    return Call(client_id=1, caller_port_id=1, caller="100", called="200")


@pytest.mark.parametrize(
    ("uri", "number"),
    [("sip:200@pbx", "200"), ("sip:888%23@pbx", "888#"), ("sip:pbx", ""), ("tel:+7495", "")],
)
def test_dialled_number_is_the_request_uri_user(uri: str, number: str) -> None:
    """PG-1: phones send ``888#`` as ``888%23``; the number is never read from To."""
    assert _dialled(Request("INVITE", uri)) == number


def test_offer_view_for_the_relay() -> None:
    """The relay gets the peer's address, payload types and direction (RFC 3264)."""
    stream = offer_of(OFFER)
    assert stream is not None
    media = _media_from(stream, {8: "PCMA/8000", 101: "telephone-event/8000"})
    assert media == LegMedia(
        remote=("192.0.2.10", 4000),
        payload_types={8: "PCMA/8000", 101: "telephone-event/8000"},
        direction="sendrecv",
    )


@pytest.mark.parametrize(
    ("change", "direction", "remote"),
    [
        (b"a=sendonly\r\n", "sendonly", ("192.0.2.10", 4000)),
        (b"a=inactive\r\n", "inactive", ("192.0.2.10", 4000)),
    ],
)
def test_hold_offers(change: bytes, direction: str, remote: tuple[str, int]) -> None:
    """§4.9 hold: ``sendonly`` / ``inactive`` means the peer does not want our media."""
    stream = offer_of(OFFER + change)
    assert stream is not None
    assert stream.on_hold
    media = _media_from(stream, {0: "PCMU/8000"})
    assert (media.direction, media.remote) == (direction, remote)


def test_old_style_hold_has_no_address() -> None:
    """RFC 3264 §8.4: c=0.0.0.0 is hold; nothing is sent there."""
    stream = offer_of(OFFER.replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 0.0.0.0"))
    assert stream is not None
    assert stream.on_hold
    assert _media_from(stream, {0: "PCMU/8000"}).remote is None


def test_garbage_sdp_is_no_offer() -> None:
    assert offer_of(b"") is None
    assert offer_of(b"hello") is None


def test_leg_transitions() -> None:
    """Leg states follow LEG_TRANSITIONS; an illegal move is our bug and raises."""
    leg = Leg(_call(), "out", "bob")
    leg.move(LegState.RINGING)
    leg.move(LegState.ANSWERED)
    assert leg.answered_ms is not None
    with pytest.raises(LegStateError):
        leg.move(LegState.RINGING)
    leg.move(LegState.ENDED)
    assert leg.ended.is_set()


@pytest.mark.parametrize(
    ("status", "cancelled", "answered", "outcome"),
    [
        (486, False, False, "busy"),
        (603, False, False, "busy"),
        (487, True, False, "cancelled"),
        (404, False, False, "no_route"),
        (None, False, False, "no_route"),
        (200, False, True, "answered"),
    ],
)
def test_leg_outcomes_in_the_call_record(
    status: int | None, cancelled: bool, answered: bool, outcome: str
) -> None:
    """CDR-1: each leg has its own outcome."""
    call = _call()
    leg = call.add_leg(Leg(call, "in", "100"))
    branch = call.add_leg(Leg(call, "out", "bob", status=status, cancelled=cancelled))
    if answered:
        branch.move(LegState.ANSWERED)
    assert leg is call.caller_leg
    assert _leg_outcome(call, branch) == outcome


class _Transport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, dest: Any) -> None:
        self.sent.append((bytes(data), dest))


class _RelayLeg:
    """What LegPlayer uses of a RelayLeg: its transport and where its peer is."""

    def __init__(self) -> None:
        self.transport = _Transport()
        self.dest = ("192.0.2.10", 4000)
        self.media = LegMedia(remote=self.dest)


def test_leg_player_sends_paced_rtp_from_the_relay_socket() -> None:
    """Ringback, messages and MOH go out of the party's own relay socket: G.711 in the
    negotiated law, one SSRC, consecutive sequence numbers, +160 timestamps, the marker on
    the first packet (RFC 3550 §5.1, RFC 3551 §4.1)."""

    async def main() -> list[RtpPacket]:
        relay_leg = _RelayLeg()
        player = LegPlayer(relay_leg, codec=codec_by_name("PCMA"), payload_type=8)  # type: ignore[arg-type]
        completed = await player.play(PcmSource(bytes(320 * 3)))
        assert completed
        return [RtpPacket.parse(data) for data, _ in relay_leg.transport.sent]

    packets = asyncio.run(main())
    assert len(packets) == 3
    assert [p.marker for p in packets] == [True, False, False]
    assert {p.payload_type for p in packets} == {8}
    assert len({p.ssrc for p in packets}) == 1
    assert [(p.sequence - packets[0].sequence) & 0xFFFF for p in packets] == [0, 1, 2]
    assert [(p.timestamp - packets[0].timestamp) % 2**32 for p in packets] == [0, 160, 320]
    assert packets[0].payload == codec_by_name("PCMA").encode(bytes(320))


def test_leg_player_stop() -> None:
    async def main() -> bool:
        player = LegPlayer(_RelayLeg(), codec=codec_by_name("PCMU"), payload_type=0)  # type: ignore[arg-type]
        done = player.start(PcmSource(bytes(320), loop=True))
        await asyncio.sleep(0.05)
        player.stop()
        return await done

    assert asyncio.run(main()) is False
