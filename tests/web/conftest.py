"""Browser-test fixtures: a built UI, a real uvicorn server on a free loopback port over a
migrated throw-away SQLite database, and headless Debian Chromium driven by Playwright.

Chromium comes from apt (`apt-get install chromium`); `playwright install` is never used.
Screenshots go to var/test-artifacts/web/ (git-ignored).
"""

from __future__ import annotations

import io
import math
import os
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session

from cloudpbx.app import create_app
from cloudpbx.config import Settings
from cloudpbx.db.base import now_ms
from cloudpbx.db.migrate import sync_rights, upgrade
from cloudpbx.db.models import (
    BillingAccount,
    Call,
    CallEvent,
    CallLeg,
    Client,
    InternalNumber,
    MediaPack,
    Port,
    Recording,
    UserInternalNumber,
)
from cloudpbx.db.session import make_engine, make_sessionmaker
from cloudpbx.rights import Level
from cloudpbx.security import SecretBox
from cloudpbx.web import mount_web

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "test-artifacts" / "web"
CHROMIUM = os.environ.get("CLOUDPBX_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "web-test-password-1"


@dataclass(frozen=True)
class Site:
    url: str
    client_id: int
    logins: dict[str, str]
    database_url: str


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """The UI built from the current sources (a no-op when nothing changed)."""
    subprocess.run([str(REPO / "scripts" / "build-web.sh")], check=True, capture_output=True)
    return REPO / "web" / "dist"


def wav_bytes(seconds: float = 0.5) -> bytes:
    """A 440 Hz tone as 8 kHz mono 16-bit WAV, the telephony format stored as uploaded."""
    frames = b"".join(
        int(8000 * math.sin(2 * math.pi * 440 * i / 8000)).to_bytes(2, "little", signed=True)
        for i in range(int(8000 * seconds))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(frames)
    return buffer.getvalue()


def _recorded_call(s: Session, settings: Settings, client_id: int) -> None:
    """An answered call to 200 with a recording on disk (CDR-1), as the engine writes it."""
    start = now_ms() - 3_600_000
    call = Call(
        client_id=client_id,
        uuid=f"web-call-{start}",
        caller="+74950000001",
        called="200",
        caller_rev="1000000594",
        called_rev="002",
        internal_number="200",
        start_ms=start,
        answer_ms=start + 2000,
        end_ms=start + 32_000,
        duration_ms=32_000,
        billable_s=30,
        outcome="answered",
        steps=[1, 2],
    )
    s.add(call)
    s.flush()
    leg = CallLeg(call_id=call.id, client_id=client_id, direction="in", party=call.caller)
    leg.start_ms = start
    s.add(leg)
    s.add(CallEvent(call_id=call.id, client_id=client_id, at_ms=start, kind="step", step_level=1))
    assert settings.recordings_dir is not None
    relative = f"{client_id}/web-call.wav"
    target = Path(settings.recordings_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(wav_bytes())
    s.add(Recording(call_id=call.id, client_id=client_id, storage_path=relative, start_ms=start))


def _furnish(settings: Settings) -> tuple[int, dict[str, str]]:
    """One user per ADM-1 level; the client user owns internal number 200, which has a
    recorded call; port "Линия 2" exists for the component forms to pick."""
    from cloudpbx.cli import make_user

    database_url = settings.database_url
    upgrade(database_url)
    box = SecretBox(settings.secret_key)
    with make_sessionmaker(make_engine(database_url))() as s:
        sync_rights(s)
        client = Client(name="Рога и копыта", area_code="495")
        s.add(client)
        s.flush()
        s.add(BillingAccount(client_id=client.id, number=f"BA-{client.id}"))
        s.add(MediaPack(client_id=client.id, name="По умолчанию", is_default=True))
        own = InternalNumber(client_id=client.id, number="200", name="Секретарь")
        s.add(own)
        s.flush()
        port = Port(client_id=client.id, name="Линия 2", sip_login="line2")
        port.sip_secret_enc = box.seal("secret-123")
        s.add(port)
        _recorded_call(s, settings, client.id)
        logins = {
            "system_admin": make_user("root", PASSWORD, Level.SYSTEM_ADMIN, None),
            "clients_admin": make_user("manager", PASSWORD, Level.CLIENTS_ADMIN, None),
            "client_admin": make_user("admin", PASSWORD, Level.CLIENT_ADMIN, client.id),
            "client_user": make_user("ivanov", PASSWORD, Level.CLIENT_USER, client.id),
        }
        s.add_all(logins.values())
        s.flush()
        s.add(UserInternalNumber(user_id=logins["client_user"].id, internal_number_id=own.id))
        s.commit()
        return client.id, {level: user.login for level, user in logins.items()}


def serve(
    settings: Settings, dist: Path, *, engine: bool = False
) -> tuple[uvicorn.Server, threading.Thread, str]:
    """uvicorn on a free loopback port in a thread; ``engine``: the SIP engine runs in the
    app's lifespan, in uvicorn's loop, as under `cloudpbx run`."""
    app = create_app(settings, engine=engine)
    if not any(getattr(r, "name", None) == "web" for r in app.routes):
        mount_web(app, settings, dist)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on" if engine else "off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def site(web_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("web-data")
    # The production default (Secure cookies) on purpose: Chromium accepts them from
    # http://127.0.0.1, as a user of `make run` gets them.
    # webhooks_allow_private: the webhooks section's test targets 127.0.0.1 (docs/webhooks.md).
    settings = Settings(
        data_dir=data,
        database_url=f"sqlite:///{data / 'cloudpbx.db'}",
        webhooks_allow_private=True,
    )
    client_id, logins = _furnish(settings)
    server, thread, url = serve(settings, web_dist)
    try:
        yield Site(url=url, client_id=client_id, logins=logins, database_url=settings.database_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is started, and asyncio.run() in a later test file of the same xdist worker would
# then fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (not playwright install)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # A recording's player is started by the test (play()), not by a click.
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context per test (no shared cookies); a screenshot at the end."""
    context = browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
        context.close()


def api_client(site: Site, level: str) -> httpx.Client:
    """The API as one of the site's users (a bearer token: no CSRF header needed), for
    setting up what a test then looks at in the browser."""
    response = httpx.post(
        f"{site.url}/api/v1/auth/login", json={"login": site.logins[level], "password": PASSWORD}
    )
    response.raise_for_status()
    token = response.json()["token"]
    return httpx.Client(
        base_url=f"{site.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def labelled_fields(page: object) -> list[str]:
    """The visible form controls of the page without an accessible label (issue 6 §7): an
    empty list means get_by_label reaches every field."""
    script = """() => [...document.querySelectorAll('main input, main textarea, main select,'
        + ' [role=dialog] input, [role=dialog] textarea')]
      .filter((el) => el.type !== 'hidden' && el.offsetParent !== null
        && !el.closest('[aria-hidden=true]') && el.getAttribute('aria-hidden') !== 'true')
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
        && !el.getAttribute('aria-labelledby'))
      .map((el) => el.outerHTML.slice(0, 120))"""
    return page.evaluate(script)  # type: ignore[attr-defined,no-any-return]


def shot(page: object, name: str) -> None:
    """Keep a screenshot of a key page as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
