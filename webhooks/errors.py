"""One error shape for the HTTP surface: a status and a message a developer can act on."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from webhooks.auth import AuthError
from webhooks.limits import BodyTooLarge
from webhooks.metrics import REQUESTS_REJECTED


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


def install_error_handlers(app: FastAPI) -> None:
    """Map each refusal to the contract's status code."""

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return _reject(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return _reject(413, str(exc))

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
