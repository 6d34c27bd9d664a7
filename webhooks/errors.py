"""One error shape for the HTTP surface: a status and a message a developer can act on."""

from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from webhooks.auth import AuthError
from webhooks.limits import BodyTooLarge, OverRateLimit, TryLater
from webhooks.metrics import REQUESTS_REJECTED

logger = logging.getLogger("downvote.http")

# The database does not answer (down, restarting, out of connections, SQLite's write lock held
# past the busy timeout): the request is worth repeating, unlike a bug's 500.
DATABASE_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.TimeoutError,  # SQLAlchemy's pool: every connection busy for 30 s
    psycopg.OperationalError,  # ingest's own connections on PostgreSQL, PoolTimeout included
)
DATABASE_RETRY_AFTER_SECONDS = 5


def driver_message(exc: Exception) -> str:
    """What the database said, without SQLAlchemy's statement and parameters (user text)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


class BadRequest(Exception):
    """Malformed JSON or a body that is not UTF-8."""


class UnsupportedMediaType(Exception):
    """The body is not declared as JSON."""


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic errors without echoing the input back (it may be a 1 MB prompt)."""
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in errors
    ]


def _reject(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    REQUESTS_REJECTED.labels(status=str(status)).inc()
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def documented_methods(app: FastAPI, path: str) -> str | None:
    """The methods the OpenAPI description lists for `path`, or None for an undocumented path.

    Starlette's 405 names only the methods of the first route that matched the path (so
    POST /v1/feedback hid GET /v1/feedback); clients and checkers read `Allow` against the
    description.
    """
    for template, operations in app.openapi()["paths"].items():
        parts = re.split(r"\{[^/{}]+\}", template)
        if re.fullmatch("[^/]+".join(re.escape(part) for part in parts), path):
            return ", ".join(sorted(method.upper() for method in operations))
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Map each refusal to the contract's status code."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = documented_methods(app, request.url.path) or headers.get("Allow", "")
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return _reject(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return _reject(413, str(exc))

    @app.exception_handler(TryLater)
    async def _later(_: Request, exc: TryLater) -> JSONResponse:
        status = 429 if isinstance(exc, OverRateLimit) else 503
        return _reject(status, str(exc), {"Retry-After": str(exc.retry_after)})

    async def _database(_: Request, exc: Exception) -> JSONResponse:
        logger.warning("database unavailable, answered 503: %s", driver_message(exc))
        return _reject(
            503,
            "the database is unavailable: retry later (an event sent again is stored once)",
            {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database)

    @app.exception_handler(UnsupportedMediaType)
    async def _media(_: Request, exc: UnsupportedMediaType) -> JSONResponse:
        return _reject(415, str(exc))

    @app.exception_handler(BadRequest)
    async def _bad(_: Request, exc: BadRequest) -> JSONResponse:
        return _reject(400, str(exc))

    @app.exception_handler(ValidationError)
    async def _invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return _reject(422, validation_details(exc.errors()))

    @app.exception_handler(RequestValidationError)
    async def _invalid_params(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _reject(422, validation_details(list(exc.errors())))
