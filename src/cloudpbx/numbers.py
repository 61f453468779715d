"""Telephone number normalisation and classification (PRODUCT.md §3a "Numbers", CDR-1).

Pure functions, no I/O. Numbers are stored in E.164 (``+<digits>``); whatever a user, a phone or
an admin form gives us is turned into that form by :func:`normalize_e164` under the
installation's :class:`NumberingPlan`, and :func:`classify` gives the CDR-1 direction.

Carrier-specific shapes (``tel:``/``sip:`` URIs, missing ``+`` on international numbers) are
the business of each trunk's rewrite rules (§3a), not of this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Direction",
    "InvalidNumber",
    "NumberingPlan",
    "classify",
    "digits_only",
    "is_emergency",
    "is_valid_internal_number",
    "normalize_e164",
    "trailing_digits",
]

# ITU-T E.164 §6: at most 15 digits including the country code; country codes never start with 0.
_E164_MAX_DIGITS = 15
# E.164 sets no minimum; the shortest numbers in service (Niue, Tokelau: +683 4002) have 7.
_E164_MIN_DIGITS = 7
# "00" is the ITU-recommended international prefix; accepted besides the plan's own (§3a).
_ITU_INTERNATIONAL_PREFIX = "00"
# Why 2–8 digits for internal numbers: one digit is what callers press in voice menus (IVR-1
# key map) and would clash with them; 8 keeps every internal number shorter than a national
# number (10) or one dialled with the national prefix (11), so the router never has to guess
# whether a full external number was meant.
_INTERNAL_MIN_DIGITS = 2
_INTERNAL_MAX_DIGITS = 8
# Users copy numbers from web pages and business cards: "8 (495) 123-45-67", "+7.495.123.45.67".
_SEPARATORS = re.compile(r"[\s\-.()]")
_DIALLED = re.compile(r"\+?[0-9]+")  # [0-9], not \d: Unicode digits are not dialable
_DIGITS = re.compile(r"[0-9]+")
_NON_DIGITS = re.compile(r"[^0-9]")
_SHOWN_CHARS = 40


# N818: the agreed public name; "except InvalidNumber" reads as what it means.
class InvalidNumber(ValueError):  # noqa: N818
    """A string that is not a telephone number (or not an acceptable one); the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberingPlan:
    """Installation numbering settings (§3a); the defaults are Russia's.

    ``default_area_code`` lets a client's users dial local numbers without the area code
    (``1234567`` → ``+74951234567`` with ``"495"``).
    """

    country_code: str = "7"
    national_prefix: str = "8"
    international_prefix: str = "810"  # Russia dials "8 10 <country code> …" (§3a)
    national_number_length: int = 10
    default_area_code: str | None = None
    emergency_numbers: frozenset[str] = frozenset({"112", "101", "102", "103", "104"})
    # §3a: inside country code +7, the 800 range is toll-free ("8 800 …").
    toll_free_codes: frozenset[str] = frozenset({"800"})
    # §3a: +7 6xx/7xx is Kazakhstan, which shares World Numbering Zone 7 with Russia: those
    # numbers are international for rating although they carry our country code.
    foreign_national_prefixes: frozenset[str] = frozenset({"6", "7"})

    def __post_init__(self) -> None:
        # Settings are checked once at start-up, so a typo fails loudly instead of misrouting.
        _require_digits("country_code", self.country_code)
        if self.country_code.startswith("0") or len(self.country_code) > 3:
            raise ValueError(f"country_code must be 1-3 digits, not from 0: {self.country_code!r}")
        _require_digits("national_prefix", self.national_prefix, allow_empty=True)
        _require_digits("international_prefix", self.international_prefix)
        self._check_lengths()
        self._check_sets()

    def _check_lengths(self) -> None:
        max_national = _E164_MAX_DIGITS - len(self.country_code)
        if not 1 <= self.national_number_length <= max_national:
            raise ValueError(f"national_number_length must be 1..{max_national}")
        area = self.default_area_code
        if area is not None:
            _require_digits("default_area_code", area)
            if len(area) >= self.national_number_length:
                raise ValueError("default_area_code must be shorter than a national number")

    def _check_sets(self) -> None:
        named = (
            ("emergency_numbers", self.emergency_numbers),
            ("toll_free_codes", self.toll_free_codes),
            ("foreign_national_prefixes", self.foreign_national_prefixes),
        )
        for name, values in named:
            for value in values:
                _require_digits(name, value)


class Direction(StrEnum):
    """Call direction as shown in call detail (CDR-1) and used for rating."""

    INTERNAL = "internal"
    LOCAL = "local"
    LONG_DISTANCE = "long_distance"  # МГ (междугородный)
    INTERNATIONAL = "international"  # МН (международный)
    TOLL_FREE = "toll_free"
    EMERGENCY = "emergency"


def normalize_e164(raw: str, plan: NumberingPlan) -> str:
    """Return ``raw`` (as typed by a user or sent by a phone) in E.164 form, ``+<digits>``.

    Raises :class:`InvalidNumber` with a human-readable reason for anything else.
    """
    cleaned = _clean(raw)
    if cleaned.startswith("+"):
        return _checked(cleaned[1:], plan, raw)
    if cleaned in plan.emergency_numbers:
        raise InvalidNumber(
            f"{cleaned} is an emergency number: it has no E.164 form, check is_emergency() first"
        )
    return _checked(_dialled_to_e164_digits(cleaned, plan, raw), plan, raw)


def is_emergency(raw: str, plan: NumberingPlan) -> bool:
    """True when ``raw`` is one of the plan's emergency numbers (§3a), separators ignored."""
    cleaned = _SEPARATORS.sub("", raw)
    return _DIGITS.fullmatch(cleaned) is not None and cleaned in plan.emergency_numbers


def classify(e164: str, plan: NumberingPlan, *, client_area_code: str | None) -> Direction:
    """Direction (CDR-1) of a call to the E.164 number ``e164``.

    ``client_area_code`` of ``None`` falls back to ``plan.default_area_code``; with neither, no
    number is local. ``INTERNAL`` and ``EMERGENCY`` are never returned: internal and emergency
    numbers have no E.164 form, the router decides them before a number is normalised.
    """
    digits = _e164_digits(e164, plan)
    if not digits.startswith(plan.country_code):
        return Direction.INTERNATIONAL
    national = digits[len(plan.country_code) :]
    return _classify_national(national, plan, client_area_code or plan.default_area_code)


def digits_only(s: str) -> str:
    """The ASCII digits of ``s``, in order (``"+7 (495) 123"`` → ``"7495123"``)."""
    return _NON_DIGITS.sub("", s)


def trailing_digits(number: str, n: int = 7) -> str:
    """The last ``n`` digits of ``number`` (all of them if fewer), for CDR-1 search by the end
    of a number, which matches however the number was written."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return digits_only(number)[-n:]


def is_valid_internal_number(s: str, plan: NumberingPlan) -> str:
    """Return ``s`` if it may be an internal number, else raise :class:`InvalidNumber` (why)."""
    if _DIGITS.fullmatch(s) is None:
        raise InvalidNumber(f"internal number must contain digits only: {_show(s)}")
    if not _INTERNAL_MIN_DIGITS <= len(s) <= _INTERNAL_MAX_DIGITS:
        raise InvalidNumber(
            f"internal number must have {_INTERNAL_MIN_DIGITS} to {_INTERNAL_MAX_DIGITS} digits,"
            f" got {len(s)}: {_show(s)}"
        )
    if s in plan.emergency_numbers:
        # §3a: emergency numbers can never be internal numbers and always route to emergency.
        raise InvalidNumber(f"{s} is an emergency number and cannot be an internal number")
    return s


def _clean(raw: str) -> str:
    cleaned = _SEPARATORS.sub("", raw)
    if not cleaned:
        raise InvalidNumber("empty telephone number")
    if _DIALLED.fullmatch(cleaned) is None:
        raise InvalidNumber(f"not a telephone number: {_show(raw)}")
    return cleaned


def _dialled_to_e164_digits(digits: str, plan: NumberingPlan, raw: str) -> str:
    # The international prefix is tried first: "810…" is never a national number in Russia
    # (no area code starts with 1), whereas "8 10 …" is how Russians dial abroad (§3a).
    for prefix in (plan.international_prefix, _ITU_INTERNATIONAL_PREFIX):
        if digits.startswith(prefix):
            return digits[len(prefix) :]
    return plan.country_code + _national_number(digits, plan, raw)


def _national_number(digits: str, plan: NumberingPlan, raw: str) -> str:
    length = plan.national_number_length
    if len(digits) == length:
        return digits  # 4951234567
    for prefix in (plan.national_prefix, plan.country_code):  # 84951234567, 74951234567
        if len(digits) == len(prefix) + length and digits.startswith(prefix):
            return digits[len(prefix) :]
    area = plan.default_area_code
    if area is not None and len(area) + len(digits) == length:
        return area + digits  # 1234567 dialled by a client whose area code is 495
    raise InvalidNumber(
        f"cannot read {_count(digits)} as a number: {_show(raw)};"
        f" write international numbers with + or {plan.international_prefix}"
    )


def _checked(digits: str, plan: NumberingPlan, raw: str) -> str:
    if len(digits) > _E164_MAX_DIGITS:
        raise InvalidNumber(f"too long for E.164 ({_count(digits)}): {_show(raw)}")
    if len(digits) < _E164_MIN_DIGITS:
        raise InvalidNumber(f"too short for E.164 ({_count(digits)}): {_show(raw)}")
    if digits.startswith("0"):
        raise InvalidNumber(f"a country code cannot start with 0: {_show(raw)}")
    national = len(digits) - len(plan.country_code)
    if digits.startswith(plan.country_code) and national != plan.national_number_length:
        raise InvalidNumber(
            f"+{plan.country_code} numbers have {plan.national_number_length} digits after the"
            f" country code, not {national}: {_show(raw)}"
        )
    return "+" + digits


def _e164_digits(e164: str, plan: NumberingPlan) -> str:
    if _DIALLED.fullmatch(e164) is None or not e164.startswith("+"):
        raise InvalidNumber(f"not in E.164 form (normalise it first): {_show(e164)}")
    return _checked(e164[1:], plan, e164)[1:]


def _classify_national(national: str, plan: NumberingPlan, area_code: str | None) -> Direction:
    if national.startswith(tuple(plan.foreign_national_prefixes)):
        return Direction.INTERNATIONAL  # Kazakhstan (§3a)
    if national.startswith(tuple(plan.toll_free_codes)):
        return Direction.TOLL_FREE
    if area_code and national.startswith(area_code):
        return Direction.LOCAL
    return Direction.LONG_DISTANCE


def _require_digits(name: str, value: str, *, allow_empty: bool = False) -> None:
    if not (value == "" and allow_empty) and _DIGITS.fullmatch(value) is None:
        raise ValueError(f"{name} must be digits: {value!r}")


def _count(digits: str) -> str:
    return "1 digit" if len(digits) == 1 else f"{len(digits)} digits"


def _show(raw: str) -> str:
    # Garbage can be long (a pasted paragraph): keep error messages and logs readable.
    shown = raw if len(raw) <= _SHOWN_CHARS else raw[:_SHOWN_CHARS] + "…"
    return repr(shown)
