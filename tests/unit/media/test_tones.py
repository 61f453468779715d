"""Tones (cloudpbx.media.tones): plan data, exact cadence over long runs, frequency, continuity."""

from __future__ import annotations

import itertools
import math
import struct
from operator import mul

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.media.codecs import alaw_encode, ulaw_decode, ulaw_encode
from cloudpbx.media.tones import (
    FRAME_SAMPLES,
    TONE_PLANS,
    Tone,
    ToneCursor,
    ToneGenerator,
    ToneSegment,
    dbm0_to_amplitude,
    synthesize,
    tone_plan,
)

RATE = 8000
TEN_MINUTES = 10 * 60 * RATE
ALL_TONES = [(plan.country, tone.name) for plan in TONE_PLANS.values() for tone in plan.tones]


def unpcm(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def power_at(samples: list[int], freq: float) -> float:
    """|DFT|² at ``freq`` (any real frequency, Goertzel-equivalent)."""
    w = 2 * math.pi * freq / RATE
    re = sum(map(mul, samples, [math.cos(w * n) for n in range(len(samples))]))
    im = sum(map(mul, samples, [math.sin(w * n) for n in range(len(samples))]))
    return float(re * re + im * im)


def level_dbm0(samples: list[int], freq: float) -> float:
    """Level of the ``freq`` component (window of a whole number of periods)."""
    amplitude = 2 * math.sqrt(power_at(samples, freq)) / len(samples)
    return 20 * math.log10(amplitude / dbm0_to_amplitude(0.0))


def collect(gen: ToneGenerator, frames: int) -> list[int]:
    return unpcm(b"".join(gen.read() for _ in range(frames)))


# --- plan data -----------------------------------------------------------------------------


def test_russian_plan_is_gost_45_223() -> None:
    ru = tone_plan("RU")
    assert ru is TONE_PLANS["ru"]
    expected = {  # name: (freqs, on samples, off samples or None for continuous)
        "dial": ((425,), None, None),
        "ringback": ((425,), 8000, 32000),  # 1 s / 4 s
        "busy": ((425,), 2800, 2800),  # 0.35 / 0.35 s
        "congestion": ((425,), 1400, 1400),  # 0.175 / 0.175 s
        "call_waiting": ((425,), 1600, 38400),  # 0.2 s every 5 s
    }
    for name, (freqs, on, off) in expected.items():
        tone = ru[name]
        assert tone.segments[0].freqs == freqs
        assert tone.segments[0].level_dbm0 == -10.0
        assert tone.segments[0].samples() == on
        if off is None:
            assert len(tone.segments) == 1
            assert tone.endless
            assert tone.cycle_samples() is None
        else:
            assert on is not None
            assert tone.segments[1].silent
            assert tone.segments[1].samples() == off
            assert tone.repeat
            assert tone.cycle_samples() == on + off
    beep = ru["beep"]
    assert (beep.segments[0].freqs, beep.segments[0].samples(), beep.repeat) == (
        (1000,),
        4000,
        False,
    )
    assert not beep.endless


def test_second_plan_is_just_data() -> None:
    us = tone_plan("us")
    assert set(us.names) == set(tone_plan("ru").names)
    assert us["dial"].segments[0].freqs == (350, 440)
    assert us["ringback"].cycle_samples() == 6 * RATE
    assert us["busy"].segments[0].freqs == (480, 620)
    assert "dial" in us
    assert "howler" not in us
    with pytest.raises(KeyError):
        us["howler"]
    with pytest.raises(KeyError):
        tone_plan("xx")


def test_levels() -> None:
    assert dbm0_to_amplitude(3.14) == pytest.approx(32767)
    assert dbm0_to_amplitude(0.0) == pytest.approx(22826, abs=1)
    assert dbm0_to_amplitude(-10.0) == pytest.approx(7218, abs=1)


def test_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        ToneSegment(0, (425,))
    with pytest.raises(ValueError, match="whole Hz"):
        ToneSegment(100, (4000,))
    with pytest.raises(ValueError, match="whole number of samples"):
        ToneSegment(1, (425,)).samples(11025)
    with pytest.raises(ValueError, match="at least one"):
        Tone("x", ())
    with pytest.raises(ValueError, match="endless"):
        Tone("x", (ToneSegment(None, (425,)), ToneSegment(100)))
    with pytest.raises(ValueError, match="sound"):
        Tone("x", (ToneSegment(100),))
    with pytest.raises(ValueError, match="frame_samples"):
        ToneGenerator(tone_plan("ru")["dial"], frame_samples=0)


# --- cadence: exact over 10 minutes, counted, not rendered ---------------------------------


@pytest.mark.parametrize(("country", "name"), ALL_TONES)
def test_cadence_is_exact_to_the_sample_over_ten_minutes(country: str, name: str) -> None:
    tone = tone_plan(country)[name]
    cursor = ToneCursor(tone)
    bursts: list[list[int]] = []  # [start, length] of sounding runs
    t = 0
    for _ in range(TEN_MINUTES // FRAME_SAMPLES):
        for piece in cursor.advance(FRAME_SAMPLES):
            if not tone.segments[piece.segment].silent:
                if bursts and bursts[-1][0] + bursts[-1][1] == t:
                    bursts[-1][1] += piece.count
                else:
                    bursts.append([t, piece.count])
            t += piece.count
    cycle = tone.cycle_samples()
    if cycle is None:  # continuous: one burst, the whole run
        assert bursts == [[0, TEN_MINUTES]]
        assert cursor.position == TEN_MINUTES
    elif tone.repeat:
        on = tone.segments[0].samples()
        assert on is not None
        full, rest = divmod(TEN_MINUTES, cycle)
        assert [b[0] for b in bursts] == [k * cycle for k in range(full + (rest > 0))]
        assert all(length == on for _, length in bursts[:full])
        assert sum(length for _, length in bursts) == full * on + min(rest, on)
        assert cursor.position == TEN_MINUTES
    else:  # one-shot: the beep, then nothing
        assert bursts == [[0, tone.on_samples()]]
        assert cursor.done
        assert cursor.position == tone.cycle_samples()


def test_generator_position_after_ten_minutes_of_frames() -> None:
    gen = ToneGenerator(tone_plan("ru")["busy"])
    for _ in range(TEN_MINUTES // FRAME_SAMPLES):
        gen.read()
    assert gen.position == TEN_MINUTES
    # 10 min = 857 busy cycles (5600) + 800 samples: 2000 more of this burst, 2800 of pause,
    # and the next burst starts 4800 samples from here, with sample 0 of a burst being 0
    samples = unpcm(gen.read(5600))
    assert all(samples[1:2000:8])
    assert not any(samples[2000:4801])
    assert all(samples[4801:4810])


# --- rendered audio ------------------------------------------------------------------------


def test_ringback_audio_is_exact_on_and_off() -> None:
    gen = ToneGenerator(tone_plan("ru")["ringback"])
    x = collect(gen, 3 * 40000 // FRAME_SAMPLES)  # three cycles, 15 s
    for k in range(3):
        start = 40000 * k
        burst = x[start : start + 8000]
        assert burst[0] == 0  # phase 0 and ramp start
        assert burst[1] != 0
        assert burst[-1] != 0
        assert not any(x[start + 8000 : start + 40000])  # exactly 4 s of digital silence
        middle = burst[160:7840]  # past the 4 ms ramps; 7680 samples = 408 periods of 425 Hz
        assert level_dbm0(middle, 425) == pytest.approx(-10.0, abs=0.05)
        assert power_at(middle, 425) > 1e4 * power_at(middle, 850)
        assert power_at(middle, 425) > 1e4 * power_at(middle, 1000)


@pytest.mark.parametrize(("country", "name"), ALL_TONES)
def test_every_tone_has_its_frequencies_and_level(country: str, name: str) -> None:
    tone = tone_plan(country)[name]
    segment = tone.segments[0]
    x = collect(ToneGenerator(tone), 20)[:3200]  # 400 ms; all bursts are >= 175 ms
    on = min(segment.samples() or 3200, 3200)
    period = RATE // math.gcd(RATE, *segment.freqs)  # whole periods of every component
    window = x[40 : 40 + (on - 80) // period * period]
    total = sum(v * v for v in window)
    for f in segment.freqs:
        assert level_dbm0(window, f) == pytest.approx(segment.level_dbm0, abs=0.3)
    tone_energy = sum(power_at(window, f) for f in segment.freqs) * 2 / len(window)
    assert tone_energy > 0.98 * total
    scan = {f: power_at(window[:1600], f) for f in range(300, 1100, 5)}
    peak = max(scan, key=scan.__getitem__)
    assert peak in segment.freqs


def test_dial_tone_is_phase_continuous_across_frames() -> None:
    """Frames join into one sine: every sample equals the closed form (after the fade-in)."""
    gen = ToneGenerator(tone_plan("ru")["dial"])
    x = collect(gen, 250)  # 5 s
    a = dbm0_to_amplitude(-10.0)
    w = 2 * math.pi * 425 / RATE
    ramp = 32
    assert all(abs(x[n] - a * math.sin(w * n)) <= 1 for n in range(ramp, len(x)))
    assert all(abs(x[n]) <= abs(a * math.sin(w * n)) + 1 for n in range(ramp))


@pytest.mark.parametrize(("country", "name"), ALL_TONES)
def test_no_clicks(country: str, name: str) -> None:
    """No sample step bigger than the sines' own slope (plus the fade's): no cadence clicks."""
    tone = tone_plan(country)[name]
    segment = tone.segments[0]
    cycle = tone.cycle_samples() or 16000
    x = collect(ToneGenerator(tone), min(cycle, 48000) // FRAME_SAMPLES + 2)
    a = dbm0_to_amplitude(segment.level_dbm0)
    slope = sum(a * 2 * math.pi * f / RATE for f in segment.freqs)
    fade = len(segment.freqs) * a * math.pi / (2 * 32)
    assert max(abs(q - p) for p, q in itertools.pairwise(x)) <= slope + fade + 2


def test_one_shot_beep_ends_and_pads() -> None:
    gen = ToneGenerator(tone_plan("ru")["beep"])
    frames = list(gen)
    assert len(frames) == 25  # 500 ms
    assert all(len(f) == 2 * FRAME_SAMPLES for f in frames)
    assert gen.finished
    assert gen.read() == b""
    odd = ToneGenerator(Tone.cadence("blip", (1000,), 30, 0, repeat=False))  # 240 samples
    first, second = odd.read(), odd.read()
    assert len(second) == 2 * FRAME_SAMPLES
    assert any(unpcm(first))
    assert not any(unpcm(second)[80:])  # padded with silence after the 240th sample
    assert odd.read() == b""
    assert odd.position == 240


def test_encoded_frames_equal_encoding_the_pcm() -> None:
    for name in ("dial", "busy", "call_waiting"):
        tone = tone_plan("ru")[name]
        gen = ToneGenerator(tone)
        pcm = [gen.read() for _ in range(120)]
        gen_u = ToneGenerator(tone, encode=ulaw_encode)
        gen_a = ToneGenerator(tone, encode=alaw_encode)
        for frame in pcm:
            assert gen_u.read() == ulaw_encode(frame)
            assert gen_a.read() == alaw_encode(frame)
        assert len(gen_u.read()) == FRAME_SAMPLES
    silent = ToneGenerator(tone_plan("ru")["busy"], encode=ulaw_encode)
    frames = [silent.read() for _ in range(40)]
    assert frames[20] == b"\xff" * FRAME_SAMPLES  # μ-law silence in the pause
    assert ulaw_decode(frames[0]) != bytes(2 * FRAME_SAMPLES)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 2000), min_size=1, max_size=40))
def test_any_read_sizes_give_the_same_stream(sizes: list[int]) -> None:
    tone = tone_plan("us")["congestion"]  # dual tone, 250/250 ms
    total = sum(sizes)
    reference = ToneGenerator(tone).read(total)
    gen = ToneGenerator(tone)
    assert b"".join(gen.read(n) for n in sizes) == reference
    assert gen.position == total


def test_synthesize_joins_without_phase_jump() -> None:
    whole = synthesize([(1000, -10.0), (1633, -12.0)], 1000)
    parts = synthesize([(1000, -10.0), (1633, -12.0)], 333) + synthesize(
        [(1000, -10.0), (1633, -12.0)], 667, start=333
    )
    assert whole == parts
