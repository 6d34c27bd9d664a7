"""`downvote db upgrade`: apply pending migrations by hand (`serve` does it too)."""

from __future__ import annotations

import typer

from bot.cli.common import load_settings, ready_engine

db_cli = typer.Typer(help="Database maintenance.", no_args_is_help=True, rich_markup_mode=None)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply pending database migrations."""
    ready_engine(load_settings()).dispose()
    typer.echo("database is up to date")
