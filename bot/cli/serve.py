"""`downvote serve`: migrations, then the receiver, the Slack worker and the scheduler."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import load_downvote_config, load_settings, ready_engine

if TYPE_CHECKING:
    from bot.settings import Settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes sharing the port, each with its own Slack worker and scheduler "
            "(safe: shared work is claimed in the database). For PostgreSQL; see the README.",
        ),
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log one line per request (about 10% of ingest's throughput at full load)."
        ),
    ] = True,
) -> None:
    """Apply migrations, then run the receiver, the Slack worker and the scheduler."""
    import uvicorn

    from bot.cli.access_log import log_config

    settings = load_settings()
    config = load_downvote_config(settings)
    engine = ready_engine(settings)  # migrate once, before any worker starts
    typer.echo(welcome_text(settings, host, port), err=True)
    app: Any
    if workers > 1:
        # Each process builds its own service (engine, worker, scheduler) from the environment.
        app = "bot.service:service_from_environment"
        engine.dispose()
    else:
        from bot.service import build_service

        app = build_service(settings, engine=engine, config=config, freeze_heap=True).app
        # uvicorn drains on SIGTERM, then re-raises it to the previous handler: a clean exit.
        signal.signal(signal.SIGTERM, _exit_after_drain)
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        log_config=log_config(),
        timeout_graceful_shutdown=20,
    )


def _exit_after_drain(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def welcome_text(settings: Settings, host: str, port: int) -> str:
    """What a newcomer needs to see next, printed when the server starts."""
    from sqlalchemy.engine import make_url

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
