"""`downvote apps add|list|rotate`: the apps that send feedback, and their credentials."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import fail, load_settings, now, transaction

apps_cli = typer.Typer(
    help="Register and manage the apps that send feedback.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
MAX_NAME = 100


def credentials_text(webhook_secret: str, api_key: str, *, heading: str) -> str:
    return (
        f"{heading} Store these now: they are not shown again.\n"
        f"  signing secret (Standard Webhooks): {webhook_secret}\n"
        f"  API key (Authorization: Bearer):    {api_key}"
    )


@apps_cli.command("add")
def apps_add(
    name: Annotated[str, typer.Argument(help="A name for the sending app, e.g. support-bot.")],
    channel: Annotated[
        str | None, typer.Option(help="Slack channel for this app's alerts (else SLACK_CHANNEL).")
    ] = None,
) -> None:
    """Register an app; prints its signing secret and API key once."""
    from storage import apps as app_store

    if not name.strip() or len(name) > MAX_NAME:
        fail(f"the app name must be 1 to {MAX_NAME} characters")
    try:
        with transaction(load_settings()) as session:
            issued = app_store.add_app(session, name.strip(), channel=channel, now=now())
    except app_store.AppNameTaken as exc:
        fail(f"{exc}; use `downvote apps rotate {name}` for new credentials")
    heading = f"Registered app {name!r}."
    typer.echo(credentials_text(issued.webhook_secret, issued.api_key, heading=heading))


@apps_cli.command("list")
def apps_list() -> None:
    """List registered apps."""
    from storage import apps as app_store

    with transaction(load_settings()) as session:
        apps = app_store.list_apps(session)
    if not apps:
        typer.echo("no apps yet: `downvote apps add NAME`")
    for app in apps:
        channel = app.channel or "(default channel)"
        typer.echo(f"{app.name}\t{channel}\tcreated {app.created_at:%Y-%m-%d %H:%M} UTC")


@apps_cli.command("rotate")
def apps_rotate(name: str) -> None:
    """Issue new credentials; the old ones keep working for 24 hours."""
    from storage import apps as app_store

    try:
        with transaction(load_settings()) as session:
            issued = app_store.rotate_credentials(session, name, now=now())
    except app_store.UnknownApp as exc:
        fail(str(exc))
    heading = f"New credentials for {name!r} (old ones work 24 h)."
    typer.echo(credentials_text(issued.webhook_secret, issued.api_key, heading=heading))
