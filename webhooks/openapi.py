"""The OpenAPI description, made to tell the truth: every status a route answers, with its body.

The feedback routes read their body raw (to check a signature over the exact bytes before
parsing), so FastAPI cannot see their request models; they are documented here by hand and their
schemas registered as components, so every `$ref` resolves and generated clients work.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

COMPONENTS = "#/components/schemas/{model}"
API_KEY = "apiKey"
# Standard Webhooks signs with three headers; one security requirement naming all three means
# "all of them together", beside the API key as the alternative.
WEBHOOK_SCHEMES = {
    "webhookId": ("webhook-id", "A unique id of the delivery (the idempotency key)."),
    "webhookTimestamp": ("webhook-timestamp", "Unix time in seconds; at most 5 minutes off."),
    "webhookSignature": (
        "webhook-signature",
        "Space-separated `v1,<base64 HMAC-SHA256>` of `id.timestamp.body` with the app's "
        "`whsec_` secret (https://www.standardwebhooks.com/).",
    ),
}
API_KEY_ONLY: list[dict[str, list[str]]] = [{API_KEY: []}]
SIGNED_OR_API_KEY: list[dict[str, list[str]]] = [
    {API_KEY: []},
    {name: [] for name in WEBHOOK_SCHEMES},
]


class Problem(BaseModel):
    """Why a request was refused, in one line a developer can act on."""

    model_config = ConfigDict(title="Problem")

    detail: str


class FieldProblem(BaseModel):
    """One failing field: where it is (`loc`), what is wrong (`msg`), and pydantic's error type."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """The request is well-formed but some fields do not fit; each is named."""

    detail: list[FieldProblem] = Field(min_length=1)


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_ERRORS: dict[int, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "Malformed JSON, or a body that is not UTF-8.",
    },
    401: {
        "model": Problem,
        "description": "Missing, unknown or expired credentials.",
        "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    },
    413: {"model": Problem, "description": "The body is over DOWNVOTE_MAX_BODY_BYTES."},
    415: {"model": Problem, "description": "The body is not declared as JSON."},
    422: {"model": ValidationProblem, "description": "Fields that do not fit, each named."},
    429: {
        "model": Problem,
        "description": "The app is over its `[limits] events_per_minute`.",
        "headers": _RETRY_AFTER,
    },
    503: {
        "model": Problem,
        "description": (
            "Try again later: too many request bodies in flight (`[limits] bodies_in_flight`), "
            "or the database is unavailable."
        ),
        "headers": _RETRY_AFTER,
    },
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses."""
    return {status: _ERRORS[status] for status in statuses}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` raw; its schema is registered by `install`."""
    schema = {"$ref": COMPONENTS.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install(
    app: FastAPI, body_models: list[type[BaseModel]], extra_schemas: dict[str, Any]
) -> None:
    """Generate the description once, with the raw-read body models and the security schemes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe(app, body_models, extra_schemas)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _describe(
    app: FastAPI, body_models: list[type[BaseModel]], extra_schemas: dict[str, Any]
) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    _, definitions = models_json_schema(
        [(model, "validation") for model in body_models], ref_template=COMPONENTS
    )
    schemas = components.setdefault("schemas", {})
    for name, definition in {**definitions.get("$defs", {}), **extra_schemas}.items():
        if name in schemas and schemas[name] != definition:
            raise RuntimeError(f"two different schemas are both named {name!r}")
        schemas[name] = definition
    components["securitySchemes"] = {
        API_KEY: {
            "type": "http",
            "scheme": "bearer",
            "description": "The app's API key, printed once by `downvote apps add`.",
        },
        **{
            name: {"type": "apiKey", "in": "header", "name": header, "description": description}
            for name, (header, description) in WEBHOOK_SCHEMES.items()
        },
    }
    return schema
