"""The hourly breach check: a criterion whose whole interval misses its target today (with at
least min_sample events) is posted once that day, whichever replica checks first.

Query (queries.breach_of), render (render.breach_message) and send (here) stay apart; the
CriterionBreach row, inserted before posting, is what keeps the alert single.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from bot.config import Criterion
from bot.slack.errors import SLACK_CALL_ERRORS, failure_detail
from bot.summaries.poster import SummaryOutlet, SummaryPoster
from bot.summaries.queries import Breach, breach_of
from bot.summaries.render import breach_message
from storage.breaches import claim_breach, mark_breach_posted, release_breach
from storage.db import read_in_thread, transact_in_thread
from storage.periods import local_date

logger = logging.getLogger("downvote.breaches")
BREACH_EVENT_TYPE = "downvote_breach"


@dataclass
class BreachAlerter(SummaryOutlet):
    """Posts a criterion missed today, once per criterion per day across replicas."""

    async def check(self) -> list[str]:
        """Alert each criterion missed today and not alerted yet; the names alerted."""
        if self.client is not None and not self.channel:
            logger.error("breach alerts not checked: set SLACK_CHANNEL")
            return []
        now = self.clock.now()
        day = local_date(now, self.tz)
        alerted = []
        for criterion in self.config.criteria:
            breach: Breach | None = await read_in_thread(
                self.sessions,
                partial(breach_of, criterion=criterion, day=day, tz=self.tz, now=now),
            )
            if breach is not None and await self._alert(criterion, breach):
                alerted.append(criterion.name)
        return alerted

    async def _alert(self, criterion: Criterion, breach: Breach) -> bool:
        day = breach.period.first_day
        breach_id: int | None = await transact_in_thread(
            self.sessions, lambda s: claim_breach(s, criterion.name, day, worker=self.name)
        )
        if breach_id is None:  # another replica, or this one before a restart, has it
            return False
        text, blocks = breach_message(breach)
        try:
            channel, ts = await self._send(text, blocks, criterion, breach)
        except SLACK_CALL_ERRORS as exc:
            await transact_in_thread(self.sessions, lambda s: release_breach(s, breach_id))
            logger.error("breach of %r not posted (next check retries): %s",
                         criterion.name, failure_detail(exc))  # fmt: skip
            return False
        await transact_in_thread(
            self.sessions,
            partial(
                mark_breach_posted, breach_id=breach_id, channel=channel, ts=ts,
                now=self.clock.now(),
            ),
        )  # fmt: skip
        logger.info("breach of %r on %s alerted", criterion.name, day)
        return True

    async def _send(
        self, text: str, blocks: list[dict[str, Any]], criterion: Criterion, breach: Breach
    ) -> tuple[str | None, str | None]:
        if self.client is None or self.channels is None or not self.channel:
            self.console(f"\n── Downvote breach alert (preview mode) ──\n{text}")
            return None, None
        known = await self.channels.known(self.channel)
        day = breach.period.first_day.isoformat()
        metadata = {
            "event_type": BREACH_EVENT_TYPE,
            "event_payload": {"criterion": criterion.name, "day": day},
        }
        response = await self.client.chat_postMessage(
            channel=known or self.channel, text=text, blocks=blocks, metadata=metadata,
            unfurl_links=False,
        )  # fmt: skip
        channel_id, ts = str(response["channel"]), str(response["ts"])
        await self.channels.learned(self.channel, channel_id)
        return channel_id, ts


def breach_alerter_for(poster: SummaryPoster) -> BreachAlerter:
    """A breach alerter posting where (and as) the summaries do."""
    return BreachAlerter(
        sessions=poster.sessions, client=poster.client, channel=poster.channel,
        config=poster.config, tz=poster.tz, name=poster.name, clock=poster.clock,
        console=poster.console, channels=poster.channels,
    )  # fmt: skip
