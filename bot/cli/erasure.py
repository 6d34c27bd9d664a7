"""`downvote forget` and `downvote purge`: delete a user's events, or every event before a date.

Both delete in batches (no long write lock) and queue the Slack messages of deleted downvotes
for deletion; a running `downvote serve` deletes them (it retries through Slack outages).
"""

from __future__ import annotations

import getpass
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import fail, load_settings, now, ready_engine

if TYPE_CHECKING:
    from storage.erasure import Erased

DURATION = re.compile(r"(\d+)d?")


def forget(
    user_id: Annotated[str, typer.Option("--user-id", help="The user id the app sent.")],
    app: Annotated[str | None, typer.Option(help="Only this app's events of the user.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every event of a user, and the Slack messages of their downvotes."""
    from storage import erasure
    from storage.apps import UnknownApp, get_app
    from storage.db import make_sessionmaker
    from storage.states import DeletionReason

    if not user_id.strip():
        fail("--user-id must not be empty")
    engine = ready_engine(load_settings())
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            try:
                app_id = get_app(session, app).id if app is not None else None
            except UnknownApp:
                fail(f"no app named {app!r} (see `downvote apps list`)")
            where = erasure.of_user(user_id, app_id)
            found = erasure.count(session, where)
        if found.events == 0:
            typer.echo(f"no events of user {user_id!r}" + (f" in app {app!r}" if app else ""))
            return
        if not yes:
            typer.echo(f"{_counts(found)} of user {user_id!r} will be deleted.")
            typer.confirm("Delete them?", abort=True)
        erased = erasure.erase_in_batches(
            sessions, where, now=now(), reason=DeletionReason.FORGET, actor=_actor(),
            app_id=app_id,
        )  # fmt: skip
    finally:
        engine.dispose()
    typer.echo(f"deleted {_counts(erased)} of user {user_id!r}{_slack_note(erased)}")


def purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Age, in days: 90d (or 90).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    slack: Annotated[
        bool, typer.Option("--slack/--no-slack", help="Also delete their alerts from Slack.")
    ] = False,
) -> None:
    """Delete every event that occurred more than --older-than ago (summaries posted stay)."""
    from storage import erasure
    from storage.db import make_sessionmaker
    from storage.states import DeletionReason

    matched = DURATION.fullmatch(older_than.strip())
    if matched is None or int(matched.group(1)) == 0:
        fail(f"--older-than must be a number of days like 90d, got {older_than!r}")
    before = now() - timedelta(days=int(matched.group(1)))
    where = erasure.older_than(before)
    engine = ready_engine(load_settings())
    try:
        sessions = make_sessionmaker(engine)
        if dry_run:
            with sessions() as session:
                found = erasure.count(session, where)
            typer.echo(
                f"would delete {_counts(found)} that occurred before {before:%Y-%m-%d %H:%M} UTC"
            )
            return
        erased = erasure.erase_in_batches(
            sessions, where, now=now(), reason=DeletionReason.PURGE, actor=_actor(), slack=slack
        )
    finally:
        engine.dispose()
    typer.echo(
        f"deleted {_counts(erased)} that occurred before {before:%Y-%m-%d %H:%M} UTC"
        + _slack_note(erased)
    )


def _counts(found: Erased) -> str:
    plural = "s" if found.events != 1 else ""
    return f"{found.events} event{plural} ({found.slack_messages} with an alert in Slack)"


def _slack_note(erased: Erased) -> str:
    if erased.slack_messages == 0:
        return ""
    return "; their Slack messages are queued: a running `downvote serve` deletes them"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"
