"""Placing claimed downvotes in groups: fingerprint their prompts, then let storage decide."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.fingerprint import fingerprint, similarity
from bot.config import Grouping
from storage import groups
from storage.alerts import ClaimedAlert
from storage.db import transact_in_thread

# A group's message shows its new size at most this often, however fast members arrive.
REFRESH_EVERY = timedelta(seconds=10)


async def place(
    sessions: sessionmaker[Session], grouping: Grouping, claimed: Sequence[ClaimedAlert]
) -> dict[int, groups.Placement]:
    """Each claimed downvote's group (by event id); nothing when grouping is off."""
    if not grouping.enabled or not claimed:
        return {}
    prints = await asyncio.to_thread(lambda: [fingerprint(a.event.prompt) for a in claimed])
    newcomers = [
        groups.Newcomer(
            alert.event.id,
            alert.event.app_id,
            alert.event.received_at,
            print_.signature,
            print_.bands,
        )
        for alert, print_ in zip(claimed, prints, strict=True)
    ]
    rules = groups.Rules(
        similarity=grouping.similarity,
        window=timedelta(days=grouping.window_days),
        suggest_similarity=grouping.suggest_similarity,
    )
    return await transact_in_thread(
        sessions, lambda s: groups.place(s, newcomers, rules=rules, likeness=similarity)
    )
