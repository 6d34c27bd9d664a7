"""The OpenAPI description tells the truth: Schemathesis, as a library, against the real app.

Every operation gets generated requests (valid and invalid) with a valid API key, on each
backend under test; every answer must pass every single-request check Schemathesis has (no
server error; documented status, content type, headers and body; invalid data refused, valid
data accepted; auth not ignored). `test_schemathesis_from_outside_against_downvote_serve` (slow)
runs the `st` command line with all its checks over HTTP against a `downvote serve` process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.config import DownvoteConfig
from bot.service import build_service
from bot.settings import Settings
from storage.db import make_engine, make_sessionmaker
from tests.support.databases import DATABASES as BACKENDS
from tests.support.databases import RegisteredApp, register_app
from tests.support.processes import downvote_env, serving
from webhooks.app import create_app

# The four the issue names, then every other check Schemathesis has that fits one request.
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    *(
        getattr(schemathesis.checks, name)
        for name in (
            "response_headers_conformance",
            "negative_data_rejection",
            "positive_data_acceptance",
            "missing_required_header",
            "unsupported_method",
            "allow_header_conformance",
            "ignored_auth",
        )
    ),
]
EXAMPLES_PER_OPERATION = 40
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def described() -> dict[str, Any]:
    """The description as the app factory makes it (no database is touched to describe it)."""
    engine = make_engine("sqlite://")
    try:
        return create_app(make_sessionmaker(engine), max_body_bytes=1).openapi()
    finally:
        engine.dispose()


class AppOfTheModule:
    """The ASGI app Schemathesis sends to: forwards to the service the `api` fixture builds.

    The schema is loaded at import (pytest parametrises per operation before any fixture
    exists), and checks that send requests of their own send them to the schema's app.
    """

    app: FastAPI | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "the `api` fixture sets the app"
        await self.app(scope, receive, send)


APP = AppOfTheModule()
schema = schemathesis.openapi.from_dict(described())
schema.app = APP


@pytest.fixture(scope="module", params=BACKENDS)
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, RegisteredApp]]:
    """The service as `serve` builds it, with one registered app, on each backend under test
    (`make test` is SQLite); shared by the module so cases do not each build a service."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_database")
    else:
        path = tmp_path_factory.mktemp("openapi") / "downvote.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    engine = make_engine(url)
    registered = register_app(make_sessionmaker(engine), name=f"openapi-{uuid.uuid4().hex[:8]}")
    engine.dispose()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("DOWNVOTE_CONFIG", raising=False)
        settings_ = Settings(database_url=url)
        app = build_service(settings_, config=DownvoteConfig(), console=lambda _text: None).app
        assert app.openapi() == described(), "the served description differs from the factory's"
        APP.app = app
        yield app, registered
        APP.app = None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(
    case: Any, api: tuple[FastAPI, RegisteredApp]
) -> None:
    _, registered = api
    case.call_and_validate(headers={"Authorization": f"Bearer {registered.api_key}"}, checks=CHECKS)


# ---------------------------------------------------------------------------------------------
# The description itself, walked by hand: what a generated client relies on.


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def test_every_ref_resolves(client: Any) -> None:
    document = client.get("/openapi.json").json()
    refs = set(_refs(document))
    assert "#/components/schemas/FeedbackIn" in refs
    for ref in refs:
        _resolve(document, ref)


EXPECTED_STATUSES = {
    ("POST", "/v1/feedback"): {"202", "400", "401", "413", "415", "422", "429", "503"},
    ("POST", "/v1/feedback/batch"): {"202", "400", "401", "413", "415", "422", "429", "503"},
    ("GET", "/v1/feedback"): {"200", "401", "422", "503"},
    ("DELETE", "/v1/users/{user_id}"): {"202", "401", "422", "503"},
    ("GET", "/healthz"): {"200"},
    ("GET", "/readyz"): {"200", "503"},
    ("GET", "/metrics"): {"200"},
}


def test_every_route_lists_its_statuses_with_a_named_error_body(client: Any) -> None:
    document = client.get("/openapi.json").json()
    seen = {}
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        seen[(method, path)] = set(responses)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert "$ref" in schema, f"{method} {path} {status}: error body is not a component"
            if status in ("429", "503") and path != "/readyz":
                assert "Retry-After" in response["headers"], f"{method} {path} {status}"
    assert seen == EXPECTED_STATUSES


def test_both_post_bodies_are_complete_and_signed_requests_are_a_security_scheme(
    client: Any,
) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert {schemes[n]["name"] for n in schemes if schemes[n]["type"] == "apiKey"} == {
        "webhook-id", "webhook-timestamp", "webhook-signature",
    }  # fmt: skip
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    for path, model in (("/v1/feedback", "FeedbackIn"), ("/v1/feedback/batch", "FeedbackBatchIn")):
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
        assert len(operation["security"]) == 2  # an API key, or all three webhook headers
    event = document["components"]["schemas"]["FeedbackIn"]
    assert event["required"] == ["prompt", "response"]
    assert event["additionalProperties"] is False
    assert set(event["properties"]) >= {"id", "rating", "prompt", "response", "occurred_at"}


def test_metrics_declares_the_content_type_it_answers(client: Any) -> None:
    document = client.get("/openapi.json").json()
    [declared] = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert client.get("/metrics").headers["content-type"] == declared


def test_an_empty_cursor_is_the_first_page_and_a_malformed_one_is_422(
    client: Any, registered_app: RegisteredApp
) -> None:
    headers = {"authorization": f"Bearer {registered_app.api_key}"}
    assert client.get("/v1/feedback?cursor=", headers=headers).status_code == 200
    refused = client.get("/v1/feedback?cursor=abc", headers=headers)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "cursor"]


# ---------------------------------------------------------------------------------------------
# From outside, as the reporter ran it: the `st` command line, every check, over HTTP.


@pytest.mark.slow
def test_schemathesis_from_outside_against_downvote_serve(
    database_url: str, registered_app: RegisteredApp, tmp_path: Path
) -> None:
    st = Path(sys.executable).with_name("st")
    with serving(downvote_env(database_url), cwd=tmp_path) as server:
        run = subprocess.run(
            [
                str(st), "run", f"{server.url}/openapi.json",
                "--header", f"Authorization: Bearer {registered_app.api_key}",
                "--checks", "all", "--max-examples", "25", "--seed", "1",
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout


# ---------------------------------------------------------------------------------------------
# What Schemathesis found, kept as plain tests on both databases.


def test_any_rfc3339_offset_is_accepted_and_times_off_the_calendar_get_422(
    client: Any, registered_app: RegisteredApp
) -> None:
    headers = {"authorization": f"Bearer {registered_app.api_key}"}
    far = {"prompt": "p", "response": "r", "occurred_at": "2000-01-01T00:00:00+16:00"}
    assert client.post("/v1/feedback", json=far, headers=headers).status_code == 202
    page = client.get("/v1/feedback?since=1999-12-31T07:00:00%2B16:00", headers=headers).json()
    assert [e["occurred_at"][:19] for e in page["events"]] == ["1999-12-31T08:00:00"]
    for edge in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0", 1700000000):
        refused = client.post("/v1/feedback", json={**far, "occurred_at": edge}, headers=headers)
        assert refused.status_code == 422, edge
        assert refused.json()["detail"][0]["loc"] == ["occurred_at"]


def test_a_405_lists_every_method_the_path_documents(client: Any) -> None:
    for method in ("OPTIONS", "PUT", "DELETE"):
        refused = client.request(method, "/v1/feedback")
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET, POST")
    assert client.request("PATCH", "/v1/users/u_9").headers["allow"] == "DELETE"
