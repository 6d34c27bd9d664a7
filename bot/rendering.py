"""From stored rows to the alert's message: shared by the first post and every later update."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks import AlertContent, AlertMessage, TriageView, alert_message
from bot.redact import Redactor
from storage.models import FeedbackEvent
from storage.triage import TriageSnapshot


def alert_content(event: FeedbackEvent, app_name: str) -> AlertContent:
    return AlertContent(
        event_id=event.id,
        external_id=event.external_id,
        app_name=app_name,
        feature=event.feature,
        model=event.model,
        latency_ms=event.latency_ms,
        confidence=event.confidence,
        user_id=event.user_id,
        occurred_at=event.occurred_at,
        comment=event.comment,
        prompt=event.prompt,
        response=event.response,
        trace_url=event.trace_url,
        correction=event.correction,
    )


def triage_view(snapshot: TriageSnapshot | None) -> TriageView:
    if snapshot is None:
        return TriageView()
    return TriageView(
        categories=snapshot.categories,
        status=snapshot.status,
        assignee=snapshot.assignee,
        last_actor=snapshot.last_actor,
        last_action_at=snapshot.last_action_at,
        notes=snapshot.notes,
    )


def render_alert(
    event: FeedbackEvent,
    app_name: str,
    *,
    snapshot: TriageSnapshot | None,
    categories: Sequence[str],
    redactor: Redactor,
) -> AlertMessage:
    """The alert as it should look now; its text split never depends on the triage state."""
    return alert_message(
        alert_content(event, app_name),
        triage=triage_view(snapshot),
        categories=categories,
        redactor=redactor,
    )
