"""Spikes: an app's downvotes far above its usual rate, and the one message that holds them.

quiet -> spiking -> over. Before a new group's alert goes out, its app's recent downvotes are
counted (one indexed range count). The first process to see the threshold crossed opens the
spike (one open spike per app, by a partial unique index), one process claims posting its
message, and new groups go into that message's thread instead of the channel. The spike is over
once the count stayed below the threshold for the quiet period.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage import leases
from storage.db import insert_if_new
from storage.events import prompt_text
from storage.models import App, DownvoteGroup, FeedbackEvent, GroupMember, Spike
from storage.states import Rating

TOP = 3  # features, models and groups a spike message names


@dataclass(frozen=True)
class SpikeRules:
    min_count: int  # downvotes in the window
    factor: float  # times the usual count per window
    window: timedelta
    baseline: timedelta  # the period before the window the usual count is taken over
    quiet: timedelta  # below the threshold this long: the spike is over

    def threshold(self, baseline: float) -> float:
        return max(float(self.min_count), self.factor * baseline)


@dataclass(frozen=True)
class Rate:
    count: int  # the app's downvotes in the last window
    baseline: float  # its average downvotes per window over the baseline period before that


def rate(session: Session, app_id: int, *, now: datetime, rules: SpikeRules) -> Rate:
    window_start = now - rules.window
    count = _downvotes(session, app_id, window_start, now)
    before = _downvotes(session, app_id, window_start - rules.baseline, window_start)
    return Rate(count, before / (rules.baseline / rules.window))


def _downvotes(session: Session, app_id: int, after: datetime, until: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(FeedbackEvent)
            .where(
                FeedbackEvent.app_id == app_id,
                FeedbackEvent.received_at > after,
                FeedbackEvent.received_at <= until,
                FeedbackEvent.rating == Rating.DOWN,
            )
        )
        or 0
    )


@dataclass(frozen=True)
class SpikeView:
    id: int
    app_id: int
    started_at: datetime
    ended_at: datetime | None
    channel_id: str | None  # its message, once posted
    ts: str | None


def _view(spike: Spike) -> SpikeView:
    return SpikeView(
        spike.id, spike.app_id, spike.started_at, spike.ended_at, spike.slack_channel_id,
        spike.slack_ts,
    )  # fmt: skip


def spike_view(session: Session, spike_id: int) -> SpikeView:
    return _view(session.get_one(Spike, spike_id))


def _open(session: Session, app_id: int) -> Spike | None:
    return session.scalar(select(Spike).where(Spike.app_id == app_id, Spike.ended_at.is_(None)))


def lookup(
    session: Session, app_id: int, *, now: datetime, rules: SpikeRules
) -> tuple[SpikeView | None, bool]:
    """Read only: the app's open spike, else whether one is due (then `current` opens it)."""
    spike = _open(session, app_id)
    if spike is not None:
        return _view(spike), False
    seen = rate(session, app_id, now=now, rules=rules)
    return None, seen.count >= rules.threshold(seen.baseline)


def current(session: Session, app_id: int, *, now: datetime, rules: SpikeRules) -> SpikeView | None:
    """The app's open spike; opened now if its downvotes have just crossed the threshold."""
    spike = _open(session, app_id)
    if spike is None:
        seen = rate(session, app_id, now=now, rules=rules)
        if seen.count < rules.threshold(seen.baseline):
            return None
        # Another process may open it at the same moment: the partial unique index keeps one.
        insert_if_new(
            session,
            Spike,
            {"app_id": app_id, "started_at": now, "baseline": seen.baseline, "peak": seen.count},
        )
        spike = _open(session, app_id)
    return _view(spike) if spike is not None else None


@dataclass(frozen=True)
class MessageClaim:
    """The right to post a spike's message; `look_first` when an earlier claimant may have."""

    look_first: bool


def claim_message(
    session: Session, spike_id: int, *, worker: str, now: datetime, lease: timedelta
) -> MessageClaim | None:
    """Take the posting of the spike's message, unless it is posted or another process holds it."""
    spike = session.get(Spike, spike_id, with_for_update=True)
    if spike is None or spike.slack_ts is not None:
        return None
    held = spike.claimed_until is not None and spike.claimed_until > now
    if held and spike.claimed_by != worker:
        return None
    look_first = spike.claimed_by is not None
    spike.claimed_by, spike.claimed_until = worker, now + lease
    return MessageClaim(look_first)


def record_message(session: Session, spike_id: int, *, channel_id: str, ts: str) -> None:
    session.execute(
        update(Spike)
        .where(Spike.id == spike_id)
        .values(slack_channel_id=channel_id, slack_ts=ts, claimed_until=None)
    )


def mark_for_refresh(session: Session, spike_id: int, *, now: datetime, every: timedelta) -> None:
    """Ask for the spike's message to be updated, at most once every `every`."""
    spike = session.get(Spike, spike_id)
    if spike is not None:
        leases.schedule_refresh(spike, now=now, every=every)


def tick(session: Session, *, now: datetime, rules: SpikeRules, every: timedelta) -> list[int]:
    """Move each open spike on (still high, calming down, or over), then claim the spike
    messages due for an update: each is claimed by one process."""
    for spike in session.scalars(select(Spike).where(Spike.ended_at.is_(None))):
        seen = rate(session, spike.app_id, now=now, rules=rules)
        if seen.count >= rules.threshold(spike.baseline):
            spike.below_since = None
            if seen.count > spike.peak:
                spike.peak = seen.count
                mark_for_refresh(session, spike.id, now=now, every=every)
        elif spike.below_since is None:
            spike.below_since = now
        elif now - spike.below_since >= rules.quiet:
            spike.ended_at = now
            spike.refresh_due_at = now  # the end is shown at once
    session.flush()
    return leases.claim_due_refreshes(session, Spike, now=now)


@dataclass(frozen=True)
class TopGroup:
    size: int  # its downvotes during the spike
    prompt: str
    channel_id: str | None
    ts: str | None


@dataclass(frozen=True)
class SpikeSummary:
    """What a spike's message says."""

    id: int
    app: str
    started_at: datetime
    ended_at: datetime | None
    count: int  # downvotes in the last window (at the end: the peak)
    baseline: float
    total: int  # downvotes from the window that set it off until now (or its end)
    features: list[tuple[str, int]]
    models: list[tuple[str, int]]
    groups: list[TopGroup]
    channel_id: str | None
    ts: str | None


def summary(session: Session, spike_id: int, *, now: datetime, rules: SpikeRules) -> SpikeSummary:
    spike = session.get_one(Spike, spike_id)
    until = spike.ended_at or now
    since = spike.started_at - rules.window
    during = (
        FeedbackEvent.app_id == spike.app_id,
        FeedbackEvent.received_at > since,
        FeedbackEvent.received_at <= until,
        FeedbackEvent.rating == Rating.DOWN,
    )
    rows = session.execute(select(FeedbackEvent.feature, FeedbackEvent.model).where(*during)).all()
    features = Counter(row.feature or "(none)" for row in rows)
    models = Counter(row.model or "(none)" for row in rows)
    count = rate(session, spike.app_id, now=until, rules=rules).count
    return SpikeSummary(
        id=spike.id,
        app=session.get_one(App, spike.app_id).name,
        started_at=spike.started_at,
        ended_at=spike.ended_at,
        count=spike.peak if spike.ended_at else count,
        baseline=spike.baseline,
        total=len(rows),
        features=features.most_common(TOP),
        models=models.most_common(TOP),
        groups=_top_groups(session, during),
        channel_id=spike.slack_channel_id,
        ts=spike.slack_ts,
    )


def _top_groups(session: Session, during: tuple[object, ...]) -> list[TopGroup]:
    size = func.count(GroupMember.event_id)
    biggest = session.execute(
        select(GroupMember.group_id, size.label("size"))
        .join(FeedbackEvent, FeedbackEvent.id == GroupMember.event_id)
        .where(*during)  # type: ignore[arg-type]
        .group_by(GroupMember.group_id)
        .order_by(size.desc(), GroupMember.group_id)
        .limit(TOP)
    ).all()
    groups = []
    for group_id, members in biggest:
        group = session.get_one(DownvoteGroup, group_id)
        head = session.get_one(FeedbackEvent, group.head_event_id)
        groups.append(TopGroup(members, prompt_text(head.prompt), group.slack_channel_id,
                               group.slack_ts))  # fmt: skip
    return groups
