"""One error shape for the HTTP surface: a status and a message a developer can act on."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from webhooks.auth import AuthError
from webhooks.limits import BodyTooLarge, OverRateLimit, TryLater
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


def allowed_methods(request: Request) -> str:
    """Every method the path answers: Starlette's 405 names only the first route that matched
    the path (POST /v1/feedback hides GET /v1/feedback)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= route_methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Map each refusal to the contract's status code."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
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
