"""`downvote alerts failed|retry`: alerts Slack refused for good, and sending them again."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import fail, load_settings, now, transaction

alerts_cli = typer.Typer(
    help="Alerts Slack refused for good.", no_args_is_help=True, rich_markup_mode=None
)


@alerts_cli.command("failed")
def alerts_failed() -> None:
    """List alerts that were given up on, with the reason."""
    from storage import alerts as outbox

    with transaction(load_settings()) as session:
        failed = outbox.failed_alerts(session)
    if not failed:
        typer.echo("no failed alerts")
    for alert in failed:
        typer.echo(
            f"{alert.id}\t{alert.app_name}\tevent {alert.event_external_id}\t"
            f"channel {alert.channel or '(default)'}\t{alert.attempts} attempts\t{alert.last_error}"
        )


@alerts_cli.command("retry")
def alerts_retry(
    alert_id: Annotated[
        int | None, typer.Argument(help="The alert's id from `alerts failed`.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every failed alert.")] = False,
) -> None:
    """Queue failed alerts again (after fixing the channel or token)."""
    from storage import alerts as outbox

    if (alert_id is None) == (not all_):
        fail("give an alert id or --all")
    with transaction(load_settings()) as session:
        count = outbox.retry_failed(session, now=now(), alert_id=alert_id)
    if alert_id is not None and count == 0:
        fail(f"no failed alert with id {alert_id}")
    typer.echo(f"queued {count} alert(s) again; a running `downvote serve` sends them")
