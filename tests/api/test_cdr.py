"""Call detail records, statistics and the audit log over the API (CDR-1, CDR-2, ST-1, ADM-7)."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from cloudpbx.cdr import store
from cloudpbx.db.models import (
    DialplanVersion,
    ExternalNumber,
    Fax,
    InternalNumber,
    Operator,
    Recording,
    User,
    UserExternalNumber,
    UserInternalNumber,
)
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import Level

API = "/api/v1"
_uuids = itertools.count(1)


def ms(text: str) -> int:
    """Epoch ms of an ISO 8601 UTC date-time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def add_call(engine: Any, client_id: int, **kw: Any) -> int:
    """One closed call written through the engine's store (the code issue 5 uses)."""
    start = kw.pop("start_ms", ms("2024-05-01T09:00:00"))
    answered = kw.pop("answered", True)
    talk = kw.pop("talk_s", 60)
    close = {
        "end_ms": start + (talk + 5) * 1000,
        "answer_ms": start + 5000 if answered else None,
        "outcome": kw.pop("outcome", "answered" if answered else "no_answer"),
        "billable_s": talk if answered else 0,
        "cost": kw.pop("cost", Decimal("0")),
        "steps": kw.pop("steps", [1]),
        "operator_id": kw.pop("operator_id", None),
    }
    opened = {
        "caller": "+79161234567",
        "called": "+74951112233",
        "internal_number": "101",
        "direction": "incoming",
        **kw,
    }
    with make_sessionmaker(engine)() as session:
        call = store.open_call(
            session, client_id=client_id, uuid=f"call-{next(_uuids)}", start_ms=start, **opened
        )
        store.close_call(session, call, **close)
        session.commit()
        return call.id


def listing(caller: Any, cid: int, query: str = "") -> dict[str, Any]:
    result: dict[str, Any] = caller.ok("get", f"{API}/clients/{cid}/calls{query}")
    return result


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


@pytest.fixture
def acme(world: Any) -> dict[str, Any]:
    """A client with a few calls of every shape, and its administrator."""
    cid = world.client("Acme", timezone="Europe/Moscow", area_code="495")
    calls = {
        "in": add_call(world.engine, cid, start_ms=ms("2024-05-01T09:00:00")),
        "out": add_call(
            world.engine,
            cid,
            start_ms=ms("2024-05-02T10:00:00"),
            caller="+74951112233",
            called="+78123334455",
            internal_number="102",
            direction="long_distance",
            cost=Decimal("1.2500"),
        ),
        "internal": add_call(
            world.engine,
            cid,
            start_ms=ms("2024-05-03T11:00:00"),
            caller="101",
            called="102",
            direction="internal",
            answered=False,
        ),
    }
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    return {"cid": cid, "calls": calls, "admin": admin, "world": world}


# --- search (CDR-2) --------------------------------------------------------------------------

BAD_SEARCHES = {
    "?from=yesterday": "from",
    "?to=2024-13-01": "to",
    "?to=9999-12-31": "to",
    "?from=999999999999999": "from",
    "?from=0001-01-01T00:00:00%2B14:00": "from",
    "?from=2024-05-02&to=2024-05-01": "to",
    "?outcome=great": "outcome",
    "?direction=sideways": "direction",
    "?caller=12345678901234567": "caller",
    "?number=abc": "number",
    "?internal_number=1a": "internal_number",
    "?sort=cost": "sort",
    "?limit=0": "limit",
    "?cursor=zzz": "cursor",
    "?sort=duration_ms&cursor=1.2": "cursor",
    "?unknown=1": "unknown",
}


def test_search_by_each_filter(acme):
    """CDR-2: period, caller, called, internal number, outcome and direction each narrow, and
    bad values are a 422 naming the field; CDR-1: times in ISO 8601 UTC with milliseconds
    beside epoch ms, money exact."""
    admin, cid, calls = acme["admin"], acme["cid"], acme["calls"]
    assert ids(listing(admin, cid)) == [calls["internal"], calls["out"], calls["in"]]
    cases = {
        "?from=2024-05-02T00:00:00Z&to=2024-05-03T00:00:00Z": [calls["out"]],
        "?caller=%2B79161234567": [calls["in"]],
        "?caller=8 916 123-45-67": [calls["in"]],
        "?called=102": [calls["internal"]],
        "?internal_number=102": [calls["out"]],
        "?outcome=no_answer": [calls["internal"]],
        "?direction=long_distance": [calls["out"]],
    }
    for query, expected in cases.items():
        assert ids(listing(admin, cid, query)) == expected, query
    # CDR-1: ISO 8601 UTC with milliseconds beside epoch ms; cost as an exact decimal.
    page = listing(admin, cid, "?direction=long_distance")
    item = page["items"][0]
    assert item["start"] == "2024-05-02T10:00:00.000+00:00"
    assert item["start_ms"] == ms("2024-05-02T10:00:00")
    assert item["duration_ms"] == 65_000
    assert Decimal(item["cost"]) == Decimal("1.25")
    assert (page["total"], page["total_exact"]) == (1, True)
    assert item["id"] == calls["out"]
    # Bad input is a 422 naming the field, never a 500.
    for query, field in BAD_SEARCHES.items():
        response = admin.get(f"{API}/clients/{cid}/calls{query}")
        assert response.status_code == 422, (query, response.text)
        assert response.json()["field"] == field, query


def test_search_by_trailing_digits_and_local_period(acme):
    """CDR-2: ``number`` with 3+ digits matches the end of the caller or the called number;
    periods are read in the client's time zone."""
    admin, cid, calls = acme["admin"], acme["cid"], acme["calls"]
    assert ids(listing(admin, cid, "?number=1112233")) == [calls["out"], calls["in"]]
    assert ids(listing(admin, cid, "?number=3334455")) == [calls["out"]]
    # However the number is written, the last ten digits are what is compared.
    assert ids(listing(admin, cid, "?number=8(812)333-44-55")) == [calls["out"]]
    assert ids(listing(admin, cid, "?number=%2B78123334455")) == [calls["out"]]
    assert ids(listing(admin, cid, "?number=02")) == []  # short: exact only
    assert ids(listing(admin, cid, "?number=102")) == [calls["internal"]]
    # A bare date is a whole local day (the client is in Europe/Moscow); epoch ms work too.
    assert ids(listing(admin, cid, "?from=2024-05-02&to=2024-05-02")) == [calls["out"]]
    # 12:30 local (MSK, UTC+3) is 09:30 UTC: after the first call.
    assert calls["in"] not in ids(listing(admin, cid, "?from=2024-05-01T12:30:00"))
    start = ms("2024-05-03T00:00:00")
    assert ids(listing(admin, cid, f"?from={start}")) == [calls["internal"]]


def test_pagination_by_offset_and_cursor(world):
    """CDR-2: newest first; offset pages and keyset cursors give the same rows, no repeats."""
    cid = world.client("Paged")
    made = [add_call(world.engine, cid, start_ms=ms("2024-05-01T09:00:00") + i) for i in range(7)]
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    newest_first = list(reversed(made))
    first = listing(admin, cid, "?limit=3")
    assert ids(first) == newest_first[:3]
    assert first["total"] == 7
    second = listing(admin, cid, f"?limit=3&cursor={first['next_cursor']}")
    assert ids(second) == newest_first[3:6]
    assert ids(listing(admin, cid, "?limit=3&offset=3")) == newest_first[3:6]
    assert ids(listing(admin, cid, "?sort=start_ms&limit=2")) == made[:2]


# --- details (CDR-1, DP-7) -------------------------------------------------------------------


def test_call_detail_has_legs_events_recordings_faxes_and_steps(world, settings):
    """CDR-1/DP-7: one call with its legs, events, recordings, faxes and steps taken."""
    cid = world.client("Detail")
    with make_sessionmaker(world.engine)() as session:
        call = store.open_call(
            session,
            client_id=cid,
            uuid="detail-1",
            caller="+79161234567",
            called="+74951112233",
            internal_number="101",
            direction="incoming",
            start_ms=1_000,
        )
        leg = store.add_leg(session, call, direction="in", party="+79161234567", start_ms=1_000)
        store.add_event(session, call, kind="step", at_ms=1_001, step_level=1)
        store.add_event(session, call, kind="answered", at_ms=3_000, leg=leg)
        store.close_leg(session, leg, end_ms=9_000, answer_ms=3_000, outcome="answered")
        store.close_call(
            session,
            call,
            end_ms=9_000,
            answer_ms=3_000,
            outcome="answered",
            billable_s=6,
            cost=Decimal("0.6000"),
            steps=[1, 3],
        )
        session.add(Recording(call_id=call.id, client_id=cid, storage_path="a.wav", start_ms=3000))
        session.add(Fax(call_id=call.id, client_id=cid, pdf_path=None, received_ms=9_000))
        session.commit()
        call_id = call.id
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    detail = admin.ok("get", f"{API}/clients/{cid}/calls/{call_id}")
    assert detail["steps"] == [1, 3]
    assert detail["dialplan_id"] is None
    assert detail["dialplan_version"] is None
    assert [leg["outcome"] for leg in detail["legs"]] == ["answered"]
    assert [e["kind"] for e in detail["events"]] == ["step", "answered"]
    assert detail["events"][1]["leg_id"] == detail["legs"][0]["id"]
    assert detail["recordings"][0]["url"].endswith("/audio")
    assert detail["faxes"][0]["has_pdf"] is False
    assert detail["answer"] == "1970-01-01T00:00:03.000+00:00"


# --- tenancy and client users (ADM-1, ADM-4) -------------------------------------------------


def test_other_tenant_never_sees_calls(world):
    """ADM-4: another client's call is a 404 and never appears in a search."""
    a, b = world.client("A"), world.client("B")
    call_a = add_call(world.engine, a)
    call_b = add_call(world.engine, b)  # the same numbers in both clients
    admin_b = world.caller(Level.CLIENT_ADMIN, b)
    assert admin_b.get(f"{API}/clients/{b}/calls/{call_a}").status_code == 404
    assert admin_b.get(f"{API}/clients/{a}/calls/{call_a}").status_code == 404
    assert admin_b.get(f"{API}/clients/{a}/calls").status_code == 404
    assert admin_b.get(f"{API}/clients/{a}/statistics").status_code == 404
    for query in ("", "?number=1234567", "?caller=%2B79161234567", "?internal_number=101"):
        assert ids(listing(admin_b, b, query)) == [call_b], query
    provider = world.caller(Level.CLIENTS_ADMIN)
    assert ids(listing(provider, a)) == [call_a]


def _client_user(world: Any, cid: int, internal: str, external: str) -> Any:
    user_id = world.user(Level.CLIENT_USER, cid)
    with make_sessionmaker(world.engine)() as session:
        ext = ExternalNumber(client_id=cid, number=external)
        num = InternalNumber(client_id=cid, number=internal)
        session.add_all([ext, num])
        session.flush()
        session.add(UserInternalNumber(user_id=user_id, internal_number_id=num.id))
        session.add(UserExternalNumber(user_id=user_id, external_number_id=ext.id))
        session.commit()
    return world.login(user_id)


def test_client_user_sees_only_calls_of_own_numbers(world):
    """ADM-1: a client user sees the calls of their internal and external numbers only;
    ADM-3: without a CDR right there is nothing to see."""
    cid = world.client("Users")
    own_internal = add_call(world.engine, cid, internal_number="101", called="+74950000001")
    own_external = add_call(
        world.engine, cid, internal_number="300", caller="+74957654321", called="+79990000000"
    )
    foreign = add_call(world.engine, cid, internal_number="200", called="+74950000002")
    user = _client_user(world, cid, internal="101", external="+74957654321")
    assert sorted(ids(listing(user, cid))) == sorted([own_internal, own_external])
    assert ids(listing(user, cid, "?internal_number=200")) == []
    assert user.get(f"{API}/clients/{cid}/calls/{foreign}").status_code == 404
    user.ok("get", f"{API}/clients/{cid}/calls/{own_internal}")
    stats = user.ok("get", f"{API}/clients/{cid}/statistics?from=2024-05-01&to=2024-05-01")
    assert stats["totals"]["calls"] == 2
    lonely = world.caller(Level.CLIENT_USER, cid)
    assert listing(lonely, cid)["items"] == []
    # ADM-3: a client administrator without "view users' CDR" gets 403.
    user_id = world.user(Level.CLIENT_ADMIN, cid)
    with make_sessionmaker(world.engine)() as session:
        row = session.get(User, user_id)
        assert row is not None
        row.rights = [r for r in row.rights if r.right != "users.view_cdr"]
        session.commit()
    caller = world.login(user_id)
    response = caller.get(f"{API}/clients/{cid}/calls")
    assert response.status_code == 403


# --- export (CDR-2) --------------------------------------------------------------------------


def test_csv_export_has_bom_header_and_filtered_rows(acme):
    """CDR-2: CSV export with a BOM for Excel, a header row and the search's filters."""
    admin, cid, calls = acme["admin"], acme["cid"], acme["calls"]
    response = admin.get(f"{API}/clients/{cid}/calls/export.csv?number=1112233")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [int(r["id"]) for r in rows] == [calls["out"], calls["in"]]
    out = rows[0]
    assert out["caller"] == "+74951112233"
    assert out["start_utc"] == "2024-05-02T10:00:00.000+00:00"
    assert out["start_local"] == "2024-05-02 13:00:00"
    assert Decimal(out["cost"]) == Decimal("1.25")
    assert out["steps"] == "1"
    semi = admin.get(f"{API}/clients/{cid}/calls/export.csv?delimiter=semicolon")
    assert semi.content.decode("utf-8-sig").splitlines()[0].startswith("id;uuid;")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_rows(caller: Any, cid: int, query: str = "") -> list[tuple[Any, ...]]:
    """The rows of an XLSX export (header first), opened with openpyxl."""
    response = caller.get(f"{API}/clients/{cid}/calls/export.xlsx{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    return list(sheet.iter_rows(values_only=True))


def test_xlsx_export_matches_csv_with_typed_cells(acme):
    """CDR-2: the XLSX export has the CSV's header, rows and order; times are Excel date-times
    (start_local in the client's zone), cost a number with 2-4 decimals, numbers text."""
    admin, cid, calls = acme["admin"], acme["cid"], acme["calls"]
    response = admin.get(f"{API}/clients/{cid}/calls/export.xlsx?number=1112233")
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment")
    assert disposition.endswith('.xlsx"')
    assert int(response.headers["content-length"]) == len(response.content)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    header = [c.value for c in sheet[1]]
    csv_text = admin.get(f"{API}/clients/{cid}/calls/export.csv?number=1112233").content
    csv_rows = list(csv.reader(io.StringIO(csv_text.decode("utf-8-sig"))))
    assert header == csv_rows[0]
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["B"].width == 38
    assert [sheet.cell(r, 1).value for r in (2, 3)] == [calls["out"], calls["in"]]
    assert sheet.max_row == 3
    out = {name: sheet.cell(2, i) for i, name in enumerate(header, 1)}
    assert out["caller"].value == "+74951112233"
    assert out["caller"].data_type == "s"
    assert out["caller"].number_format == "@"
    assert out["internal_number"].value == "102"
    assert out["start_utc"].is_date
    assert out["start_local"].is_date
    assert out["start_utc"].value == datetime(2024, 5, 2, 10, 0)
    assert out["start_local"].value == datetime(2024, 5, 2, 13, 0)  # Europe/Moscow
    assert out["cost"].value == pytest.approx(1.25)
    assert out["cost"].data_type == "n"
    assert out["cost"].number_format == "0.00##"
    assert out["duration_ms"].value == 65000
    assert out["billable_s"].value == 60
    assert out["steps"].value == "1"
    assert [int(r[0]) for r in csv_rows[1:]] == [calls["out"], calls["in"]]


def test_xlsx_export_sort_filters_and_empty_values(acme):
    """CDR-2: sort and filters as the search; an unanswered call has an empty answer cell; a
    parameter only CSV knows is a 422; a text value that looks like a formula stays text."""
    admin, cid, calls = acme["admin"], acme["cid"], acme["calls"]
    rows = xlsx_rows(admin, cid, "?sort=start_ms")
    assert [r[0] for r in rows[1:]] == [calls["in"], calls["out"], calls["internal"]]
    internal = rows[3]
    assert internal[4] is None  # answer_utc
    assert internal[8:10] == ("101", "102")
    assert [r[0] for r in xlsx_rows(admin, cid, "?direction=internal")[1:]] == [calls["internal"]]
    assert xlsx_rows(admin, cid, "?from=2030-01-01")[1:] == []
    bad = admin.get(f"{API}/clients/{cid}/calls/export.xlsx?delimiter=semicolon")
    assert bad.status_code == 422
    formula = add_call(acme["world"].engine, cid, caller="=1+2", start_ms=ms("2024-06-01T00:00:00"))
    rows = xlsx_rows(admin, cid, "?from=2024-06-01")
    assert rows[1][0] == formula
    assert rows[1][8] == "=1+2"


def test_xlsx_export_tenancy_and_client_user(world):
    """ADM-4: another client's calls never appear and its export is a 404; ADM-1: a client
    user's export holds only the calls of their numbers."""
    a, b = world.client("A"), world.client("B")
    call_a = add_call(world.engine, a)
    call_b = add_call(world.engine, b)
    admin_b = world.caller(Level.CLIENT_ADMIN, b)
    assert [r[0] for r in xlsx_rows(admin_b, b)[1:]] == [call_b]
    assert admin_b.get(f"{API}/clients/{a}/calls/export.xlsx").status_code == 404
    assert [r[0] for r in xlsx_rows(world.caller(Level.CLIENTS_ADMIN), a)[1:]] == [call_a]
    own = add_call(world.engine, b, internal_number="101", called="+74950000001")
    add_call(world.engine, b, internal_number="200", called="+74950000002")
    user = _client_user(world, b, internal="101", external="+74957654321")
    assert sorted(r[0] for r in xlsx_rows(user, b)[1:]) == sorted([call_b, own])


# --- recordings and faxes (CDR-2, FAX-1) -----------------------------------------------------


def test_recording_and_fax_download(world, settings):
    """CDR-2/FAX-1: recordings and faxes stream from recordings_dir; tenant-checked."""
    cid, other = world.client("Rec"), world.client("Other")
    call_id = add_call(world.engine, cid, internal_number="101")
    foreign_call = add_call(world.engine, cid, internal_number="200")
    base = settings.recordings_dir
    (base / "2024" / "05").mkdir(parents=True)
    (base / "2024" / "05" / "r1.wav").write_bytes(b"RIFF....WAVEfmt ")
    (base / "2024" / "05" / "f1.pdf").write_bytes(b"%PDF-1.4\n")
    with make_sessionmaker(world.engine)() as session:
        recs = [
            Recording(call_id=call_id, client_id=cid, storage_path="2024/05/r1.wav", start_ms=1),
            Recording(call_id=call_id, client_id=cid, storage_path="2024/05/gone.wav", start_ms=1),
            Recording(
                call_id=foreign_call, client_id=cid, storage_path="2024/05/r1.wav", start_ms=1
            ),
            Recording(call_id=call_id, client_id=cid, storage_path="../../secret.key", start_ms=1),
        ]
        fax = Fax(call_id=call_id, client_id=cid, pdf_path="2024/05/f1.pdf", received_ms=1)
        session.add_all([*recs, fax])
        session.commit()
        rec_ids, fax_id = [r.id for r in recs], fax.id
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    audio = admin.get(f"{API}/clients/{cid}/recordings/{rec_ids[0]}/audio")
    assert audio.status_code == 200
    assert audio.content == b"RIFF....WAVEfmt "
    assert audio.headers["content-type"] == "audio/wav"
    missing = admin.get(f"{API}/clients/{cid}/recordings/{rec_ids[1]}/audio")
    assert missing.status_code == 404
    assert "missing" in missing.json()["message"]
    assert admin.get(f"{API}/clients/{cid}/recordings/{rec_ids[3]}/audio").status_code == 404
    pdf = admin.get(f"{API}/clients/{cid}/faxes/{fax_id}/pdf")
    assert (pdf.status_code, pdf.content) == (200, b"%PDF-1.4\n")
    # ADM-4: another client's administrator, even through its own client's path.
    stranger = world.caller(Level.CLIENT_ADMIN, other)
    assert stranger.get(f"{API}/clients/{other}/recordings/{rec_ids[0]}/audio").status_code == 404
    assert stranger.get(f"{API}/clients/{cid}/faxes/{fax_id}/pdf").status_code == 404
    # ADM-1: a client user hears only the recordings of their own calls.
    user = _client_user(world, cid, internal="101", external="+74950000009")
    assert user.get(f"{API}/clients/{cid}/recordings/{rec_ids[0]}/audio").status_code == 200
    assert user.get(f"{API}/clients/{cid}/recordings/{rec_ids[2]}/audio").status_code == 404


# --- statistics (ST-1) -----------------------------------------------------------------------


def test_statistics_per_local_day_and_totals(world):
    """ST-1: per-day buckets are Moscow days; counts, durations and recorded cost add up."""
    cid = world.client("Stats", timezone="Europe/Moscow")
    with make_sessionmaker(world.engine)() as session:
        operator = Operator(name="Carrier X", host="sip.example.net")
        session.add(operator)
        session.commit()
        op_id = operator.id
    # 22:30 UTC on 10 March is 01:30 on 11 March in Moscow (UTC+3).
    add_call(world.engine, cid, start_ms=ms("2024-03-10T20:00:00"), cost=Decimal("0.1000"))
    add_call(
        world.engine,
        cid,
        start_ms=ms("2024-03-10T22:30:00"),
        direction="local",
        operator_id=op_id,
        cost=Decimal("0.2000"),
    )
    add_call(world.engine, cid, start_ms=ms("2024-03-11T08:00:00"), answered=False)
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    url = f"{API}/clients/{cid}/statistics?from=2024-03-10&to=2024-03-12"
    stats = admin.ok("get", url)
    assert stats["timezone"] == "Europe/Moscow"
    by_day = {row["key"]: row for row in stats["rows"]}
    assert list(by_day) == ["2024-03-10", "2024-03-11", "2024-03-12"]
    assert (by_day["2024-03-10"]["calls"], by_day["2024-03-11"]["calls"]) == (1, 2)
    assert by_day["2024-03-11"]["answered"] == 1
    assert by_day["2024-03-12"]["calls"] == 0
    totals = stats["totals"]
    assert (totals["calls"], totals["answered"], totals["billable_s"]) == (3, 2, 120)
    assert totals["duration_ms"] == 3 * 65_000
    assert Decimal(totals["cost"]) == Decimal("0.3")
    by_direction = admin.ok("get", url + "&group=direction")["rows"]
    assert {r["key"]: r["calls"] for r in by_direction} == {"incoming": 2, "local": 1}
    by_operator = admin.ok("get", url + "&group=operator")["rows"]
    assert [(r["label"], r["calls"]) for r in by_operator] == [("Carrier X", 1), ("—", 2)]
    bad = admin.get(f"{API}/clients/{cid}/statistics?group=week")
    assert (bad.status_code, bad.json()["field"]) == (422, "group")


# --- audit log (ADM-7) -----------------------------------------------------------------------


def test_audit_log_per_client_and_installation(world, sysadmin):
    """ADM-7: a client administrator reads the client's audit log; the whole log is the
    provider's; client users read neither."""
    cid, other = world.client("Audited"), world.client("Quiet")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    admin.ok("post", f"{API}/clients/{cid}/ports", 201, json={"name": "L1", "sip_login": "aud-1"})
    admin.ok("post", f"{API}/clients/{cid}/pickup-groups", 201, json={"number": "1"})
    page = admin.ok("get", f"{API}/clients/{cid}/audit")
    assert page["total"] == 2
    assert [e["entity"] for e in page["items"]] == ["pickup-groups", "ports"]
    assert page["items"][0]["at"].endswith("+00:00")
    only_ports = admin.ok("get", f"{API}/clients/{cid}/audit?entity=ports&from=2000-01-01")
    assert only_ports["total"] == 1
    assert only_ports["items"][0]["after"]["name"] == "L1"
    assert admin.get(f"{API}/clients/{other}/audit").status_code == 404
    assert admin.get(f"{API}/audit").status_code == 403
    user = world.caller(Level.CLIENT_USER, cid)
    assert user.get(f"{API}/clients/{cid}/audit").status_code == 403
    everything = sysadmin.ok("get", f"{API}/audit?client_id={cid}&action=create")
    assert everything["total"] == 2
    assert sysadmin.ok("get", f"{API}/audit?user_id={admin.user_id}")["total"] == 2
    bad = sysadmin.get(f"{API}/audit?to=noon")
    assert (bad.status_code, bad.json()["field"]) == (422, "to")


def test_call_detail_names_the_dialplan_version_it_ran_on(world, settings):
    """DP-7: the detail names the dialplan and the version number the call ran on, so its
    path can be drawn on that version of the graph."""
    cid = world.client("Path")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    number = admin.ok("post", f"{API}/clients/{cid}/internal-numbers", 201, json={"number": "130"})
    plan = admin.ok(
        "post",
        f"{API}/clients/{cid}/dialplans",
        201,
        json={"internal_number_id": number["id"], "steps": [{"level": 1, "action": "hangup"}]},
    )
    with make_sessionmaker(world.engine)() as session:
        version_id = session.scalar(
            select(DialplanVersion.id).where(DialplanVersion.dialplan_id == plan["id"])
        )
    call_id = add_call(world.engine, cid, dialplan_version_id=version_id, steps=[1])
    detail = admin.ok("get", f"{API}/clients/{cid}/calls/{call_id}")
    assert (detail["dialplan_id"], detail["dialplan_version"]) == (plan["id"], 1)
