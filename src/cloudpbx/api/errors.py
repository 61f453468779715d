"""Errors as JSON ``{code, message, field}`` with a 4xx status (issue 2 §6)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: list[dict[str, Any]] | None = None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(code=code, message=message, field=field, details=details)
        self.headers = headers


def not_found(what: str = "object") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str = "you have no right to do this") -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid(field: str, message: str, code: str = "invalid") -> ApiError:
    return ApiError(422, code, f"{field}: {message}", field=field)


def conflict(
    field: str | None, message: str, details: list[dict[str, Any]] | None = None
) -> ApiError:
    return ApiError(409, "conflict", message, field=field, details=details)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


async def _validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "field": _field_of(err.get("loc", ())),
            "message": err.get("msg", ""),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    first = details[0] if details else {"field": None, "message": "invalid request"}
    body = ErrorBody(
        code="validation_error",
        message=f"{first['field']}: {first['message']}",
        field=first["field"],
        details=details,
    )
    return JSONResponse(status_code=422, content=body.model_dump())


async def _api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(status_code=exc.status, content=exc.body.model_dump(), headers=exc.headers)


async def _http_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = ErrorBody(code=code, message=str(exc.detail))
    return JSONResponse(status_code=exc.status_code, content=body.model_dump(), headers=exc.headers)


async def _integrity_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A safety net: a constraint the checks before it missed is a conflict, not a 500."""
    body = ErrorBody(code="conflict", message="the change conflicts with existing data")
    return JSONResponse(status_code=409, content=body.model_dump())


async def _data_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot store (out of range, bad encoding) is the caller's fault."""
    body = ErrorBody(
        code="invalid_data", message="a value cannot be stored: out of range or malformed"
    )
    return JSONResponse(status_code=422, content=body.model_dump())


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(IntegrityError, _integrity_handler)
    app.add_exception_handler(DataError, _data_handler)
