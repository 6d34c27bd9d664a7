"""Sending apps and their credentials: webhook signing secrets and API keys."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from storage.models import App, AppCredential

WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 (a kind name, not a secret)
API_KEY = "api_key"
ROTATION_GRACE = timedelta(hours=24)
API_KEY_PREFIX = "dv_"


class AppNameTaken(ValueError):
    """An app with this name exists already."""


class UnknownApp(LookupError):
    """No app has this name."""


@dataclass(frozen=True)
class AppView:
    """A registered app."""

    id: int
    name: str
    channel: str | None
    created_at: datetime


@dataclass(frozen=True)
class IssuedCredentials:
    """Shown to the user once: only the hash of the API key is kept."""

    app_id: int
    webhook_secret: str
    api_key: str


@dataclass(frozen=True)
class ActiveCredential:
    """What authentication needs to know about one credential."""

    app_id: int
    app_name: str
    app_channel: str | None
    kind: str
    secret: str | None
    key_hash: str | None
    expires_at: datetime | None


def hash_api_key(api_key: str) -> str:
    """API keys are random and long, so a plain SHA-256 is a safe, fast lookup key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def _issue(session: Session, app: App, now: datetime) -> IssuedCredentials:
    webhook_secret, api_key = new_webhook_secret(), new_api_key()
    session.add_all(
        [
            AppCredential(app=app, kind=WEBHOOK_SECRET, secret=webhook_secret, created_at=now),
            AppCredential(app=app, kind=API_KEY, key_hash=hash_api_key(api_key), created_at=now),
        ]
    )
    session.flush()
    return IssuedCredentials(app_id=app.id, webhook_secret=webhook_secret, api_key=api_key)


def add_app(
    session: Session, name: str, *, channel: str | None, now: datetime
) -> IssuedCredentials:
    """Register an app and issue its first secret and API key."""
    if session.scalar(select(App.id).where(App.name == name)) is not None:
        raise AppNameTaken(f"an app named {name!r} exists already")
    app = App(name=name, channel=channel, created_at=now)
    session.add(app)
    return _issue(session, app, now)


def _app_row(session: Session, name: str) -> App:
    app = session.scalar(select(App).where(App.name == name))
    if app is None:
        raise UnknownApp(f"no app named {name!r} (see `downvote apps list`)")
    return app


def _view(app: App) -> AppView:
    return AppView(id=app.id, name=app.name, channel=app.channel, created_at=app.created_at)


def get_app(session: Session, name: str) -> AppView:
    return _view(_app_row(session, name))


def rotate_credentials(session: Session, name: str, *, now: datetime) -> IssuedCredentials:
    """Issue new credentials; the current ones keep working for 24 h so senders can switch."""
    app = _app_row(session, name)
    grace_end = now + ROTATION_GRACE
    for credential in app.credentials:
        if credential.expires_at is None or credential.expires_at > grace_end:
            credential.expires_at = grace_end
    return _issue(session, app, now)


def list_apps(session: Session) -> list[AppView]:
    return [_view(app) for app in session.scalars(select(App).order_by(App.name))]


def active_credentials(session: Session, *, now: datetime) -> list[ActiveCredential]:
    """Every credential that may still authenticate a request."""
    rows = session.execute(
        select(AppCredential, App)
        .join(App, App.id == AppCredential.app_id)
        .where(or_(AppCredential.expires_at.is_(None), AppCredential.expires_at > now))
        .order_by(AppCredential.id.desc())
    )
    return [
        ActiveCredential(
            app_id=app.id,
            app_name=app.name,
            app_channel=app.channel,
            kind=credential.kind,
            secret=credential.secret,
            key_hash=credential.key_hash,
            expires_at=credential.expires_at,
        )
        for credential, app in rows
    ]
