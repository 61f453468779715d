"""DTMF (cloudpbx.media.dtmf): RFC 4733 events, SIP INFO bodies, in-band Goertzel detection."""

from __future__ import annotations

import math
import random
import struct
from array import array

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cloudpbx.media.codecs import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from cloudpbx.media.dtmf import (
    DTMF_DIGITS,
    DTMF_FREQS,
    DigitDetected,
    DtmfDetector,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    EventPacket,
    InfoDtmf,
    TelephoneEvent,
    digit_to_event,
    dtmf_pcm,
    event_to_digit,
    format_dtmf_relay,
    pack_event_raw,
    parse_dtmf_body,
    parse_dtmf_relay,
    parse_event_raw,
    parse_info_body,
)
from cloudpbx.media.tones import ToneGenerator, synthesize, tone_plan

RATE = 8000
digits = st.sampled_from(DTMF_DIGITS)


# --- event codes and payload (RFC 4733 §2.3, §3.2) -----------------------------------------


def test_event_codes() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert event_to_digit(11) == "#"
    assert event_to_digit(16) is None  # reserved since RFC 4733 (was flash)
    assert event_to_digit(32) is None  # RFC 4734 modem/fax events
    for bad in ("", "E", "55", "!"):
        with pytest.raises(ValueError, match="DTMF"):
            digit_to_event(bad)
    assert DTMF_FREQS["1"] == (697, 1209)
    assert DTMF_FREQS["D"] == (941, 1633)
    assert DTMF_FREQS["0"] == (941, 1336)


def test_payload_wire_format() -> None:
    event = TelephoneEvent(5, end=True, volume=10, duration=800)
    assert bytes(event) == b"\x05\x8a\x03\x20"
    assert TelephoneEvent.parse(b"\x05\x8a\x03\x20") == event
    assert event.digit == "5"
    assert parse_event_raw(b"\x0b\x4a\xff\xff") == (11, False, 10, 0xFFFF)  # R bit ignored
    assert pack_event_raw(11, False, 10, 0xFFFF) == b"\x0b\x0a\xff\xff"  # R bit sent as 0
    assert TelephoneEvent.parse(b"\x01\x0a\x00\xa0extra").duration == 160
    with pytest.raises(DtmfError, match="too short"):
        TelephoneEvent.parse(b"\x01\x0a\x00")
    for bad in ({"event": 256}, {"event": 1, "volume": 64}, {"event": 1, "duration": 65536}):
        with pytest.raises(ValueError, match="range"):
            TelephoneEvent(**bad)  # type: ignore[arg-type]


@given(st.integers(0, 255), st.booleans(), st.integers(0, 63), st.integers(0, 0xFFFF))
def test_payload_round_trip(event: int, end: bool, volume: int, duration: int) -> None:
    packet = TelephoneEvent(event, end, volume, duration)
    assert TelephoneEvent.parse(bytes(packet)) == packet
    assert parse_event_raw(pack_event_raw(event, end, volume, duration)) == (
        event,
        end,
        volume,
        duration,
    )


# --- sender (RFC 4733 §2.5.1) --------------------------------------------------------------


def test_sender_schedule() -> None:
    packets = DtmfSender().packets("7", 1000, 1000)  # 125 ms
    assert [(p.send_at, p.timestamp, p.marker) for p in packets] == [
        (0, 1000, True),
        (400, 1000, False),
        (800, 1000, False),
        (1000, 1000, False),
        (1160, 1000, False),
        (1320, 1000, False),
    ]
    assert [p.event.duration for p in packets] == [160, 400, 800, 1000, 1000, 1000]
    assert [p.event.end for p in packets] == [False, False, False, True, True, True]
    assert all(p.event.event == 7 and p.event.volume == 10 for p in packets)
    assert bytes(packets[-1]) == b"\x07\x8a\x03\xe8"
    short = DtmfSender().packets("#", 0xFFFFFF00, 100)  # shorter than the start duration
    assert [p.event.duration for p in short] == [100, 100, 100, 100]
    assert {p.timestamp for p in short} == {0xFFFFFF00}
    back_to_back = DtmfSender(end_spacing=0, end_repeats=2).packets("1", 0, 400)
    assert [p.send_at for p in back_to_back] == [0, 400, 400]


def test_sender_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        DtmfSender().packets("1", 0, 0)
    with pytest.raises(ValueError, match="DTMF"):
        DtmfSender().packets("X", 0, 800)
    with pytest.raises(ValueError, match="start_duration"):
        DtmfSender(start_duration=0)
    with pytest.raises(ValueError, match="end_repeats"):
        DtmfSender(end_repeats=0)
    with pytest.raises(ValueError, match="volume"):
        DtmfSender(volume=70)


def test_long_event_is_split_in_segments_and_merged_back() -> None:
    """§2.5.1.3: beyond 0xFFFF samples a new segment starts at timestamp + 0xFFFF."""
    start = 0xFFFF0000  # and the timestamp wraps on the way
    packets = DtmfSender().packets("0", start, 150_000)  # 18.75 s
    stamps = sorted({p.timestamp for p in packets}, key=lambda t: (t - start) % 2**32)
    assert stamps == [start, (start + 0xFFFF) % 2**32, (start + 2 * 0xFFFF) % 2**32]
    assert sum(p.marker for p in packets) == 1
    assert all(0 < p.event.duration <= 0xFFFF for p in packets)
    closing = [p for p in packets if p.event.duration == 0xFFFF]
    assert [p.timestamp for p in closing] == stamps[:2]
    assert [p.send_at for p in packets] == sorted(p.send_at for p in packets)
    receiver = DtmfReceiver()
    out = [d for p in packets for d in receiver.feed(p.timestamp, bytes(p), marker=p.marker)]
    assert out == [DigitDetected("0", start, 150_000)]


# --- receiver ------------------------------------------------------------------------------


def feed_all(receiver: DtmfReceiver, packets: list[EventPacket]) -> list[DigitDetected]:
    out: list[DigitDetected] = []
    for p in packets:
        out += receiver.feed(p.timestamp, bytes(p), marker=p.marker)
    return out


def test_receiver_reports_once_despite_redundant_ends_and_duplicates() -> None:
    packets = DtmfSender().packets("5", 8000, 1200)
    receiver = DtmfReceiver()
    doubled = [p for p in packets for _ in range(2)]
    assert feed_all(receiver, doubled) == [DigitDetected("5", 8000, 1200)]
    assert receiver.active is None
    assert feed_all(receiver, packets) == []  # a late replay of the whole event


def test_receiver_accepts_telephone_event_objects() -> None:
    receiver = DtmfReceiver()
    assert receiver.feed(0, TelephoneEvent(12, duration=160), marker=True) == []
    assert receiver.active == "A"
    assert receiver.feed(0, TelephoneEvent(12, end=True, duration=480)) == [
        DigitDetected("A", 0, 480)
    ]


def test_receiver_reordered_end_first() -> None:
    packets = DtmfSender().packets("9", 0, 2000)
    receiver = DtmfReceiver()
    shuffled = packets[::-1]
    assert feed_all(receiver, shuffled) == [DigitDetected("9", 0, 2000)]


def test_lost_end_packets_are_recognised_by_the_next_timestamp() -> None:
    first = [p for p in DtmfSender().packets("1", 0, 1600) if not p.event.end]
    second = DtmfSender().packets("2", 4000, 800)
    receiver = DtmfReceiver()
    assert feed_all(receiver, first) == []
    assert receiver.active == "1"
    out = receiver.feed(second[0].timestamp, bytes(second[0]), marker=True)
    assert out == [DigitDetected("1", 0, 1200)]  # the last update seen: 1200
    assert feed_all(receiver, second[1:]) == [DigitDetected("2", 4000, 800)]


def test_expire_closes_an_event_whose_updates_stopped() -> None:
    packets = [p for p in DtmfSender().packets("3", 100, 1600) if not p.event.end]
    receiver = DtmfReceiver(timeout=4000)
    feed_all(receiver, packets)
    assert receiver.expire(100 + 1200 + 4000) == []
    assert receiver.expire(100 + 1200 + 4001) == [DigitDetected("3", 100, 1200)]
    assert receiver.expire(10**6) == []
    assert receiver.flush() == []
    feed_all(receiver, packets[:1])  # still known: stays closed
    assert receiver.active is None


def test_straggler_from_an_unseen_press_is_reported_without_closing_the_open_one() -> None:
    receiver = DtmfReceiver()
    receiver.feed(8000, pack_event_raw(4, False, 10, 160), marker=True)
    assert receiver.feed(4000, pack_event_raw(6, True, 10, 800)) == [DigitDetected("6", 4000, 800)]
    assert receiver.active == "4"
    assert receiver.flush() == [DigitDetected("4", 8000, 160)]


def test_receiver_ignores_garbage_and_non_dtmf_events() -> None:
    receiver = DtmfReceiver()
    assert receiver.feed(0, b"\x05") == []
    assert receiver.malformed == 1
    assert receiver.feed(0, pack_event_raw(16, True, 10, 800)) == []  # reserved (flash)
    assert receiver.feed(0, pack_event_raw(36, True, 10, 800)) == []  # RFC 4734 fax CNG-ish
    assert receiver.active is None
    receiver.feed(5, pack_event_raw(1, False, 10, 160))
    receiver.reset()
    assert receiver.active is None
    assert receiver.flush() == []


def test_timestamp_wrap_around() -> None:
    receiver = DtmfReceiver()
    a = DtmfSender().packets("1", 2**32 - 400, 800)
    b = DtmfSender().packets("2", 1200, 800)
    out = feed_all(receiver, [p for p in a if not p.event.end] + b)
    assert out == [DigitDetected("1", 2**32 - 400, 400), DigitDetected("2", 1200, 800)]


presses = st.lists(
    st.tuples(digits, st.integers(320, 2400), st.integers(320, 1600)),  # digit, on, gap
    min_size=1,
    max_size=8,
)


def schedule(start: int, keys: list[tuple[str, int, int]]) -> list[tuple[int, list[EventPacket]]]:
    sender = DtmfSender()
    out = []
    t = start
    for digit, on, gap in keys:
        out.append((t, sender.packets(digit, t % 2**32, on)))
        t += on + gap
    return out


@settings(max_examples=300, deadline=None)
@given(presses, st.integers(0, 2**32 - 1), st.randoms(use_true_random=False))
@example([("1", 320, 320)] * 3, 2**32 - 500, random.Random(0))
def test_each_press_once_with_10_percent_loss_and_duplicates(
    keys: list[tuple[str, int, int]], start: int, rng: random.Random
) -> None:
    """Property: with 10 % loss and 10 % duplication (order kept), every press that got at
    least one packet through is reported exactly once, in order, with its start timestamp, and
    with its full duration if an end packet got through, else the longest duration received."""
    receiver = DtmfReceiver()
    out: list[DigitDetected] = []
    expected: list[DigitDetected] = []
    for _t, packets in schedule(start, keys):
        delivered = [p for p in packets if rng.random() >= 0.10]
        stream = [q for p in delivered for q in ([p, p] if rng.random() < 0.10 else [p])]
        out += feed_all(receiver, stream)
        if delivered:
            ended = [p for p in delivered if p.event.end]
            duration = max(p.event.duration for p in (ended or delivered))
            expected.append(
                DigitDetected(packets[0].event.digit or "", packets[0].timestamp, duration)
            )
    out += receiver.flush()
    assert out == expected


@settings(max_examples=300, deadline=None)
@given(presses, st.integers(0, 2**32 - 1), st.randoms(use_true_random=False))
def test_each_press_once_with_loss_and_reordering(
    keys: list[tuple[str, int, int]], start: int, rng: random.Random
) -> None:
    """Property: 10 % loss plus random swaps of neighbouring packets (also across presses, and
    a packet may drift several places): still exactly one report per press that got a packet
    through, with the right digit and start. (Order can only break when a press's every packet
    arrives after the next press's end: it is then reported late rather than lost.)"""
    wire: list[EventPacket] = []
    pressed: dict[int, tuple[str, int]] = {}
    for _t, packets in schedule(start, keys):
        pressed[packets[0].timestamp] = (
            packets[0].event.digit or "",
            max(p.event.duration for p in packets),
        )
        wire += [p for p in packets if rng.random() >= 0.10]
    for i in range(len(wire) - 1):
        if rng.random() < 0.2:
            wire[i], wire[i + 1] = wire[i + 1], wire[i]
    receiver = DtmfReceiver()
    out = feed_all(receiver, wire) + receiver.flush()
    got_through = {p.timestamp for p in wire}
    assert sorted(d.start_ts for d in out) == sorted(got_through)
    for d in out:
        digit, duration = pressed[d.start_ts]
        assert d.digit == digit
        assert 0 < d.duration <= duration


# --- SIP INFO ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Signal=5\r\nDuration=160\r\n", InfoDtmf("5", 160)),
        (b"Signal=5\r\nDuration=160", InfoDtmf("5", 160)),
        (b"signal= *\nduration = 250\n", InfoDtmf("*", 250)),
        ("SIGNAL=#\r\n", InfoDtmf("#", None)),
        (b"Signal=a\r\nDuration=100\r\n", InfoDtmf("A", 100)),
        (b"Signal=10\r\nDuration=100\r\n", InfoDtmf("*", 100)),  # event code for *
        (b"Signal=11\r\n", InfoDtmf("#", None)),
        (b"Signal=1\r\nDuration=abc\r\n", InfoDtmf("1", None)),  # bad duration is dropped
        (b"Signal=1\r\nDuration=99999999\r\n", InfoDtmf("1", None)),
        (b"Signal=1\r\nDuration=-5\r\n", InfoDtmf("1", None)),
        (b"\r\nFoo=bar\r\nSignal=9\r\nDuration=80\r\n\r\n", InfoDtmf("9", 80)),
        (b"Signal=2\r\nSignal=3\r\n", InfoDtmf("2", None)),  # first one wins
    ],
)
def test_dtmf_relay_bodies(body: bytes | str, expected: InfoDtmf) -> None:
    assert parse_dtmf_relay(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"Duration=160\r\n",
        b"Signal=\r\n",
        b"Signal=55\r\n",
        b"Signal=16\r\n",  # flash: not a digit
        b"Signal=x\r\n",
        b"Signal=\xff\xfe\r\n",
        b"Signal=\xd9\xa5\r\n",  # Arabic-Indic five: str.isdigit() but not ASCII
        b"Signal 5\r\n",
        b"\x00\x01\x02\x03",
        b"Signal=5" + b" " * 2000,
    ],
)
def test_dtmf_relay_garbage(body: bytes) -> None:
    with pytest.raises(DtmfError):
        parse_dtmf_relay(body)


def test_application_dtmf_and_dispatch() -> None:
    assert parse_dtmf_body(b"5") == InfoDtmf("5")
    assert parse_dtmf_body("  #\r\n") == InfoDtmf("#")
    assert parse_dtmf_body(b"12") == InfoDtmf("A")
    with pytest.raises(DtmfError):
        parse_dtmf_body(b"hello")
    with pytest.raises(DtmfError):
        parse_dtmf_body(b"")
    assert parse_info_body("application/dtmf-relay", b"Signal=4\r\nDuration=100") == InfoDtmf(
        "4", 100
    )
    assert parse_info_body("Application/DTMF-Relay; charset=utf-8", b"Signal=4") == InfoDtmf("4")
    assert parse_info_body(" application/dtmf ", b"7") == InfoDtmf("7")
    assert parse_info_body("application/media_control+xml", b"<xml/>") is None
    assert parse_dtmf_relay(format_dtmf_relay("b", 120)) == InfoDtmf("B", 120)
    with pytest.raises(ValueError, match="DTMF"):
        format_dtmf_relay("Z")


@given(st.binary(max_size=300))
def test_info_parsers_never_crash(body: bytes) -> None:
    for parse in (parse_dtmf_relay, parse_dtmf_body):
        try:
            result = parse(body)
        except DtmfError:
            continue
        assert result.digit in DTMF_DIGITS
        assert result.duration_ms is None or 0 <= result.duration_ms <= 60_000


# --- in-band detection -----------------------------------------------------------------------


def samples_of(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def pcm_of(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}h", *(max(-32768, min(32767, round(v))) for v in values))


def add_noise(pcm: bytes, snr_db: float, seed: int) -> bytes:
    """White Gaussian noise at ``snr_db`` below the signal's power over its tone parts."""
    x = samples_of(pcm)
    loud = [v for v in x if v]
    power = sum(v * v for v in loud) / len(loud)
    sigma = math.sqrt(power / 10 ** (snr_db / 10))
    rng = random.Random(seed)
    return pcm_of([v + rng.gauss(0, sigma) for v in x])


def sequence(keys: str, on_ms: int, off_ms: int, lead: int = 0) -> bytes:
    silence = bytes(2 * off_ms * RATE // 1000)
    return bytes(2 * lead) + b"".join(dtmf_pcm(k, on_ms) + silence for k in keys)


def detect(pcm: bytes, **kwargs: object) -> list[DigitDetected]:
    detector = DtmfDetector(**kwargs)  # type: ignore[arg-type]
    return detector.feed(pcm) + detector.flush()


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_all_sixteen_digits_in_order_through_noise_and_g711(law: str) -> None:
    encode, decode = (ulaw_encode, ulaw_decode) if law == "ulaw" else (alaw_encode, alaw_decode)
    pcm = add_noise(sequence(DTMF_DIGITS, 50, 50, lead=37), snr_db=20, seed=4)
    found = detect(decode(encode(pcm)))
    assert "".join(d.digit for d in found) == DTMF_DIGITS
    for i, d in enumerate(found):  # timing within one block (102 samples) of the truth
        true_start = 37 + i * 800
        assert abs(d.start_ts - true_start) <= 102
        assert abs(d.duration - 400) <= 2 * 102


@pytest.mark.parametrize("lead", [0, 17, 50, 101])
def test_minimum_timing_40ms_on_40ms_off(lead: int) -> None:
    found = detect(sequence("1234567890*#ABCD", 40, 40, lead))
    assert "".join(d.digit for d in found) == "1234567890*#ABCD"


@pytest.mark.parametrize("lead", range(0, 102, 17))
def test_too_short_tones_are_ignored(lead: int) -> None:
    assert detect(sequence("5", 15, 100, lead)) == []


def test_a_held_key_is_reported_once_and_a_short_dropout_does_not_split_it() -> None:
    held = dtmf_pcm("8", 2000)
    assert [d.digit for d in detect(held)] == ["8"]
    broken = dtmf_pcm("8", 200) + bytes(2 * 80) + dtmf_pcm("8", 200)  # 10 ms drop-out
    for lead in range(0, 102, 10):
        assert [d.digit for d in detect(bytes(2 * lead) + broken)] == ["8"]
    repeated = dtmf_pcm("8", 100) + bytes(2 * 320) + dtmf_pcm("8", 100)  # 40 ms pause
    for lead in range(0, 102, 10):
        assert [d.digit for d in detect(bytes(2 * lead) + repeated)] == ["8", "8"]


def test_streaming_in_odd_chunks_gives_the_same_result() -> None:
    pcm = sequence("159#", 60, 60)
    whole = detect(pcm)
    detector = DtmfDetector()
    out: list[DigitDetected] = []
    rng = random.Random(7)
    pos = 0
    while pos < len(pcm):
        size = 2 * rng.randint(1, 300)
        out += detector.feed(pcm[pos : pos + size])
        pos += size
    assert out + detector.flush() == whole
    detector = DtmfDetector()
    assert detector.feed_samples(array("h", pcm)) + detector.flush() == whole


@pytest.mark.parametrize(
    ("low_db", "high_db", "detected"),
    [
        (-8.0, -6.0, True),  # usual pre-emphasis
        (-6.0, -13.5, True),  # low group 7.5 dB stronger
        (-6.0, -15.0, False),  # 9 dB: beyond the 8 dB twist
        (-10.0, -6.5, True),  # high group 3.5 dB stronger
        (-10.0, -5.0, False),  # 5 dB: beyond the 4 dB reverse twist
        (-26.0, -26.0, True),  # quiet but above -30 dBm0
        (-35.0, -35.0, False),  # below the level threshold
    ],
)
def test_twist_and_level_limits(low_db: float, high_db: float, detected: bool) -> None:
    found = detect(dtmf_pcm("5", 100, low_dbm0=low_db, high_dbm0=high_db))
    assert [d.digit for d in found] == (["5"] if detected else [])


@pytest.mark.parametrize("offset", [-0.015, 0.015])
def test_frequency_tolerance(offset: float) -> None:
    pcm = synthesize([(852 * (1 + offset), -8.0), (1336 * (1 + offset), -6.0)], 800)
    assert [d.digit for d in detect(pcm)] == ["8"]


def test_block_size_205() -> None:
    found = detect(sequence("0123456789*#ABCD", 60, 60), block_size=205)
    assert "".join(d.digit for d in found) == "0123456789*#ABCD"


def test_second_harmonic_check() -> None:
    clean = dtmf_pcm("3", 100)
    assert [d.digit for d in detect(clean, harmonic_db=20.0)] == ["3"]
    buzzy = synthesize([(697, -8), (1477, -6), (1394, -14), (2954, -12)], 800)
    assert [d.digit for d in detect(buzzy)] == ["3"]  # harmonics 6 dB down pass by default...
    assert detect(buzzy, harmonic_db=10.0) == []  # ...but not with the harmonic check


def test_detector_validation() -> None:
    with pytest.raises(ValueError, match="block_size"):
        DtmfDetector(block_size=32)
    with pytest.raises(ValueError, match="fraction"):
        DtmfDetector(min_tone_fraction=0.4)


# --- in-band: what must not trigger ------------------------------------------------------------


def test_silence_and_white_noise_do_not_trigger() -> None:
    assert detect(bytes(2 * 8000)) == []
    rng = random.Random(3)
    for sigma in (30, 300, 3000, 12000):
        assert detect(pcm_of([rng.gauss(0, sigma) for _ in range(3 * 8000)])) == []


@pytest.mark.parametrize("name", ["dial", "ringback", "busy", "congestion", "beep"])
def test_call_progress_tones_do_not_trigger(name: str) -> None:
    for country in ("ru", "us"):
        gen = ToneGenerator(tone_plan(country)[name])
        assert detect(b"".join(gen.read() for _ in range(300))) == []  # 6 s


@pytest.mark.parametrize("freq", [*DTMF_FREQS["1"], *DTMF_FREQS["D"], 425, 1000, 2100])
def test_single_tones_do_not_trigger(freq: int) -> None:
    assert detect(synthesize([(freq, -3.0)], 8000)) == []


def speech_like(seconds: float, seed: int) -> list[float]:
    """Voiced, vowel-like sound: a gliding pitch (85-260 Hz) with its harmonics shaped by the
    formants of /a e i o u/ (several near DTMF frequencies), with pauses."""
    rng = random.Random(seed)
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)]
    vowels += [(570, 840, 2410), (660, 1720, 2410), (440, 1020, 2240)]
    out: list[float] = []
    phase = 0.0
    while len(out) < seconds * RATE:
        length = rng.randint(400, 2400)
        f0_from, f0_to = rng.uniform(85, 260), rng.uniform(85, 260)
        formants = rng.choice(vowels)
        loudness = rng.uniform(2000, 12000) / 3
        for i in range(length):
            f0 = f0_from + (f0_to - f0_from) * i / length
            phase += 2 * math.pi * f0 / RATE
            value = 0.0
            for k in range(1, int(3500 / f0)):
                gain = sum(1 / (1 + ((k * f0 - f) / 80) ** 2) for f in formants) / math.sqrt(k)
                value += gain * math.sin(k * phase)
            out.append(loudness * value)
        if rng.random() < 0.3:
            out.extend(rng.gauss(0, 30) for _ in range(rng.randint(200, 1600)))
    return out[: int(seconds * RATE)]


@pytest.mark.parametrize("seed", [1, 2])
def test_speech_like_sound_does_not_trigger(seed: int) -> None:
    speech = pcm_of(speech_like(8, seed))
    assert detect(ulaw_decode(ulaw_encode(speech))) == []
    detector = DtmfDetector()
    x = samples_of(speech)
    assert not any(detector.classify(x[i : i + 102]) for i in range(0, len(x) - 102, 102))


def test_digits_survive_being_mixed_with_speech() -> None:
    speech = speech_like(1.6, 5)
    tones_ = samples_of(sequence("2580", 80, 320))
    mixed = pcm_of([t + 0.1 * s for t, s in zip(tones_, speech, strict=False)])
    assert "".join(d.digit for d in detect(mixed)) == "2580"
