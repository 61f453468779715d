"""Outbound calls from phones (TRK-1, §3a, ADM-5): what a dialled number becomes and whether
the client may call it. Pure."""

from __future__ import annotations

import pytest

from cloudpbx.engine.outbound import Destination, destination, direction_allowed, own_number
from cloudpbx.numbers import Direction, NumberingPlan

PLAN = NumberingPlan()
DEFAULT_ALLOWED = frozenset({"internal", "local", "long_distance", "toll_free", "emergency"})


@pytest.mark.parametrize(
    ("dialled", "area", "expected"),
    [
        ("89161234567", "495", Destination("+79161234567", Direction.LONG_DISTANCE)),
        ("84951234567", "495", Destination("+74951234567", Direction.LOCAL)),
        ("4951234567", "495", Destination("+74951234567", Direction.LOCAL)),
        ("1234567", "495", Destination("+74951234567", Direction.LOCAL)),
        ("+79161234567", None, Destination("+79161234567", Direction.LONG_DISTANCE)),
        ("81049301234567", "495", Destination("+49301234567", Direction.INTERNATIONAL)),
        ("88001234567", "495", Destination("+78001234567", Direction.TOLL_FREE)),
        ("87012345678", "495", Destination("+77012345678", Direction.INTERNATIONAL)),
    ],
)
def test_dialled_numbers_are_normalised_and_classified(
    dialled: str, area: str | None, expected: Destination
) -> None:
    """TRK-1, §3a, CDR-1: the phone's digits become E.164 under the plan and the client's
    area code, with the direction (local / МГ / МН / toll-free; +7 7xx is Kazakhstan)."""
    assert destination(dialled, PLAN, area) == expected


def test_emergency_numbers_stay_as_dialled() -> None:
    """§3a: emergency numbers are not E.164; they go out as dialled, direction emergency."""
    for number in ("112", "101", "104"):
        assert destination(number, PLAN, "495") == Destination(number, Direction.EMERGENCY)
    custom = NumberingPlan(emergency_numbers=frozenset({"911"}))
    assert destination("911", custom, None) == Destination("911", Direction.EMERGENCY)


def test_short_number_without_area_code_and_garbage_are_not_numbers() -> None:
    """§3a: a 7-digit number needs an area code (client's or installation's); anything that
    is not a telephone number stays the DP-4 404 (None)."""
    assert destination("1234567", PLAN, None) is None
    assert destination("1234567", NumberingPlan(default_area_code="812"), None) == Destination(
        "+78121234567", Direction.LOCAL
    )
    for junk in ("alice", "555", "8916123456789012", "*21#"):
        assert destination(junk, PLAN, "495") is None


def test_direction_limits_never_block_emergency() -> None:
    """ADM-5 "allowed directions": the client's list decides (international is off by
    default); emergency calls are always allowed, even with an empty list."""
    assert direction_allowed(Direction.LONG_DISTANCE, DEFAULT_ALLOWED)
    assert not direction_allowed(Direction.INTERNATIONAL, DEFAULT_ALLOWED)
    assert direction_allowed(Direction.INTERNATIONAL, DEFAULT_ALLOWED | {"international"})
    assert direction_allowed(Direction.EMERGENCY, frozenset())
    assert not direction_allowed(Direction.LOCAL, frozenset({"internal"}))


class _Snapshot:
    area_code = "495"
    numbers = {"+74951234567": "the DID's NumberInfo", "101": "an extension"}


def test_own_external_number_in_national_form_stays_inside() -> None:
    """NUM-1, TRK-1: a phone dialling its own client's DID as 8495…, 495… or 7 local digits
    reaches that number's dialplan, not the carrier; other numbers and 112 are not the client's."""
    for dialled in ("84951234567", "4951234567", "1234567", "+74951234567"):
        assert own_number(_Snapshot(), dialled, PLAN) == "the DID's NumberInfo"
    assert own_number(_Snapshot(), "89161234567", PLAN) is None
    assert own_number(_Snapshot(), "112", PLAN) is None
