"""Shared schema pieces."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=4000)]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$", description="ISO 639-1, e.g. ru, en")]
Seconds = Annotated[int, Field(ge=0, le=86_400)]
Limit = Annotated[int, Field(ge=0, le=100_000)]
RefId = Annotated[int, Field(ge=1, le=2**62)]


def ms_to_iso(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat(timespec="milliseconds")


# UTC epoch milliseconds rendered as ISO 8601 with milliseconds (CDR-1).
Millis = Annotated[int, PlainSerializer(ms_to_iso, return_type=str, when_used="json")]
OptMillis = Annotated[
    int | None, PlainSerializer(ms_to_iso, return_type=str | None, when_used="json")
]

# --- money (CDR-1: exact decimals, strings in JSON) -----------------------------------------

MONEY_PLACES = Decimal("0.0001")  # the scale of the Money column type


def money_str(value: Decimal) -> str:
    """An exact amount as a string with 2 to 4 decimals: ``0.0125``, ``12.50``, ``100.00``.

    The database returns the column's scale (``1.5000``) while a fresh object holds what was
    sent (``1.5``): normalising keeps POST and GET answers identical.
    """
    whole, _, frac = f"{value.quantize(MONEY_PLACES):f}".partition(".")
    return f"{whole}.{frac.rstrip('0').ljust(2, '0')}"


MoneyOut = Annotated[Decimal, PlainSerializer(money_str, return_type=str, when_used="json")]
MoneyIn = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=4, examples=["0.0125"], description="exact"),
]


class In(BaseModel):
    """Request bodies reject unknown fields, so a typo is an error naming the field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL; refuse it here, naming the field, for both databases.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Stamped(Out):
    id: int
    created_ms: Millis
    updated_ms: Millis


class OwnedOut(Stamped):
    client_id: int


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
