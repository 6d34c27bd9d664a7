"""Delivery: time from an accepted webhook to its message in Slack, and how a burst drains.

    .venv/bin/python benchmarks/delivery.py [--seconds 30] [--rate 20] [--burst 500]
        [--concurrency 32] [--latency-ms 50] [--drain-timeout S] [--database-url URL]

Starts the fake Slack (`python -m tests.support.fake_slack`, answering each call after --latency-ms)
and `downvote serve` as subprocesses on loopback, registers an app, then:

1. Steady load: signed downvotes (~1-2 KB of prompt and response each) at --rate per second for
   --seconds. Latency = the fake's post time of the event's parent message (its `ts`, wall clock)
   minus the moment our POST was answered 202. Prints p50/p95/p99/max.
2. Burst: the fake is restarted on the same port with a limit of 1 message per second per
   channel (token bucket, 429 + Retry-After beyond it); --burst downvotes are sent as fast as
   --concurrency allows, and we wait (up to --drain-timeout) until every parent is posted.
   Prints the drain time, messages/s, the 429s the fake answered and the longest gap.

At 1 message/s a burst of 500 needs at least 500 s; `--burst 60` is a quick run. If the drain is
cut by --drain-timeout (by default, whatever keeps the whole run under 11 minutes), the table
says so and projects the full time from the measured rate.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from servers import CLI, ROOT, Proc, free_port, log_tail, register_app, signed, start
from standardwebhooks.webhooks import Webhook

CHANNEL = "#bench"
TOKEN = "xoxb-test-token"
ALERT_EVENT_TYPE = "downvote_alert"
DEFAULT_BUDGET_SECONDS = 660  # the default run stays under 12 minutes, shutdown included

TOPICS = [
    ("summarize", "the quarterly earnings call of a regional bank"),
    ("summarize", "a support ticket about a failed card payment"),
    ("translate", "a product description for a hiking backpack"),
    ("codegen", "a function that merges overlapping date ranges"),
    ("search", "the refund policy for annual plans"),
    ("chat", "how to reset two-factor authentication"),
]
SENTENCES = [
    "The customer says the issue started after the last update.",
    "Please keep the answer under two hundred words and cite the source section.",
    "Revenue grew 4% year over year, driven mostly by card fees & deposit margins.",
    "Our policy allows refunds within 30 days <unless> the plan was discounted.",
    "Use the tone of our style guide: friendly, direct, no exclamation marks.",
    "The previous answer ignored the constraint about metric units.",
    "Context: the user is on the Pro plan and has two workspaces.",
    "Return the result as a Markdown table with columns name, start and end.",
    "If you are not sure, say so instead of guessing a number.",
    "The document was last revised in March and supersedes the 2024 edition.",
]
ANSWERS = [
    "Here is a summary of the main points.",
    "According to section 4.2, refunds are available for 60 days.",
    "The function below sorts the ranges by start date, then merges them in one pass.",
    "Net interest margin fell slightly while fee income rose.",
    "I could not find that in the documents, but generally the answer is yes.",
    "To reset two-factor authentication, open Settings, then Security.",
    "As the CEO said on the call, guidance for next year is unchanged.",
    "The translation keeps the brand name in English, as requested.",
]


# ---------------------------------------------------------------------------------------------
# Processes


def start_fake(
    port: int, latency_ms: float, rate_limit: float | None, env: dict[str, str], workdir: Path
) -> Proc:
    args = [sys.executable, "-m", "tests.support.fake_slack", "--port", str(port)]
    args += ["--channel", CHANNEL]
    args += ["--latency-ms", str(latency_ms), "--token", TOKEN]
    if rate_limit is not None:
        args += ["--rate-limit-per-channel-per-sec", str(rate_limit)]
    return start("fake_slack", args, env, port, workdir)


# ---------------------------------------------------------------------------------------------
# Events


def sample_event(n: int, rng: random.Random, prefix: str) -> dict[str, Any]:
    """A downvote with a realistic chat prompt and answer: about 1-2 KB of text in all."""
    feature, topic = TOPICS[n % len(TOPICS)]
    user_text = f"Question about {topic}. " + " ".join(
        rng.choice(SENTENCES) for _ in range(rng.randint(8, 14))
    )
    answer = " ".join(rng.choice(ANSWERS) for _ in range(rng.randint(6, 12)))
    return {
        "id": f"{prefix}_{uuid.uuid4().hex[:12]}_{n}",
        "rating": "down",
        "comment": rng.choice(["Wrong number", "Made up a policy", "Ignored my format", None]),
        "prompt": [
            {"role": "system", "content": "You are a careful assistant for Acme Corp staff."},
            {"role": "user", "content": user_text},
        ],
        "response": answer,
        "model": rng.choice(["gpt-x-2026-01", "gpt-x-mini"]),
        "feature": feature,
        "latency_ms": rng.randint(300, 2500),
        "confidence": round(rng.uniform(0.4, 0.99), 2),
        "user_id": f"u_{rng.randint(1, 500)}",
        "trace_url": f"https://traces.example.com/t/{uuid.uuid4().hex[:16]}",
    }


async def post_event(
    http: aiohttp.ClientSession, url: str, secret: Webhook, event: dict[str, Any]
) -> float:
    """POST one downvote; the wall-clock time it was answered 202."""
    body = json.dumps(event)
    async with http.post(url, data=body.encode(), headers=signed(secret, body)) as response:
        text = await response.text()
        accepted = time.time()
        if response.status != 202:
            raise RuntimeError(f"POST /v1/feedback: HTTP {response.status}: {text[:300]}")
    return accepted


async def send_steady(
    http: aiohttp.ClientSession,
    url: str,
    secret: Webhook,
    events: list[dict[str, Any]],
    rate: float,
) -> dict[str, float]:
    """Open loop: each event leaves on its schedule, whether or not earlier ones were answered."""
    tasks: dict[str, asyncio.Task[float]] = {}
    began = time.monotonic()
    for n, event in enumerate(events):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the sender, not waiting for a result
        tasks[event["id"]] = asyncio.create_task(post_event(http, url, secret, event))
    await asyncio.gather(*tasks.values())
    return {event_id: task.result() for event_id, task in tasks.items()}


async def send_burst(
    http: aiohttp.ClientSession,
    url: str,
    secret: Webhook,
    events: list[dict[str, Any]],
    concurrency: int,
) -> dict[str, float]:
    accepted: dict[str, float] = {}
    queue = list(reversed(events))

    async def worker() -> None:
        while queue:
            event = queue.pop()
            accepted[event["id"]] = await post_event(http, url, secret, event)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted


# ---------------------------------------------------------------------------------------------
# The fake's record


async def fake_get(http: aiohttp.ClientSession, fake: str, what: str, **params: str) -> Any:
    async with http.get(f"{fake}_fake/{what}", params=params) as response:
        response.raise_for_status()
        return await response.json()


async def parents_posted(
    http: aiohttp.ClientSession, fake: str, ids: set[str]
) -> tuple[dict[str, float], int]:
    """The post time of each event's parent message, and the number of thread replies."""
    parents: dict[str, float] = {}
    replies = 0
    for message in await fake_get(http, fake, "messages", channel=CHANNEL):
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if message.get("thread_ts"):
            replies += 1
        elif metadata.get("event_type") == ALERT_EVENT_TYPE and payload.get("external_id") in ids:
            parents[payload["external_id"]] = float(message["ts"])
    return parents, replies


async def wait_for_parents(
    http: aiohttp.ClientSession,
    fake: str,
    ids: set[str],
    timeout: float,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[dict[str, float], int]:
    """Poll until every event's parent message is posted (or the deadline): id -> post time.

    Also returns how many thread replies were posted for these events.
    """
    began = time.monotonic()
    deadline = began + timeout
    last_report = began
    checked = -1
    while True:
        posted = (await fake_get(http, fake, "state"))["messages"]
        now = time.monotonic()
        # The message list is large and copied under the fake's lock: fetch it only when the
        # cheap count says every parent may be there (or at the deadline), not on every poll.
        if (posted >= len(ids) and posted != checked) or now >= deadline:
            checked = posted
            parents, replies = await parents_posted(http, fake, ids)
            if len(parents) >= len(ids) or now >= deadline:
                return parents, replies
        if progress is not None and now - last_report >= 30:
            last_report = now
            progress(posted, now - began)
        await asyncio.sleep(0.25)  # polling the fake's record, with the deadline above


async def metric_values(http: aiohttp.ClientSession, base: str, names: tuple[str, ...]) -> str:
    """Sum of each named counter in the service's /metrics, or n/a when it is not served."""
    try:
        async with http.get(f"{base}/metrics") as response:
            if response.status != 200:
                return "n/a (no /metrics)"
            text = await response.text()
    except aiohttp.ClientError:
        return "n/a"
    sums = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        for name in names:
            if line.startswith(name) and not line.startswith("#"):
                sums[name] += float(line.rsplit(" ", 1)[1])
    return ", ".join(f"{name.removeprefix('downvote_')} {value:g}" for name, value in sums.items())


# ---------------------------------------------------------------------------------------------
# Figures


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * p / 100) - 1))]


def latency_row(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{label:<30} {'(none)':>9}"
    ordered = sorted(s * 1000 for s in seconds)
    figures = [statistics.median(ordered)] + [percentile(ordered, p) for p in (95, 99, 100)]
    cells = " ".join(f"{value:>9,.0f}" for value in figures)
    return f"{label:<30} {cells} {len(ordered):>7}"


LATENCY_HEADER = f"{'ms':<30} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9} {'count':>7}"


@dataclass
class Steady:
    sent: int
    rate: float
    send_seconds: float
    latencies: list[float]  # in send order
    missing: int
    replies: int
    post_rate: float
    state: dict[str, Any]


@dataclass
class Burst:
    sent: int
    send_seconds: float
    posted: int
    drain_seconds: float  # first send -> last parent posted
    after_last_accept: float
    drain_rate: float  # messages/s between the first and the last post
    gaps: list[float]
    latencies: list[float]
    replies: int
    state: dict[str, Any]
    timed_out: bool
    phase_seconds: float
    metrics: str


async def steady_phase(
    args: argparse.Namespace, http: aiohttp.ClientSession, url: str, fake: str, secret: Webhook
) -> Steady:
    rng = random.Random(1)
    events = [sample_event(n, rng, "steady") for n in range(int(args.seconds * args.rate))]
    size = statistics.mean(len(e["prompt"][1]["content"]) + len(e["response"]) for e in events)
    print(f"phase 1: {len(events)} downvotes at {args.rate:g}/s (~{size:,.0f} chars of text each)")
    began = time.monotonic()
    accepted = await send_steady(http, url, secret, events, args.rate)
    send_seconds = time.monotonic() - began
    parents, replies = await wait_for_parents(
        http, fake, set(accepted), timeout=60 + args.seconds * 2
    )
    latencies = [parents[e["id"]] - accepted[e["id"]] for e in events if e["id"] in parents]
    posts = sorted(parents.values())
    span = posts[-1] - posts[0] if len(posts) > 1 else 0.0
    return Steady(
        sent=len(events),
        rate=len(events) / send_seconds,
        send_seconds=send_seconds,
        latencies=latencies,
        missing=len(events) - len(parents),
        replies=replies,
        post_rate=(len(posts) - 1) / span if span else 0.0,
        state=await fake_get(http, fake, "state"),
    )


async def burst_phase(
    args: argparse.Namespace, http: aiohttp.ClientSession, url: str, fake: str, secret: Webhook
) -> Burst:
    rng = random.Random(2)
    events = [sample_event(n, rng, "burst") for n in range(args.burst)]
    print(f"phase 2: burst of {len(events)} downvotes, fake limited to 1 message/s per channel")
    wall_start, began = time.time(), time.monotonic()
    accepted = await send_burst(http, url, secret, events, args.concurrency)
    send_seconds = time.monotonic() - began
    print(f"  sent in {send_seconds:.1f} s; waiting up to {args.drain_timeout:.0f} s for the drain")

    def progress(posted: int, elapsed: float) -> None:
        print(f"  ... {posted}/{len(events)} messages posted after {elapsed + send_seconds:.0f} s")

    parents, replies = await wait_for_parents(
        http,
        fake,
        set(accepted),
        timeout=max(1.0, args.drain_timeout - send_seconds),
        progress=progress,
    )
    posts = sorted(parents.values())
    span = posts[-1] - posts[0] if len(posts) > 1 else 0.0
    return Burst(
        sent=len(events),
        send_seconds=send_seconds,
        posted=len(parents),
        drain_seconds=(posts[-1] - wall_start) if posts else 0.0,
        after_last_accept=(posts[-1] - max(accepted.values())) if posts else 0.0,
        drain_rate=(len(posts) - 1) / span if span else 0.0,
        gaps=[b - a for a, b in itertools.pairwise(posts)],
        latencies=[parents[i] - accepted[i] for i in parents],
        replies=replies,
        state=await fake_get(http, fake, "state"),
        timed_out=len(parents) < len(events),
        phase_seconds=time.monotonic() - began,
        metrics=await metric_values(
            http,
            url.removesuffix("/v1/feedback"),
            ("downvote_alerts_retried_total", "downvote_alerts_failed_total"),
        ),
    )


def report_steady(args: argparse.Namespace, result: Steady) -> None:
    print(
        f"\nPhase 1 · steady {args.rate:g} downvotes/s for {args.seconds:g} s · fake Slack "
        f"answering in {args.latency_ms:g} ms · no rate limit"
    )
    print(LATENCY_HEADER)
    print(latency_row("accepted (202) -> posted", result.latencies))
    fifth = max(1, len(result.latencies) // 5)
    print(latency_row("  first fifth of the run", result.latencies[:fifth]))
    print(latency_row("  last fifth of the run", result.latencies[-fifth:]))
    calls = result.state["calls_by_method"].get("chat.postMessage", 0)
    print(
        f"sent {result.sent} at {result.rate:.1f}/s; posted {len(result.latencies)} "
        f"(missing {result.missing}); thread replies {result.replies}; "
        f"chat.postMessage calls {calls}; worker output {result.post_rate:.1f} messages/s"
    )


def report_burst(result: Burst) -> None:
    limit = "1 message/s per channel"
    print(f"\nPhase 2 · burst of {result.sent} downvotes · fake Slack limited to {limit}")
    calls = result.state["calls_by_method"].get("chat.postMessage", 0)
    too_many = result.state["outcomes_by_status"].get("429", 0)
    gaps = sorted(result.gaps)
    gap_p50, gap_max = (statistics.median(gaps), gaps[-1]) if gaps else (0.0, 0.0)
    rows = [
        ("burst sent (202s)", f"{result.sent} in {result.send_seconds:.1f} s"),
        ("parents posted", f"{result.posted} / {result.sent}"),
        (
            "drain time, first send -> last post",
            f"{result.drain_seconds:,.1f} s"
            + (" (cut by --drain-timeout)" if result.timed_out else ""),
        ),
        ("  after the last 202", f"{result.after_last_accept:,.1f} s"),
        ("drain rate, first -> last post", f"{result.drain_rate:.2f} messages/s (limit 1.00)"),
        ("ideal at the limit", f"~{result.sent - 1} s after the first post"),
        ("429s answered by the fake", f"{too_many} (chat.postMessage calls {calls})"),
        ("gap between posts, p50 / max", f"{gap_p50:.2f} s / {gap_max:.2f} s"),
        ("thread replies", str(result.replies)),
        ("outbox (from /metrics)", result.metrics),
        ("phase took", f"{result.phase_seconds:,.0f} s"),
    ]
    if result.timed_out and result.drain_rate:
        rows.append(
            (
                "projected full drain",
                f"~{result.sent / result.drain_rate:,.0f} s at the measured rate",
            )
        )
    for label, value in rows:
        print(f"{label:<37} {value}")
    print(LATENCY_HEADER)
    print(latency_row("accepted (202) -> posted", result.latencies))


# ---------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    overall = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="downvote-delivery-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir}/bench.db"
    fake_port, dv_port = free_port(), free_port()
    fake = f"http://127.0.0.1:{fake_port}/"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": "bench-signing-secret",
        "SLACK_API_URL": f"{fake}api/",
        "SLACK_CHANNEL": CHANNEL,
    }
    env.pop("SLACK_APP_TOKEN", None)
    env.pop("DOWNVOTE_CONFIG", None)
    procs: list[Proc] = []
    failed = True
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):  # so that `finally` stops the servers
        asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
    try:
        secret = Webhook(register_app(env))
        procs.append(start_fake(fake_port, args.latency_ms, None, env, workdir))
        serve = start("serve", [*CLI, "serve", "--port", str(dv_port)], env, dv_port, workdir)
        procs.append(serve)
        url = f"http://127.0.0.1:{dv_port}/v1/feedback"
        connector = aiohttp.TCPConnector(limit=max(64, args.concurrency))
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            steady = await steady_phase(args, http, url, fake, secret)
            report_steady(args, steady)
            # No control call sets the per-channel limit: restart the fake, same port, limited.
            procs.pop(0).stop()
            procs.insert(0, start_fake(fake_port, args.latency_ms, 1.0, env, workdir))
            if args.drain_timeout is None:
                spent = time.monotonic() - overall
                args.drain_timeout = max(60.0, DEFAULT_BUDGET_SECONDS - spent)
            burst = await burst_phase(args, http, url, fake, secret)
        backend = database_url.split(":", 1)[0]
        print(f"\n\nDelivery benchmark · {backend} · total {time.monotonic() - overall:,.0f} s")
        report_steady(args, steady)
        report_burst(burst)
        failed = False
    finally:
        for proc in reversed(procs):
            proc.stop()
        if failed:
            for proc in procs:
                tail = log_tail(proc.log)
                print(f"--- {proc.name} log ({proc.log}) ---\n{tail}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30, help="phase 1 duration")
    parser.add_argument("--rate", type=float, default=20, help="phase 1 downvotes per second")
    parser.add_argument("--burst", type=int, default=500, help="phase 2 burst size")
    parser.add_argument("--concurrency", type=int, default=32, help="phase 2 senders")
    parser.add_argument("--latency-ms", type=float, default=50, help="fake Slack's answer delay")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        help="stop waiting for the burst to drain after this many seconds "
        f"(default: what is left of a {DEFAULT_BUDGET_SECONDS // 60}-minute budget for the run)",
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    try:
        asyncio.run(run(parser.parse_args()))
    except asyncio.CancelledError:
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
