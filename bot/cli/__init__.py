"""The `downvote` command line: one module a command (group), wired here.

Each command imports its heavy modules (SQLAlchemy, FastAPI, slack_sdk, matplotlib) when it
runs, so `downvote --help` answers at once.
"""

from __future__ import annotations

import sys

import typer

from bot.cli.alerts import alerts_cli
from bot.cli.apps import apps_cli
from bot.cli.common import UserError
from bot.cli.criteria import criteria
from bot.cli.db import db_cli
from bot.cli.digest import digest
from bot.cli.erasure import forget, purge
from bot.cli.export import export
from bot.cli.groups import groups
from bot.cli.send_test import send_test
from bot.cli.serve import serve
from bot.cli.slack import slack_cli

cli = typer.Typer(
    help="Downvote: every thumbs-down on an LLM answer, in Slack, triaged.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: no rich to import, so `--help` answers at once
)
cli.command()(serve)
cli.add_typer(apps_cli, name="apps")
cli.command()(export)
cli.command("send-test")(send_test)
cli.add_typer(alerts_cli, name="alerts")
cli.command()(groups)
cli.command()(forget)
cli.command()(purge)
cli.command()(digest)
cli.command()(criteria)
cli.add_typer(slack_cli, name="slack")
cli.add_typer(db_cli, name="db")


def main(args: list[str] | None = None) -> None:
    """Entry point: a user mistake is one line on stderr and exit code 1, never a traceback."""
    try:
        cli(args=args)
    except UserError as exc:
        typer.echo(f"downvote: {exc}", err=True)
        sys.exit(1)
