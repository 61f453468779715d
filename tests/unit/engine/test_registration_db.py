"""UDP registrations survive a restart (PRT-1): the table, the write-behind, the restore."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.db.models import Client, Port
from cloudpbx.db.models.telephony import Registration
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.engine.location import Binding, MemoryLocationStore
from cloudpbx.engine.registrar import Registrar
from cloudpbx.engine.registrar_service import RegistrarService
from cloudpbx.engine.registration_db import RegistrationDb
from cloudpbx.transport.base import Address, Flow, TransportKind

from .test_registrar import KEY, REALM, T0, Directory, Phone, seeded, tcp, udp
from .test_registrar import Port as PortInfo


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def port_ids(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        client = Client(name="Reg")
        session.add(client)
        session.flush()
        ports = [
            Port(client_id=client.id, name=n, sip_login=n, sip_secret_enc=b"x")
            for n in ("alice", "bob")
        ]
        session.add_all(ports)
        session.commit()
        return client.id, ports[0].id


def binding(client_id: int, port_id: int, uri: str, *, expires_at: float, flow: Flow) -> Binding:
    return Binding(
        port_id=port_id,
        client_id=client_id,
        uri=uri,
        flow=flow,
        expires_at=expires_at,
        call_id="cid",
        cseq=7,
        user_agent="UA",
    )


def test_write_and_load_round_trip(
    sessions: sessionmaker[Session], port_ids: tuple[int, int]
) -> None:
    """PRT-1: a UDP binding is stored with its flow; expired rows are dropped on load."""
    client_id, port_id = port_ids
    db = RegistrationDb(sessions)
    live = binding(client_id, port_id, "sip:a@h:1", expires_at=T0 + 600, flow=udp(40001))
    old = binding(client_id, port_id, "sip:a@h:2", expires_at=T0 - 1, flow=udp(40002))
    db.write([(live.key, live), (old.key, old)])
    (row,) = db.load(T0)
    assert (row.uri, row.source, row.local) == ("sip:a@h:1", ("127.0.0.1", 40001), udp().local)
    assert (row.expires_at, row.call_id, row.cseq, row.user_agent) == (T0 + 600, "cid", 7, "UA")
    with sessions() as session:
        assert len(session.scalars(select(Registration)).all()) == 1
    db.write([(live.key, None)])
    assert db.load(T0) == []


def test_tcp_bindings_are_not_stored_and_a_gone_port_is_skipped(
    sessions: sessionmaker[Session], port_ids: tuple[int, int]
) -> None:
    """PRT-1: only UDP is persisted; a row for a deleted port does not sink the batch."""
    client_id, port_id = port_ids
    db = RegistrationDb(sessions)
    on_tcp = binding(client_id, port_id, "sip:a@h:1", expires_at=T0 + 60, flow=tcp())
    ghost = binding(client_id, 999_999, "sip:g@h", expires_at=T0 + 60, flow=udp())
    ok = binding(client_id, port_id, "sip:a@h:3", expires_at=T0 + 60, flow=udp())
    db.write([(on_tcp.key, on_tcp), (ghost.key, ghost), (ok.key, ok)])
    assert [r.uri for r in db.load(T0)] == ["sip:a@h:3"]


def _registrar(port_id: int, client_id: int, now: list[float]) -> Registrar:
    directory = Directory()
    directory.add(PortInfo(port_id, client_id, "alice", "alice-pw"))
    return Registrar(
        directory,
        MemoryLocationStore(),
        realm=REALM,
        nonce_key=KEY,
        rand=seeded(),
        clock=lambda: now[0],
    )


def test_service_persists_changes_and_restores_after_a_restart(
    sessions: sessionmaker[Session], port_ids: tuple[int, int]
) -> None:
    """PRT-1: UDP registrations are written off the loop and come back at the next start."""
    client_id, port_id = port_ids
    now = [T0]

    def flow_to(remote: Address) -> Flow:
        return Flow(
            kind=TransportKind.UDP, local=("127.0.0.1", 5070), remote=remote, connection_id=77
        )

    async def first_run() -> None:
        registrar = _registrar(port_id, client_id, now)
        service = RegistrarService(registrar, None, db=RegistrationDb(sessions))
        await service.start(udp_flow_to=flow_to)
        phone = Phone("alice", "alice-pw")
        for uri, port in (("sip:a@127.0.0.1:1", 1), ("sip:a@127.0.0.1:2", 2)):
            phone.register(registrar, [f"<{uri}>"], flow=udp(port), now=T0)
        phone.register(registrar, ["<sip:a@127.0.0.1:2>;expires=0"], flow=udp(2), now=T0)
        Phone("alice", "alice-pw", call_id="t").register(
            registrar, ["<sip:a@127.0.0.1:9;transport=tcp>"], flow=tcp(9), now=T0
        )
        await service.stop()
        assert service.persister is not None
        assert service.persister.batches >= 1

    async def second_run() -> Registrar:
        now[0] = T0 + 30
        registrar = _registrar(port_id, client_id, now)
        service = RegistrarService(registrar, None, db=RegistrationDb(sessions))
        assert await service.start(udp_flow_to=flow_to) == 1
        await service.stop()
        return registrar

    asyncio.run(first_run())
    registrar = asyncio.run(second_run())
    (restored,) = registrar.contacts(port_id)
    assert restored.uri == "sip:a@127.0.0.1:1"
    assert restored.flow == flow_to(("127.0.0.1", 1))  # the current socket, the old source
    assert restored.expires_at == T0 + 3600
