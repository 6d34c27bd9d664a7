"""The nightly retention job: events older than `[retention] days` are deleted."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Retention
from storage import erasure
from storage.clock import Clock
from storage.states import DeletionReason

logger = logging.getLogger("downvote.retention")
ACTOR = "retention"


@dataclass(frozen=True)
class RetentionJob:
    sessions: sessionmaker[Session]
    retention: Retention
    clock: Clock

    async def run(self) -> erasure.Erased:
        """Delete what is past retention (batch by batch, off the event loop)."""
        if self.retention.days is None:
            return erasure.NOTHING
        now = self.clock.now()
        before = now - timedelta(days=self.retention.days)
        erased = await asyncio.to_thread(
            erasure.erase_in_batches, self.sessions, erasure.older_than(before), now=now,
            reason=DeletionReason.RETENTION, actor=ACTOR, slack=self.retention.slack_messages,
        )  # fmt: skip
        if erased.events:
            logger.info(
                "retention: deleted %d events that occurred before %s (%d Slack messages queued)",
                erased.events, before.isoformat(), erased.slack_messages,
            )  # fmt: skip
        return erased
