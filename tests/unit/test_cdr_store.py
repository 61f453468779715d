"""The CDR writer and search on a real database (CDR-1, CDR-2, ST-1, DP-7, issue 5 §6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cloudpbx.cdr import search, store
from cloudpbx.cdr.search import CallFilter, NumberScope
from cloudpbx.db.models import Call, CallEvent, CallLeg, Client
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.numbers import Direction


@pytest.fixture
def session(engine: Any) -> Any:
    with make_sessionmaker(engine)() as db:
        yield db


@pytest.fixture
def client_id(session: Any) -> int:
    client = Client(name="Store")
    session.add(client)
    session.commit()
    return client.id


def _open(session: Any, client_id: int, uuid: str, **kw: Any) -> Call:
    values = {
        "caller": "+79161234567",
        "called": "+74951112233",
        "internal_number": "101",
        "direction": "incoming",
        "start_ms": 10_000,
        **kw,
    }
    return store.open_call(session, client_id=client_id, uuid=uuid, **values)


def test_directions_cover_every_rating_class():
    """CDR-1: every direction numbers.classify can give is a valid call direction."""
    assert {d.value for d in Direction} <= set(store.DIRECTIONS)


def test_open_and_close_call(session, client_id):
    """CDR-1: reversed digits for trailing-digit search; duration computed on close."""
    call = _open(session, client_id, "u1", caller="+7 916 123-45-67", called="101")
    assert (call.caller_rev, call.called_rev) == ("76543216197", "101")
    assert call.heartbeat_ms == call.start_ms
    store.close_call(
        session,
        call,
        end_ms=70_000,
        answer_ms=15_000,
        outcome="answered",
        billable_s=55,
        cost=Decimal("1.1000"),
        steps=[1, 2],
    )
    session.commit()
    stored = session.get(Call, call.id)
    assert (stored.duration_ms, stored.outcome, stored.steps) == (60_000, "answered", [1, 2])
    assert stored.cost == Decimal("1.1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"outcome": "great"}, "outcome"),
        ({"end_ms": 5_000}, "before start_ms"),
        ({"answer_ms": 80_000}, "outside"),
        ({"cost": Decimal("-1")}, "negative"),
    ],
)
def test_close_call_refuses_impossible_values(session, client_id, changes, message):
    """CDR-1: a record never says something impossible."""
    call = _open(session, client_id, "bad")
    values = {
        "end_ms": 70_000,
        "answer_ms": None,
        "outcome": "no_answer",
        "billable_s": 0,
        "cost": Decimal(0),
        "steps": [1],
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        store.close_call(session, call, **values)


def test_open_call_refuses_unknown_direction(session, client_id):
    """CDR-1: directions are a closed list."""
    with pytest.raises(ValueError, match="direction"):
        _open(session, client_id, "dir", direction="sideways")


def test_legs_and_events(session, client_id):
    """CDR-1: calls → legs → events; DP-7 step levels on events."""
    call = _open(session, client_id, "legs")
    leg = store.add_leg(session, call, direction="out", party="101", start_ms=11_000, port_id=None)
    store.add_event(session, call, kind="step", at_ms=10_001, step_level=1)
    store.add_event(session, call, kind="answered", at_ms=12_000, leg=leg, detail={"by": "101"})
    store.close_leg(session, leg, end_ms=20_000, answer_ms=12_000, outcome="answered", codec="PCMA")
    session.commit()
    events = session.scalars(select(CallEvent).where(CallEvent.call_id == call.id)).all()
    assert [(e.kind, e.step_level, e.leg_id) for e in events] == [
        ("step", 1, None),
        ("answered", None, leg.id),
    ]
    assert session.get(CallLeg, leg.id).codec == "PCMA"


def test_close_orphans(session, client_id):
    """Issue 5 §6: calls left open by a crash end at their last heartbeat as "failed"."""
    beating = _open(session, client_id, "o1", start_ms=1_000)
    beating.answer_ms = 2_000
    leg = store.add_leg(session, beating, direction="in", party="x", start_ms=1_000)
    store.touch_calls(session, [beating.id], 9_000)
    silent = _open(session, client_id, "o2", start_ms=5_000)
    silent.heartbeat_ms = None
    fresh = _open(session, client_id, "o3", start_ms=99_800)
    done = _open(session, client_id, "o4", start_ms=1_000)
    store.close_call(
        session,
        done,
        end_ms=3_000,
        answer_ms=None,
        outcome="busy",
        billable_s=0,
        cost=Decimal(0),
        steps=[1],
    )
    session.commit()
    assert store.close_orphans(session, now_ms=100_000, grace_ms=500) == 2
    session.commit()
    session.expire_all()
    got = {c.uuid: c for c in session.scalars(select(Call))}
    assert (got["o1"].end_ms, got["o1"].duration_ms, got["o1"].outcome) == (9_000, 8_000, "failed")
    assert got["o1"].answer_ms == 2_000
    assert (got["o2"].end_ms, got["o2"].outcome) == (5_000, "failed")
    assert got["o3"].end_ms is None  # within the grace period: a live call of another node
    assert got["o4"].outcome == "busy"
    assert session.get(CallLeg, leg.id).end_ms == 9_000
    kinds = session.scalars(select(CallEvent.kind).where(CallEvent.call_id == fresh.id)).all()
    assert kinds == []
    interrupted = session.scalars(
        select(CallEvent).where(CallEvent.kind == store.INTERRUPTED)
    ).all()
    assert sorted(e.call_id for e in interrupted) == sorted([beating.id, silent.id])
    assert store.close_orphans(session, now_ms=100_000, grace_ms=500) == 0


def _bulk(engine: Any, client_id: int) -> None:
    rows = [
        {
            "client_id": client_id,
            "uuid": f"bulk-{i}",
            "caller": f"+7916000{i:04d}",
            "called": "+74951112233" if i % 2 else "102",
            "internal_number": "101" if i % 3 else "102",
            "direction": "incoming",
            "start_ms": 1_700_000_000_000 + i * 60_000,
            "answer_ms": 1_700_000_000_000 + i * 60_000 + 1_000,
            "end_ms": 1_700_000_000_000 + i * 60_000 + 31_000,
            "outcome": "answered",
            "billable_s": 30,
            "cost": Decimal("0.5000"),
            "steps": [1],
        }
        for i in range(25)
    ]
    assert store.bulk_insert_calls(engine, rows) == 25


def test_bulk_insert_and_search(engine, session, client_id):
    """CDR-2: bulk rows get their derived columns; the search matches trailing digits,
    exact numbers, a user's numbers, and pages by keyset."""
    _bulk(engine, client_id)
    first = session.scalar(select(Call).where(Call.uuid == "bulk-7"))
    assert (first.caller_rev, first.duration_ms) == ("70000006197", 31_000)
    by_suffix = search.search_calls(session, CallFilter(client_id, number_suffix="0007"))
    assert [c.uuid for c in by_suffix.items] == ["bulk-7"]
    called = search.search_calls(session, CallFilter(client_id, number="102"), limit=100)
    assert called.total == 13
    scope = NumberScope(frozenset({"102"}), frozenset())
    mine = search.search_calls(session, CallFilter(client_id, scope=scope), limit=100)
    assert {c.internal_number for c in mine.items} == {"102"}
    assert mine.total == 9
    nobody = search.search_calls(session, CallFilter(client_id, scope=NumberScope()))
    assert nobody.items == []
    page = search.search_calls(session, CallFilter(client_id), limit=10)
    assert (page.total, page.total_exact) == (25, True)
    cursor = search.Cursor.decode(page.next_cursor)
    rest = search.search_calls(session, CallFilter(client_id), limit=100, cursor=cursor)
    assert len(rest.items) == 15
    assert {c.id for c in rest.items}.isdisjoint({c.id for c in page.items})
    capped = search.search_calls(session, CallFilter(client_id), count_cap=20)
    assert (capped.total, capped.total_exact) == (20, False)
    other = search.search_calls(session, CallFilter(client_id + 1))
    assert other.items == []


def test_statistics_day_buckets_follow_daylight_saving(engine, session, client_id):
    """ST-1: days are local days even across a DST change (Europe/Berlin, 31 March 2024)."""
    base = {"client_id": client_id, "caller": "1", "called": "2", "direction": "internal"}
    # 22:30 UTC on 30 March is 23:30 CET (30 March); 22:30 UTC on 31 March is 00:30 CEST
    # (1 April): the offset changed in between.
    starts = {"a": 1_711_837_800_000, "b": 1_711_924_200_000}
    rows = [{**base, "uuid": k, "start_ms": v, "end_ms": v + 1_000} for k, v in starts.items()]
    store.bulk_insert_calls(engine, rows)
    result = search.statistics(session, CallFilter(client_id), "day", ZoneInfo("Europe/Berlin"))
    assert [(r.key, r.totals.calls) for r in result] == [("2024-03-30", 1), ("2024-04-01", 1)]
    with pytest.raises(ValueError, match="group"):
        search.statistics(session, CallFilter(client_id), "week", ZoneInfo("UTC"))


def test_number_search_pages_equal_one_sorted_query(engine, session, client_id, monkeypatch):
    """CDR-2: the per-number index branches page exactly like one sorted query, with offsets
    and cursors, and a suffix matching many numbers falls back to that query."""
    _bulk(engine, client_id)
    filters = [
        CallFilter(client_id, number="102"),
        CallFilter(client_id, number_suffix="2233"),
        CallFilter(client_id, number_suffix="0", internal_number="101"),
        CallFilter(client_id, number_suffix="99999"),
    ]
    for f in filters:
        for sort in search.SORTS:
            for offset in (0, 3, 11):
                expected = session.scalars(search.calls_query(f, sort=sort).limit(4).offset(offset))
                got = search.search_calls(session, f, sort=sort, limit=4, offset=offset)
                assert [c.id for c in got.items] == [c.id for c in expected], (f, sort, offset)
        head = search.search_calls(session, f, limit=5)
        if head.next_cursor:
            cursor = search.Cursor.decode(head.next_cursor)
            expected = session.scalars(search.calls_query(f, cursor=cursor).limit(5))
            got = search.search_calls(session, f, limit=5, cursor=cursor)
            assert [c.id for c in got.items] == [c.id for c in expected]
    assert search.number_branches(session, filters[2]) is not None
    monkeypatch.setattr(search, "MAX_SUFFIX_NUMBERS", 2)  # 3 callers end in 0
    assert search.number_branches(session, filters[2]) is None
    fallback = search.search_calls(session, filters[2], limit=100)
    assert fallback.total == len(fallback.items) > 0
