"""Breach alerts: one row per criterion per day, inserted before posting, makes the alert single.

The insert ignores a conflict, so of any number of replicas (or a restart) checking the same day
only the one whose row went in posts. A post Slack refused gives its row back (deleted), so the
next hourly check tries again; a process that dies after posting keeps its row: never twice.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from storage.db import insert_ignoring_conflicts
from storage.models import CriterionBreach
from storage.states import PostingStatus


def claim_breach(session: Session, criterion: str, day: date, *, worker: str) -> int | None:
    """The new breach row's id, or None when that criterion's breach that day is taken."""
    statement = (
        insert_ignoring_conflicts(session, CriterionBreach)
        .values(criterion=criterion, day=day, status=PostingStatus.CLAIMED, claimed_by=worker)
        .returning(CriterionBreach.id)
    )
    return session.execute(statement).scalar()


def mark_breach_posted(
    session: Session, breach_id: int, *, channel: str | None, ts: str | None, now: datetime
) -> None:
    session.execute(
        update(CriterionBreach)
        .where(CriterionBreach.id == breach_id)
        .values(status=PostingStatus.POSTED, slack_channel=channel, slack_ts=ts, posted_at=now)
    )


def release_breach(session: Session, breach_id: int) -> None:
    """Slack refused the post: let the next check try again."""
    session.execute(delete(CriterionBreach).where(CriterionBreach.id == breach_id))


def breaches_on(session: Session, day: date) -> list[str]:
    """The criteria alerted on `day`."""
    query = select(CriterionBreach.criterion).where(CriterionBreach.day == day)
    return list(session.scalars(query.order_by(CriterionBreach.criterion)))
