"""Requests signed the way a sending app signs them: with the reference standardwebhooks library."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook


def utc_now() -> datetime:
    return datetime.now(UTC)


def signed_headers(
    secret: str, body: bytes | str, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    text = body.decode() if isinstance(body, bytes) else body
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    at = at or utc_now()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, text),
    }


def signed(secret: str, payload: Any, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return body, signed_headers(secret, body, **kwargs)
