"""Call recorder and voicemail helpers (cloudpbx.media.recorder), at the signal level."""

from __future__ import annotations

import io
import math
import struct
import wave
from operator import mul

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.media.codecs import ulaw_decode, ulaw_encode
from cloudpbx.media.recorder import (
    FRAME_SAMPLES,
    CallRecorder,
    SilenceDetector,
    StopReason,
    VoicemailMonitor,
    frame_level_dbfs,
    interleave_pcm16,
    mix_pcm16,
)

RATE = 8000
T0 = 1000.0  # the call clock's reading at the start of the call
FA, FB = 1000.0, 1600.0  # leg a / leg b test tones


def tone(freq: float, start: int, count: int, amplitude: float = 8000.0) -> bytes:
    """``count`` samples of a sine at ``freq`` from absolute sample ``start`` (phase-continuous
    across frames)."""
    w = 2 * math.pi * freq / RATE
    return struct.pack(
        f"<{count}h", *(round(amplitude * math.sin(w * (start + n))) for n in range(count))
    )


def frame(freq: float, index: int, amplitude: float = 8000.0) -> bytes:
    return tone(freq, index * FRAME_SAMPLES, FRAME_SAMPLES, amplitude)


def unpcm(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def amplitude_at(samples: list[int], freq: float) -> float:
    """Amplitude of the ``freq`` component (Goertzel-equivalent single-bin DFT)."""
    w = 2 * math.pi * freq / RATE
    re = sum(map(mul, samples, [math.cos(w * n) for n in range(len(samples))]))
    im = sum(map(mul, samples, [math.sin(w * n) for n in range(len(samples))]))
    return 2 * math.hypot(re, im) / len(samples)


def read_wav(blob: bytes) -> tuple[int, list[list[int]]]:
    """(channels, samples per channel) of a 16-bit WAV."""
    with wave.open(io.BytesIO(blob)) as w:
        assert w.getsampwidth() == 2
        assert w.getframerate() == RATE
        channels = w.getnchannels()
        samples = unpcm(w.readframes(w.getnframes()))
    return channels, [samples[c::channels] for c in range(channels)]


def at(index: int) -> float:
    return T0 + index * 0.020


def record_two_tones(layout: str, frames: int = 50) -> tuple[CallRecorder, bytes]:
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout=layout)  # type: ignore[arg-type]
    for i in range(frames):
        rec.feed("a", at(i), frame(FA, i))
        rec.feed("b", at(i) + 0.003, frame(FB, i))  # the other leg's tick, 3 ms later
    rec.close()
    return rec, f.getvalue()


# --- layouts ------------------------------------------------------------------------------


def test_stereo_puts_each_leg_on_its_channel() -> None:
    rec, blob = record_two_tones("stereo")
    channels, (left, right) = read_wav(blob)
    assert channels == 2
    assert len(left) == len(right) == 50 * FRAME_SAMPLES  # exactly frames x 20 ms
    assert amplitude_at(left, FA) == pytest.approx(8000, rel=0.01)
    assert amplitude_at(left, FB) < 10
    assert amplitude_at(right, FB) == pytest.approx(8000, rel=0.01)
    assert amplitude_at(right, FA) < 10
    # contiguous frames: the exact input, sample for sample
    assert struct.pack(f"<{len(left)}h", *left) == tone(FA, 0, len(left))
    assert rec.stats.silence_inserted == 0
    assert rec.stats.dropped == 0


def test_mixed_has_both_tones_at_their_levels() -> None:
    _, blob = record_two_tones("mixed")
    channels, (mono,) = read_wav(blob)
    assert channels == 1
    assert len(mono) == 50 * FRAME_SAMPLES
    assert amplitude_at(mono, FA) == pytest.approx(8000, rel=0.01)
    assert amplitude_at(mono, FB) == pytest.approx(8000, rel=0.01)


@pytest.mark.parametrize(("layout", "heard", "unheard"), [("a", FA, FB), ("b", FB, FA)])
def test_one_leg_layout(layout: str, heard: float, unheard: float) -> None:
    _, blob = record_two_tones(layout)
    channels, (mono,) = read_wav(blob)
    assert channels == 1
    assert len(mono) == 50 * FRAME_SAMPLES
    assert amplitude_at(mono, heard) == pytest.approx(8000, rel=0.01)
    assert amplitude_at(mono, unheard) < 10


def test_mix_saturates_instead_of_wrapping() -> None:
    loud = struct.pack("<4h", 30000, -30000, 100, -32768)
    assert unpcm(mix_pcm16(loud, loud)) == [32767, -32768, 200, -32768]
    assert unpcm(mix_pcm16(loud, bytes(8))) == unpcm(loud)
    with pytest.raises(ValueError, match="mix"):
        mix_pcm16(loud, bytes(2))
    assert interleave_pcm16(b"\x01\x02", b"\x03\x04") == b"\x01\x02\x03\x04"


SAMPLE = st.one_of(st.integers(-32768, 32767), st.sampled_from([-32768, 32767, 0, -1, 16384]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(SAMPLE, SAMPLE), max_size=400))
def test_mix_matches_saturating_reference(pairs: list[tuple[int, int]]) -> None:
    """The SWAR sum equals the sample-by-sample saturated sum, overflowing or not."""
    a = struct.pack(f"<{len(pairs)}h", *(x for x, _ in pairs))
    b = struct.pack(f"<{len(pairs)}h", *(y for _, y in pairs))
    expected = [max(-32768, min(32767, x + y)) for x, y in pairs]
    assert unpcm(mix_pcm16(a, b)) == expected
    assert unpcm(mix_pcm16(bytearray(b), memoryview(a))) == expected
    stereo = unpcm(interleave_pcm16(a, b))
    assert stereo[0::2] == unpcm(a)
    assert stereo[1::2] == unpcm(b)


# --- time: gaps, alignment, jitter, exact length -------------------------------------------


def test_gaps_become_silence_and_the_length_is_exact() -> None:
    """Frames 10..19 of leg a are lost (None) and leg a's 30..39 never come: silence there;
    leg b is never heard at all: its channel is silent, and the file is as long as the call."""
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="stereo")
    for i in range(50):
        if 10 <= i < 20:
            rec.feed("a", at(i), None)
        elif not 30 <= i < 40:
            rec.feed("a", at(i), frame(FA, i))
    rec.close(end=at(60))
    _, (left, right) = read_wav(f.getvalue())
    assert len(left) == 60 * FRAME_SAMPLES
    n = FRAME_SAMPLES
    assert left[10 * n : 20 * n] == [0] * 10 * n
    assert left[30 * n : 40 * n] == [0] * 10 * n
    assert left[50 * n :] == [0] * 10 * n
    assert amplitude_at(left[20 * n : 30 * n], FA) == pytest.approx(8000, rel=0.01)
    # audio after a gap is where it belongs: phase continues the original tone
    assert struct.pack(f"<{10 * n}h", *left[40 * n : 50 * n]) == tone(FA, 40 * n, 10 * n)
    assert right == [0] * 60 * n
    assert rec.stats.gaps == 10
    assert rec.stats.frames == 30


def test_legs_are_aligned_on_the_call_clock() -> None:
    """Leg b joins 1 s late and sends in bursts; a click at call time 1.5 s lands on the same
    sample in both channels."""
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="stereo")
    click = 1500 * RATE // 1000
    for i in range(100):
        pcm = bytearray(2 * FRAME_SAMPLES)
        if i * FRAME_SAMPLES <= click < (i + 1) * FRAME_SAMPLES:
            struct.pack_into("<h", pcm, 2 * (click - i * FRAME_SAMPLES), 20000)
        rec.feed("a", at(i), bytes(pcm))
    for i in range(50, 100):  # fed after leg a's whole second: out of order between legs
        pcm = bytearray(2 * FRAME_SAMPLES)
        if i * FRAME_SAMPLES <= click < (i + 1) * FRAME_SAMPLES:
            struct.pack_into("<h", pcm, 2 * (click - i * FRAME_SAMPLES), -20000)
        rec.feed("b", at(i), bytes(pcm))
    assert rec.close() == 100 * FRAME_SAMPLES
    _, (left, right) = read_wav(f.getvalue())
    assert left.index(20000) == right.index(-20000) == click
    assert right[: 50 * FRAME_SAMPLES] == [0] * 50 * FRAME_SAMPLES


def test_timer_jitter_does_not_cut_or_stretch() -> None:
    """Ticks up to ±8 ms off: frames stay contiguous, the output is the input exactly."""
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="a")
    offsets = [0.0, 0.008, -0.007, 0.004, -0.008, 0.0]
    for i in range(60):
        rec.feed("a", at(i) + offsets[i % len(offsets)], frame(FA, i))
    rec.close()
    _, (mono,) = read_wav(f.getvalue())
    assert struct.pack(f"<{len(mono)}h", *mono) == tone(FA, 0, 60 * FRAME_SAMPLES)
    assert rec.stats.silence_inserted == rec.stats.dropped == 0


def test_duplicates_and_late_frames_are_dropped() -> None:
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="a")
    for i in range(10):
        rec.feed("a", at(i), frame(FA, i))
        if i == 5:
            rec.feed("a", at(i), frame(FB, i))  # the same slot again
    rec.feed("a", at(2), frame(FB, 2))  # long after its time
    rec.close()
    _, (mono,) = read_wav(f.getvalue())
    assert struct.pack(f"<{len(mono)}h", *mono) == tone(FA, 0, 10 * FRAME_SAMPLES)
    assert rec.stats.dropped == 2 * FRAME_SAMPLES


def test_close_at_end_pads_or_cuts() -> None:
    for end_frames in (30, 20, 7):
        f = io.BytesIO()
        rec = CallRecorder(f, start=T0, layout="mixed")
        for i in range(20):
            rec.feed("a", at(i), frame(FA, i))
            rec.feed("b", at(i), frame(FB, i))
        assert rec.close(end=at(end_frames)) == end_frames * FRAME_SAMPLES
        _, (mono,) = read_wav(f.getvalue())
        assert len(mono) == end_frames * FRAME_SAMPLES
    with pytest.raises(ValueError, match="closed"):
        rec.feed("a", at(0), frame(FA, 0))


def test_one_silent_leg_does_not_hold_audio_in_memory() -> None:
    """Only leg a sends: after max_lag the file grows anyway (leg b's part is silence), and a
    leg b frame for audio already written is dropped, not misplaced."""
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="stereo", max_lag=0.5)
    for i in range(150):  # 3 s
        rec.feed("a", at(i), frame(FA, i))
    assert rec.position >= 150 * FRAME_SAMPLES - 0.5 * RATE
    assert rec.stats.forced_flushes > 0
    rec.feed("b", at(0), frame(FB, 0))
    assert rec.stats.dropped == FRAME_SAMPLES
    rec.close()
    _, (left, right) = read_wav(f.getvalue())
    assert len(left) == 150 * FRAME_SAMPLES
    assert right == [0] * len(right)


def test_max_seconds_caps_the_recording() -> None:
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="stereo", max_seconds=1.0)
    for i in range(100):
        rec.feed("a", at(i), frame(FA, i))
        rec.feed("b", at(i), frame(FB, i))
    assert rec.full
    assert rec.close(end=at(100)) == RATE
    _, (left, _right) = read_wav(f.getvalue())
    assert len(left) == RATE


def test_sync_every_keeps_the_file_playable_during_the_call() -> None:
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="a", sync_every=0.5)
    for i in range(60):
        rec.feed("a", at(i), frame(FA, i))
    _, (mono,) = read_wav(f.getvalue())  # mid-call, as a crash would leave it
    assert len(mono) >= RATE // 2
    rec.close()


def test_recorder_takes_decoded_g711() -> None:
    """The tap decodes μ-law from the wire: the tone survives (G.711 quantisation only)."""
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="a")
    for i in range(25):
        rec.feed("a", at(i), ulaw_decode(ulaw_encode(frame(FA, i))))
    rec.close()
    _, (mono,) = read_wav(f.getvalue())
    assert amplitude_at(mono, FA) == pytest.approx(8000, rel=0.02)


def test_feed_validates() -> None:
    rec = CallRecorder(io.BytesIO(), start=T0)
    with pytest.raises(ValueError, match="even"):
        rec.feed("a", T0, b"\0")
    with pytest.raises(ValueError, match="leg"):
        rec.feed("c", T0, b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layout"):
        CallRecorder(io.BytesIO(), start=T0, layout="quad")  # type: ignore[arg-type]


# --- voicemail ----------------------------------------------------------------------------


def noise_frame(level: float = 20.0) -> bytes:
    """Line hiss well below the threshold (about -64 dBFS)."""
    return struct.pack(f"<{FRAME_SAMPLES}h", *((-1) ** n * round(level) for n in range(160)))


def test_level_of_a_full_scale_sine_is_minus_3_dbfs() -> None:
    assert frame_level_dbfs(tone(1000, 0, 800, 32767)) == pytest.approx(-3.01, abs=0.05)
    assert frame_level_dbfs(bytes(320)) == -math.inf
    assert frame_level_dbfs(noise_frame()) == pytest.approx(-64.3, abs=0.1)


def test_silence_detector_stops_after_seconds_of_quiet() -> None:
    det = SilenceDetector(seconds=2.0)
    for i in range(50):  # 1 s of "speech"
        assert not det.feed(frame(FA, i, 3000))
    assert det.heard
    quiet = [det.feed(noise_frame()) for _ in range(100)]
    assert quiet.index(True) == 99  # exactly 2 s of quiet
    assert det.feed(frame(FA, 0, 3000)) is False  # speech again resets
    assert det.silent_samples == 0


def test_voicemail_stops_on_silence_and_keeps_the_message() -> None:
    mon = VoicemailMonitor(max_seconds=60, silence_seconds=3.0, tail=0.5)
    reasons = [mon.feed(frame(FA, i, 3000)) for i in range(100)]  # 2 s message
    assert set(reasons) == {None}
    stops = [mon.feed(None if i % 2 else noise_frame()) for i in range(200)]
    assert stops.index(StopReason.SILENCE) == 149  # 3 s of quiet after the message
    assert mon.reason is StopReason.SILENCE
    assert mon.keep_samples == 2 * RATE + RATE // 2  # message + 0.5 s tail
    assert not mon.empty


def test_voicemail_stops_at_max_length_and_detects_empty_messages() -> None:
    mon = VoicemailMonitor(max_seconds=2.0, silence_seconds=5.0)
    stops = [mon.feed(frame(FA, i, 3000)) for i in range(150)]
    assert stops.index(StopReason.MAX_LENGTH) == 99
    assert mon.keep_samples == 2 * RATE
    empty = VoicemailMonitor(silence_seconds=1.0)
    stops = [empty.feed(None) for _ in range(60)]
    assert stops.index(StopReason.SILENCE) == 49
    assert empty.empty


def test_voicemail_recording_end_to_end() -> None:
    """Monitor + recorder: the file holds the message and half a second of the quiet after."""
    f = io.BytesIO()
    rec = CallRecorder(f, start=T0, layout="a")
    mon = VoicemailMonitor(silence_seconds=2.0, tail=0.5)
    i = 0
    while True:
        pcm = frame(FA, i, 3000) if i < 75 else noise_frame()
        rec.feed("a", at(i), pcm)
        i += 1
        if mon.feed(pcm):
            break
    assert rec.close(end=T0 + mon.keep_samples / RATE) == int(2.0 * RATE)
    _, (mono,) = read_wav(f.getvalue())
    assert len(mono) == 2 * RATE
    assert amplitude_at(mono[: 75 * FRAME_SAMPLES], FA) == pytest.approx(3000, rel=0.01)
