"""A signed sample downvote: the newcomer's first event."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

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
    event = {**SAMPLE_EVENT, "id": "fb_test_" + uuid.uuid4().hex[:12]}
    body, headers = signed_request(secret, event)
    try:
        response = httpx.post(f"{base_url}/v1/feedback", content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        return 0, f"could not reach it ({exc}); is `make run` running?"
    return response.status_code, response.text
