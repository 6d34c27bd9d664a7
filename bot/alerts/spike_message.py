"""The spike message: one top-level message while an app's downvotes jump, its thread holding
the new problems, so an incident does not bury the channel (and Slack's 1 message/s limit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.slack.blocks import Block, context, header, section
from bot.slack.limits import HEADER_TEXT, SECTION_TEXT, truncate
from bot.slack.mrkdwn import duration, escape, inline, message_link, one_line, slack_date
from storage.spikes import SpikeSummary, TopGroup

SPIKE_EVENT_TYPE = "downvote_spike"
PROMPT_CHARS = 80  # of a top group's prompt


@dataclass(frozen=True)
class SpikeMessage:
    text: str
    blocks: list[Block]
    metadata: dict[str, Any]


def spike_metadata(spike_id: int) -> dict[str, Any]:
    return {"event_type": SPIKE_EVENT_TYPE, "event_payload": {"spike_id": spike_id}}


def spike_message(spike: SpikeSummary, *, window: timedelta) -> SpikeMessage:
    per = duration(window.total_seconds())
    title = f"📈 Downvote spike in {one_line(spike.app)}"
    if spike.ended_at is not None:
        title = f"✅ Downvote spike in {one_line(spike.app)} is over"
    lines = [_state_line(spike, per), _rate_line(spike, per)]
    lines += [line for line in (_top_line("Features", spike.features),
                                _top_line("Models", spike.models)) if line]  # fmt: skip
    blocks = [
        header(truncate(title, HEADER_TEXT)),
        section(truncate("\n".join(lines), SECTION_TEXT)),
    ]
    if spike.groups:
        blocks.append(section(truncate(_groups_text(spike.groups), SECTION_TEXT)))
    blocks.append(context([_footer(spike)]))
    text = f"{title}: {spike.total:,} downvotes"
    return SpikeMessage(text, blocks, spike_metadata(spike.id))


def _state_line(spike: SpikeSummary, per: str) -> str:
    if spike.ended_at is not None:
        lasted = duration((spike.ended_at - spike.started_at).total_seconds())
        return (
            f"*Over* at {slack_date(spike.ended_at)}: *{spike.total:,} downvotes* in total "
            f"over {lasted} (at its peak, {spike.count:,} in {per})."
        )
    return (
        f"*{spike.count:,} downvotes in the last {per}* ({spike.total:,} since it began). "
        "New problems go into this thread until it calms down."
    )


def _rate_line(spike: SpikeSummary, per: str) -> str:
    if spike.baseline <= 0:
        return f"Usually: none (no downvotes in the week before, per {per})."
    ratio = spike.count / spike.baseline
    return f"{ratio:,.1f} times the usual {spike.baseline:,.1f} per {per}."


def _top_line(label: str, counts: Sequence[tuple[str, int]]) -> str | None:
    if not counts:
        return None
    return f"*{label}:* " + ", ".join(f"{inline(name)} ({count:,})" for name, count in counts)


def _groups_text(groups: Sequence[TopGroup]) -> str:
    lines = ["*Top groups:*"]
    for group in groups:
        prompt = truncate(escape(one_line(group.prompt)), PROMPT_CHARS) or "(empty prompt)"
        if group.channel_id and group.ts:
            prompt = f"<{message_link(group.channel_id, group.ts)}|{prompt}>"
        lines.append(f"• {group.size:,} downvotes: {prompt}")
    return "\n".join(lines)


def _footer(spike: SpikeSummary) -> str:
    return f"Began {slack_date(spike.started_at)} · Downvote spike control"
