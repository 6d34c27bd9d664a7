"""Who is calling: Standard Webhooks signatures or a bearer API key, never the request body."""

from __future__ import annotations

import binascii
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from storage.apps import API_KEY, WEBHOOK_SECRET, ActiveCredential, hash_api_key
from storage.clock import SYSTEM_CLOCK, Clock

REFRESH_SECONDS = 30.0
# A miss (e.g. a secret issued a moment ago by `apps rotate`) reloads at most this often,
# so a flood of bad requests cannot turn into a flood of database reads.
MISS_REFRESH_SECONDS = 1.0
WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class AuthError(Exception):
    """The request is not authenticated; the message says what to fix."""


@dataclass(frozen=True)
class Caller:
    app_id: int
    app_name: str
    channel: str | None
    webhook_id: str | None


@dataclass(frozen=True)
class _Secret:
    credential: ActiveCredential
    webhook: Webhook


class CredentialCache:
    """Active credentials held in memory, reloaded periodically and when a request misses."""

    def __init__(
        self,
        load: Callable[[datetime], list[ActiveCredential]],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._secrets: list[_Secret] = []
        self._keys: dict[str, ActiveCredential] = {}

    def _refresh(self, *, min_age: float) -> bool:
        with self._lock:
            if self._clock.monotonic() - self._loaded_at < min_age:
                return False
            credentials = self._load(self._clock.now())
            self._secrets = [
                _Secret(c, Webhook(c.secret))
                for c in credentials
                if c.kind == WEBHOOK_SECRET and c.secret
            ]
            self._keys = {c.key_hash: c for c in credentials if c.kind == API_KEY and c.key_hash}
            self._loaded_at = self._clock.monotonic()
            return True

    def now(self) -> datetime:
        return self._clock.now()

    def secrets(self, *, reload: bool = False) -> list[_Secret]:
        self._refresh(min_age=MISS_REFRESH_SECONDS if reload else REFRESH_SECONDS)
        return self._secrets

    def api_key(self, key_hash: str) -> ActiveCredential | None:
        self._refresh(min_age=REFRESH_SECONDS)
        found = self._keys.get(key_hash)
        if found is None and self._refresh(min_age=MISS_REFRESH_SECONDS):
            found = self._keys.get(key_hash)
        return found


def _still_valid(credential: ActiveCredential, now: datetime) -> bool:
    """A rotated credential works until it expires, checked on every request, not per reload."""
    return credential.expires_at is None or credential.expires_at > now


def _caller(credential: ActiveCredential, webhook_id: str | None) -> Caller:
    return Caller(
        app_id=credential.app_id,
        app_name=credential.app_name,
        channel=credential.app_channel,
        webhook_id=webhook_id,
    )


def _verify_signature(
    body: str, headers: Mapping[str, str], secrets: list[_Secret], now: datetime
) -> Caller | None:
    for secret in secrets:
        if not _still_valid(secret.credential, now):
            continue
        try:
            secret.webhook.verify(body, dict(headers), json_parse=False)
        except WebhookVerificationError as exc:
            if "timestamp" in str(exc).lower() or "headers" in str(exc).lower():
                raise AuthError(_timestamp_reason(str(exc))) from None
            continue
        except (ValueError, binascii.Error):
            raise AuthError(
                "webhook-signature is malformed: expected space-separated 'v1,<base64>' entries"
            ) from None
        return _caller(secret.credential, headers["webhook-id"])
    return None


def _timestamp_reason(message: str) -> str:
    if "too old" in message:
        return "webhook-timestamp is more than 5 minutes old: sign each delivery afresh"
    if "too new" in message:
        return "webhook-timestamp is more than 5 minutes in the future: check the sender's clock"
    return "webhook-timestamp is not a Unix time in seconds"


MISSING_API_KEY = "missing credentials: send Authorization: Bearer <api key>"


def _bearer_caller(headers: Mapping[str, str], cache: CredentialCache) -> Caller | None:
    scheme, _, api_key = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip():
        return None
    credential = cache.api_key(hash_api_key(api_key.strip()))
    if credential is None or not _still_valid(credential, cache.now()):
        raise AuthError("unknown or expired API key")
    # No webhook-id to key on: a request with one is a signed request, checked as such.
    return _caller(credential, webhook_id=None)


def has_credentials(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in (*WEBHOOK_HEADERS, "authorization"))


def authenticate(headers: Mapping[str, str], body: str, cache: CredentialCache) -> Caller:
    """Find the app behind a request from its signature or API key."""
    present = [name for name in WEBHOOK_HEADERS if headers.get(name)]
    if present:
        missing = [name for name in WEBHOOK_HEADERS if name not in present]
        if missing:
            raise AuthError(f"missing Standard Webhooks header(s): {', '.join(missing)}")
        caller = _verify_signature(body, headers, cache.secrets(), cache.now())
        if caller is None:
            caller = _verify_signature(body, headers, cache.secrets(reload=True), cache.now())
        if caller is None:
            raise AuthError("webhook-signature matches no app's signing secret")
        return caller
    caller = _bearer_caller(headers, cache)
    if caller is None:
        raise AuthError(
            "missing credentials: sign the request with Standard Webhooks (webhook-id, "
            "webhook-timestamp, webhook-signature) or send Authorization: Bearer <api key>"
        )
    return caller


def authenticate_api_key(headers: Mapping[str, str], cache: CredentialCache) -> Caller:
    """The read API takes only API keys: a GET has no body to sign."""
    caller = _bearer_caller(headers, cache)
    if caller is None:
        raise AuthError(MISSING_API_KEY)
    return caller
