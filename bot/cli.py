"""The `downvote` command line: serve, manage apps, export, send a test event."""

from __future__ import annotations

import csv
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.config import ConfigError, DownvoteConfig, load_config
from bot.settings import Settings
from storage import alerts as alert_store
from storage import apps as app_store
from storage.db import make_engine, make_sessionmaker
from storage.events import EventFilter, event_record_dict, iter_events

if TYPE_CHECKING:  # bot.summaries pulls in matplotlib: too slow for every command's start
    from bot.summaries import Kind

cli = typer.Typer(
    help="Downvote: every thumbs-down on an LLM answer, in Slack, triaged.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
apps_cli = typer.Typer(
    help="Register and manage the apps that send feedback.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database maintenance.", no_args_is_help=True)
cli.add_typer(apps_cli, name="apps")
alerts_cli = typer.Typer(help="Alerts Slack refused for good.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(alerts_cli, name="alerts")


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 1."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise UserError(f"invalid setting {where.upper()}: {first['msg']}") from None


def ready_engine(settings: Settings) -> Engine:
    """An engine on the configured database with the schema brought up to date."""
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
    engine = ready_engine(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    except OperationalError as exc:
        raise UserError(f"cannot use the database {engine.url!r}: {exc.orig}") from None
    finally:
        engine.dispose()


def now() -> datetime:
    return datetime.now(UTC)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Apply migrations, then run the receiver, the Slack worker and the scheduler."""
    import uvicorn

    from bot.service import build_service

    settings = load_settings()
    engine = ready_engine(settings)
    service = build_service(settings, engine=engine, config=load_downvote_config(settings))
    typer.echo(welcome_text(settings, host, port), err=True)
    # uvicorn drains on SIGTERM, then re-raises it to the previous handler: make that a clean exit.
    signal.signal(signal.SIGTERM, _exit_after_drain)
    uvicorn.run(service.app, host=host, port=port, log_level="info", timeout_graceful_shutdown=20)


def _exit_after_drain(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def welcome_text(settings: Settings, host: str, port: int) -> str:
    """What a newcomer needs to see next, printed when the server starts."""
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    if settings.preview_mode:
        mode = "preview mode: no SLACK_BOT_TOKEN, so alerts are printed here"
    else:
        mode = "posting alerts to Slack"
    return (
        f"Downvote on http://{host}:{port} · database {database} · {mode}\n"
        "Next, in another terminal:\n"
        "  .venv/bin/downvote apps add my-app   # prints its signing secret and API key\n"
        f"  .venv/bin/downvote send-test --url http://{host}:{port}   # a signed sample downvote\n"
    )


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply pending database migrations."""
    ready_engine(load_settings()).dispose()
    typer.echo("database is up to date")


@apps_cli.command("add")
def apps_add(
    name: Annotated[str, typer.Argument(help="A name for the sending app, e.g. support-bot.")],
    channel: Annotated[
        str | None, typer.Option(help="Slack channel for this app's alerts (else SLACK_CHANNEL).")
    ] = None,
) -> None:
    """Register an app; prints its signing secret and API key once."""
    if not name.strip() or len(name) > 100:
        fail("the app name must be 1 to 100 characters")
    try:
        with transaction(load_settings()) as session:
            issued = app_store.create_app(session, name.strip(), channel=channel, now=now())
    except app_store.AppNameTaken as exc:
        fail(f"{exc}; use `downvote apps rotate {name}` for new credentials")
    typer.echo(credentials_text(issued, heading=f"Registered app {name!r}."))


def credentials_text(issued: app_store.IssuedCredentials, *, heading: str) -> str:
    return (
        f"{heading} Store these now: they are not shown again.\n"
        f"  signing secret (Standard Webhooks): {issued.webhook_secret}\n"
        f"  API key (Authorization: Bearer):    {issued.api_key}"
    )


@apps_cli.command("list")
def apps_list() -> None:
    """List registered apps."""
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
    try:
        with transaction(load_settings()) as session:
            issued = app_store.rotate_credentials(session, name, now=now())
    except app_store.UnknownApp as exc:
        fail(str(exc))
    typer.echo(
        credentials_text(issued, heading=f"New credentials for {name!r} (old ones work 24 h).")
    )


class DigestKind(StrEnum):
    daily = "daily"
    weekly = "weekly"


@cli.command()
def digest(
    kind: Annotated[DigestKind, typer.Argument(help="daily or weekly.")],
    date_: Annotated[
        str | None,
        typer.Option("--date", help="A day in the period (default: the last complete one)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print it; post nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Post again if already posted.")] = False,
) -> None:
    """Build the summary of a day or a Monday-to-Sunday week; post it once (or print it)."""
    import asyncio

    from bot.service import make_summary_poster, slack_client_for, summary_timezone
    from bot.summaries import Outcome, period_of, render
    from storage.periods import last_complete_day, last_complete_week

    settings = load_settings()
    config = load_downvote_config(settings)
    tz = summary_timezone(settings, config)
    period_kind: Kind = "daily" if kind is DigestKind.daily else "weekly"
    day = _parse_day(date_, "--date")
    if day is not None:
        period = period_of(period_kind, day.date(), tz)
    elif period_kind == "daily":
        period = last_complete_day(now(), tz)
    else:
        period = last_complete_week(now(), tz)
    if dry_run:
        with transaction(settings) as session:
            typer.echo(render(session, period_kind, period, config, now()).console)
        return
    engine = ready_engine(settings)
    poster = make_summary_poster(
        settings, make_sessionmaker(engine), config, slack_client_for(settings)
    )
    try:
        result = asyncio.run(poster.post(period_kind, period, force=force, skip_before_data=False))
    finally:
        engine.dispose()
    label = f"{period_kind} summary for {period.first_day.isoformat()}"
    if result.outcome is Outcome.FAILED:
        fail(f"{label} was not posted: {result.detail}")
    if result.outcome is Outcome.ALREADY_POSTED:
        typer.echo(f"{label} was posted already; --force posts it again")
        return
    typer.echo(f"{label}: {result.outcome.value}")


def load_downvote_config(settings: Settings) -> DownvoteConfig:
    try:
        return load_config(settings.config_path)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


@alerts_cli.command("failed")
def alerts_failed() -> None:
    """List alerts that were given up on, with the reason."""
    with transaction(load_settings()) as session:
        failed = alert_store.failed_alerts(session)
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
    if (alert_id is None) == (not all_):
        fail("give an alert id or --all")
    with transaction(load_settings()) as session:
        count = alert_store.retry_failed(session, now=now(), alert_id=alert_id)
    if alert_id is not None and count == 0:
        fail(f"no failed alert with id {alert_id}")
    typer.echo(f"queued {count} alert(s) again; a running `downvote serve` sends them")


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


class RatingChoice(StrEnum):
    down = "down"
    up = "up"
    any = "any"


CSV_COLUMNS = [
    "id", "app", "rating", "comment", "prompt", "response", "correction", "model", "feature",
    "latency_ms", "confidence", "user_id", "session_id", "trace_id", "trace_url", "metrics",
    "metadata", "occurred_at", "received_at", "categories", "status", "assignee", "notes",
    "triaged_at", "triaged_by",
]  # fmt: skip


def _parse_day(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} must be a date like 2026-11-26, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def jsonl_row(record: dict[str, Any]) -> dict[str, Any]:
    """The event plus eval-dataset keys: input, output, expected."""
    return {
        **record,
        "input": record["prompt"],
        "output": record["response"],
        "expected": record["correction"],
    }


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """Flat cells: lists and objects as JSON text, categories separated by '; '."""
    row = {key: record[key] for key in CSV_COLUMNS}
    for key in ("prompt", "metrics", "metadata", "notes"):
        if not isinstance(row[key], str) and row[key] is not None:
            row[key] = json.dumps(row[key], ensure_ascii=False)
    row["categories"] = "; ".join(record["categories"])
    return row


def write_export(records: Iterator[dict[str, Any]], out: TextIO, fmt: ExportFormat) -> int:
    count = 0
    if fmt is ExportFormat.csv:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow(csv_row(record))
            count += 1
        return count
    for record in records:
        out.write(json.dumps(jsonl_row(record), ensure_ascii=False) + "\n")
        count += 1
    return count


@cli.command()
def export(
    format: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = (
        ExportFormat.jsonl
    ),
    rating: Annotated[RatingChoice, typer.Option(help="Which ratings.")] = RatingChoice.any,
    category: Annotated[str | None, typer.Option(help="Only events with this category.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date/time (UTC if no offset).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this date/time.")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default stdout).")
    ] = None,
) -> None:
    """One record per event: prompt, response, comment, categories, triage, notes."""
    filters = EventFilter(
        rating=None if rating is RatingChoice.any else rating.value,
        category=category,
        since=_parse_day(since, "--since"),
        until=_parse_day(until, "--until"),
    )
    with transaction(load_settings()) as session:
        records = (event_record_dict(r) for r in iter_events(session, filters))
        if output is None:
            count = write_export(records, sys.stdout, format)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                count = write_export(records, out, format)
    typer.echo(f"exported {count} events", err=True)


@cli.command("send-test")
def send_test(
    url: Annotated[str, typer.Option(help="Where Downvote listens.")] = "http://127.0.0.1:8000",
    app: Annotated[
        str | None, typer.Option(help="App to sign as (default: the only app, or a new 'demo').")
    ] = None,
) -> None:
    """Send a signed sample downvote, as your app would."""
    from bot.send_test import send_sample_downvote

    settings = load_settings()
    with transaction(settings) as session:
        secret, app_name, created = _test_app_secret(session, app)
    if created:
        typer.echo(f"Registered app {app_name!r} for the test (see `downvote apps list`).")
    status, body = send_sample_downvote(url.rstrip("/"), secret)
    if status != 202:
        fail(f"Downvote at {url} answered {status}: {body}")
    typer.echo(f"Sent a signed sample downvote as {app_name!r}: {status} {body}")


def _test_app_secret(session: Session, name: str | None) -> tuple[str, str, bool]:
    """The signing secret of the app to test with, registering 'demo' when there is none."""
    apps = app_store.list_apps(session)
    created = False
    if name is None and len(apps) > 1:
        names = ", ".join(a.name for a in apps)
        raise UserError(f"several apps are registered ({names}): choose one with --app")
    if name is None and not apps:
        app_store.create_app(session, "demo", channel=None, now=now())
        name, created = "demo", True
    app = app_store.get_app(session, name) if name else apps[0]
    secrets = [
        c for c in app_store.active_credentials(session, now=now())
        if c.app_id == app.id and c.kind == app_store.WEBHOOK_SECRET and c.secret
    ]  # fmt: skip
    return str(secrets[0].secret), app.name, created


def main() -> None:
    """Entry point: user mistakes are one line on stderr and exit 1, never a traceback."""
    try:
        cli(standalone_mode=True)
    except (UserError, app_store.UnknownApp) as exc:
        typer.echo(f"downvote: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
