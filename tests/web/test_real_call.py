"""A real recorded call, then its recording played in the browser (issue 6 §8, CDR-1,
CDR-2, §4.9 automatic recording).

The server runs the SIP engine in its lifespan, as `cloudpbx run` does (loopback, free
ports). Two pjsua2 phones register on ports with numbers 100 and 200; 200's port has
"Автоматическая запись" on. Phone 100 calls 200, 200 answers, 100 plays a 1 kHz tone for
2 s and hangs up. In the browser the call is opened in Детализация вызовов and its
recording loads and plays in the page's <audio> element; the download link answers a WAV.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from cloudpbx.cli import make_user
from cloudpbx.config import Settings
from cloudpbx.db.migrate import sync_rights, upgrade
from cloudpbx.db.session import make_engine, make_sessionmaker
from cloudpbx.rights import Level
from cloudpbx.security import SecretBox
from e2e.engine.pbx_harness import Seeder, step, write_tone
from e2e.sip.conftest import HOST, Phone, phones  # noqa: F401 - the pjsua2 phone fixture

from .conftest import PASSWORD, Site, api_client, serve, shot
from .test_cabinets import login, open_section


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (the engine listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free for both UDP and TCP")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _furnish(settings: Settings) -> tuple[int, dict[str, tuple[str, str]]]:
    """Ports phone100 (caller ID 100) and phone200 (automatic recording, §4.9); numbers 100
    and 200 ring them; a client administrator "admin"."""
    upgrade(settings.database_url)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    assert settings.media_dir is not None
    with sessions() as session:
        sync_rights(session)
        seeder = Seeder(session, SecretBox(settings.secret_key), Path(settings.media_dir))
        p100 = seeder.port("phone100")
        p200 = seeder.port("phone200", services={"auto_recording": True})
        seeder.number("100", [step(1, "ring_port", 20, port_id=p100)])
        seeder.number("200", [step(1, "ring_port", 20, port_id=p200)])
        seeder.caller_id("phone100", "100")
        session.add(make_user("admin", PASSWORD, Level.CLIENT_ADMIN, seeder.seed.client_id))
        session.commit()
        return seeder.seed.client_id, dict(seeder.seed.logins)


@pytest.fixture(scope="module")
def call_site(
    web_dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Site, int, dict[str, tuple[str, str]]]]:
    data = tmp_path_factory.mktemp("web-call")
    settings = Settings(
        data_dir=data,
        database_url=f"sqlite:///{data / 'cloudpbx.db'}",
        sip_host=HOST,
        sip_port=free_sip_port(),
        sip_ws_port=free_tcp_port(),
    )
    client_id, sip_logins = _furnish(settings)
    server, thread, url = serve(settings, web_dist, engine=True)
    site = Site(url, client_id, {"client_admin": "admin"}, settings.database_url)
    try:
        yield site, settings.sip_port, sip_logins
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def register(phone: Phone, sip_port: int, login_secret: tuple[str, str]) -> None:
    login_name, secret = login_secret
    registrar = f"sip:{HOST}:{sip_port}"
    phone.send(cmd="register", registrar=registrar, user=login_name, password=secret)
    assert phone.expect("reg", timeout=10)["code"] == 200


def place_recorded_call(
    sip_port: int,
    logins: dict[str, tuple[str, str]],
    phones: Callable[[], Phone],  # noqa: F811
    tone: Path,
) -> None:
    """100 calls 200, 200 answers, 100 says a 2 s tone and hangs up."""
    caller, callee = phones(), phones()
    callee.send(cmd="set", auto_answer=False)
    register(caller, sip_port, logins["phone100"])
    register(callee, sip_port, logins["phone200"])
    caller.send(cmd="call", uri=f"sip:200@{HOST}:{sip_port}")
    callee.expect("incoming")
    callee.send(cmd="answer", code=200)
    caller.expect("call_state", state="CONFIRMED")
    callee.expect("call_state", state="CONFIRMED")
    caller.send(cmd="play", file=str(tone))
    caller.expect("played", timeout=10)
    caller.send(cmd="hangup")
    callee.expect("call_state", state="DISCONNECTED")


def wait_for_recording(site: Site, timeout: float = 10.0) -> dict[str, object]:
    """The call's record with its recording, once the engine's CDR writer stored both."""
    deadline = time.monotonic() + timeout
    with api_client(site, "client_admin") as api:
        while time.monotonic() < deadline:
            calls = api.get(f"/clients/{site.client_id}/calls").json()["items"]
            if calls and calls[0]["end_ms"]:
                detail: dict[str, object] = api.get(
                    f"/clients/{site.client_id}/calls/{calls[0]['id']}"
                ).json()
                if detail["recordings"]:
                    return detail
            time.sleep(0.2)
    raise AssertionError(f"no recorded call in {timeout} s")


LOAD_METADATA = """(el) => new Promise((resolve, reject) => {
  if (el.readyState >= 1) return resolve(el.duration);
  el.addEventListener('loadedmetadata', () => resolve(el.duration));
  el.addEventListener('error', () => reject(new Error('media error ' + el.error?.code)));
  el.preload = 'auto';
  el.load();
})"""

PLAY = """async (el) => {
  await el.play();
  await new Promise((resolve) => setTimeout(resolve, 400));
  return {paused: el.paused, time: el.currentTime};
}"""


def test_real_recorded_call_is_played_in_the_browser(
    call_site: tuple[Site, int, dict[str, tuple[str, str]]],
    page: Page,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 6 §8, CDR-2: a call recorded by the engine (§4.9) is found in Детализация
    вызовов; its recording loads (longer than 1 s) and plays in the page; it downloads."""
    site, sip_port, logins = call_site
    place_recorded_call(sip_port, logins, phones, write_tone(tmp_path / "say.wav", 2.0))
    detail = wait_for_recording(site)
    assert detail["caller"] == "100"

    login(page, site, "client_admin")
    open_section(page, "Детализация вызовов")
    row = page.get_by_role("row").filter(has_text="Отвечен")
    expect(row).to_contain_text("100")
    expect(row).to_contain_text("200")
    shot(page, "real-call-cdr")
    row.click()
    drawer = page.get_by_role("dialog")
    audio = drawer.locator("audio")
    expect(audio).to_have_count(1)
    assert audio.evaluate(LOAD_METADATA) > 1.0
    played = audio.evaluate(PLAY)
    assert not played["paused"]
    assert played["time"] > 0
    shot(page, "real-call-recording")

    link = drawer.get_by_role("link", name="Скачать")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.endswith(".wav")
    response = page.request.get(site.url + str(link.get_attribute("href")))
    assert response.status == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.body()[:4] == b"RIFF"
