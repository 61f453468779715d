"""The demo client that ``make run`` starts with (issue 2 §8).

Idempotent: the first run creates client "Demo" with internal numbers 100, 200 and 201 (101–104
are emergency numbers in Russia), a port and a dialplan for each, a queue (400), a voice menu
(300) and a voicemail box, plus a system administrator, a client administrator and a client
user. Credentials are kept in ``<data_dir>/demo-credentials.json`` (mode 600) so later runs
print the same ones.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudpbx.config import Settings
from cloudpbx.db.models import (
    BillingAccount,
    Client,
    Dialplan,
    DialplanStep,
    DialplanVersion,
    InternalNumber,
    MediaPack,
    Port,
    Queue,
    QueueAgent,
    User,
    UserInternalNumber,
    VoicemailBox,
    VoiceMenu,
    VoiceMenuKey,
)
from cloudpbx.db.session import make_engine, make_sessionmaker, session_scope
from cloudpbx.security import SecretBox

DEMO_CLIENT = "Demo"
PHONES = ("100", "200", "201")


def ensure_demo(settings: Settings) -> dict[str, Any]:
    path = settings.data_dir / "demo-credentials.json"
    factory = make_sessionmaker(make_engine(settings.database_url))
    with session_scope(factory) as session:
        exists = session.scalar(select(Client).where(Client.name == DEMO_CLIENT)) is not None
        if exists and path.exists():
            return _with_urls(json.loads(path.read_text()), settings)
        if exists:
            raise SystemExit(
                f"client {DEMO_CLIENT!r} exists but {path} is gone: reset passwords in the UI"
            )
        credentials = _create(session, SecretBox(settings.secret_key))
    _save(path, credentials)
    return _with_urls(credentials, settings)


def _with_urls(credentials: dict[str, Any], settings: Settings) -> dict[str, Any]:
    host = settings.advertised_sip_address or _shown_host(settings.http_host)
    return {
        **credentials,
        "url": f"http://{_shown_host(settings.http_host)}:{settings.http_port}/",
        "sip_server": f"{host}:{settings.sip_port}",
        "sip_realm": settings.sip_realm,
    }


def _shown_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - display only


def _save(path: Path, credentials: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(credentials, ensure_ascii=False, indent=2))
    path.chmod(0o600)


def _password() -> str:
    return secrets.token_urlsafe(9)


def _create(session: Session, box: SecretBox) -> dict[str, Any]:
    from cloudpbx.cli import make_user
    from cloudpbx.rights import Level

    client = Client(name=DEMO_CLIENT, description="Демонстрационный клиент", area_code="495")
    session.add(client)
    session.flush()
    session.add(BillingAccount(client_id=client.id, number=f"BA-{client.id}"))
    session.add(MediaPack(client_id=client.id, name="По умолчанию", is_default=True))
    numbers = {
        n: _number(session, client.id, n, f"Внутренний {n}") for n in (*PHONES, "300", "400")
    }
    phones, ports = _ports(session, client.id, numbers, box)
    box_row = VoicemailBox(client_id=client.id, name="Общий ящик", max_message_s=120)
    session.add(box_row)
    session.flush()
    for number in PHONES:
        _dialplan(
            session,
            numbers[number],
            [
                _step(1, "ring_port", 30, port_id=ports[number].id, conditions={"no_answer": 2}),
                _step(2, "voicemail", 120, voicemail_box_id=box_row.id),
            ],
        )
    menu = _menu(session, client.id, numbers)
    queue = _queue(session, client.id, ports)
    _dialplan(session, numbers["300"], [_step(1, "voice_menu", 0, voice_menu_id=menu.id)])
    _dialplan(
        session,
        numbers["400"],
        [
            _step(
                1, "ring_queue", 60, queue_id=queue.id, conditions={"no_answer": 2, "no_route": 2}
            ),
            _step(2, "voicemail", 120, voicemail_box_id=box_row.id),
        ],
    )
    users = _users(session, client.id, numbers["100"], make_user, Level)
    return {"client": DEMO_CLIENT, "client_id": client.id, "users": users, "phones": phones}


def _number(session: Session, client_id: int, number: str, name: str) -> InternalNumber:
    row = InternalNumber(client_id=client_id, number=number, name=name)
    session.add(row)
    session.flush()
    return row


def _ports(
    session: Session, client_id: int, numbers: dict[str, InternalNumber], box: SecretBox
) -> tuple[list[dict[str, str]], dict[str, Port]]:
    phones, ports = [], {}
    for number in PHONES:
        secret = _password()
        port = Port(
            client_id=client_id,
            name=f"Линия {number}",
            sip_login=f"demo{number}",
            sip_secret_enc=box.seal(secret),
            callerid_internal_id=numbers[number].id,
        )
        session.add(port)
        ports[number] = port
        phones.append({"number": number, "sip_login": port.sip_login, "sip_password": secret})
    session.flush()
    return phones, ports


def _step(
    level: int,
    action: str,
    timeout: int,
    *,
    conditions: dict[str, int] | None = None,
    **target: int,
) -> DialplanStep:
    return DialplanStep(
        level=level, action=action, timeout_s=timeout, conditions=conditions or {}, **target
    )


def _dialplan(session: Session, number: InternalNumber, steps: list[DialplanStep]) -> None:
    plan = Dialplan(
        client_id=number.client_id,
        internal_number_id=number.id,
        name=f"Диалплан {number.number}",
        current_version=1,
    )
    session.add(plan)
    session.flush()
    version = DialplanVersion(
        dialplan_id=plan.id, client_id=number.client_id, number=1, comment="demo", steps=steps
    )
    session.add(version)


def _menu(session: Session, client_id: int, numbers: dict[str, InternalNumber]) -> VoiceMenu:
    menu = VoiceMenu(client_id=client_id, name="Главное меню", description="1 — 200, 2 — 201")
    menu.keys = [
        VoiceMenuKey(key="1", internal_number_id=numbers["200"].id),
        VoiceMenuKey(key="2", internal_number_id=numbers["201"].id),
    ]
    session.add(menu)
    session.flush()
    return menu


def _queue(session: Session, client_id: int, ports: dict[str, Port]) -> Queue:
    queue = Queue(client_id=client_id, name="Отдел продаж", strategy="ringall")
    queue.agents = [
        QueueAgent(position=i, port_id=ports[n].id) for i, n in enumerate(("200", "201"))
    ]
    session.add(queue)
    session.flush()
    return queue


def _users(
    session: Session, client_id: int, own: InternalNumber, make_user: Any, level: Any
) -> list[dict[str, str]]:
    specs = [
        ("admin", level.SYSTEM_ADMIN, None),
        ("demo-admin", level.CLIENT_ADMIN, client_id),
        ("demo-user", level.CLIENT_USER, client_id),
    ]
    shown = []
    for login, lvl, cid in specs:
        password = _password()
        existing = session.scalar(select(User).where(User.login == login))
        if existing is not None:
            continue
        user: User = make_user(login, password, lvl, cid)
        if lvl is level.CLIENT_USER:
            user.internal_numbers = [UserInternalNumber(internal_number_id=own.id)]
        session.add(user)
        shown.append({"level": lvl.value, "login": login, "password": password})
    return shown
