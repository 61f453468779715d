"""Dialplan components through the API (PRODUCT.md §4: FWD-1, Q-1, IVR-1, MED-1, CLS-1, VM-1,
TM-1), under tenancy (ADM-4) and rights (ADM-1, ADM-2)."""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import struct
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from cloudpbx.config import Settings
from cloudpbx.db.models import ApiToken, AuditEntry, Campaign
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import Level, Right
from cloudpbx.security import new_token, token_hash

API = "/api/v1"


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class TokenCaller:
    """Like conftest's Caller, authenticated by an API token written to the database: the same
    bearer path through the API without an argon2 verification per user (keeps this file
    fast; logging in is tested elsewhere)."""

    http: Any
    headers: dict[str, str]

    def get(self, path: str, **kw: Any) -> Any:
        return self.http.get(path, headers=self.headers, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.http.post(path, headers=self.headers, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.http.patch(path, headers=self.headers, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.http.delete(path, headers=self.headers, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        response = getattr(self, method)(path, **kw)
        assert response.status_code == status, response.text
        return response.json() if response.content else None


def caller(
    world: Any, level: Level, client_id: int | None = None, extra: tuple[str, ...] = ()
) -> TokenCaller:
    user_id = world.user(level, client_id, extra=extra)
    token = "cpx_" + new_token()
    with make_sessionmaker(world.engine)() as session:
        session.add(ApiToken(user_id=user_id, name="test", token_hash=token_hash(token)))
        session.commit()
    return TokenCaller(world.http, {"Authorization": f"Bearer {token}"})


def url(cid: int, resource: str, *rest: Any) -> str:
    return "/".join([f"{API}/clients/{cid}/{resource}", *map(str, rest)])


def make_wav(*, seconds: float = 0.1, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    """A tone-free but valid PCM WAV built with the stdlib."""
    frames = int(seconds * rate)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        size = frames * channels * width
        wav.writeframes((bytes(range(256)) * (size // 256 + 1))[:size])
    return buffer.getvalue()


def field_of(response: Any) -> str | None:
    body = response.json()
    return body.get("field")


def expect(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if field is not None:
        assert body["field"] == field, body
    return body


@pytest.fixture
def acme(world):
    """A client with its administrator (who also holds the Telemarketing set) and a port."""
    cid = world.client("Acme")
    admin = caller(world, Level.CLIENT_ADMIN, cid, extra=(Right.TELEMARKETING.value,))
    return cid, admin


@pytest.fixture
def other(world):
    """A second client with objects of its own, to point at from Acme (ADM-4)."""
    cid = world.client("Other")
    admin = caller(world, Level.CLIENT_ADMIN, cid)
    ids = {
        "port": admin.ok("post", url(cid, "ports"), 201, json={"name": "o", "sip_login": "o-1"})[
            "id"
        ],
        "pack": admin.ok("post", url(cid, "media-packs"), 201, json={"name": "o"})["id"],
        "number": admin.ok("post", url(cid, "internal-numbers"), 201, json={"number": "200"})["id"],
        "classifier": admin.ok("post", url(cid, "classifiers"), 201, json={"name": "o"})["id"],
    }
    ids["file"] = admin.ok(
        "post", url(cid, "media-files"), 201, json={"pack_id": ids["pack"], "name": "o"}
    )["id"]
    return cid, admin, ids


def media_file(admin: Any, cid: int, name: str = "greeting") -> int:
    pack = admin.ok("post", url(cid, "media-packs"), 201, json={"name": f"pack {name}"})
    return int(
        admin.ok("post", url(cid, "media-files"), 201, json={"pack_id": pack["id"], "name": name})[
            "id"
        ]
    )


def upload(admin: Any, cid: int, file_id: int, data: bytes, name: str = "a.wav") -> Any:
    return admin.post(
        url(cid, "media-files", file_id, "audio"), files={"file": (name, data, "audio/wav")}
    )


def post_csv(admin: Any, cid: int, classifier_id: int, text: str, **headers: str) -> Any:
    return admin.http.post(
        url(cid, "classifiers", classifier_id, "contacts", "import"),
        content=text.encode(headers.pop("encoding", "utf-8")),
        headers={**admin.headers, "Content-Type": "text/csv", **headers},
    )


# --- forwarding numbers (FWD-1) --------------------------------------------------------------


def test_forwarding_number_crud_normalises_number(acme):
    """FWD-1: the number is stored in E.164, services and limits round-trip, delete works."""
    cid, admin = acme
    created = admin.ok(
        "post",
        url(cid, "forwarding-numbers"),
        201,
        json={
            "number": "8 (916) 123-45-67",
            "name": "Mobile",
            "services": {"call_return": True},
            "max_concurrent_incoming": 2,
        },
    )
    assert created["number"] == "+79161234567"
    assert created["services"]["call_return"] is True
    assert created["services"]["transfer"] is True  # defaults filled in
    fid = created["id"]
    changed = admin.ok("patch", url(cid, "forwarding-numbers", fid), json={"language": "en"})
    assert (changed["language"], changed["name"]) == ("en", "Mobile")
    listing = admin.ok("get", url(cid, "forwarding-numbers") + "?q=9161")
    assert [item["id"] for item in listing["items"]] == [fid]
    admin.ok("delete", url(cid, "forwarding-numbers", fid), 204)
    expect(admin.get(url(cid, "forwarding-numbers", fid)), 404)


def test_forwarding_number_validation_names_fields(acme):
    """FWD-1: a bad number, unknown service or null services is a 422 naming the field."""
    cid, admin = acme
    base = {"number": "89161234567", "name": "x"}
    post = url(cid, "forwarding-numbers")
    expect(admin.post(post, json={**base, "number": "abc"}), 422, "number")
    expect(
        admin.post(post, json={**base, "services": {"teleport": True}}), 422, "services.teleport"
    )
    fid = admin.ok("post", post, 201, json=base)["id"]
    expect(
        admin.patch(url(cid, "forwarding-numbers", fid), json={"services": None}), 422, "services"
    )
    expect(admin.patch(url(cid, "forwarding-numbers", fid), json={"name": None}), 422, "name")


# --- queues (Q-1) ----------------------------------------------------------------------------


def test_queue_agents_are_replaced_wholesale(acme):
    """Q-1: agents (ports and forwarding numbers) keep their order and are replaced on update."""
    cid, admin = acme
    p1 = admin.ok("post", url(cid, "ports"), 201, json={"name": "1", "sip_login": "q-1"})["id"]
    p2 = admin.ok("post", url(cid, "ports"), 201, json={"name": "2", "sip_login": "q-2"})["id"]
    fwd = admin.ok(
        "post", url(cid, "forwarding-numbers"), 201, json={"number": "89161234567", "name": "m"}
    )["id"]
    queue = admin.ok(
        "post",
        url(cid, "queues"),
        201,
        json={
            "name": "Sales",
            "strategy": "leastrecent",
            "agents": [{"port_id": p1, "penalty": 1}, {"forwarding_number_id": fwd}],
        },
    )
    assert [(a["port_id"], a["forwarding_number_id"]) for a in queue["agents"]] == [
        (p1, None),
        (None, fwd),
    ]
    qid = queue["id"]
    new_agents = [{"port_id": p2, "logged_in": False}, {"port_id": p1}]
    changed = admin.ok("patch", url(cid, "queues", qid), json={"agents": new_agents})
    assert [a["port_id"] for a in changed["agents"]] == [p2, p1]
    assert changed["agents"][0]["logged_in"] is False
    renamed = admin.ok("patch", url(cid, "queues", qid), json={"name": "Sales 2"})
    assert [a["port_id"] for a in renamed["agents"]] == [p2, p1]  # untouched when absent
    assert [a["port_id"] for a in admin.ok("get", url(cid, "queues", qid))["agents"]] == [p2, p1]
    assert admin.ok("patch", url(cid, "queues", qid), json={"agents": []})["agents"] == []
    # A port that is a queue agent is in use (issue 2 §6).
    admin.ok("patch", url(cid, "queues", qid), json={"agents": [{"port_id": p1}]})
    in_use = expect(admin.delete(url(cid, "ports", p1)), 409)
    assert in_use["details"][0]["entity"] == "queue_agents"
    admin.ok("delete", url(cid, "queues", qid), 204)
    admin.ok("delete", url(cid, "ports", p1), 204)


def test_queue_validation_names_fields(acme, other):
    """Q-1: agent errors name agents.N.<field>; other clients' objects are bad references."""
    cid, admin = acme
    _, _, theirs = other
    port = admin.ok("post", url(cid, "ports"), 201, json={"name": "1", "sip_login": "v-1"})["id"]
    post = url(cid, "queues")
    twice = {"name": "q", "agents": [{"port_id": port}, {"port_id": port}]}
    expect(admin.post(post, json=twice), 422, "agents.1.port_id")
    both = {"name": "q", "agents": [{"port_id": port, "forwarding_number_id": 1}]}
    expect(admin.post(post, json=both), 422, "agents.0")
    expect(admin.post(post, json={"name": "q", "agents": [{}]}), 422, "agents.0")
    foreign = {"name": "q", "agents": [{"port_id": port}, {"port_id": theirs["port"]}]}
    expect(admin.post(post, json=foreign), 422, "agents.1.port_id")
    expect(
        admin.post(post, json={"name": "q", "music_pack_id": theirs["pack"]}), 422, "music_pack_id"
    )
    expect(admin.post(post, json={"name": "q", "strategy": "linear"}), 422, "strategy")
    expect(admin.post(post, json={"name": "q", "agent_ring_s": 0}), 422, "agent_ring_s")
    qid = admin.ok("post", post, 201, json={"name": "q"})["id"]
    expect(admin.patch(url(cid, "queues", qid), json={"agents": None}), 422, "agents")
    assert admin.ok("get", post)["total"] == 1


# --- voice menus (IVR-1) ---------------------------------------------------------------------


def test_voice_menu_key_map(acme, other):
    """IVR-1: keys 0-9*# map to internal numbers, unique; the map is replaced on update."""
    cid, admin = acme
    _, _, theirs = other
    n1 = admin.ok("post", url(cid, "internal-numbers"), 201, json={"number": "201"})["id"]
    n2 = admin.ok("post", url(cid, "internal-numbers"), 201, json={"number": "202"})["id"]
    announcement = media_file(admin, cid)
    menu = admin.ok(
        "post",
        url(cid, "voice-menus"),
        201,
        json={
            "name": "Main",
            "announcement_id": announcement,
            "digit_timeout_s": 5,
            "extension_dialling": True,
            "keys": [
                {"key": "1", "internal_number_id": n1},
                {"key": "#", "internal_number_id": n2},
            ],
        },
    )
    assert {(k["key"], k["internal_number_id"]) for k in menu["keys"]} == {("1", n1), ("#", n2)}
    mid = menu["id"]
    # The same key pointing elsewhere: old rows go before new ones (unique (menu, key)).
    swapped = [{"key": "1", "internal_number_id": n2}, {"key": "0", "internal_number_id": n1}]
    changed = admin.ok("patch", url(cid, "voice-menus", mid), json={"keys": swapped})
    assert {(k["key"], k["internal_number_id"]) for k in changed["keys"]} == {("1", n2), ("0", n1)}
    read = admin.ok("get", url(cid, "voice-menus", mid))
    assert [k["key"] for k in read["keys"]] == ["0", "1"]
    # The announcement is in use by the menu.
    expect(admin.delete(url(cid, "media-files", announcement)), 409)

    post = url(cid, "voice-menus")
    dup = {"name": "m", "keys": [{"key": "2", "internal_number_id": n1}] * 2}
    expect(admin.post(post, json=dup), 422, "keys.1.key")
    expect(
        admin.post(post, json={"name": "m", "keys": [{"key": "A", "internal_number_id": n1}]}),
        422,
        "keys.0.key",
    )
    foreign = {"name": "m", "keys": [{"key": "3", "internal_number_id": theirs["number"]}]}
    expect(admin.post(post, json=foreign), 422, "keys.0.internal_number_id")
    expect(
        admin.post(post, json={"name": "m", "announcement_id": theirs["file"]}),
        422,
        "announcement_id",
    )
    expect(admin.post(post, json={"name": "m", "digit_timeout_s": 31}), 422, "digit_timeout_s")
    expect(admin.post(post, json={"name": "m", "digit_timeout_s": 0}), 422, "digit_timeout_s")


# --- media packs and files (MED-1) -----------------------------------------------------------


def test_media_pack_single_default_and_in_use(acme, engine):
    """MED-1: at most one default pack; a pack with files cannot be deleted (409 + usages)."""
    cid, admin = acme
    first = admin.ok("post", url(cid, "media-packs"), 201, json={"name": "A", "is_default": True})
    second = admin.ok("post", url(cid, "media-packs"), 201, json={"name": "B", "is_default": True})
    assert second["is_default"] is True
    assert admin.ok("get", url(cid, "media-packs", first["id"]))["is_default"] is False
    admin.ok("patch", url(cid, "media-packs", first["id"]), json={"is_default": True})
    defaults = admin.ok("get", url(cid, "media-packs") + "?is_default=true")["items"]
    assert [p["id"] for p in defaults] == [first["id"]]
    with Session(engine) as session:  # the cleared pack's change is audited too (ADM-7)
        entries = session.query(AuditEntry).filter_by(
            entity="media-packs", entity_id=str(second["id"])
        )
        assert [e.action for e in entries] == ["create", "update"]
    expect(admin.post(url(cid, "media-packs"), json={"name": "A"}), 409, "name")

    file_id = admin.ok(
        "post", url(cid, "media-files"), 201, json={"pack_id": first["id"], "name": "hold"}
    )["id"]
    refused = expect(admin.delete(url(cid, "media-packs", first["id"])), 409)
    assert refused["details"] == [
        {"entity": "media_files", "id": file_id, "label": "hold", "field": "pack_id"}
    ]
    expect(admin.delete(url(cid, "media-packs", first["id"]) + "?cascade=true"), 409)
    admin.ok("delete", url(cid, "media-files", file_id), 204)
    admin.ok("delete", url(cid, "media-packs", first["id"]), 204)


def test_media_file_metadata_crud(acme, other):
    """MED-1: media file metadata; the pack must be the client's own."""
    cid, admin = acme
    _, _, theirs = other
    pack = admin.ok("post", url(cid, "media-packs"), 201, json={"name": "p"})["id"]
    post = url(cid, "media-files")
    expect(admin.post(post, json={"pack_id": theirs["pack"], "name": "x"}), 422, "pack_id")
    expect(
        admin.post(post, json={"pack_id": pack, "name": "x", "language": "rus"}), 422, "language"
    )
    created = admin.ok("post", post, 201, json={"pack_id": pack, "name": "Hello", "language": "en"})
    assert created["size_bytes"] is None
    assert created["content_type"] is None
    changed = admin.ok("patch", url(cid, "media-files", created["id"]), json={"description": "d"})
    assert changed["description"] == "d"
    assert admin.ok("get", post + f"?pack_id={pack}")["total"] == 1
    expect(admin.get(url(cid, "media-files", created["id"], "audio")), 404)


def stored_wav(settings: Settings, cid: int, file_id: int) -> tuple[wave._wave_params, bytes]:
    """The parameters and frames of a media file's stored audio."""
    path = Path(settings.media_dir or "") / str(cid) / f"{file_id}.wav"
    with wave.open(str(path), "rb") as wav:
        return wav.getparams(), wav.readframes(wav.getnframes())


def amplitude_at(pcm: bytes, freq: float, rate: int = 8000) -> float:
    """Goertzel: the amplitude of the ``freq`` component of 16-bit mono PCM."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2 * math.sqrt(max(power, 0.0)) / len(samples)


def sox_file(tmp_path: Path, name: str, options: str, effects: str) -> bytes:
    """A file made by sox from nothing (`sox -n <options> <name> <effects>`); sox is installed
    by `make test` (scripts/install-system-deps.sh)."""
    sox = shutil.which("sox")
    assert sox, "sox is not installed: run scripts/install-system-deps.sh (Debian: sox)"
    out = tmp_path / name
    subprocess.run([sox, "-R", "-n", *options.split(), str(out), *effects.split()], check=True)
    return out.read_bytes()


def test_upload_and_download_wav(acme, settings: Settings):
    """MED-1: a telephony WAV (8 kHz mono 16-bit) is stored as uploaded, with size, duration
    and hash, and downloads byte-exact."""
    cid, admin = acme
    file_id = media_file(admin, cid, "Приветствие 1/2")
    data = make_wav(seconds=0.5)
    stored = expect(upload(admin, cid, file_id, data), 200)
    assert stored["size_bytes"] == len(data)
    assert stored["duration_ms"] == 500
    assert stored["content_type"] == "audio/wav"
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    path = Path(settings.media_dir or "") / str(cid) / f"{file_id}.wav"
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    response = admin.get(url(cid, "media-files", file_id, "audio"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("audio/wav")
    disposition = response.headers["content-disposition"]
    assert disposition.endswith(
        "%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%D1%81%D1%82%D0%B2%D0%B8%D0%B5%201_2.wav"
    )
    assert response.content == data
    # Any other WAV is converted: 16 kHz stereo, 8-bit, 24-bit all become 8 kHz mono 16-bit.
    for other, duration in (
        (make_wav(seconds=0.5, rate=16000, channels=2), 500),
        (make_wav(seconds=0.25, width=1), 250),
        (make_wav(seconds=0.25, rate=44100, width=3), 250),
    ):
        stored = expect(upload(admin, cid, file_id, other), 200)
        assert stored["duration_ms"] == duration
        params, _ = stored_wav(settings, cid, file_id)
        assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
        assert params.nframes == duration * 8
        content = admin.get(url(cid, "media-files", file_id, "audio")).content
        assert content == path.read_bytes()
        assert stored["size_bytes"] == len(content) == 44 + 2 * params.nframes
        assert stored["sha256"] == hashlib.sha256(content).hexdigest()
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    # Deleting the media file removes its audio.
    admin.ok("delete", url(cid, "media-files", file_id), 204)
    assert not path.exists()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("tone.mp3", ("-r 44100 -c 2", "synth 1 sine 440")),
        ("tone.ogg", ("-r 44100 -c 2", "synth 1 sine 440")),
        ("tone.flac", ("-r 48000 -c 2 -b 24", "synth 1 sine 440")),
        ("tone.wav", ("-r 22050 -c 2 -e floating-point -b 32", "synth 1 sine 440")),
    ],
)
def test_upload_converts_to_telephony_format(acme, settings: Settings, tmp_path, name, make):
    """Media import (issue 4): MP3, Ogg Vorbis, FLAC and float WAV become 8 kHz mono 16-bit
    WAV; the tone is still there, at 440 Hz and nowhere else."""
    cid, admin = acme
    file_id = media_file(admin, cid)
    data = sox_file(tmp_path, name, *make)
    stored = expect(upload(admin, cid, file_id, data, name=f"upload.{name}"), 200)
    params, frames = stored_wav(settings, cid, file_id)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 8000)
    # MP3 adds its encoder delay (about 25 ms at 44.1 kHz); the rest are exact
    assert 1000 <= stored["duration_ms"] <= 1060
    assert stored["duration_ms"] == params.nframes // 8
    middle = frames[2 * 1000 : 2 * 7000]  # 0.75 s away from the edges
    peak = amplitude_at(middle, 440)
    assert peak > 10000  # sox's full-scale sine, averaged to mono, minus resampling headroom
    for other in (300, 600, 1000, 2000):
        assert amplitude_at(middle, other) < peak / 100
    assert stored["content_type"] == "audio/wav"


def test_upload_is_not_trusted_by_its_name(acme, settings: Settings, tmp_path):
    """The type comes from the bytes: an MP3 called .wav is still converted as MP3, a PNG
    called .mp3 is refused as a PNG."""
    cid, admin = acme
    file_id = media_file(admin, cid)
    mp3 = sox_file(tmp_path, "x.mp3", "-r 8000 -c 1", "synth 0.5 sine 1000")
    assert expect(upload(admin, cid, file_id, mp3, name="x.wav"), 200)["duration_ms"] >= 500
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    body = expect(upload(admin, cid, file_id, png, name="x.mp3"), 415, "file")
    assert "looks like a PNG image" in body["message"]


def test_upload_too_long_is_refused_before_decoding(acme):
    """A FLAC whose header announces more than an hour is refused (413) without decoding it."""
    cid, admin = acme
    file_id = media_file(admin, cid)
    # fLaC + STREAMINFO: 8 kHz, mono, 16-bit, 3601 s of samples (the frames need not follow)
    info = (8000 << 44) | (0 << 41) | (15 << 36) | (8000 * 3601)
    data = b"fLaC\x80\0\0\x22" + bytes(10) + info.to_bytes(8, "big") + bytes(16)
    body = expect(upload(admin, cid, file_id, data), 413, "file")
    assert "longer than the limit of 1 hour" in body["message"]


def _wav_with_tag(tag: int) -> bytes:
    data = make_wav()
    return data[:20] + struct.pack("<H", tag) + data[22:]


BAD_FILES = [
    # (what, bytes, status, words in the message)
    ("text", b"this is not audio at all", 415, "not an audio file (looks like text)"),
    ("png", b"\x89PNG\r\n\x1a\n" + bytes(100), 415, "not an audio file (looks like a PNG image)"),
    ("zip", b"PK\x03\x04" + bytes(100), 415, "looks like a ZIP archive"),
    ("m4a", b"\0\0\0\x20ftypM4A " + bytes(100), 415, "MP4/M4A (AAC) audio is not supported"),
    ("opus", b"OggS" + bytes(22) + b"\x01\x13OpusHead" + bytes(40), 415, "Ogg Opus is not"),
    ("random", bytes(range(1, 256)), 415, "not a supported audio file"),
    ("mp3", b"ID3\x04\x00" + bytes(100), 422, "MP3 could not be decoded"),
    ("mp3 frame", b"\xff\xfb\x90\x00" + bytes(100), 422, "MP3 could not be decoded"),
    ("ogg", b"OggS" + bytes(100), 422, "Ogg file without a Vorbis stream"),
    ("flac", b"fLaC" + bytes(100), 422, "corrupt FLAC file"),
    ("short header", make_wav()[:30], 422, "corrupt WAV"),
    ("truncated data", make_wav()[:200], 422, "truncated WAV"),
    ("mp3 in wav", _wav_with_tag(0x55), 415, "WAV encoding MPEG Layer 3 is not supported"),
    ("9 channels", make_wav(channels=9), 415, "9 channels: at most 8"),
    ("empty", b"", 422, "empty"),
]


def test_upload_refuses_bad_files(acme):
    """MED-1: bad files get a clear error naming `file`; nothing is stored."""
    cid, admin = acme
    file_id = media_file(admin, cid)
    for what, data, status, words in BAD_FILES:
        body = expect(upload(admin, cid, file_id, data), status, "file")
        assert words in body["message"], (what, body)
    assert admin.ok("get", url(cid, "media-files", file_id))["size_bytes"] is None
    expect(admin.get(url(cid, "media-files", file_id, "audio")), 404)


def test_upload_too_big(acme, settings: Settings):
    """MED-1: an upload above max_upload_bytes is refused with 413 and the limit."""
    cid, admin = acme
    settings.max_upload_bytes = 4096  # the app holds this very Settings object
    file_id = media_file(admin, cid)
    body = expect(upload(admin, cid, file_id, make_wav(seconds=1)), 413, "file")
    assert "4096" in body["message"]
    assert expect(upload(admin, cid, file_id, make_wav(seconds=0.1)), 200)["size_bytes"] < 4096


def test_audio_is_tenant_scoped(world, acme):
    """ADM-4/MED-1: another client cannot upload or download a client's audio."""
    cid, admin = acme
    file_id = media_file(admin, cid)
    expect(upload(admin, cid, file_id, make_wav()), 200)
    bid = world.client("B")
    intruder = caller(world, Level.CLIENT_ADMIN, bid)
    expect(intruder.get(url(cid, "media-files", file_id, "audio")), 404)
    expect(intruder.get(url(bid, "media-files", file_id, "audio")), 404)
    expect(upload(intruder, bid, file_id, make_wav()), 404)
    expect(intruder.delete(url(bid, "media-files", file_id)), 404)
    assert admin.get(url(cid, "media-files", file_id, "audio")).status_code == 200


# --- classifiers and contacts (CLS-1) --------------------------------------------------------


def test_classifier_and_contacts(acme, other):
    """CLS-1: contacts with CLIP in E.164, filtered by classifier, searched by name or CLIP."""
    cid, admin = acme
    _, _, theirs = other
    vip = admin.ok("post", url(cid, "classifiers"), 201, json={"name": "VIP"})["id"]
    spam = admin.ok("post", url(cid, "classifiers"), 201, json={"name": "Spam"})["id"]
    expect(admin.post(url(cid, "classifiers"), json={"name": "VIP"}), 409, "name")
    post = url(cid, "contacts")
    ivanov = admin.ok(
        "post", post, 201, json={"classifier_id": vip, "name": "Иванов", "clip": "8 916 111-22-33"}
    )
    assert ivanov["clip"] == "+79161112233"
    admin.ok("post", post, 201, json={"classifier_id": spam, "clip": "+7 495 000-00-00"})
    # The same number may be in two lists, not twice in one.
    admin.ok("post", post, 201, json={"classifier_id": spam, "clip": "+79161112233"})
    expect(admin.post(post, json={"classifier_id": vip, "clip": "89161112233"}), 409, "clip")
    expect(admin.post(post, json={"classifier_id": vip, "clip": "12"}), 422, "clip")
    foreign = {"classifier_id": theirs["classifier"], "clip": "+79161112233"}
    expect(admin.post(post, json=foreign), 422, "classifier_id")
    assert admin.ok("get", post + f"?classifier_id={vip}")["total"] == 1
    assert admin.ok("get", post + "?q=Иван")["total"] == 1
    assert admin.ok("get", post + "?q=%2B7916")["total"] == 2
    changed = admin.ok("patch", url(cid, "contacts", ivanov["id"]), json={"clip": "+79160000000"})
    assert changed["clip"] == "+79160000000"
    # Deleting a classifier takes its contacts with it.
    admin.ok("delete", url(cid, "classifiers", vip), 204)
    expect(admin.get(url(cid, "contacts", ivanov["id"])), 404)


def test_contacts_import_csv(acme):
    """CLS-1: CSV import (text/csv): header optional, upsert by CLIP, all-or-nothing."""
    cid, admin = acme
    cls = admin.ok("post", url(cid, "classifiers"), 201, json={"name": "Leads"})["id"]
    admin.ok(
        "post",
        url(cid, "contacts"),
        201,
        json={"classifier_id": cls, "name": "Old", "clip": "+79161234567"},
    )
    text = (
        "name,clip,description\n"
        "Иванов,8 916 123-45-67,VIP\n"
        '"Petrov, P.",+7 495 111-22-33\n'
        "\n"
        ",84951112234,no name\n"
    )
    result = expect(post_csv(admin, cid, cls, text), 200)
    assert result == {"classifier_id": cls, "created": 2, "updated": 1, "unchanged": 0}
    contacts = admin.ok("get", url(cid, "contacts") + f"?classifier_id={cls}&sort=clip")["items"]
    assert [(c["name"], c["clip"]) for c in contacts] == [
        ("Petrov, P.", "+74951112233"),
        ("", "+74951112234"),
        ("Иванов", "+79161234567"),
    ]
    again = expect(post_csv(admin, cid, cls, text), 200)
    assert again["unchanged"] == 3
    # Semicolons and windows-1251, as Russian Excel saves them.
    cp1251 = post_csv(
        admin,
        cid,
        cls,
        "Сидоров;89160000001\n",
        encoding="cp1251",
        **{"Content-Type": "text/csv; charset=windows-1251"},
    )
    assert expect(cp1251, 200)["created"] == 1


BAD_CSV = [
    # (text, (line, start of the message))
    ("A,89161234567\nB,not a number\nC,89161234568\n", (2, "line 2: clip:")),
    (
        "name,clip\nA,89161234567\nB,+7 916 123 45 67\n",
        (3, "line 3: clip: +79161234567 is also on line 2"),
    ),
    ("A,89161234567,d,extra\n", (1, "line 1: columns:")),
    ("A,89161234567\nB\n", (2, "line 2: columns:")),
    ("A,89161234567\n\n\nB,1\nC,2\n", (4, "line 4: clip:")),
    ('A,89161234567\n"B,89161234568\n', (2, "line 2: csv: unexpected end of data")),
    ("A,8916\x001234567\n", (0, "csv: contains NUL bytes")),
]


def test_contacts_import_is_all_or_nothing(acme):
    """CLS-1: one bad line refuses the whole file and its line number is named."""
    cid, admin = acme
    cls = admin.ok("post", url(cid, "classifiers"), 201, json={"name": "Leads"})["id"]
    for text, (line, message) in BAD_CSV:
        body = expect(post_csv(admin, cid, cls, text), 422, "csv")
        assert body["message"].startswith(message), body
        assert not line or body["details"][0]["line"] == line
    assert admin.ok("get", url(cid, "contacts"))["total"] == 0
    two_errors = expect(post_csv(admin, cid, cls, "A,1\nB,2\n"), 422, "csv")
    assert "(and 1 more)" in two_errors["message"]
    assert [d["line"] for d in two_errors["details"]] == [1, 2]
    assert admin.ok("get", url(cid, "contacts"))["total"] == 0


def test_contacts_import_refuses_undecodable_and_foreign(world, acme):
    """CLS-1/ADM-4: non-UTF-8 text is a 422 naming csv; another client's classifier is 404."""
    cid, admin = acme
    cls = admin.ok("post", url(cid, "classifiers"), 201, json={"name": "Leads"})["id"]
    body = expect(post_csv(admin, cid, cls, "Сидоров,89160000001\n", encoding="cp1251"), 422, "csv")
    assert "charset=windows-1251" in body["message"]
    bid = world.client("B")
    intruder = caller(world, Level.CLIENT_ADMIN, bid)
    expect(post_csv(intruder, bid, cls, "A,89161234567\n"), 404)


# --- voicemail boxes (VM-1) ------------------------------------------------------------------


def test_voicemail_box(acme, other):
    """VM-1: e-mail checked, message length bounded, greeting must be the client's own."""
    cid, admin = acme
    _, _, theirs = other
    greeting = media_file(admin, cid)
    post = url(cid, "voicemail-boxes")
    box = admin.ok(
        "post",
        post,
        201,
        json={"name": "Office", "email": "office@example.com", "greeting_id": greeting},
    )
    assert (box["max_message_s"], box["attach_audio"]) == (120, True)
    changed = admin.ok("patch", url(cid, "voicemail-boxes", box["id"]), json={"email": ""})
    assert changed["email"] is None
    expect(admin.post(post, json={"name": "x", "email": "not an address"}), 422, "email")
    expect(admin.post(post, json={"name": "x", "email": "a@b"}), 422, "email")
    expect(admin.post(post, json={"name": "x", "max_message_s": 4}), 422, "max_message_s")
    expect(admin.post(post, json={"name": "x", "max_message_s": 3601}), 422, "max_message_s")
    expect(admin.post(post, json={"name": "x", "greeting_id": theirs["file"]}), 422, "greeting_id")
    admin.ok("delete", url(cid, "voicemail-boxes", box["id"]), 204)


# --- campaigns (TM-1) ------------------------------------------------------------------------


def test_campaign_needs_telemarketing_right(world):
    """TM-1/ADM-2: a client administrator without Telemarketing reads campaigns but may not
    create them; with the set, they may."""
    cid = world.client("Acme")
    plain = caller(world, Level.CLIENT_ADMIN, cid)
    expect(plain.post(url(cid, "campaigns"), json={"name": "Spring"}), 403)
    assert plain.ok("get", url(cid, "campaigns"))["total"] == 0
    marketer = caller(world, Level.CLIENT_ADMIN, cid, extra=(Right.TELEMARKETING.value,))
    created = marketer.ok("post", url(cid, "campaigns"), 201, json={"name": "Spring"})
    assert created["status"] == "blocked"
    expect(plain.post(url(cid, "campaigns", created["id"], "start")), 403)
    expect(plain.patch(url(cid, "campaigns", created["id"]), json={"name": "x"}), 403)


def test_campaign_fields_and_transitions(acme, other, engine):
    """TM-1: classifiers as contact lists; Blocked → Active → Blocked; Finished is final."""
    cid, admin = acme
    _, _, theirs = other
    number = admin.ok("post", url(cid, "internal-numbers"), 201, json={"number": "500"})["id"]
    c1 = admin.ok("post", url(cid, "classifiers"), 201, json={"name": "A"})["id"]
    c2 = admin.ok("post", url(cid, "classifiers"), 201, json={"name": "B"})["id"]
    post = url(cid, "campaigns")
    expect(
        admin.post(post, json={"name": "x", "classifier_ids": [c1, c1]}), 422, "classifier_ids.1"
    )
    expect(
        admin.post(post, json={"name": "x", "classifier_ids": [c1, theirs["classifier"]]}),
        422,
        "classifier_ids.1",
    )
    expect(
        admin.post(post, json={"name": "x", "processing_number_id": theirs["number"]}),
        422,
        "processing_number_id",
    )
    expect(admin.post(post, json={"name": "x", "max_concurrent": 101}), 422, "max_concurrent")
    expect(admin.post(post, json={"name": "x", "max_attempts": 0}), 422, "max_attempts")
    expect(admin.post(post, json={"name": "x", "status": "active"}), 422, "status")

    camp = admin.ok("post", post, 201, json={"name": "Spring", "classifier_ids": [c2, c1]})
    assert camp["classifier_ids"] == sorted([c1, c2])
    start = url(cid, "campaigns", camp["id"], "start")
    stop = url(cid, "campaigns", camp["id"], "stop")
    expect(admin.patch(url(cid, "campaigns", camp["id"]), json={"status": "active"}), 422, "status")
    expect(admin.post(start), 422, "processing_number_id")
    changed = admin.ok(
        "patch",
        url(cid, "campaigns", camp["id"]),
        json={"processing_number_id": number, "classifier_ids": []},
    )
    assert changed["classifier_ids"] == []
    expect(admin.post(start), 422, "classifier_ids")
    admin.ok("patch", url(cid, "campaigns", camp["id"]), json={"classifier_ids": [c1]})
    expect(admin.post(stop), 409, "status")
    assert admin.ok("post", start)["status"] == "active"
    assert "already" not in expect(admin.post(start), 409, "status")["message"]
    # A classifier in a campaign is in use.
    expect(admin.delete(url(cid, "classifiers", c1)), 409)
    assert admin.ok("post", stop)["status"] == "blocked"
    with Session(engine) as session:  # the dialler finishes campaigns (TM-1)
        session.execute(update(Campaign).where(Campaign.id == camp["id"]).values(status="finished"))
        session.commit()
    assert "campaign is finished" in expect(admin.post(start), 409, "status")["message"]
    expect(admin.post(stop), 409, "status")
    admin.ok("delete", url(cid, "campaigns", camp["id"]), 204)
    admin.ok("delete", url(cid, "classifiers", c1), 204)


# --- rights and tenancy across every resource ------------------------------------------------

RESOURCES = [
    ("forwarding-numbers", {"number": "89161234567", "name": "x"}),
    ("queues", {"name": "x"}),
    ("voice-menus", {"name": "x"}),
    ("media-packs", {"name": "x"}),
    ("classifiers", {"name": "x"}),
    ("voicemail-boxes", {"name": "x"}),
    ("campaigns", {"name": "x"}),
]


def test_client_user_is_forbidden(world, acme):
    """ADM-1: a client user (Пользователь клиента) has no access to dialplan components."""
    cid, admin = acme
    user = caller(world, Level.CLIENT_USER, cid)
    for name, body in RESOURCES:
        item = admin.ok("post", url(cid, name), 201, json=body)["id"]
        expect(user.get(url(cid, name)), 403)
        expect(user.get(url(cid, name, item)), 403)
        expect(user.post(url(cid, name), json=body), 403)
        expect(user.patch(url(cid, name, item), json={"name": "y"}), 403)
        expect(user.delete(url(cid, name, item)), 403)
    file_id = media_file(admin, cid)
    expect(user.get(url(cid, "media-files", file_id, "audio")), 403)
    expect(upload(user, cid, file_id, make_wav()), 403)


def test_other_client_gets_404(world, acme):
    """ADM-4: every {id} route answers 404 to another client's administrator."""
    cid, admin = acme
    bid = world.client("B")
    intruder = caller(world, Level.CLIENT_ADMIN, bid, extra=(Right.TELEMARKETING.value,))
    for name, body in RESOURCES:
        item = admin.ok("post", url(cid, name), 201, json=body)["id"]
        for client in (cid, bid):
            expect(intruder.get(url(client, name, item)), 404)
            expect(intruder.patch(url(client, name, item), json={"name": "y"}), 404)
            expect(intruder.delete(url(client, name, item)), 404)
    camp = admin.ok("get", url(cid, "campaigns"))["items"][0]["id"]
    expect(intruder.post(url(bid, "campaigns", camp, "start")), 404)


def test_provider_staff_manage_components(world, acme):
    """ADM-1: the clients administrator edits a client's components; the system admin too."""
    cid, _ = acme
    staff = caller(world, Level.CLIENTS_ADMIN, None)
    sysadmin = caller(world, Level.SYSTEM_ADMIN, None)
    queue = staff.ok("post", url(cid, "queues"), 201, json={"name": "by staff"})
    assert queue["client_id"] == cid
    expect(staff.post(url(cid, "campaigns"), json={"name": "x"}), 403)  # no Telemarketing
    assert sysadmin.ok("post", url(cid, "campaigns"), 201, json={"name": "x"})["client_id"] == cid
