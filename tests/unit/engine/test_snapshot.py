"""Per-client configuration snapshots on a real database (ENGINEERING.md §1, DP-4, PRT-1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.config import Settings
from cloudpbx.db.models import (
    Classifier,
    Client,
    Contact,
    Dialplan,
    DialplanStep,
    DialplanVersion,
    ExternalNumber,
    ForwardingNumber,
    InternalNumber,
    MediaFile,
    MediaPack,
    PickupGroup,
    Port,
    Queue,
    QueueAgent,
    VoicemailBox,
    VoiceMenu,
    VoiceMenuKey,
)
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.dialplan.model import Action, Condition
from cloudpbx.engine.snapshot import SnapshotStore
from cloudpbx.security import SecretBox

T = TypeVar("T")
BOX = SecretBox("snapshot-test-key")


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    async def guarded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(guarded())


class CountingSessions:
    """The store's session factory, counting sessions and failing on demand."""

    def __init__(self, inner: sessionmaker[Session]) -> None:
        self.inner = inner
        self.opened = 0
        self.fail = 0

    def __call__(self) -> Session:
        self.opened += 1
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database went away")
        return self.inner()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url="sqlite://", secret_key="x", data_dir=tmp_path, default_timezone="UTC"
    )


def _add(s: Session, row: Any) -> Any:
    s.add(row)
    s.flush()
    return row


def _steps(port_id: int, media_id: int) -> list[DialplanStep]:
    return [
        DialplanStep(
            level=1, action="ring_port", timeout_s=20, port_id=port_id, conditions={"no_answer": 2}
        ),
        DialplanStep(level=2, action="play_message", media_file_id=media_id),
    ]


def furnish(sessions: sessionmaker[Session], name: str, digits: str) -> dict[str, int]:
    """A client with one object of every kind the engine reads; returns ids."""
    with sessions() as s:
        c = _add(s, Client(name=name, timezone="Asia/Novosibirsk", max_concurrent_calls=7))
        cid = c.id
        group = _add(s, PickupGroup(client_id=cid, number="1"))
        n100 = _add(s, InternalNumber(client_id=cid, number=f"{digits}00", name="Reception"))
        n101 = _add(s, InternalNumber(client_id=cid, number=f"{digits}01"))
        did = _add(s, ExternalNumber(client_id=cid, number=f"+7495{digits}000000"))
        port = _add(
            s,
            Port(
                client_id=cid,
                name="Линия 1",
                sip_login=f"{name}-1",
                sip_secret_enc=BOX.seal(f"secret-{name}"),
                pickup_group_id=group.id,
                callerid_internal_id=n100.id,
                callerid_external_id=did.id,
                services={"automatic_recording": True},
                max_concurrent_incoming=2,
            ),
        )
        pack = _add(s, MediaPack(client_id=cid, name="По умолчанию", is_default=True))
        moh = _add(
            s, MediaFile(client_id=cid, pack_id=pack.id, name="Music", storage_path=f"{cid}/m.wav")
        )
        _add(s, MediaFile(client_id=cid, pack_id=pack.id, name="Not uploaded yet"))
        fwd = _add(s, ForwardingNumber(client_id=cid, number="+79161234567", name="Mobile"))
        queue = Queue(client_id=cid, name="Sales")
        queue.agents = [QueueAgent(port_id=port.id), QueueAgent(forwarding_number_id=fwd.id)]
        queue = _add(s, queue)
        menu = VoiceMenu(client_id=cid, name="Menu", announcement_id=moh.id)
        menu.keys = [VoiceMenuKey(key="1", internal_number_id=n101.id)]
        menu = _add(s, menu)
        vip = _add(s, Classifier(client_id=cid, name="VIP"))
        for clip in ("+79160000001", "+79160000002"):
            s.add(Contact(client_id=cid, classifier_id=vip.id, clip=clip))
        box = _add(s, VoicemailBox(client_id=cid, name="Box", email="a@example.com"))
        plan = _add(s, Dialplan(client_id=cid, internal_number_id=n100.id, current_version=2))
        v1 = _add(s, DialplanVersion(dialplan_id=plan.id, client_id=cid, number=1, steps=[]))
        v2 = _add(
            s,
            DialplanVersion(
                dialplan_id=plan.id, client_id=cid, number=2, steps=_steps(port.id, moh.id)
            ),
        )
        ext_plan = _add(s, Dialplan(client_id=cid, external_number_id=did.id, current_version=1))
        s.add(
            DialplanVersion(
                dialplan_id=ext_plan.id,
                client_id=cid,
                number=1,
                steps=[DialplanStep(level=1, action="goto_number", goto_number_id=n100.id)],
            )
        )
        s.commit()
        return {
            "client": cid,
            "port": port.id,
            "group": group.id,
            "n100": n100.id,
            "n101": n101.id,
            "moh": moh.id,
            "pack": pack.id,
            "fwd": fwd.id,
            "queue": queue.id,
            "menu": menu.id,
            "vip": vip.id,
            "box": box.id,
            "plan": plan.id,
            "v1": v1.id,
            "v2": v2.id,
        }


def test_snapshot_holds_everything_the_engine_reads(sessions, settings) -> None:
    """ENGINEERING §1: ports with clear secrets, numbers with their current dialplan (NUM-3,
    DP-4), media with absolute paths and music on hold (MED-1), menus, queues, classifiers,
    voicemail, pickup groups, time zone and limits (ADM-5)."""
    ids = furnish(sessions, "alpha", "1")
    store = SnapshotStore(sessions, BOX, settings)

    async def scenario() -> Any:
        assert await store.load_all() == 1
        await store.close()
        return store.client(ids["client"])

    snap = run(scenario())
    assert snap is not None
    assert (snap.name, snap.time_zone, snap.limits.max_concurrent_calls) == (
        "alpha",
        "Asia/Novosibirsk",
        7,
    )
    port = snap.ports[ids["port"]]
    assert (port.login, port.secret, port.algorithm) == ("alpha-1", "secret-alpha", "MD5")
    assert "secret-alpha" not in repr(port)
    assert (port.callerid_number, port.callerid_external) == ("100", "+74951000000")
    assert port.services == {"automatic_recording": True}
    assert store.port_by_login("alpha-1") is port
    number = snap.numbers["100"]
    assert (number.kind, number.name, number.dialplan_version_id) == (
        "internal",
        "Reception",
        ids["v2"],
    )
    assert number.dialplan is not None
    assert number.dialplan.version == 2
    first = number.dialplan.steps[1]
    assert (first.action, first.timeout, first.conditions) == (
        Action.RING_PORT,
        20,
        {Condition.NO_ANSWER: 2},
    )
    assert snap.numbers["101"].dialplan is None
    did = store.number(ids["client"], "+74951000000")
    assert did is not None
    assert did.dialplan is not None
    assert did.dialplan.steps[1].action is Action.GOTO_NUMBER
    assert snap.internal_numbers[ids["n100"]] is number
    media_root = (settings.data_dir / "media").resolve()
    assert snap.media_files[ids["moh"]].path == media_root / f"{ids['client']}/m.wav"
    assert snap.moh_path == media_root / f"{ids['client']}/m.wav"
    assert len(snap.moh_paths) == 1  # the file without audio is not music
    assert snap.media_packs[ids["pack"]].is_default
    assert snap.voice_menus[ids["menu"]].keys == {"1": "101"}
    queue = snap.queues[ids["queue"]]
    assert [(a.port_id, a.forwarding_number_id) for a in queue.agents] == [
        (ids["port"], None),
        (None, ids["fwd"]),
    ]
    assert snap.forwarding_numbers[ids["fwd"]].number == "+79161234567"
    assert snap.classifiers[ids["vip"]].matches("+79160000002")
    assert not snap.classifiers[ids["vip"]].matches("+79160000003")
    assert snap.voicemail_boxes[ids["box"]].email == "a@example.com"
    assert snap.pickup_groups[ids["group"]].port_ids == {ids["port"]}
    assert store.dialplan_version(ids["v2"]) is number.dialplan


def test_lookups_never_touch_the_database(sessions, settings) -> None:
    """ENGINEERING §1: no query on the INVITE or REGISTER path — reads are dictionaries."""
    ids = furnish(sessions, "alpha", "1")
    counting = CountingSessions(sessions)
    store = SnapshotStore(counting, BOX, settings)  # type: ignore[arg-type]

    async def scenario() -> None:
        await store.load_all()
        opened = counting.opened
        for _ in range(1000):
            assert store.port_by_login("alpha-1") is not None
            assert store.number(ids["client"], "100") is not None
            assert store.client(ids["client"]) is not None
        assert store.port_by_login("nobody") is None
        assert store.number(ids["client"], "999") is None
        assert counting.opened == opened
        await store.close()

    run(scenario())


def test_a_change_is_swapped_in_and_running_calls_keep_their_version(sessions, settings) -> None:
    """DP-4 versions: after a save the store serves the new version; a call holding the old
    snapshot keeps it, and the old version stays reachable by id."""
    ids = furnish(sessions, "alpha", "1")
    store = SnapshotStore(sessions, BOX, settings)

    async def scenario() -> tuple[Any, Any]:
        await store.load_all()
        before = store.client(ids["client"])
        with sessions() as s:
            plan = s.get(Dialplan, ids["plan"])
            assert plan is not None
            v3 = DialplanVersion(
                dialplan_id=plan.id,
                client_id=plan.client_id,
                number=3,
                steps=[DialplanStep(level=1, action="hangup")],
            )
            s.add(v3)
            plan.current_version = 3
            port = s.get(Port, ids["port"])
            assert port is not None
            port.sip_secret_enc = BOX.seal("new-secret")
            s.commit()
        after = await store.refresh(ids["client"])
        await store.close()
        return before, after

    before, after = run(scenario())
    assert after.generation > before.generation
    assert before.numbers["100"].dialplan.version == 2  # the old snapshot is untouched
    assert after.numbers["100"].dialplan.version == 3
    assert after.numbers["100"].dialplan.steps[1].action is Action.HANGUP
    assert store.port_by_login("alpha-1").secret == "new-secret"
    assert store.dialplan_version(ids["v2"]) is before.numbers["100"].dialplan


def test_invalidate_from_an_api_thread_rebuilds_on_the_loop(sessions, settings) -> None:
    """AppState.config_changed runs in API worker threads: invalidate is thread-safe and the
    rebuild never blocks the event loop (it runs in the executor)."""
    ids = furnish(sessions, "alpha", "1")
    store = SnapshotStore(sessions, BOX, settings)

    async def scenario() -> tuple[str, int]:
        await store.load_all()
        with sessions() as s:
            port = s.get(Port, ids["port"])
            assert port is not None
            port.name = "Линия 2"
            s.commit()
        worker = threading.Thread(target=store.invalidate, args=(ids["client"],))
        worker.start()
        worker.join()
        loop_ticks = 0
        while store.client(ids["client"]).ports[ids["port"]].name != "Линия 2":
            await asyncio.sleep(0.001)  # the loop keeps running while the build is away
            loop_ticks += 1
        await store.close()
        return store.client(ids["client"]).ports[ids["port"]].name, loop_ticks

    name, loop_ticks = run(scenario())
    assert name == "Линия 2"
    assert loop_ticks >= 1


def test_many_invalidations_coalesce_and_the_last_change_wins(sessions, settings) -> None:
    """A burst of changes (an import) costs a few rebuilds, and the newest data is served."""
    ids = furnish(sessions, "alpha", "1")
    counting = CountingSessions(sessions)
    store = SnapshotStore(counting, BOX, settings)  # type: ignore[arg-type]

    async def scenario() -> int:
        await store.load_all()
        opened = counting.opened
        for i in range(50):
            with sessions() as s:
                port = s.get(Port, ids["port"])
                assert port is not None
                port.name = f"name-{i}"
                s.commit()
            store.invalidate(ids["client"])
        await store.wait_idle()
        await store.close()
        return counting.opened - opened

    builds = run(scenario())
    assert builds <= 3
    assert store.client(ids["client"]).ports[ids["port"]].name == "name-49"


def test_a_deleted_client_and_its_logins_disappear(sessions, settings) -> None:
    """ADM-4: after a client is deleted nothing of it authenticates or routes."""
    a = furnish(sessions, "alpha", "1")
    with sessions() as s:
        gone = _add(s, Client(name="gamma"))
        _add(s, InternalNumber(client_id=gone.id, number="300"))
        s.add(Port(client_id=gone.id, name="p", sip_login="gamma-1", sip_secret_enc=BOX.seal("g")))
        s.commit()
        gone_id = gone.id
    store = SnapshotStore(sessions, BOX, settings)

    async def scenario() -> None:
        assert await store.load_all() == 2
        assert store.port_by_login("gamma-1") is not None
        with sessions() as s:
            s.execute(delete(Client).where(Client.id == gone_id))
            s.commit()
        assert await store.refresh(gone_id) is None
        await store.close()

    run(scenario())
    assert store.port_by_login("gamma-1") is None
    assert store.number(gone_id, "300") is None
    assert store.port_by_login("alpha-1") is not None
    assert store.number(a["client"], "100") is not None


def test_a_failed_rebuild_keeps_the_old_snapshot_and_retries(sessions, settings) -> None:
    """A database hiccup never empties the engine's configuration; the rebuild is retried."""
    ids = furnish(sessions, "alpha", "1")
    counting = CountingSessions(sessions)
    store = SnapshotStore(counting, BOX, settings, retry_s=0.01)  # type: ignore[arg-type]

    async def scenario() -> None:
        await store.load_all()
        first = store.client(ids["client"])
        with sessions() as s:
            port = s.get(Port, ids["port"])
            assert port is not None
            port.name = "after the outage"
            s.commit()
        counting.fail = 1
        assert await store.refresh(ids["client"]) is first
        while store.client(ids["client"]) is first:
            await asyncio.sleep(0.005)
        await store.close()

    run(scenario())
    assert store.client(ids["client"]).ports[ids["port"]].name == "after the outage"


def test_broken_data_costs_only_its_own_number_or_port(sessions, settings) -> None:
    """One unusable dialplan (unknown action) or an undecryptable secret leaves the rest of
    the client working, and says why."""
    ids = furnish(sessions, "alpha", "1")
    with sessions() as s:
        s.add(
            Port(
                client_id=ids["client"],
                name="foreign",
                sip_login="foreign-1",
                sip_secret_enc=SecretBox("another-installation").seal("x"),
            )
        )
        step = s.scalar(select(DialplanStep).where(DialplanStep.version_id == ids["v2"]))
        assert step is not None
        step.action = "launch_rockets"
        s.commit()
    store = SnapshotStore(sessions, BOX, settings)

    async def scenario() -> None:
        await store.load_all()
        await store.close()

    run(scenario())
    snap = store.client(ids["client"])
    assert snap is not None
    broken = snap.numbers["100"]
    assert broken.dialplan is None
    assert broken.dialplan_version_id == ids["v2"]
    assert "launch_rockets" in (broken.dialplan_error or "")
    assert snap.numbers["+74951000000"].dialplan is not None
    assert store.port_by_login("foreign-1") is None
    assert store.port_by_login("alpha-1") is not None


def test_changes_before_the_first_load_are_not_lost(sessions, settings) -> None:
    """An invalidation that arrives before load_all is applied after it."""
    ids = furnish(sessions, "alpha", "1")
    store = SnapshotStore(sessions, BOX, settings)
    store.invalidate(ids["client"])

    async def scenario() -> None:
        await store.load_all()
        await store.wait_idle()
        await store.close()

    run(scenario())
    assert store.client(ids["client"]) is not None
