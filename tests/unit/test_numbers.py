"""Tests for cloudpbx.numbers (PRODUCT.md §3a "Numbers", CDR-1 direction)."""

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cloudpbx.numbers import (
    Direction,
    InvalidNumber,
    NumberingPlan,
    classify,
    digits_only,
    is_emergency,
    is_valid_internal_number,
    normalize_e164,
    trailing_digits,
)

RUSSIA = NumberingPlan()
MOSCOW = NumberingPlan(default_area_code="495")
# A small-town client: 5-digit area code, 5-digit local numbers (Dimitrovgrad, 84235).
SMALL_TOWN = NumberingPlan(default_area_code="84235")
# Not Russia: the plan is data, not hard-coded (national prefix 0, "00" abroad, 9 digits).
FRANCE = NumberingPlan(
    country_code="33",
    national_prefix="0",
    international_prefix="00",
    national_number_length=9,
    emergency_numbers=frozenset({"112", "15", "17", "18"}),
    toll_free_codes=frozenset({"80"}),
    foreign_national_prefixes=frozenset(),
)

E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@pytest.mark.parametrize(
    ("raw", "plan", "expected"),
    [
        pytest.param("+74951234567", RUSSIA, "+74951234567", id="e164"),
        pytest.param("74951234567", RUSSIA, "+74951234567", id="country-code-no-plus"),
        pytest.param("84951234567", RUSSIA, "+74951234567", id="national-prefix"),
        pytest.param("8 (495) 123-45-67", RUSSIA, "+74951234567", id="business-card"),
        pytest.param("+7 (495) 123-45-67", RUSSIA, "+74951234567", id="e164-formatted"),
        pytest.param("+7.495.123.45.67", RUSSIA, "+74951234567", id="dots"),
        pytest.param(" 8\t495\u00a0123 45 67 ", RUSSIA, "+74951234567", id="odd-whitespace"),
        pytest.param("4951234567", RUSSIA, "+74951234567", id="ten-digit-national"),
        pytest.param("89161234567", RUSSIA, "+79161234567", id="mobile-fwd-1-example"),
        pytest.param("8123456789", RUSSIA, "+78123456789", id="national-starting-with-8"),
        pytest.param("8 800 100-00-00", RUSSIA, "+78001000000", id="toll-free"),
        pytest.param("8 10 49 30 1234567", RUSSIA, "+49301234567", id="intl-8-10"),
        pytest.param("81049301234567", RUSSIA, "+49301234567", id="intl-8-10-compact"),
        pytest.param("0049301234567", RUSSIA, "+49301234567", id="intl-00"),
        pytest.param("810 1 212 555 0100", RUSSIA, "+12125550100", id="intl-nanp"),
        pytest.param("810 7 495 1234567", RUSSIA, "+74951234567", id="intl-prefix-to-home"),
        pytest.param("+7 727 123 45 67", RUSSIA, "+77271234567", id="kazakhstan-e164"),
        pytest.param("8 727 123 45 67", RUSSIA, "+77271234567", id="kazakhstan-national"),
        pytest.param("7271234567", RUSSIA, "+77271234567", id="kazakhstan-ten-digit"),
        pytest.param("+6834002", RUSSIA, "+6834002", id="shortest-e164-niue"),
        pytest.param("+123456789012345", RUSSIA, "+123456789012345", id="fifteen-digits"),
        pytest.param("1234567", MOSCOW, "+74951234567", id="local-with-area-code"),
        pytest.param("123-45-67", MOSCOW, "+74951234567", id="local-formatted"),
        pytest.param("84951234567", MOSCOW, "+74951234567", id="moscow-national"),
        pytest.param("12345", SMALL_TOWN, "+78423512345", id="local-5-digit-area"),
        pytest.param("01 23 45 67 89", FRANCE, "+33123456789", id="france-national"),
        pytest.param("123456789", FRANCE, "+33123456789", id="france-nsn"),
        pytest.param("00 7 495 123 45 67", FRANCE, "+74951234567", id="france-to-russia"),
    ],
)
def test_normalize_e164(raw: str, plan: NumberingPlan, expected: str) -> None:
    assert normalize_e164(raw, plan) == expected


@pytest.mark.parametrize(
    ("raw", "plan", "message"),
    [
        pytest.param("", RUSSIA, "empty telephone number", id="empty"),
        pytest.param(" - () ", RUSSIA, "empty telephone number", id="separators-only"),
        pytest.param("abc", RUSSIA, "not a telephone number: 'abc'", id="letters"),
        pytest.param("+7 495 ABC", RUSSIA, "not a telephone number", id="letters-inside"),
        pytest.param("tel:+74951234567", RUSSIA, "not a telephone number", id="tel-uri"),
        pytest.param("sip:74951234567@pbx", RUSSIA, "not a telephone number", id="sip-uri"),
        pytest.param("7+4951234567", RUSSIA, "not a telephone number", id="plus-inside"),
        pytest.param("++74951234567", RUSSIA, "not a telephone number", id="double-plus"),
        pytest.param("+", RUSSIA, "not a telephone number", id="plus-only"),
        pytest.param("٤٩٥١٢٣٤٥٦٧", RUSSIA, "not a telephone number", id="arabic-digits"),
        pytest.param("８４９５１２３４５６７", RUSSIA, "not a telephone number", id="fullwidth"),
        pytest.param("84951234567#", RUSSIA, "not a telephone number", id="hash"),
        pytest.param("+1234567890123456", RUSSIA, "too long for E.164 (16 digits)", id="16"),
        pytest.param("810 1234567890123456", RUSSIA, "too long for E.164 (16", id="intl-long"),
        pytest.param("+123456", RUSSIA, "too short for E.164 (6 digits)", id="short"),
        pytest.param("810", RUSSIA, "too short for E.164 (0 digits)", id="prefix-only"),
        pytest.param("+049301234567", RUSSIA, "country code cannot start with 0", id="cc-0"),
        pytest.param("00 049 301234567", RUSSIA, "country code cannot start with 0", id="intl-0"),
        pytest.param("+7495123456", RUSSIA, "10 digits after the country code, not 9", id="+7-9"),
        pytest.param("+749512345678", RUSSIA, "not 11", id="plus7-eleven"),
        pytest.param("1234567", RUSSIA, "cannot read 7 digits", id="local-without-area"),
        pytest.param("495123456", RUSSIA, "cannot read 9 digits", id="nine-digits"),
        pytest.param("49301234567", RUSSIA, "write international numbers with +", id="no-plus"),
        pytest.param("112", RUSSIA, "112 is an emergency number", id="emergency"),
        pytest.param("1-0-3", MOSCOW, "103 is an emergency number", id="emergency-formatted"),
        pytest.param("100", RUSSIA, "cannot read 3 digits", id="extension"),
        pytest.param("01234567890", FRANCE, "cannot read 11 digits", id="france-too-long"),
    ],
)
def test_normalize_e164_rejects(raw: str, plan: NumberingPlan, message: str) -> None:
    with pytest.raises(InvalidNumber, match=re.escape(message)):
        normalize_e164(raw, plan)


def test_invalid_number_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a telephone number"):
        normalize_e164("abc", RUSSIA)


def test_long_garbage_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidNumber) as caught:
        normalize_e164("x" * 10_000, RUSSIA)
    assert len(str(caught.value)) < 100


# A phone number as people write it: optional +, digits, separators anywhere.
dialled = st.from_regex(r"\A\+?[0-9 ()\-.]{0,20}\Z")
# Mostly-valid numbers, so that the success paths are exercised as well as the rejections.
plausible = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["", "+", "+7", "7", "8", "810", "00", "8 (", "+7 ("]),
        st.from_regex(r"\A[0-9][0-9 \-]{4,16}[0-9]\Z"),
    ),
)


@given(st.one_of(st.text(), dialled))
@example("+74951234567")
@example("8 10 49 30 1234567")
def test_normalize_raises_only_invalid_number(raw: str) -> None:
    for plan in (RUSSIA, MOSCOW, FRANCE):
        try:
            result = normalize_e164(raw, plan)
        except InvalidNumber:
            continue
        assert E164.fullmatch(result), result


@given(st.one_of(dialled, plausible))
@example("84951234567")
@example("1234567")
@example("0049301234567")
def test_normalize_is_idempotent(raw: str) -> None:
    for plan in (RUSSIA, MOSCOW, SMALL_TOWN, FRANCE):
        try:
            once = normalize_e164(raw, plan)
        except InvalidNumber:
            continue
        assert normalize_e164(once, plan) == once


@pytest.mark.parametrize(
    ("raw", "plan", "expected"),
    [
        pytest.param("112", RUSSIA, True, id="112"),
        pytest.param("101", RUSSIA, True, id="101-fire"),
        pytest.param("104", RUSSIA, True, id="104-gas"),
        pytest.param(" 1-1-2 ", RUSSIA, True, id="formatted"),
        pytest.param("103", MOSCOW, True, id="any-plan-settings"),
        pytest.param("105", RUSSIA, False, id="not-listed"),
        pytest.param("1120", RUSSIA, False, id="longer"),
        pytest.param("8112", RUSSIA, False, id="with-prefix"),
        pytest.param("+112", RUSSIA, False, id="plus"),
        pytest.param("abc112", RUSSIA, False, id="garbage"),
        pytest.param("", RUSSIA, False, id="empty"),
        pytest.param("911", RUSSIA, False, id="911-not-in-russia"),
        pytest.param("911", NumberingPlan(emergency_numbers=frozenset({"911"})), True, id="set"),
        pytest.param("15", FRANCE, True, id="france-samu"),
    ],
)
def test_is_emergency(raw: str, plan: NumberingPlan, expected: bool) -> None:
    assert is_emergency(raw, plan) is expected


@pytest.mark.parametrize(
    ("e164", "area", "plan", "expected"),
    [
        pytest.param("+74951234567", "495", RUSSIA, Direction.LOCAL, id="same-area"),
        pytest.param("+74991234567", "495", RUSSIA, Direction.LONG_DISTANCE, id="other-area"),
        pytest.param("+78121234567", "495", RUSSIA, Direction.LONG_DISTANCE, id="spb"),
        pytest.param("+79161234567", "495", RUSSIA, Direction.LONG_DISTANCE, id="mobile"),
        pytest.param("+74951234567", None, RUSSIA, Direction.LONG_DISTANCE, id="no-area"),
        pytest.param("+74951234567", None, MOSCOW, Direction.LOCAL, id="plan-default-area"),
        pytest.param("+74951234567", "812", MOSCOW, Direction.LONG_DISTANCE, id="client-wins"),
        pytest.param("+78001000000", "495", RUSSIA, Direction.TOLL_FREE, id="toll-free"),
        pytest.param("+78001000000", None, RUSSIA, Direction.TOLL_FREE, id="toll-free-no-area"),
        pytest.param("+77271234567", "495", RUSSIA, Direction.INTERNATIONAL, id="kz-almaty"),
        pytest.param("+77011234567", "495", RUSSIA, Direction.INTERNATIONAL, id="kz-mobile"),
        pytest.param("+76001234567", "495", RUSSIA, Direction.INTERNATIONAL, id="kz-6xx"),
        pytest.param("+77271234567", "727", RUSSIA, Direction.INTERNATIONAL, id="kz-own-area"),
        pytest.param("+49301234567", "495", RUSSIA, Direction.INTERNATIONAL, id="germany"),
        pytest.param("+12125550100", "495", RUSSIA, Direction.INTERNATIONAL, id="nanp"),
        pytest.param("+375171234567", "495", RUSSIA, Direction.INTERNATIONAL, id="belarus"),
        pytest.param("+78423512345", "84235", RUSSIA, Direction.LOCAL, id="5-digit-area"),
        pytest.param("+78422123456", "84235", RUSSIA, Direction.LONG_DISTANCE, id="near-area"),
        pytest.param("+33123456789", "1", FRANCE, Direction.LOCAL, id="france-local"),
        pytest.param("+33800123456", "1", FRANCE, Direction.TOLL_FREE, id="france-free"),
        pytest.param("+74951234567", "1", FRANCE, Direction.INTERNATIONAL, id="france-to-ru"),
    ],
)
def test_classify(e164: str, area: str | None, plan: NumberingPlan, expected: Direction) -> None:
    assert classify(e164, plan, client_area_code=area) is expected


@pytest.mark.parametrize(
    ("e164", "message"),
    [
        pytest.param("84951234567", "not in E.164 form", id="national"),
        pytest.param("+7 495 123 45 67", "not in E.164 form", id="formatted"),
        pytest.param("112", "not in E.164 form", id="emergency"),
        pytest.param("", "not in E.164 form", id="empty"),
        pytest.param("+7495123456", "10 digits after the country code", id="short-ru"),
        pytest.param("+0123456789", "cannot start with 0", id="cc-0"),
        pytest.param("+1234567890123456", "too long", id="too-long"),
    ],
)
def test_classify_rejects_non_e164(e164: str, message: str) -> None:
    with pytest.raises(InvalidNumber, match=re.escape(message)):
        classify(e164, RUSSIA, client_area_code="495")


def test_direction_values_are_stable_strings() -> None:
    # Stored in call detail rows and shown in the API: the values are a contract.
    assert [d.value for d in Direction] == [
        "internal",
        "local",
        "long_distance",
        "international",
        "toll_free",
        "emergency",
    ]
    assert Direction("long_distance") == "long_distance"


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("+7 (495) 123-45-67", "74951234567"),
        ("abc", ""),
        ("", ""),
        ("٤٩٥12", "12"),
        ("888%23", "88823"),
    ],
)
def test_digits_only(s: str, expected: str) -> None:
    assert digits_only(s) == expected


@pytest.mark.parametrize(
    ("number", "n", "expected"),
    [
        ("+74951234567", 7, "1234567"),
        ("8 (495) 123-45-67", 7, "1234567"),
        ("+74951234567", 4, "4567"),
        ("+74951234567", 20, "74951234567"),
        ("45-67", 7, "4567"),
        ("", 7, ""),
    ],
)
def test_trailing_digits(number: str, n: int, expected: str) -> None:
    assert trailing_digits(number, n) == expected


def test_trailing_digits_default_is_seven() -> None:
    assert trailing_digits("+74951234567") == "1234567"


@pytest.mark.parametrize("n", [0, -1])
def test_trailing_digits_rejects_non_positive_n(n: int) -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        trailing_digits("+74951234567", n)


@pytest.mark.parametrize("number", ["10", "100", "2000", "12345678", "888", "0123"])
def test_valid_internal_numbers(number: str) -> None:
    assert is_valid_internal_number(number, RUSSIA) == number


@pytest.mark.parametrize(
    ("number", "plan", "message"),
    [
        pytest.param("1", RUSSIA, "2 to 8 digits, got 1", id="one-digit"),
        pytest.param("123456789", RUSSIA, "2 to 8 digits, got 9", id="nine-digits"),
        pytest.param("", RUSSIA, "digits only", id="empty"),
        pytest.param("10a", RUSSIA, "digits only: '10a'", id="letter"),
        pytest.param(" 100", RUSSIA, "digits only", id="space"),
        pytest.param("+100", RUSSIA, "digits only", id="plus"),
        pytest.param("１００", RUSSIA, "digits only", id="fullwidth"),
        pytest.param("112", RUSSIA, "112 is an emergency number", id="112"),
        pytest.param("103", RUSSIA, "103 is an emergency number", id="103"),
        pytest.param("15", FRANCE, "15 is an emergency number", id="france-15"),
    ],
)
def test_invalid_internal_numbers(number: str, plan: NumberingPlan, message: str) -> None:
    with pytest.raises(InvalidNumber, match=re.escape(message)):
        is_valid_internal_number(number, plan)


def test_plan_is_frozen_and_keyword_only() -> None:
    with pytest.raises(AttributeError):
        RUSSIA.country_code = "1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        NumberingPlan("7")  # type: ignore[call-arg]


def test_plan_defaults_are_russia() -> None:
    assert RUSSIA.country_code == "7"
    assert RUSSIA.national_prefix == "8"
    assert RUSSIA.international_prefix == "810"
    assert RUSSIA.national_number_length == 10
    assert RUSSIA.default_area_code is None
    assert RUSSIA.emergency_numbers == {"112", "101", "102", "103", "104"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"country_code": ""}, "country_code must be digits", id="cc-empty"),
        pytest.param({"country_code": "+7"}, "country_code must be digits", id="cc-plus"),
        pytest.param({"country_code": "07"}, "not from 0", id="cc-zero"),
        pytest.param({"country_code": "1234"}, "1-3 digits", id="cc-long"),
        pytest.param({"international_prefix": ""}, "international_prefix", id="intl-empty"),
        pytest.param({"national_prefix": "8a"}, "national_prefix", id="national-letters"),
        pytest.param({"national_number_length": 0}, "national_number_length", id="nnl-0"),
        pytest.param({"national_number_length": 15}, "1..14", id="nnl-long"),
        pytest.param({"default_area_code": ""}, "default_area_code", id="area-empty"),
        pytest.param({"default_area_code": "4951234567"}, "shorter", id="area-long"),
        pytest.param({"default_area_code": "(495)"}, "default_area_code", id="area-paren"),
        pytest.param({"emergency_numbers": frozenset({"1 1 2"})}, "emergency", id="emergency"),
        pytest.param({"toll_free_codes": frozenset({""})}, "toll_free_codes", id="toll-empty"),
        pytest.param(
            {"foreign_national_prefixes": frozenset({"x"})}, "foreign_national", id="foreign"
        ),
    ],
)
def test_plan_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        NumberingPlan(**kwargs)  # type: ignore[arg-type]


def test_plan_without_national_prefix_is_allowed() -> None:
    plan = NumberingPlan(national_prefix="")
    assert normalize_e164("4951234567", plan) == "+74951234567"
