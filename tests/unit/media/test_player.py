"""Audio sources and the drift-free pacer (issue 4 item 5, media/player.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudpbx.media.codecs import alaw_encode, ulaw_encode
from cloudpbx.media.player import (
    AudioSource,
    FileSource,
    Pacer,
    PcmSource,
    SilenceSource,
    ToneSource,
)
from cloudpbx.media.tones import Tone, tone_plan
from cloudpbx.media.wavfile import WavError, WavFormat, wav_bytes


def ramp(samples: int) -> bytes:
    return b"".join(
        ((i * 37) % 20000 - 10000).to_bytes(2, "little", signed=True) for i in range(samples)
    )


def drain(source: AudioSource, samples: int = 160, limit: int = 10_000) -> list[bytes]:
    out = []
    for _ in range(limit):
        chunk = source.read(samples)
        if chunk is None:
            return out
        out.append(chunk)
    raise AssertionError("source never finished")


def test_file_source_pcm16_reads_whole_file_in_frames(tmp_path: Path) -> None:
    """Issue 4 item 5: a PCM16 prompt comes out sample-exact, the last frame short."""
    pcm = ramp(8000 + 50)
    path = tmp_path / "p.wav"
    path.write_bytes(wav_bytes(WavFormat.pcm16(), pcm))
    source = FileSource(path)
    assert source.duration == pytest.approx(8050 / 8000)
    chunks = drain(source)
    assert b"".join(chunks) == pcm
    assert len(chunks[-1]) == 100
    assert source.read(160) is None


@pytest.mark.parametrize(("law", "encode"), [("alaw", alaw_encode), ("ulaw", ulaw_encode)])
def test_file_source_decodes_g711(tmp_path: Path, law: str, encode: object) -> None:
    """Issue 4 item 5: G.711 WAV files play as PCM (decoded on read)."""
    pcm = ramp(4800)
    assert callable(encode)
    coded = encode(pcm)
    path = tmp_path / "g.wav"
    path.write_bytes(wav_bytes(WavFormat.g711(law), coded))
    out = b"".join(drain(FileSource(path)))
    assert len(out) == len(pcm)
    # G.711 is lossy: within its quantisation step of the original
    worst = max(
        abs(
            int.from_bytes(out[i : i + 2], "little", signed=True)
            - int.from_bytes(pcm[i : i + 2], "little", signed=True)
        )
        for i in range(0, len(pcm), 2)
    )
    assert worst < 700


def test_file_source_loop_for_music_on_hold(tmp_path: Path) -> None:
    """Issue 4 item 5 (MOH): loop=True wraps around without a gap, across the block size."""
    pcm = ramp(6001)
    path = tmp_path / "moh.wav"
    path.write_bytes(wav_bytes(WavFormat.pcm16(), pcm))
    source = FileSource(path, loop=True)
    got = b"".join(source.read(160) or b"" for _ in range(200))  # 32,000 samples
    assert got == (pcm * 6)[: len(got)]
    source.close()
    assert source.read(160) is None


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        (WavFormat.pcm16(channels=2), "mono"),
        (WavFormat.pcm16(sample_rate=16000), "8 kHz"),
        (WavFormat.linear(bits=8), "16-bit"),
    ],
)
def test_file_source_refuses_other_formats(tmp_path: Path, fmt: WavFormat, reason: str) -> None:
    """Issue 4 item 5: only the telephony format plays; the error says why."""
    path = tmp_path / "bad.wav"
    path.write_bytes(wav_bytes(fmt, bytes(fmt.block_align * 100)))
    with pytest.raises(WavError, match=reason):
        FileSource(path)


def test_file_source_empty_file_with_loop_finishes(tmp_path: Path) -> None:
    """An empty MOH file must not spin forever."""
    path = tmp_path / "empty.wav"
    path.write_bytes(wav_bytes(WavFormat.pcm16(), b""))
    assert FileSource(path, loop=True).read(160) is None


def test_pcm_source_and_silence_source() -> None:
    """Issue 4 item 5: in-memory PCM (loop or not) and timed or endless silence."""
    assert drain(PcmSource(ramp(200))) == [ramp(200)[:320], ramp(200)[320:]]
    looped = PcmSource(ramp(100), loop=True)
    assert looped.read(250) == (ramp(100) * 3)[:500]
    assert b"".join(drain(SilenceSource(0.05))) == bytes(800)
    assert SilenceSource().read(160) == bytes(320)
    assert PcmSource(b"", loop=True).read(160) is None
    with pytest.raises(ValueError, match="even"):
        PcmSource(b"\0")


def test_tone_source_finishes_for_one_shot_and_repeats_cadence() -> None:
    """Issue 4 item 4/5: ToneSource wraps ToneGenerator; a beep ends, ringback does not."""
    beep = Tone.cadence("beep", (1000,), 100, 0, repeat=False)
    frames = drain(ToneSource(beep))
    assert len(frames) == 5
    assert ToneSource(tone_plan("ru")["beep"]).read(160)
    ring = ToneSource(tone_plan("ru")["ringback"])
    assert all(ring.read(160) for _ in range(300))


def test_pacer_frame_times_are_computed_not_accumulated() -> None:
    """Issue 4 item 5: frame n is due at start + n*20 ms exactly, over 10 minutes."""
    pacer = Pacer(100.0)
    now = 100.0
    sent = 0
    for _ in range(30_000):  # 10 minutes of 20 ms ticks, each fired 0.7 ms late
        now = pacer.deadline() + 0.0007
        skip, send = pacer.due(now)
        assert (skip, send) == (0, 1)
        sent += send
    assert sent == 30_000
    assert pacer.deadline() == pytest.approx(100.0 + 30_000 * 0.020, abs=1e-9)
    assert pacer.stats.late_calls == 0


def test_pacer_catches_up_then_skips_after_a_stall() -> None:
    """Issue 4 item 5: a 200 ms stall sends at most max_catchup frames, skips the rest."""
    pacer = Pacer(0.0, max_catchup=3)
    assert pacer.due(0.0) == (0, 1)
    assert pacer.due(0.010) == (0, 0)  # early: nothing
    assert pacer.due(0.045) == (0, 2)  # frames 1 and 2
    assert pacer.due(0.2601) == (8, 3)  # frames 3..13 due: 8 skipped, 11..13 sent
    assert pacer.next_frame == 14
    assert pacer.stats.skipped == 8
    assert pacer.stats.max_late == pytest.approx(0.2001)


@given(st.lists(st.floats(min_value=0.0, max_value=0.1), min_size=1, max_size=300))
def test_pacer_never_loses_count(delays: list[float]) -> None:
    """Issue 4 item 5: whatever the lateness, sent + skipped = frames due by then."""
    pacer = Pacer(5.0)
    now = 5.0
    for delay in delays:
        now = max(now, pacer.deadline()) + delay
        pacer.due(now)
    due = int((now - 5.0) / 0.020 + 1e-9) + 1
    assert pacer.stats.frames + pacer.stats.skipped == due == pacer.next_frame
