"""`downvote slack check`: after connecting Slack, see that the token, scopes and channels work."""

from __future__ import annotations

import asyncio

import typer

from bot.cli.common import fail, load_settings, ready_engine

slack_cli = typer.Typer(help="The Slack connection.", no_args_is_help=True, rich_markup_mode=None)


@slack_cli.command("check")
def slack_check() -> None:
    """Check the token, its scopes and every configured channel (joining public ones)."""
    from bot.service import configured_channels, slack_client_for
    from bot.slack.channels import Channels
    from bot.slack.check import check_slack
    from storage.db import make_sessionmaker, read

    settings = load_settings()
    client = slack_client_for(settings)
    if client is None:
        fail("no SLACK_BOT_TOKEN: Downvote is in preview mode (see README, Connecting Slack)")
    engine = ready_engine(settings)
    try:
        sessions = make_sessionmaker(engine)
        channels = read(sessions, lambda s: configured_channels(settings, s))
        report = asyncio.run(check_slack(client, Channels(client, sessions), channels))
    finally:
        engine.dispose()
    if not channels:
        report.problems.append("no channel: set SLACK_CHANNEL (e.g. #llm-downvotes)")
    for problem in report.problems:
        typer.echo(f"downvote: {problem}", err=True)
    if report.problems:
        raise typer.Exit(1)
    typer.echo(report.summary())
