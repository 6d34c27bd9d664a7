"""Authentication on its own: which credential a request matches, when credentials are reloaded,
and the exact words a refused sender reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from storage.apps import (
    API_KEY,
    WEBHOOK_SECRET,
    ActiveCredential,
    hash_api_key,
    new_api_key,
    new_webhook_secret,
)
from tests.support.clock import FakeClock
from tests.support.signing import signed_headers, utc_now
from webhooks.auth import (
    AuthError,
    Caller,
    CredentialCache,
    authenticate,
    authenticate_api_key,
    has_credentials,
)

BODY = '{"prompt": "p", "response": "r"}'


class Store:
    """What `active_credentials` would return, counting how often the cache asks."""

    def __init__(self, *credentials: ActiveCredential) -> None:
        self.credentials = list(credentials)
        self.loads = 0

    def __call__(self, now: datetime) -> list[ActiveCredential]:
        self.loads += 1
        return list(self.credentials)


def secret_credential(
    app_id: int = 1, *, expires_at: datetime | None = None
) -> tuple[str, ActiveCredential]:
    secret = new_webhook_secret()
    return secret, ActiveCredential(
        app_id=app_id, app_name=f"app-{app_id}", app_channel=f"#app-{app_id}",
        kind=WEBHOOK_SECRET, secret=secret, key_hash=None, expires_at=expires_at,
    )  # fmt: skip


def key_credential(
    app_id: int = 1, *, expires_at: datetime | None = None
) -> tuple[str, ActiveCredential]:
    api_key = new_api_key()
    return api_key, ActiveCredential(
        app_id=app_id, app_name=f"app-{app_id}", app_channel=None,
        kind=API_KEY, secret=None, key_hash=hash_api_key(api_key), expires_at=expires_at,
    )  # fmt: skip


def bearer(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(utc_now())  # signatures are dated by the wall clock: keep the two together


def test_a_signed_request_is_its_secrets_app_with_its_channel_and_webhook_id(
    clock: FakeClock,
) -> None:
    secret, credential = secret_credential(7)
    cache = CredentialCache(Store(credential), clock)
    headers = signed_headers(secret, BODY, msg_id="msg_abc")
    assert authenticate(headers, BODY, cache) == Caller(7, "app-7", "#app-7", "msg_abc")


def test_a_signed_body_that_is_not_json_is_authenticated_not_parsed(clock: FakeClock) -> None:
    """Parsing is ingestion's business (400 malformed JSON), not a bad signature (401)."""
    secret, credential = secret_credential()
    cache = CredentialCache(Store(credential), clock)
    body = '{"prompt": "p", "response": '
    assert authenticate(signed_headers(secret, body), body, cache).app_id == 1


def test_an_expired_secret_listed_first_does_not_end_the_search(clock: FakeClock) -> None:
    _, expired = secret_credential(1, expires_at=clock.now() - timedelta(seconds=1))
    secret, current = secret_credential(2)
    cache = CredentialCache(Store(expired, current), clock)
    assert authenticate(signed_headers(secret, BODY), BODY, cache).app_id == 2


def test_a_credential_stops_working_at_the_instant_it_expires(clock: FakeClock) -> None:
    """Loaded while still valid, it is refused from its expiry on, without a reload."""
    secret, signing = secret_credential(expires_at=clock.now() + timedelta(hours=24))
    api_key, keyed = key_credential(expires_at=clock.now() + timedelta(hours=24))
    store = Store(signing, keyed)
    cache = CredentialCache(store, clock)
    clock.advance(24 * 3600 - 1)
    assert authenticate(signed_headers(secret, BODY), BODY, cache).app_id == 1
    assert authenticate_api_key(bearer(api_key), cache).app_id == 1
    clock.advance(1)  # exactly 24 h
    with pytest.raises(AuthError, match="matches no app"):
        authenticate(signed_headers(secret, BODY), BODY, cache)
    with pytest.raises(AuthError, match="unknown or expired API key"):
        authenticate_api_key(bearer(api_key), cache)


@pytest.mark.parametrize("kind", ["secret", "api key"])
def test_a_credential_issued_after_the_last_load_works_at_once(clock: FakeClock, kind: str) -> None:
    """`apps rotate` then an immediate request: the miss reloads instead of refusing."""
    _, first = secret_credential(1)
    store = Store(first)
    cache = CredentialCache(store, clock)
    assert cache.secrets() and store.loads == 1
    clock.advance(2)
    if kind == "secret":
        secret, issued = secret_credential(2)
        store.credentials.append(issued)
        assert authenticate(signed_headers(secret, BODY), BODY, cache).app_id == 2
    else:
        api_key, issued = key_credential(2)
        store.credentials.append(issued)
        assert authenticate(bearer(api_key), BODY, cache).app_id == 2
    assert store.loads == 2


def test_known_credentials_reload_every_30_seconds_not_per_request(clock: FakeClock) -> None:
    secret, signing = secret_credential()
    api_key, keyed = key_credential()
    store = Store(signing, keyed)
    cache = CredentialCache(store, clock)
    cache.secrets()
    for _ in range(3):
        clock.advance(9)
        assert authenticate(signed_headers(secret, BODY), BODY, cache).app_id == 1
        assert authenticate(bearer(api_key), BODY, cache).app_id == 1
    assert store.loads == 1
    clock.advance(3)  # 30 s since the first load
    authenticate(bearer(api_key), BODY, cache)
    assert store.loads == 2


def test_a_flood_of_bad_requests_reloads_at_most_once_a_second(clock: FakeClock) -> None:
    _, signing = secret_credential()
    store = Store(signing)
    cache = CredentialCache(store, clock)
    cache.secrets()
    clock.advance(2)
    for _ in range(5):
        with pytest.raises(AuthError):
            authenticate(signed_headers(new_webhook_secret(), BODY), BODY, cache)
        with pytest.raises(AuthError):
            authenticate(bearer(new_api_key()), BODY, cache)
    assert store.loads == 2
    clock.advance(1)
    with pytest.raises(AuthError):
        authenticate(bearer(new_api_key()), BODY, cache)
    assert store.loads == 3


def test_surrounding_spaces_around_an_api_key_are_ignored(clock: FakeClock) -> None:
    api_key, keyed = key_credential()
    cache = CredentialCache(Store(keyed), clock)
    assert authenticate_api_key({"authorization": f"Bearer  {api_key} "}, cache).app_id == 1


def test_any_credential_header_counts_as_credentials() -> None:
    assert has_credentials({"authorization": "Bearer x"})
    assert has_credentials({"webhook-signature": "v1,x"})
    assert not has_credentials({"content-type": "application/json"})


MISSING = (
    "missing credentials: sign the request with Standard Webhooks (webhook-id, "
    "webhook-timestamp, webhook-signature) or send Authorization: Bearer <api key>"
)


def _signed(secret: str, **changes: str) -> dict[str, str]:
    return {**signed_headers(secret, BODY), **changes}


def _stamped(secret: str, minutes: int) -> dict[str, str]:
    return signed_headers(secret, BODY, at=utc_now() + timedelta(minutes=minutes))


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (
            lambda secret: _stamped(secret, -6),
            "webhook-timestamp is more than 5 minutes old: sign each delivery afresh",
        ),
        (
            lambda secret: _stamped(secret, 6),
            "webhook-timestamp is more than 5 minutes in the future: check the sender's clock",
        ),
        (
            lambda secret: _signed(secret, **{"webhook-timestamp": "soon"}),
            "webhook-timestamp is not a Unix time in seconds",
        ),
        (
            lambda secret: _signed(secret, **{"webhook-signature": "garbage"}),
            "webhook-signature is malformed: expected space-separated 'v1,<base64>' entries",
        ),
        (
            lambda secret: signed_headers(new_webhook_secret(), BODY),
            "webhook-signature matches no app's signing secret",
        ),
        (
            lambda secret: {"webhook-id": "msg_1"},
            "missing Standard Webhooks header(s): webhook-timestamp, webhook-signature",
        ),
        (lambda secret: {}, MISSING),
        (lambda secret: {"authorization": "Basic dXNlcjpwYXNz"}, MISSING),
        (lambda secret: {"authorization": "Bearer "}, MISSING),
        (lambda secret: bearer("dv_unknown"), "unknown or expired API key"),
    ],
    ids=[
        "old", "future", "not-a-time", "malformed", "no-match", "missing-headers", "none",
        "basic", "empty-bearer", "unknown-key",
    ],
)  # fmt: skip
def test_a_refused_request_is_told_exactly_what_to_fix(
    clock: FakeClock, headers: Callable[[str], dict[str, str]], detail: str
) -> None:
    secret, credential = secret_credential()
    cache = CredentialCache(Store(credential), clock)
    with pytest.raises(AuthError) as refused:
        authenticate(headers(secret), BODY, cache)
    assert str(refused.value) == detail


def test_the_read_api_without_a_key_is_told_to_send_one(clock: FakeClock) -> None:
    cache = CredentialCache(Store(), clock)
    with pytest.raises(AuthError) as refused:
        authenticate_api_key({}, cache)
    assert str(refused.value) == "missing credentials: send Authorization: Bearer <api key>"
