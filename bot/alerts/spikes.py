"""Spike control, the worker's side: is this app spiking, where its spike message is (posting it
first if no one has), and which spike messages need an update. Slack calls are the worker's."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from bot.alerts.spike_message import SpikeMessage, spike_message
from bot.config import SpikeLimits
from storage import spikes
from storage.clock import Clock
from storage.db import read_in_thread, transact_in_thread
from storage.spikes import SpikeRules, SpikeView

# A spike's message shows the new count at most this often.
REFRESH_EVERY = timedelta(seconds=10)
Place = tuple[str, str]  # (channel id, ts) of a message
PostSpike = Callable[[SpikeMessage], Awaitable[Place]]
FindSpike = Callable[[int], Awaitable[Place | None]]


def rules_of(limits: SpikeLimits) -> SpikeRules:
    return SpikeRules(
        min_count=limits.min_count,
        factor=limits.factor,
        window=timedelta(minutes=limits.window_minutes),
        baseline=timedelta(days=limits.baseline_days),
        quiet=timedelta(minutes=limits.quiet_minutes),
    )


@dataclass(frozen=True)
class Update:
    """A spike message to update in place."""

    channel_id: str
    ts: str
    message: SpikeMessage


@dataclass
class SpikeControl:
    sessions: sessionmaker[Session]
    limits: SpikeLimits
    clock: Clock
    worker: str
    lease: timedelta
    _posting: defaultdict[int, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock), init=False
    )

    @property
    def rules(self) -> SpikeRules:
        return rules_of(self.limits)

    async def spike_of(self, app_id: int) -> SpikeView | None:
        """The app's spike, if it is spiking now (checked before each new group's alert)."""
        if not self.limits.enabled:
            return None
        now = self.clock.now()
        found, due = await read_in_thread(
            self.sessions, partial(spikes.lookup, app_id=app_id, now=now, rules=self.rules)
        )
        if found is not None or not due:  # the usual case: no write
            return found
        return await transact_in_thread(
            self.sessions, partial(spikes.current, app_id=app_id, now=now, rules=self.rules)
        )

    async def thread(self, spike: SpikeView, post: PostSpike, find: FindSpike) -> Place | None:
        """Where the spike's new groups go: its message, posted now unless it is already (or
        another process is posting it: None, come back shortly)."""
        if spike.channel_id and spike.ts:
            return spike.channel_id, spike.ts
        async with self._posting[spike.id]:  # this process's alerts in flight wait for one post
            return await self._thread(spike.id, post, find)

    async def _thread(self, spike_id: int, post: PostSpike, find: FindSpike) -> Place | None:
        spike = await read_in_thread(self.sessions, partial(spikes.spike_view, spike_id=spike_id))
        if spike.channel_id and spike.ts:
            return spike.channel_id, spike.ts
        claim = await transact_in_thread(
            self.sessions,
            partial(
                spikes.claim_message, spike_id=spike.id, worker=self.worker,
                now=self.clock.now(), lease=self.lease,
            ),
        )  # fmt: skip
        if claim is None:
            return None
        place = await find(spike.id) if claim.look_first else None
        if place is None:
            place = await post(await self._message(spike.id))
        channel_id, ts = place
        await transact_in_thread(
            self.sessions,
            partial(spikes.record_message, spike_id=spike.id, channel_id=channel_id, ts=ts),
        )
        return place

    async def joined(self, spike_id: int) -> None:
        """A new group went into the spike's thread: its message should show it."""
        await transact_in_thread(
            self.sessions,
            partial(
                spikes.mark_for_refresh, spike_id=spike_id, now=self.clock.now(),
                every=REFRESH_EVERY,
            ),
        )  # fmt: skip

    async def updates(self) -> list[Update]:
        """Move open spikes on (and end the calm ones); the messages due for an update."""
        if not self.limits.enabled:
            return []
        due = await transact_in_thread(
            self.sessions,
            partial(spikes.tick, now=self.clock.now(), rules=self.rules, every=REFRESH_EVERY),
        )
        found = []
        for spike_id in due:
            summary = await read_in_thread(self.sessions, partial(self._summary, spike_id))
            if summary.channel_id and summary.ts:
                message = spike_message(summary, window=self.rules.window)
                found.append(Update(summary.channel_id, summary.ts, message))
        return found

    async def _message(self, spike_id: int) -> SpikeMessage:
        summary = await read_in_thread(self.sessions, partial(self._summary, spike_id))
        return spike_message(summary, window=self.rules.window)

    def _summary(self, spike_id: int, session: Session) -> spikes.SpikeSummary:
        return spikes.summary(session, spike_id, now=self.clock.now(), rules=self.rules)
