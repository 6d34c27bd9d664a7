"""Grouping: finding a new downvote's group among a million, and what grouping costs ingest.

    .venv/bin/python benchmarks/grouping.py [--groups 1000000] [--lookups 2000]
        [--db sqlite|postgresql|both] [--pg-url URL] [--requests 2000] [--skip-ingest]

1. Lookup. Loads --groups groups of one app (the worst case: every downvote its own problem),
   each with its 16 LSH band keys, into a fresh SQLite file and a fresh PostgreSQL schema. Then
   for --lookups new downvotes (nine in ten unlike any group, one in ten a near-copy of one)
   times the candidate lookup (one indexed query on the bands, plus comparing signatures) and
   the whole placement (lookup, then join or start a group; rolled back). Prints p50/p99/max.
2. Ingest. Starts `downvote serve` (preview mode: no Slack) with grouping on, then off, twice
   each in turn, and sends --requests signed single-event downvotes at concurrency 32: grouping
   runs in the delivery worker beside ingest, so this is its whole cost to ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from servers import CLI, free_port, register_app, signed, start
from sqlalchemy import Engine, text
from standardwebhooks.webhooks import Webhook
from summary import drop_schema, postgresql_engine, sqlite_engine, sqlite_time

from bot.alerts.fingerprint import BANDS, NUM_PERM, band_keys, similarity
from storage import groups
from storage.models import Base

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
RULES = groups.Rules(similarity=0.8, window=timedelta(days=7), suggest_similarity=0.5)
CHUNK = 20_000


def signatures(count: int, seed: int) -> Iterator[np.ndarray[Any, Any]]:
    """Random MinHash signatures: what hashing distinct prompts gives."""
    rng = np.random.default_rng(seed)
    for first in range(0, count, CHUNK):
        yield from rng.integers(0, 2**32, size=(min(CHUNK, count - first), NUM_PERM), dtype="<u4")


def load(engine: Engine, count: int) -> float:
    started = time.perf_counter()
    Base.metadata.create_all(engine)
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        at: Any = sqlite_time(NOW) if sqlite else NOW
        mark = "?" if sqlite else "%s"
        cursor.execute(
            f"INSERT INTO apps (id, name, created_at) VALUES ({mark}, {mark}, {mark})",
            (1, "bench", at),
        )
        events = ((n, 1, f"e{n}", "down", '"p"', "r", at, at) for n in range(1, count + 1))
        group_rows, band_rows = [], []
        for n, values in enumerate(signatures(count, seed=1), start=1):
            group_rows.append((n, 1, n, values.tobytes(), 1, at, at))
            band_rows.extend((n, band, 1) for band in dict.fromkeys(band_keys(values)))
        tables = [
            ("feedback_events (id, app_id, external_id, rating, prompt, response, occurred_at, "
             "received_at)", events, 8),
            ("downvote_groups (id, app_id, head_event_id, signature, size, first_seen_at, "
             "last_seen_at)", iter(group_rows), 7),
            ("group_bands (group_id, band, app_id)", iter(band_rows), 3),
        ]  # fmt: skip
        if sqlite:
            cursor.execute("BEGIN")
            for target, rows, width in tables:
                cursor.executemany(f"INSERT INTO {target} VALUES ({', '.join('?' * width)})", rows)
        else:
            for target, rows, _ in tables:
                with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            for table in ("apps", "feedback_events", "downvote_groups"):  # ids given above
                cursor.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def newcomers(engine: Engine, count: int, groups_stored: int) -> list[groups.Newcomer]:
    """Nine in ten unlike anything; one in ten a stored group's signature with a few changes."""
    rng = random.Random(3)
    fresh = signatures(count, seed=2)
    found: list[groups.Newcomer] = []
    with engine.connect() as connection:
        for n in range(count):
            values = next(fresh)
            if n % 10 == 0:
                copied = rng.randint(1, groups_stored)
                stored = connection.execute(
                    text("SELECT signature FROM downvote_groups WHERE id = :id"), {"id": copied}
                ).scalar_one()
                values = np.frombuffer(stored, dtype="<u4").copy()
                for position in rng.sample(range(NUM_PERM), 6):  # ~0.9 alike
                    values[position] = rng.getrandbits(32)
            found.append(
                groups.Newcomer(groups_stored + n + 1, 1, NOW, values.tobytes(), band_keys(values))
            )
    return found


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:6.2f} ms · p99 {p99 * 1000:6.2f} ms · "
        f"max {ordered[-1] * 1000:6.2f} ms"
    )


def measure_lookups(engine: Engine, arrivals: list[groups.Newcomer]) -> tuple[str, str, float]:
    from sqlalchemy.orm import Session

    lookups, placements, matched = [], [], 0
    with Session(engine) as session:
        for arrival in arrivals:

            def lookup(arrival: groups.Newcomer = arrival) -> list[float]:
                found = groups.candidates(session, arrival)
                return [similarity(arrival.signature, c.signature) for c in found]

            lookups.append(timed(lookup))
            session.rollback()
        for arrival in arrivals:
            # The event row the placement points at, then the placement itself; rolled back.
            session.execute(
                text(
                    "INSERT INTO feedback_events (id, app_id, external_id, rating, prompt, "
                    "response, occurred_at, received_at) VALUES (:id, 1, :x, 'down', '\"p\"', "
                    "'r', :at, :at)"
                ),
                {"id": arrival.event_id, "x": f"new-{arrival.event_id}", "at": NOW},
            )
            started = time.perf_counter()
            placed = groups.place(session, [arrival], rules=RULES, likeness=similarity)
            placements.append(time.perf_counter() - started)
            matched += not placed[arrival.event_id].is_head
            session.rollback()
    return percentiles(lookups), percentiles(placements), matched / len(arrivals)


def lookup_benchmark(kind: str, args: argparse.Namespace) -> None:
    schema = "bench_" + uuid.uuid4().hex[:10]
    with tempfile.TemporaryDirectory() as directory:
        engine = (
            sqlite_engine(Path(directory))
            if kind == "sqlite"
            else postgresql_engine(args.pg_url, schema)
        )
        try:
            seconds = load(engine, args.groups)
            arrivals = newcomers(engine, args.lookups, args.groups)
            lookup, placement, matched = measure_lookups(engine, arrivals)
            print(
                f"\n{kind}: {args.groups:,} groups ({args.groups * BANDS:,} band keys) loaded "
                f"in {seconds:.0f} s; {args.lookups:,} new downvotes, {matched:.0%} joined a group"
            )
            print(f"  candidate lookup   {lookup}")
            print(f"  whole placement    {placement}")
        finally:
            engine.dispose()
            if kind == "postgresql":
                drop_schema(args.pg_url, schema)


async def post_all(url: str, bodies: list[tuple[str, dict[str, str]]], concurrency: int) -> float:
    """POST every body, `concurrency` at a time; requests per second."""
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            while queue:
                body, headers = queue.pop()
                async with http.post(url, data=body.encode(), headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"HTTP {response.status}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies) / (time.perf_counter() - began)


async def ingest_rate(grouping: bool, requests: int, database_url: str, workdir: Path) -> float:
    config = workdir / f"grouping-{grouping}.toml"
    config.write_text(f"[grouping]\nenabled = {str(grouping).lower()}\n")
    env = {**os.environ, "DATABASE_URL": database_url, "DOWNVOTE_CONFIG": str(config)}
    for name in ("SLACK_BOT_TOKEN", "SLACK_CHANNEL"):
        env.pop(name, None)
    secret = Webhook(register_app(env))
    port = free_port()
    server = start(f"serve-{grouping}", [*CLI, "serve", "--port", str(port)], env, port, workdir)
    try:
        bodies = []
        for n in range(requests):
            event: dict[str, Any] = {
                "rating": "down",
                "response": "Tides are caused by the moon. " * 20,
                "model": "gpt-x-2026-01",
                "feature": "summarize",
                "latency_ms": 400 + n % 300,
            }
            # Alike in pairs of ten, as downvotes of one misbehaving template would be.
            event["prompt"] = f"Question {n} about template {n // 10}: " + "why? " * (n % 10 + 1)
            body = json.dumps(event)
            bodies.append((body, signed(secret, body)))
        url = f"http://127.0.0.1:{port}/v1/feedback"
        return await post_all(url, bodies, concurrency=32)
    finally:
        server.stop()


async def ingest_benchmark(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="downvote-bench-"))
    database_url = f"sqlite:///{workdir}/ingest.db"
    rates: dict[bool, list[float]] = {True: [], False: []}
    for grouping in (True, False, True, False):
        rates[grouping].append(await ingest_rate(grouping, args.requests, database_url, workdir))
    on, off = statistics.mean(rates[True]), statistics.mean(rates[False])
    print(f"\ningest, single downvotes, SQLite, {args.requests:,} each run, concurrency 32:")
    for label, rate, runs in (("off", off, rates[False]), ("on ", on, rates[True])):
        each = ", ".join(f"{r:,.0f}" for r in runs)
        print(f"  grouping {label} {rate:8,.0f} events/s   (runs: {each})")
    print(f"  grouping costs ingest {1 - on / off:+.1%} of its throughput")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--groups", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    for kind in ("sqlite", "postgresql"):
        if args.db in (kind, "both"):
            lookup_benchmark(kind, args)
    if not args.skip_ingest:
        asyncio.run(ingest_benchmark(args))


if __name__ == "__main__":
    main()
