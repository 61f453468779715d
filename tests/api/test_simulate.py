"""DP-6 through the API: ``POST /clients/{id}/dialplans/{id}/simulate`` runs the engine's
interpreter on assumed states and answers with the path, each move with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from cloudpbx.db.models import MediaFile, MediaPack
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import Level

API = "/api/v1"


@dataclass
class Pbx:
    """The seed's client: number 100 rings "Линия 1" 5 s, no answer → the message "moh"."""

    cid: int
    admin: Any
    numbers: dict[str, int]
    port_id: int
    media_id: int
    dialplan: dict[str, Any]

    @property
    def base(self) -> str:
        return f"{API}/clients/{self.cid}"

    @property
    def url(self) -> str:
        return f"{self.base}/dialplans/{self.dialplan['id']}/simulate"

    def simulate(self, status: int = 200, **body: Any) -> Any:
        return self.admin.ok("post", self.url, status, json=body)


def _media(world: Any, cid: int) -> int:
    with make_sessionmaker(world.engine)() as session:
        pack = MediaPack(client_id=cid, name="pack")
        session.add(pack)
        session.flush()
        media = MediaFile(client_id=cid, pack_id=pack.id, name="moh", duration_ms=12_500)
        session.add(media)
        session.commit()
        return media.id


def _steps(port_id: int, media_id: int) -> list[dict[str, Any]]:
    return [
        {
            "level": 1,
            "action": "ring_port",
            "target": {"kind": "port", "id": port_id},
            "timeout": 5,
            "schedule": {"days": [0, 1, 2, 3, 4], "ranges": [["09:00", "18:00"]]},
            "conditions": {"no_answer": 2, "no_route": 2},
        },
        {"level": 2, "action": "play_message", "target": {"kind": "media_file", "id": media_id}},
    ]


@pytest.fixture
def pbx(world: Any) -> Pbx:
    cid = world.client("Acme", timezone="Europe/Moscow")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    base = f"{API}/clients/{cid}"
    numbers = {
        n: admin.ok("post", f"{base}/internal-numbers", 201, json={"number": n})["id"]
        for n in ("100", "200", "300")
    }
    port = admin.ok("post", f"{base}/ports", 201, json={"name": "Линия 1", "sip_login": "a-1"})
    media_id = _media(world, cid)
    body = {
        "name": "Main",
        "internal_number_id": numbers["100"],
        "steps": _steps(port["id"], media_id),
    }
    dialplan = admin.ok("post", f"{base}/dialplans", 201, json=body)
    return Pbx(cid, admin, numbers, port["id"], media_id, dialplan)


MONDAY_NOON = "2026-03-02T12:00:00+03:00"


def test_seed_dialplan_no_answer_path(pbx: Pbx) -> None:
    """DP-6: caller 200 calls 100 on Monday at noon, nobody answers: step 1 rings 5 s, then
    step 2 plays the 12.5 s message and the call ends with a BYE."""
    result = pbx.simulate(caller="200", time=MONDAY_NOON)
    assert result["number"] == "100"
    assert result["steps"] == [1, 2]
    assert [m["condition"] for m in result["moves"]] == ["entry", "no_answer", "after_answer"]
    assert "rang 5 s" in result["moves"][1]["reason"]
    assert result["moves"][1]["elapsed_s"] == 5
    assert (result["outcome"], result["sip_status"], result["answered"]) == (
        "after_answer",
        None,
        True,
    )
    assert result["seconds"] == 17.5
    assert result["local_start"].startswith("2026-03-02T12:00:00")
    assert result["time_zone"] == "Europe/Moscow"


def test_assumptions_answered_busy_unregistered(pbx: Pbx) -> None:
    """DP-6: with the port answering the call ends after the talk; busy without a Busy step
    is 486; unregistered takes No route to step 2."""
    port = {"kind": "port", "id": pbx.port_id}
    answered = pbx.simulate(
        time=MONDAY_NOON,
        assumptions=[{"target": port, "answer": "answer", "after_s": 2, "talk_s": 20}],
    )
    assert (answered["steps"], answered["seconds"], answered["sip_status"]) == ([1], 22, None)
    busy = pbx.simulate(time=MONDAY_NOON, assumptions=[{"target": port, "answer": "busy"}])
    assert (busy["outcome"], busy["sip_status"]) == ("busy", 486)
    offline = pbx.simulate(time=MONDAY_NOON, assumptions=[{"target": port, "registered": False}])
    assert offline["steps"] == [1, 2]
    assert "not registered" in offline["moves"][1]["reason"]


def test_time_outside_the_schedule_and_local_time(pbx: Pbx) -> None:
    """DP-6 with DP-4 schedules: Saturday is closed → No route (step 2); a time without an
    offset is the client's wall clock (20:00 Moscow is closed)."""
    saturday = pbx.simulate(time="2026-03-07T12:00:00+03:00")
    assert saturday["steps"] == [1, 2]
    assert "schedule is closed" in saturday["moves"][1]["reason"]
    evening = pbx.simulate(time="2026-03-02T20:00:00")
    assert evening["moves"][1]["condition"] == "no_route"
    assert evening["start"].startswith("2026-03-02T17:00:00")


def test_older_version_is_simulated_on_request(pbx: Pbx) -> None:
    """DP-6 with DP-4 "versions": ``version`` picks a stored version; the default is the
    current one."""
    url = f"{pbx.base}/dialplans/{pbx.dialplan['id']}/steps"
    hangup = [{"level": 1, "action": "hangup"}]
    pbx.admin.ok("put", url, json={"steps": hangup, "base_version": 1})
    now = pbx.simulate(time=MONDAY_NOON)
    assert (now["version"], now["outcome"], now["sip_status"]) == (2, "hangup", 603)
    old = pbx.simulate(time=MONDAY_NOON, version=1)
    assert (old["version"], old["steps"]) == (1, [1, 2])


def test_unknown_number_is_404_and_another_number_is_refused(pbx: Pbx) -> None:
    """DP-6 with DP-4: 404 only when the dialled number does not exist; a number that has
    its own dialplan is a 422 naming ``number``."""
    unknown = pbx.simulate(number="555")
    assert (unknown["outcome"], unknown["sip_status"], unknown["steps"]) == (
        "unknown_number",
        404,
        [],
    )
    other = pbx.admin.post(pbx.url, json={"number": "200"})
    assert other.status_code == 422
    assert other.json()["field"] == "number"


def test_goto_and_menu_follow_other_numbers(pbx: Pbx, world: Any) -> None:
    """DP-6: a voice menu key goes to number 200, whose own dialplan continues the call;
    number 300 has no dialplan, so its key gives No route."""
    base = pbx.base
    body = {
        "name": "Sales",
        "internal_number_id": pbx.numbers["200"],
        "steps": [
            {
                "level": 1,
                "action": "goto_number",
                "target": {"kind": "internal_number", "id": pbx.numbers["100"]},
            },
        ],
    }
    pbx.admin.ok("post", f"{base}/dialplans", 201, json=body)
    keys = [
        {"key": "2", "internal_number_id": pbx.numbers["200"]},
        {"key": "3", "internal_number_id": pbx.numbers["300"]},
    ]
    menu = pbx.admin.ok("post", f"{base}/voice-menus", 201, json={"name": "IVR", "keys": keys})
    url = f"{base}/dialplans/{pbx.dialplan['id']}/steps"
    steps = [
        {
            "level": 1,
            "action": "voice_menu",
            "target": {"kind": "voice_menu", "id": menu["id"]},
            "conditions": {"no_answer": 2},
        },
        {"level": 2, "action": "hangup"},
    ]
    pbx.admin.ok("put", url, json={"steps": steps, "base_version": 1})
    looping = pbx.simulate(time=MONDAY_NOON, menu_digits=["2"])
    assert looping["outcome"] == "loop"
    assert {m["number"] for m in looping["moves"]} == {"100", "200"}
    dead = pbx.simulate(time=MONDAY_NOON, menu_digits=["3"])
    assert (dead["outcome"], dead["sip_status"]) == ("no_route", None)
    assert "300 has no dialplan" in dead["moves"][-1]["reason"]
    silent = pbx.simulate(time=MONDAY_NOON)
    assert silent["steps"] == [1, 2]
    assert silent["seconds"] == 4 * (5 + 3)


def test_classifier_checks_the_caller(pbx: Pbx) -> None:
    """DP-6 with DP-2 classifier: the caller (normalised to E.164) is looked up in the list."""
    base = pbx.base
    cls = pbx.admin.ok("post", f"{base}/classifiers", 201, json={"name": "VIP"})
    contact = {"classifier_id": cls["id"], "clip": "+79161234567"}
    pbx.admin.ok("post", f"{base}/contacts", 201, json=contact)
    steps = [
        {
            "level": 1,
            "action": "classifier",
            "target": {"kind": "classifier", "id": cls["id"]},
            "params": {"found_step": 2, "not_found_step": 3},
        },
        {"level": 2, "action": "hangup"},
        {
            "level": 3,
            "action": "play_message",
            "target": {"kind": "media_file", "id": pbx.media_id},
        },
    ]
    url = f"{base}/dialplans/{pbx.dialplan['id']}/steps"
    pbx.admin.ok("put", url, json={"steps": steps, "base_version": 1})
    assert pbx.simulate(caller="89161234567")["steps"] == [1, 2]
    assert pbx.simulate(caller="+79990000000")["steps"] == [1, 3]


def test_empty_body_uses_defaults(pbx: Pbx) -> None:
    """DP-6: no body at all simulates the current version, now, for the dialplan's number."""
    response = pbx.admin.post(pbx.url)
    assert response.status_code == 200, response.text
    assert response.json()["number"] == "100"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": 9}, "version"),
        ({"time": "1900-01-01T00:00:00Z"}, "time"),
        ({"time": "not a time"}, "time"),
        (
            {"assumptions": [{"target": {"kind": "port", "id": 1}, "answer": "maybe"}]},
            "assumptions.0.answer",
        ),
        ({"menu_digits": ["12a"]}, "menu_digits.0"),
        (
            {
                "assumptions": [
                    {"target": {"kind": "port", "id": 1}},
                    {"target": {"kind": "port", "id": 1}},
                ]
            },
            "assumptions.1.target",
        ),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_is_422_naming_the_field(pbx: Pbx, body: dict[str, Any], field: str) -> None:
    """DP-6: bad input answers 422 naming the field."""
    response = pbx.admin.post(pbx.url, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_rights_and_tenancy(pbx: Pbx, world: Any) -> None:
    """ADM-1, ADM-4: another client's administrator gets 404; a client user without the
    number assigned gets 404 too."""
    other = world.client("Other")
    stranger = world.caller(Level.CLIENT_ADMIN, other)
    assert stranger.post(pbx.url, json={}).status_code == 404
    foreign = f"{API}/clients/{other}/dialplans/{pbx.dialplan['id']}/simulate"
    assert stranger.post(foreign, json={}).status_code == 404
    user = world.caller(Level.CLIENT_USER, pbx.cid)
    assert user.post(pbx.url, json={}).status_code == 404


def test_cli_simulate_prints_the_path(pbx: Pbx, settings: Any, capsys: Any) -> None:
    """DP-6: ``cloudpbx simulate`` runs the same simulation from the command line."""
    from cloudpbx.cli import build_parser, cmd_simulate

    argv = ["simulate", "--client", str(pbx.cid), "--number", "100", "--caller", "200"]
    argv += ["--time", "2026-03-02T12:00:00", "--assume", f"port:{pbx.port_id}=busy@1"]
    assert cmd_simulate(settings, build_parser().parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "port" in out
    assert "busy" in out
    assert "outcome busy, SIP 486, steps [1]" in out
    as_json = [*argv, "--json", "--dialplan", str(pbx.dialplan["id"])]
    assert cmd_simulate(settings, build_parser().parse_args(as_json)) == 0
    assert '"sip_status": 486' in capsys.readouterr().out
    wrong = ["simulate", "--client", str(pbx.cid), "--number", "999"]
    assert cmd_simulate(settings, build_parser().parse_args(wrong)) == 2
    assert "999" in capsys.readouterr().err
