"""The PBX's own voice prompts, synthesised at install time (issue 4 item 10), never downloaded.

Every prompt is spoken by espeak-ng (Debian ``espeak-ng``) in Russian and English, converted by
the media importer (SoX: 8 kHz mono 16-bit PCM WAV, peaks normalised to -3 dBFS) and written to
``<out>/<lang>/<name>.wav``, by default ``<data_dir>/prompts``. The voicemail beep is not
speech: it is the tone plan's ``beep`` (1 kHz, 0.5 s), written as ``<lang>/beep.wav`` next to
the spoken prompts so that every prompt is found the same way.

Idempotent: ``<out>/manifest.json`` keeps a fingerprint of what made each file (text, voice,
speed, espeak-ng version); a prompt is only made again when that changed, its file is gone, or
``force`` is given. Files are written under a temporary name and renamed into place.

Run it as ``python -m cloudpbx.media.prompts [--out DIR] [--lang ru] [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cloudpbx.media.importer import ImportLimits, ImportRefused, import_audio_sync
from cloudpbx.media.tones import ToneGenerator, tone_plan
from cloudpbx.media.wavfile import WavFormat, WavWriter

__all__ = [
    "LANGUAGES",
    "PROMPTS",
    "VOICES",
    "PromptError",
    "PromptResult",
    "find_espeak",
    "generate_prompts",
    "main",
    "prompt_path",
]

#: name → language → text. Names are file names; the texts are what callers hear.
PROMPTS: Final[dict[str, dict[str, str]]] = {
    "voicemail_greeting": {
        "ru": "Оставьте сообщение после сигнала.",
        "en": "Please leave a message after the tone.",
    },
    "please_hold": {
        "ru": "Пожалуйста, оставайтесь на линии.",
        "en": "Please hold.",
    },
    "invalid_choice": {
        "ru": "Неверный выбор. Попробуйте ещё раз.",
        "en": "Invalid choice. Please try again.",
    },
    "number_does_not_exist": {
        "ru": "Набранный вами номер не существует.",
        "en": "The number you have dialled does not exist.",
    },
    "all_operators_busy": {
        "ru": "Все операторы заняты. Пожалуйста, подождите.",
        "en": "All operators are busy. Please wait.",
    },
}
BEEP: Final = "beep"

#: espeak-ng voice and speed (words a minute; 175 is espeak's default, slower is clearer on a
#: phone line) per language.
VOICES: Final[dict[str, tuple[str, int]]] = {"ru": ("ru", 150), "en": ("en-gb", 150)}
LANGUAGES: Final = tuple(VOICES)
PEAK_DBFS: Final = -3.0
_RECIPE: Final = 1  # bump when the way prompts are made changes: everything is made again
_MANIFEST: Final = "manifest.json"


class PromptError(RuntimeError):
    """espeak-ng missing or failing; the message says what to do."""


@dataclass(frozen=True, slots=True)
class PromptResult:
    language: str
    name: str
    path: Path
    made: bool  # False: already there and up to date


def prompt_path(root: Path, language: str, name: str) -> Path:
    """Where a prompt lives: ``<root>/<lang>/<name>.wav``."""
    return root / language / f"{name}.wav"


def find_espeak() -> str:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise PromptError(
            "espeak-ng is not installed: run scripts/install-system-deps.sh "
            "(Debian: apt-get install espeak-ng sox)"
        )
    return espeak


def _espeak_version(espeak: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed argument vector
        [espeak, "--version"], capture_output=True, timeout=30, check=False
    )
    return done.stdout.decode("utf-8", "replace").strip()


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps([_RECIPE, *parts], ensure_ascii=False).encode()).hexdigest()


def _load_manifest(root: Path) -> dict[str, str]:
    try:
        data = json.loads((root / _MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def _save_manifest(root: Path, manifest: dict[str, str]) -> None:
    fd, name = tempfile.mkstemp(dir=root, suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(manifest.items())), f, ensure_ascii=False, indent=1)
    os.chmod(name, 0o644)  # mkstemp makes 0600; prompts are readable like the rest
    os.replace(name, root / _MANIFEST)


def _speak(espeak: str, voice: str, speed: int, text: str, target: Path) -> None:
    """espeak-ng → a temporary WAV → the importer (SoX) → ``target`` (8 kHz mono 16-bit)."""
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        raw = Path(work) / "espeak.wav"
        done = subprocess.run(  # noqa: S603 - fixed argument vector; text on stdin
            [espeak, "-v", voice, "-s", str(speed), "-b", "1", "--stdin", "-w", str(raw)],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0 or not raw.exists():
            message = done.stderr.decode("utf-8", "replace").strip()
            raise PromptError(f"espeak-ng failed for voice {voice!r}: {message}")
        converted = Path(work) / "prompt.wav"
        try:
            import_audio_sync(raw, converted, ImportLimits(normalize_dbfs=PEAK_DBFS, timeout=60))
        except ImportRefused as exc:
            raise PromptError(f"converting espeak-ng's output failed: {exc.reason}") from exc
        os.replace(converted, target)


def _write_beep(target: Path) -> None:
    generator = ToneGenerator(tone_plan("ru")[BEEP])
    fd, name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    with os.fdopen(fd, "wb") as f, WavWriter(f, WavFormat.pcm16()) as writer:
        for frame in generator:
            writer.write_frames(frame)
    os.chmod(name, 0o644)
    os.replace(name, target)


def generate_prompts(
    root: Path,
    languages: Sequence[str] = LANGUAGES,
    *,
    names: Sequence[str] | None = None,
    force: bool = False,
) -> list[PromptResult]:
    """Make the prompts (all, or ``names``) of ``languages`` under ``root``; idempotent.

    Raises :class:`PromptError` when espeak-ng (or SoX) is missing or fails, ``ValueError`` for
    an unknown language or prompt name.
    """
    unknown = [lang for lang in languages if lang not in VOICES]
    if unknown:
        raise ValueError(f"no voice for language(s) {unknown}: choose from {list(VOICES)}")
    wanted = [*PROMPTS, BEEP] if names is None else list(names)
    bad = [name for name in wanted if name not in PROMPTS and name != BEEP]
    if bad:
        raise ValueError(f"unknown prompt(s) {bad}: choose from {[*PROMPTS, BEEP]}")
    espeak = find_espeak()
    version = _espeak_version(espeak)
    root.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(root)
    results: list[PromptResult] = []
    for language in languages:
        (root / language).mkdir(exist_ok=True)
        voice, speed = VOICES[language]
        for name in wanted:
            target = prompt_path(root, language, name)
            key = f"{language}/{name}"
            if name == BEEP:
                stamp = _fingerprint(BEEP, repr(tone_plan("ru")[BEEP].segments))
            else:
                stamp = _fingerprint(PROMPTS[name][language], voice, speed, version, PEAK_DBFS)
            if not force and manifest.get(key) == stamp and target.is_file():
                results.append(PromptResult(language, name, target, made=False))
                continue
            if name == BEEP:
                _write_beep(target)
            else:
                _speak(espeak, voice, speed, PROMPTS[name][language], target)
            manifest[key] = stamp
            _save_manifest(root, manifest)
            results.append(PromptResult(language, name, target, made=True))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cloudpbx.media.prompts``: make the prompts, print what was done."""
    parser = argparse.ArgumentParser(
        prog="cloudpbx prompts", description="generate the voice prompts (espeak-ng + sox)"
    )
    parser.add_argument("--out", type=Path, help="directory (default: <data_dir>/prompts)")
    parser.add_argument(
        "--lang", action="append", choices=LANGUAGES, help="a language (repeatable; default all)"
    )
    parser.add_argument("--force", action="store_true", help="make every prompt again")
    args = parser.parse_args(argv)
    return run(args.out, args.lang, force=args.force)


def run(out: Path | None, languages: Sequence[str] | None, *, force: bool = False) -> int:
    """The command's body, shared with ``cloudpbx prompts``; returns the exit status."""
    if out is None:
        from cloudpbx.config import get_settings

        out = Path(get_settings().data_dir) / "prompts"
    try:
        results = generate_prompts(out, languages or LANGUAGES, force=force)
    except PromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    made = sum(result.made for result in results)
    print(f"prompts in {out}: {made} made, {len(results) - made} up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
