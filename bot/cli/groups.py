"""`downvote groups`: the groups of similar downvotes, largest first."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import fail, load_settings, parse_day, transaction

PROMPT_CHARS = 60


def groups(
    app: Annotated[str | None, typer.Option(help="Only this app's groups.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only groups seen since this date (YYYY-MM-DD).")
    ] = None,
) -> None:
    """List groups of similar downvotes: size, first and last seen, status, categories."""
    from storage import groups as stored
    from storage.apps import UnknownApp, get_app
    from storage.events import prompt_text

    since_at = parse_day(since, "--since")
    with transaction(load_settings()) as session:
        app_id = None
        if app is not None:
            try:
                app_id = get_app(session, app).id
            except UnknownApp:
                fail(f"no app named {app!r} (see `downvote apps list`)")
        listed = stored.list_groups(session, app_id=app_id, since=since_at)
    if not listed:
        typer.echo("no groups")
        return
    typer.echo("group\tapp\tsize\tfirst seen\tlast seen\tstatus\tcategories\tprompt")
    for group in listed:
        prompt = " ".join(prompt_text(group.prompt).split())
        if len(prompt) > PROMPT_CHARS:
            prompt = prompt[: PROMPT_CHARS - 1] + "…"
        typer.echo(
            f"{group.id}\t{group.app}\t{group.size}\t{group.first_seen_at:%Y-%m-%d %H:%M}\t"
            f"{group.last_seen_at:%Y-%m-%d %H:%M}\t{group.status}\t"
            f"{', '.join(group.categories) or '-'}\t{prompt}"
        )
