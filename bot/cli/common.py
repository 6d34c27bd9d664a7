"""What every command shares: settings, the database, and one-line errors for user mistakes.

Heavy imports (SQLAlchemy, pydantic-settings) happen inside these functions, so that importing
the command line (and `downvote --help`) stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from bot.config import DownvoteConfig
    from bot.settings import Settings


class UserError(Exception):
    """A mistake the user can fix: one line on stderr, exit code 1, never a traceback."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


def now() -> datetime:
    from storage.clock import SYSTEM_CLOCK

    return SYSTEM_CLOCK.now()


def load_settings() -> Settings:
    from pydantic import ValidationError

    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise UserError(f"invalid setting {where.upper()}: {first['msg']}") from None


def load_downvote_config(settings: Settings) -> DownvoteConfig:
    from bot.config import ConfigError, load_config

    try:
        return load_config(settings.config_path)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def ready_engine(settings: Settings) -> Engine:
    """An engine on the configured database with the schema brought up to date."""
    from sqlalchemy.exc import OperationalError

    from storage.db import make_engine
    from storage.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(settings.database_url, engine)
    except OperationalError as exc:
        engine.dispose()
        raise UserError(f"cannot use the database {engine.url!r}: {exc.orig}") from None
    return engine


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    """One unit of work against the configured database."""
    from sqlalchemy.exc import OperationalError

    from storage.db import make_sessionmaker

    engine = ready_engine(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    except OperationalError as exc:
        raise UserError(f"cannot use the database {engine.url!r}: {exc.orig}") from None
    finally:
        engine.dispose()


def parse_day(value: str | None, option: str) -> datetime | None:
    """A date or date-time option; UTC when it has no offset."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} must be a date like 2026-11-26, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
