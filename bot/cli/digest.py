"""`downvote digest daily|weekly`: build a summary by hand, post it once, or print it."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bot.cli.common import (
    fail,
    load_downvote_config,
    load_settings,
    now,
    parse_day,
    ready_engine,
    transaction,
)
from storage.states import PeriodKind


def digest(
    kind: Annotated[PeriodKind, typer.Argument(help="daily or weekly.")],
    date_: Annotated[
        str | None,
        typer.Option("--date", help="A day in the period (default: the last complete one)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print it; post nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Post again if already posted.")] = False,
) -> None:
    """Build the summary of a day or a Monday-to-Sunday week; post it once (or print it)."""
    from bot.service import make_summary_poster, slack_client_for, summary_timezone
    from bot.summaries.poster import Outcome, render
    from storage.db import make_sessionmaker
    from storage.periods import last_complete, period_of

    settings = load_settings()
    config = load_downvote_config(settings)
    tz = summary_timezone(settings, config)
    day = parse_day(date_, "--date")
    period = period_of(kind, day.date(), tz) if day is not None else last_complete(kind, now(), tz)
    if dry_run:
        with transaction(settings) as session:
            typer.echo(render(session, kind, period, config, now()).console)
        return
    engine = ready_engine(settings)
    poster = make_summary_poster(
        settings, make_sessionmaker(engine), config, slack_client_for(settings)
    )
    try:
        result = asyncio.run(poster.post(kind, period, force=force, skip_without_events=False))
    finally:
        engine.dispose()
    label = f"{kind} summary for {period.first_day.isoformat()}"
    if result.outcome is Outcome.FAILED:
        fail(f"{label} was not posted: {result.detail}")
    if result.outcome is Outcome.ALREADY_POSTED:
        typer.echo(f"{label} was posted already; --force posts it again")
        return
    typer.echo(f"{label}: {result.outcome.value}")
