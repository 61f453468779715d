"""Dialplans through the API: steps, DP-5 checks on save, versions, rights, usages (§3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from cloudpbx.db.models import (
    AuditEntry,
    MediaFile,
    MediaPack,
    Queue,
    QueueAgent,
    UserInternalNumber,
)
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import Level

API = "/api/v1"


@dataclass
class Pbx:
    """One client with the seed's objects: number 100, port "Линия 1", media file "moh"."""

    cid: int
    admin: Any
    number_id: int
    port_id: int
    media_id: int

    @property
    def base(self) -> str:
        return f"{API}/clients/{self.cid}"


def _media_file(world: Any, cid: int, name: str = "moh") -> int:
    with make_sessionmaker(world.engine)() as session:
        pack = MediaPack(client_id=cid, name=f"pack {name}")
        session.add(pack)
        session.flush()
        media = MediaFile(client_id=cid, pack_id=pack.id, name=name)
        session.add(media)
        session.commit()
        return media.id


def _pbx(world: Any, name: str = "Acme", login: str = "acme-line1") -> Pbx:
    cid = world.client(name)
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    base = f"{API}/clients/{cid}"
    number = admin.ok("post", f"{base}/internal-numbers", 201, json={"number": "100"})
    port = admin.ok("post", f"{base}/ports", 201, json={"name": "Линия 1", "sip_login": login})
    return Pbx(cid, admin, number["id"], port["id"], _media_file(world, cid))


def seed_steps(pbx: Pbx) -> list[dict[str, Any]]:
    """The seed's example: ring "Линия 1" for 5 s, no answer → play the message (figs 1–9)."""
    return [
        {
            "level": 1,
            "action": "ring_port",
            "target": {"kind": "port", "id": pbx.port_id},
            "timeout": 5,
            "conditions": {"no_answer": 2},
        },
        {
            "level": 2,
            "action": "play_message",
            "target": {"kind": "media_file", "id": pbx.media_id},
        },
    ]


def _create(pbx: Pbx, steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body = {"name": "Main", "internal_number_id": pbx.number_id, "steps": steps or seed_steps(pbx)}
    return pbx.admin.ok("post", f"{pbx.base}/dialplans", 201, json=body | extra)


def _save(pbx: Pbx, dp: dict[str, Any], steps: list[dict[str, Any]], status: int = 200) -> Any:
    body = {"steps": steps, "base_version": dp["version"], "comment": "edit"}
    response = _put(pbx.admin, f"{pbx.base}/dialplans/{dp['id']}/steps", json=body)
    assert response.status_code == status, response.text
    return response.json()


def _put(caller: Any, url: str, **kw: Any) -> Any:
    """The conftest Caller has no ``put``; the steps are saved with PUT."""
    return caller.http.put(url, headers=caller.headers, **kw)


@pytest.fixture
def pbx(world: Any) -> Pbx:
    return _pbx(world)


# --- DP-1 … DP-3: steps stored and read back -----------------------------------------------


def test_seed_dialplan_created_and_read_back(pbx):
    """DP-1, DP-2, DP-3, NUM-3: the seed's two-step dialplan of number 100 round-trips."""
    created = _create(pbx, layout={"1": {"x": 10, "y": 20}}, comment="first")
    assert created["version"] == 1
    assert created["internal_number_id"] == pbx.number_id
    assert created["warnings"] == []
    got = pbx.admin.ok("get", f"{pbx.base}/dialplans/{created['id']}")
    assert got == created
    first, second = got["steps"]
    assert first == {
        "level": 1,
        "action": "ring_port",
        "target": {"kind": "port", "id": pbx.port_id},
        "timeout": 5,
        "schedule": {"days": [0, 1, 2, 3, 4, 5, 6], "ranges": [], "exceptions": []},
        "conditions": {"no_answer": 2},
        "params": {},
        "options": {},
    }
    assert second["action"] == "play_message"
    assert second["target"] == {"kind": "media_file", "id": pbx.media_id}
    assert second["conditions"] == {}
    assert got["layout"] == {"1": {"x": 10, "y": 20}}
    listing = pbx.admin.ok("get", f"{pbx.base}/dialplans")
    assert [d["id"] for d in listing["items"]] == [created["id"]]
    assert listing["items"][0]["steps"] == got["steps"]


def test_schedule_options_and_classifier_exits_round_trip(pbx, world):
    """DP-1, DP-2: schedule with ranges and dated exceptions, options, classifier exits."""
    schedule = {
        "days": [0, 1, 2, 3, 4],
        "ranges": [["09:00", "18:00"], ["22:00", "06:00"]],
        "exceptions": [
            {"date": "2026-01-01", "open": False, "ranges": []},
            {"date": "2026-11-01", "open": True, "ranges": [["10:00", "15:00"]]},
        ],
    }
    steps = seed_steps(pbx)
    steps[0] |= {"schedule": schedule, "options": {"auto_recording": True, "ringback": "music"}}
    steps[0]["conditions"] |= {"no_route": 3, "busy": 2}
    steps.append(
        {"level": 3, "action": "hangup", "conditions": {}, "params": {"cause": 486}},
    )
    dp = _create(pbx, steps)
    step1 = dp["steps"][0]
    assert step1["schedule"] == schedule
    assert step1["options"] == {"auto_recording": True, "ringback": "music"}
    # DP-3 order: no_answer, busy, no_route
    assert list(step1["conditions"].items()) == [("no_answer", 2), ("busy", 2), ("no_route", 3)]
    assert dp["steps"][2]["params"] == {"cause": 486}


def test_time_in_schedule_is_checked(pbx):
    """DP-1: a malformed time is refused naming the field."""
    steps = seed_steps(pbx)
    steps[0]["schedule"] = {"ranges": [["25:00", "18:00"]]}
    body = {"internal_number_id": pbx.number_id, "steps": steps}
    response = pbx.admin.post(f"{pbx.base}/dialplans", json=body)
    assert response.status_code == 422
    assert response.json()["field"].startswith("steps.0.schedule.ranges")


def test_one_dialplan_per_number(pbx, world):
    """NUM-3: a number has one dialplan (409 naming the field), given as exactly one number."""
    _create(pbx)
    again = pbx.admin.post(
        f"{pbx.base}/dialplans",
        json={"internal_number_id": pbx.number_id, "steps": seed_steps(pbx)},
    )
    assert again.status_code == 409
    assert again.json()["field"] == "internal_number_id"
    assert "100" in again.json()["message"]
    neither = pbx.admin.post(f"{pbx.base}/dialplans", json={"steps": seed_steps(pbx)})
    assert neither.status_code == 422
    assert neither.json()["field"] == "internal_number_id"
    other = _pbx(world, "Other", "other-line1")
    foreign = pbx.admin.post(
        f"{pbx.base}/dialplans",
        json={"internal_number_id": other.number_id, "steps": seed_steps(pbx)},
    )
    assert foreign.status_code == 422
    assert foreign.json()["field"] == "internal_number_id"


# --- DP-5: checks on save ------------------------------------------------------------------


def _refused(pbx: Pbx, steps: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"internal_number_id": pbx.number_id, "steps": steps}
    response = pbx.admin.post(f"{pbx.base}/dialplans", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "dialplan_invalid"
    assert pbx.admin.ok("get", f"{pbx.base}/dialplans")["total"] == 0
    return error


def test_transition_to_missing_step_names_step_and_field(pbx):
    """DP-5: a condition going to a missing step is refused, naming the step and the field."""
    steps = seed_steps(pbx)
    steps[0]["conditions"] = {"no_answer": 7}
    error = _refused(pbx, steps)
    assert error["field"] == "steps.1.conditions.no_answer"
    assert error["message"] == "step 1: condition 'no_answer' goes to step 7, which does not exist"
    codes = {(d["code"], d["severity"]) for d in error["details"]}
    # step 2 is now unreachable: reported as a warning next to the error
    assert codes == {("transition_missing_step", "error"), ("unreachable", "warning")}


def test_missing_entry_and_duplicate_numbers(pbx):
    """DP-5, DP-1: no step 1, and two steps with one number, are refused."""
    steps = seed_steps(pbx)
    steps[0]["level"] = 3
    error = _refused(pbx, steps)
    assert error["field"] == "steps"
    assert error["details"][0]["code"] == "no_entry"
    duplicate = seed_steps(pbx)
    duplicate[1]["level"] = 1
    error = _refused(pbx, duplicate)
    assert error["field"] == "steps.1.level"
    assert error["details"][0]["code"] == "level_duplicate"


def test_other_clients_port_is_not_found_without_leaking(pbx, world):
    """DP-5, ADM-4: another client's port reads exactly like a missing one."""
    other_cid = world.client("Other")
    other = world.caller(Level.CLIENT_ADMIN, other_cid)
    secret_port = other.ok(
        "post",
        f"{API}/clients/{other_cid}/ports",
        201,
        json={"name": "Секретная линия", "sip_login": "other-secret"},
    )
    steps = seed_steps(pbx)
    steps[0]["target"]["id"] = secret_port["id"]
    error = _refused(pbx, steps)
    assert error["field"] == "steps.1.target"
    assert error["message"] == f"step 1: port {secret_port['id']} not found"
    assert "Секретная" not in str(error)
    steps[0]["target"]["id"] = secret_port["id"] + 1000
    missing = _refused(pbx, steps)
    assert missing["message"] == f"step 1: port {secret_port['id'] + 1000} not found"
    assert missing["details"][0]["code"] == error["details"][0]["code"] == "target_not_found"


def test_wrong_or_missing_target(pbx):
    """DP-5: an action without its target, or with a target of the wrong kind."""
    steps = seed_steps(pbx)
    del steps[0]["target"]
    error = _refused(pbx, steps)
    assert (error["field"], error["details"][0]["code"]) == ("steps.1.target", "target_required")
    steps = seed_steps(pbx)
    steps[1]["target"] = {"kind": "port", "id": pbx.port_id}
    error = _refused(pbx, steps)
    assert (error["field"], error["details"][0]["code"]) == ("steps.2.target", "target_wrong_kind")


def test_forward_cycle_is_refused(pbx):
    """DP-5: forward conditions that loop are refused, naming the first step of the loop."""
    steps = seed_steps(pbx)
    steps[0]["conditions"] = {"forward": 2}
    steps[1]["conditions"] = {"forward": 3}
    steps.append({"level": 3, "action": "hangup", "conditions": {"forward": 2}})
    error = _refused(pbx, steps)
    cycle = next(d for d in error["details"] if d["code"] == "forward_cycle")
    assert cycle["field"] == "steps.2.conditions.forward"
    assert "step 2 → step 3 → step 2" in cycle["message"]


def test_warnings_do_not_block_saving(pbx):
    """DP-5: an unreachable step is a warning: saved, and shown with the dialplan."""
    steps = seed_steps(pbx)
    steps.append({"level": 5, "action": "hangup"})
    dp = _create(pbx, steps)
    assert [(w["code"], w["field"]) for w in dp["warnings"]] == [("unreachable", "steps.5.level")]


def test_validate_is_a_dry_run(pbx):
    """DP-5: the editor checks steps without saving; every issue is listed."""
    steps = seed_steps(pbx)
    steps[0]["timeout"] = 99999
    steps[1]["conditions"] = {"busy": 9}
    result = pbx.admin.ok("post", f"{pbx.base}/dialplans/validate", json={"steps": steps})
    assert result["valid"] is False
    assert {i["field"] for i in result["issues"]} == {"steps.1.timeout", "steps.2.conditions.busy"}
    ok = pbx.admin.ok("post", f"{pbx.base}/dialplans/validate", json={"steps": seed_steps(pbx)})
    assert ok == {"valid": True, "issues": []}
    assert pbx.admin.ok("get", f"{pbx.base}/dialplans")["total"] == 0


# --- versions (DP-4 "versions") ------------------------------------------------------------


def test_saving_adds_versions_and_rollback_copies(pbx, world):
    """DP-4 versions: each save is version N+1, old versions stay, rollback adds a copy."""
    v1 = _create(pbx, comment="first")
    changed = seed_steps(pbx)
    changed[0]["timeout"] = 20
    v2 = _save(pbx, v1, changed)
    assert v2["version"] == 2
    assert v2["steps"][0]["timeout"] == 20
    url = f"{pbx.base}/dialplans/{v1['id']}"
    old = pbx.admin.ok("get", f"{url}/versions/1")
    assert old["steps"] == v1["steps"]
    assert (old["comment"], old["current"]) == ("first", False)
    back = pbx.admin.ok("post", f"{url}/rollback", json={"version": 1})
    assert back["version"] == 3
    assert back["steps"] == v1["steps"]
    versions = pbx.admin.ok("get", f"{url}/versions")
    assert versions["current_version"] == 3
    summary = [(v["number"], v["step_count"], v["current"]) for v in versions["items"]]
    assert summary == [(3, 2, True), (2, 2, False), (1, 2, False)]
    assert versions["items"][0]["comment"] == "rollback to version 1"
    assert versions["items"][0]["created_by"] == pbx.admin.user_id
    assert pbx.admin.ok("get", f"{url}/versions/2")["steps"][0]["timeout"] == 20
    assert pbx.admin.get(f"{url}/versions/9").status_code == 404
    assert pbx.admin.post(f"{url}/rollback", json={"version": 9}).status_code == 404
    with make_sessionmaker(world.engine)() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "dialplans").order_by(AuditEntry.id)
        ).all()
        assert [r.action for r in rows] == ["create", "update", "rollback"]
        before, after = rows[1].before or {}, rows[1].after or {}
        assert before["steps"][0]["timeout"] == 5
        assert after["steps"][0]["timeout"] == 20


def test_stale_base_version_is_a_conflict(pbx):
    """DP-4 versions: saving over someone else's newer version is refused with 409."""
    v1 = _create(pbx)
    _save(pbx, v1, seed_steps(pbx))
    stale = _save(pbx, v1, seed_steps(pbx), status=409)
    assert stale["field"] == "base_version"
    assert "changed by someone else" in stale["message"]
    assert pbx.admin.ok("get", f"{pbx.base}/dialplans/{v1['id']}")["version"] == 2


def test_invalid_save_keeps_current_version(pbx):
    """DP-5: a refused save stores nothing."""
    v1 = _create(pbx)
    broken = seed_steps(pbx)
    broken[0]["conditions"] = {"no_answer": 4}
    error = _save(pbx, v1, broken, status=422)
    assert error["field"] == "steps.1.conditions.no_answer"
    versions = pbx.admin.ok("get", f"{pbx.base}/dialplans/{v1['id']}/versions")
    assert [v["number"] for v in versions["items"]] == [1]


def test_rename_and_delete(pbx):
    """DP-1: name/description change without a new version; a dialplan can be deleted."""
    dp = _create(pbx)
    url = f"{pbx.base}/dialplans/{dp['id']}"
    renamed = pbx.admin.ok("patch", url, json={"name": "Office", "description": "day"})
    assert (renamed["name"], renamed["version"]) == ("Office", 1)
    refused = pbx.admin.patch(url, json={"steps": []})
    assert refused.status_code == 422
    pbx.admin.ok("delete", url, 204)
    assert pbx.admin.get(url).status_code == 404


# --- rights (ADM-1, ADM-4) -----------------------------------------------------------------


def test_client_user_reaches_only_their_numbers_dialplan(pbx, world):
    """ADM-1: a client user reads and changes the dialplan of their number, not others'."""
    mine = _create(pbx)
    number_200 = pbx.admin.ok("post", f"{pbx.base}/internal-numbers", 201, json={"number": "200"})
    theirs = _create(pbx, internal_number_id=number_200["id"], name="Other")
    user_id = world.user(Level.CLIENT_USER, pbx.cid)
    with make_sessionmaker(world.engine)() as session:
        session.add(UserInternalNumber(user_id=user_id, internal_number_id=pbx.number_id))
        session.commit()
    user = world.login(user_id)
    listing = user.ok("get", f"{pbx.base}/dialplans")
    assert [d["id"] for d in listing["items"]] == [mine["id"]]
    user.ok("get", f"{pbx.base}/dialplans/{mine['id']}")
    changed = seed_steps(pbx)
    changed[0]["timeout"] = 30
    body = {"steps": changed, "base_version": 1}
    saved = _put(user, f"{pbx.base}/dialplans/{mine['id']}/steps", json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 2
    other_url = f"{pbx.base}/dialplans/{theirs['id']}"
    assert user.get(other_url).status_code == 404
    assert user.get(f"{other_url}/versions").status_code == 404
    assert _put(user, f"{other_url}/steps", json=body).status_code == 404
    assert user.post(f"{other_url}/rollback", json={"version": 1}).status_code == 404
    create = user.post(
        f"{pbx.base}/dialplans", json={"internal_number_id": pbx.number_id, "steps": changed}
    )
    assert create.status_code == 403
    assert user.delete(f"{pbx.base}/dialplans/{mine['id']}").status_code == 403


def test_other_tenant_gets_404(pbx, world):
    """ADM-4: another client's dialplan, versions and usages answer 404."""
    dp = _create(pbx)
    other_cid = world.client("Other")
    other = world.caller(Level.CLIENT_ADMIN, other_cid)
    for url in (
        f"{pbx.base}/dialplans/{dp['id']}",
        f"{pbx.base}/dialplans/{dp['id']}/versions",
        f"{API}/clients/{other_cid}/dialplans/{dp['id']}",
        f"{API}/clients/{other_cid}/dialplans/{dp['id']}/versions/1",
        f"{API}/clients/{other_cid}/usages?kind=port&id={pbx.port_id}",
    ):
        assert other.get(url).status_code == 404, url
    body = {"steps": seed_steps(pbx), "base_version": 1}
    own_scope = f"{API}/clients/{other_cid}/dialplans/{dp['id']}/steps"
    assert _put(other, own_scope, json=body).status_code == 404


# --- "where is this port used?" (DP-1) -----------------------------------------------------


def test_deleting_a_port_used_by_the_current_version_is_refused(pbx):
    """DP-1: a port in a live dialplan cannot vanish; one only in an old version can."""
    dp = _create(pbx)
    port_url = f"{pbx.base}/ports/{pbx.port_id}"
    refused = pbx.admin.delete(port_url)
    assert refused.status_code == 409
    assert refused.json()["details"] == [
        {"entity": "dialplans", "id": dp["id"], "label": "Main step 1", "field": "port_id"}
    ]
    without_port = [
        {"level": 1, "action": "play_message", "target": {"kind": "media_file", "id": pbx.media_id}}
    ]
    _save(pbx, dp, without_port)
    pbx.admin.ok("delete", port_url, 204)
    url = f"{pbx.base}/dialplans/{dp['id']}"
    old = pbx.admin.ok("get", f"{url}/versions/1")
    assert old["steps"][0]["target"] is None
    assert old["warnings"][0]["code"] == "target_required"
    back = pbx.admin.post(f"{url}/rollback", json={"version": 1})
    assert back.status_code == 422
    assert back.json()["code"] == "dialplan_invalid"
    assert back.json()["field"] == "steps.1.target"


def test_usages_lists_dialplan_steps_and_queues(pbx, world):
    """DP-1: "where is this port used?" — dialplan steps of current versions and queues."""
    dp = _create(pbx)
    steps = seed_steps(pbx)
    steps.append(
        {
            "level": 3,
            "action": "ring_port",
            "target": {"kind": "port", "id": pbx.port_id},
            "conditions": {},
        }
    )
    steps[1]["conditions"] = {"after_answer": 3}
    _save(pbx, dp, steps)
    with make_sessionmaker(world.engine)() as session:
        queue = Queue(client_id=pbx.cid, name="Sales")
        queue.agents = [QueueAgent(port_id=pbx.port_id)]
        session.add(queue)
        session.commit()
        queue_id = queue.id
    usages = pbx.admin.ok("get", f"{pbx.base}/usages?kind=port&id={pbx.port_id}")
    assert usages["dialplans"] == [
        {
            "id": dp["id"],
            "name": "Main",
            "internal_number_id": pbx.number_id,
            "external_number_id": None,
            "version": 2,
            "levels": [1, 3],
        }
    ]
    assert usages["queues"] == [{"id": queue_id, "name": "Sales", "where": ["agent"]}]
    assert usages["voice_menus"] == usages["campaigns"] == []
    media = pbx.admin.ok("get", f"{pbx.base}/usages?kind=media_file&id={pbx.media_id}")
    assert media["dialplans"][0]["levels"] == [2]
    unused = pbx.admin.ok("get", f"{pbx.base}/usages?kind=internal_number&id={pbx.number_id}")
    assert unused["dialplans"] == []
    assert pbx.admin.get(f"{pbx.base}/usages?kind=port&id=999999").status_code == 404
    assert pbx.admin.get(f"{pbx.base}/usages?kind=phone&id=1").status_code == 422
