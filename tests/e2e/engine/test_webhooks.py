"""CRM webhooks end to end (PRODUCT.md §6 "CRM телефония"): a real call through the engine
produces signed ``started``, ``answered`` and ``ended`` deliveries to a CRM on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloudpbx.db.models.telephony import Webhook
from cloudpbx.services.webhooks import verify

from .pbx_harness import Pbx, Seeder, StackCaller, start_pbx, step, write_tone

SECRET = "e2e-webhook-secret-01"
Received = list[tuple[dict[str, str], bytes]]


def _crm_handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class Crm(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    return Crm


@pytest.fixture(scope="module")
def crm() -> Iterator[tuple[str, Received]]:
    received: Received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _crm_handler(received))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events", received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def engine_pbx(
    crm: tuple[str, Received], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pbx]:
    url, _ = crm

    def build(s: Seeder) -> None:
        s.port("erin")
        message = s.media("message", write_tone(Path(s.media_dir) / "message.wav", 0.4))
        s.number("701", [step(1, "play_message", 0, media_file_id=message)])
        s.session.add(
            Webhook(
                client_id=s.seed.client_id,
                url=url,
                secret_enc=s.box.seal(SECRET),
                events=["started", "answered", "ended"],
            )
        )

    running = start_pbx(tmp_path_factory.mktemp("pbx"), build, webhooks_allow_private=True)
    yield running
    running.stop()
    running.thread.close()


def test_call_events_reach_the_crm(engine_pbx: Pbx, crm: tuple[str, Received]) -> None:
    """§6 webhooks: a call answered by a message and ended by the PBX is POSTed three times,
    in order, each signed with the webhook's secret over timestamp + body."""
    pbx = engine_pbx
    _url, received = crm
    caller = StackCaller(pbx, "erin")
    pbx.thread.run(caller.start())
    try:
        assert pbx.thread.run(caller.call("701")) == 200
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pbx.thread.run(caller.close())
    assert [h["x-cloudpbx-event"] for h, _ in received] == ["started", "answered", "ended"]
    calls = [json.loads(body) for _, body in received]
    assert len({c["call"]["uuid"] for c in calls}) == 1
    assert calls[0]["call"]["called"] == "701"
    assert calls[1]["call"]["answer"] is not None
    for headers, body in received:
        ts = headers["x-cloudpbx-timestamp"]
        assert verify(SECRET, ts, body, headers["x-cloudpbx-signature"], now=time.time())
