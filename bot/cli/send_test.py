"""`downvote send-test`: a signed sample downvote, the newcomer's first event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import UserError, fail, load_settings, now, transaction

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SAMPLE_EVENT: dict[str, Any] = {
    "rating": "down",
    "comment": "It invented a citation",
    "prompt": [
        {"role": "system", "content": "You are a careful research assistant."},
        {"role": "user", "content": "Which paper introduced the transformer architecture?"},
    ],
    "response": 'The transformer was introduced in "Recurrent Attention Is Enough" (Smith, 2015).',
    "model": "gpt-x-2026-01",
    "feature": "research-qa",
    "latency_ms": 840,
    "confidence": 0.93,
    "user_id": "u_42",
    "correction": 'Vaswani et al., "Attention Is All You Need" (2017).',
}


def signed_request(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Body and Standard Webhooks headers for one event, signed with the reference library."""
    from standardwebhooks.webhooks import Webhook

    body = json.dumps(event, ensure_ascii=False)
    message_id = "msg_" + uuid.uuid4().hex
    timestamp = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, timestamp, body)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def send_sample_downvote(base_url: str, secret: str) -> tuple[int, str]:
    import httpx

    event = {**SAMPLE_EVENT, "id": "fb_test_" + uuid.uuid4().hex[:12]}
    body, headers = signed_request(secret, event)
    try:
        response = httpx.post(f"{base_url}/v1/feedback", content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        return 0, f"could not reach it ({exc}); is `make run` running?"
    return response.status_code, response.text


def send_test(
    url: Annotated[str, typer.Option(help="Where Downvote listens.")] = "http://127.0.0.1:8000",
    app: Annotated[
        str | None, typer.Option(help="App to sign as (default: the only app, or a new 'demo').")
    ] = None,
) -> None:
    """Send a signed sample downvote, as your app would."""
    settings = load_settings()
    with transaction(settings) as session:
        secret, app_name, created = _test_app_secret(session, app)
    if created:
        typer.echo(f"Registered app {app_name!r} for the test (see `downvote apps list`).")
    status, body = send_sample_downvote(url.rstrip("/"), secret)
    if status != 202:
        fail(f"Downvote at {url} answered {status}: {body}")
    typer.echo(f"Sent a signed sample downvote as {app_name!r}: {status} {body}")


def _test_app_secret(session: Session, name: str | None) -> tuple[str, str, bool]:
    """The signing secret of the app to test with, registering 'demo' when there is none."""
    from storage import apps as app_store

    apps = app_store.list_apps(session)
    created = False
    if name is None and len(apps) > 1:
        names = ", ".join(a.name for a in apps)
        raise UserError(f"several apps are registered ({names}): choose one with --app")
    if name is None and not apps:
        app_store.add_app(session, "demo", channel=None, now=now())
        name, created = "demo", True
    try:
        app = app_store.get_app(session, name) if name else apps[0]
    except app_store.UnknownApp as exc:
        raise UserError(str(exc)) from None
    secrets = [
        c for c in app_store.active_credentials(session, now=now())
        if c.app_id == app.id and c.kind == app_store.WEBHOOK_SECRET and c.secret
    ]  # fmt: skip
    return str(secrets[0].secret), app.name, created
