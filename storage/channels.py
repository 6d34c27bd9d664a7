"""Which Slack conversation id a configured channel (`#name`, or an id) stands for.

Learned once (from a post's answer, or from `conversations.list`) and kept, so every process
and every restart passes ids to the methods that take only ids.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.db import dialect_insert
from storage.models import SlackChannel


def known_channel_id(session: Session, configured: str) -> str | None:
    return session.scalar(
        select(SlackChannel.channel_id).where(SlackChannel.configured == configured)
    )


def remember_channel(session: Session, configured: str, channel_id: str, now: datetime) -> None:
    """Record (or correct) the id of a configured channel."""
    statement = dialect_insert(session, SlackChannel).values(
        configured=configured, channel_id=channel_id, resolved_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[SlackChannel.configured],
            set_={"channel_id": channel_id, "resolved_at": now},
        )
    )
