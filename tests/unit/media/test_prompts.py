"""Voice prompts made with espeak-ng at install time (cloudpbx.media.prompts).

espeak-ng and SoX are test requirements (scripts/install-system-deps.sh installs them): when
missing these tests fail and say so, they are not skipped.
"""

from __future__ import annotations

import math
import shutil
import struct
import wave
from pathlib import Path

import pytest

from cloudpbx.media.prompts import (
    PROMPTS,
    PromptError,
    generate_prompts,
    main,
    prompt_path,
)
from cloudpbx.media.recorder import frame_level_dbfs


@pytest.fixture(autouse=True)
def _tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    assert not missing, (
        f"{', '.join(missing)} not installed: run scripts/install-system-deps.sh "
        "(Debian packages espeak-ng, sox, libsox-fmt-mp3)"
    )


def read_prompt(path: Path) -> list[int]:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        data = w.readframes(w.getnframes())
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def frame_levels(samples: list[int]) -> list[float]:
    frames = [samples[i : i + 160] for i in range(0, len(samples) - 159, 160)]
    return [frame_level_dbfs(struct.pack(f"<{len(f)}h", *f)) for f in frames]


@pytest.mark.parametrize("language", ["ru", "en"])
def test_greeting_is_telephony_speech(tmp_path: Path, language: str) -> None:
    (result,) = generate_prompts(tmp_path, [language], names=["voicemail_greeting"])
    assert result.made
    assert result.path == prompt_path(tmp_path, language, "voicemail_greeting")
    assert result.path == tmp_path / language / "voicemail_greeting.wav"
    samples = read_prompt(result.path)
    seconds = len(samples) / 8000
    assert 1.0 < seconds < 6.0  # a short sentence
    # peaks normalised to -3 dBFS
    assert max(abs(s) for s in samples) == pytest.approx(32768 * 10 ** (-3 / 20), rel=0.002)
    levels = frame_levels(samples)
    voiced = [level for level in levels if level > -40]
    assert len(voiced) > 0.5 * len(levels)  # mostly speech…
    assert max(levels) > -20  # …at a telephone level…
    assert max(levels) - min(levels) > 20  # …with the ups and downs of syllables, not a tone


def test_generation_is_idempotent_and_follows_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (first,) = generate_prompts(tmp_path, ["ru"], names=["please_hold"])
    stamp = first.path.stat().st_mtime_ns
    content = first.path.read_bytes()
    (again,) = generate_prompts(tmp_path, ["ru"], names=["please_hold"])
    assert not again.made
    assert first.path.stat().st_mtime_ns == stamp
    (forced,) = generate_prompts(tmp_path, ["ru"], names=["please_hold"], force=True)
    assert forced.made
    assert forced.path.read_bytes() == content  # same text, same voice: the same file
    monkeypatch.setitem(PROMPTS["please_hold"], "ru", "Подождите, пожалуйста, соединяю.")
    (changed,) = generate_prompts(tmp_path, ["ru"], names=["please_hold"])
    assert changed.made
    assert changed.path.read_bytes() != content
    first.path.unlink()
    (remade,) = generate_prompts(tmp_path, ["ru"], names=["please_hold"])
    assert remade.made
    assert [p.name for p in (tmp_path / "ru").iterdir()] == ["please_hold.wav"]  # no leftovers


def test_beep_is_the_tone_plan_beep(tmp_path: Path) -> None:
    (beep,) = generate_prompts(tmp_path, ["en"], names=["beep"])
    samples = read_prompt(beep.path)
    assert len(samples) == 4000  # 0.5 s
    w = 2 * math.pi * 1000 / 8000
    re = sum(s * math.cos(w * n) for n, s in enumerate(samples))
    im = sum(s * math.sin(w * n) for n, s in enumerate(samples))
    amplitude = 2 * math.hypot(re, im) / len(samples)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert amplitude / math.sqrt(2) == pytest.approx(rms, rel=0.05)  # all energy at 1 kHz


def test_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="no voice"):
        generate_prompts(tmp_path, ["de"])
    with pytest.raises(ValueError, match="unknown prompt"):
        generate_prompts(tmp_path, ["ru"], names=["nope"])
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(PromptError, match="espeak-ng is not installed"):
        generate_prompts(tmp_path, ["ru"])


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--lang", "en"]) == 0
    assert "6 made, 0 up to date" in capsys.readouterr().out
    names = sorted(p.stem for p in (tmp_path / "en").iterdir())
    assert names == sorted([*PROMPTS, "beep"])
    assert main(["--out", str(tmp_path), "--lang", "en"]) == 0
    assert "0 made, 6 up to date" in capsys.readouterr().out
