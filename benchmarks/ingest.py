"""Ingest throughput: Downvote's receiver beside a bare FastAPI endpoint, same client, same run.

    .venv/bin/python benchmarks/ingest.py [--requests 3000] [--concurrency 32] [--database-url URL]

Starts both servers as subprocesses on loopback (uvicorn, one worker each), sends signed
single-event POSTs and 1000-event batches, and prints events/s and p50/p99 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from servers import CLI, ROOT, free_port, register_app, signed, start
from standardwebhooks.webhooks import Webhook

BARE_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
app = FastAPI()
@app.post("/v1/feedback")
async def feedback(request: Request):
    await request.body()
    return JSONResponse({"id": "x", "duplicate": False}, status_code=202)
"""


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    latencies: list[float]

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        rate = self.events / self.seconds
        return f"{self.name:<34} {rate:>10,.0f} {p50:>9.2f} {p99:>9.2f}"


DOWNVOTE_EVERY = 5  # one event in five is a downvote (and becomes an alert); --downvotes sets it


def sample_event(n: int, repeat: int = 20) -> dict[str, object]:
    return {
        "id": f"bench_{uuid.uuid4().hex}_{n}",
        "rating": "down" if DOWNVOTE_EVERY and n % DOWNVOTE_EVERY == 0 else "up",
        "prompt": [{"role": "user", "content": "Summarise this article about tides. " * repeat}],
        "response": "Tides are caused by the moon. " * repeat,
        "model": "gpt-x-2026-01",
        "feature": "summarize",
        "latency_ms": 400 + n % 300,
        "confidence": 0.8,
    }


async def fire(
    url: str,
    requests: list[tuple[str, dict[str, str]]],
    concurrency: int,
    per_request: int,
    name: str,
) -> Result:
    latencies: list[float] = []
    queue = list(reversed(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while queue:
                body, headers = queue.pop()
                start = time.perf_counter()
                async with http.post(url, data=body.encode(), headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"{name}: HTTP {response.status}")
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return Result(name, len(requests) * per_request, elapsed, latencies)


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="downvote-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir}/bench.db"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    env.pop("SLACK_BOT_TOKEN", None)
    secret = Webhook(register_app(env))
    (workdir / "bare_app.py").write_text(BARE_APP)
    bare_port, dv_port = free_port(), free_port()
    # Both servers log each request, as `downvote serve` does, so the comparison is like for like.
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "info"]
    bare = start(
        "bare",
        [*uvicorn, "--app-dir", str(workdir), "bare_app:app", "--port", str(bare_port)],
        env,
        bare_port,
        workdir,
    )
    downvote = start("downvote", [*CLI, "serve", "--port", str(dv_port)], env, dv_port, workdir)
    try:
        singles = [json.dumps(sample_event(n)) for n in range(args.requests)]
        batches = [
            # Shorter texts, so that 1000 events fit under the default 1 MiB body limit.
            json.dumps({"events": [sample_event(b * 1000 + n, repeat=8) for n in range(1000)]})
            for b in range(args.batches)
        ]
        results = []
        warm = [(b, {"content-type": "application/json"}) for b in singles[:200]]
        await fire(f"http://127.0.0.1:{bare_port}/v1/feedback", warm, args.concurrency, 1, "warm")
        results.append(
            await fire(
                f"http://127.0.0.1:{bare_port}/v1/feedback",
                [(b, {"content-type": "application/json"}) for b in singles],
                args.concurrency,
                1,
                "bare FastAPI endpoint (ceiling)",
            )
        )
        signed_singles = [(b, signed(secret, b)) for b in singles]
        results.append(
            await fire(
                f"http://127.0.0.1:{dv_port}/v1/feedback",
                signed_singles,
                args.concurrency,
                1,
                "downvote single (signed)",
            )
        )
        signed_batches = [(b, signed(secret, b)) for b in batches]
        results.append(
            await fire(
                f"http://127.0.0.1:{dv_port}/v1/feedback/batch",
                signed_batches,
                2,
                1000,
                "downvote batch of 1000 (signed)",
            )
        )
    finally:
        for proc in (bare, downvote):
            proc.stop()
    backend = database_url.split(":", 1)[0]
    print(
        f"\nIngest benchmark · {backend} · {args.requests} single requests, "
        f"concurrency {args.concurrency}; {args.batches} batches"
    )
    print(f"downvotes: {args.downvotes:.0%} of events (each also delivered, in preview mode)")
    print(f"{'':<34} {'events/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    for result in results:
        print(result.row())
    bare_rate = results[0].events / results[0].seconds
    single_rate = results[1].events / results[1].seconds
    print(f"single-event ingest = {single_rate / bare_rate:.0%} of the bare endpoint's rate")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--downvotes",
        type=float,
        default=0.2,
        help="share of events that are downvotes, each also delivered as an alert (preview mode)",
    )
    args = parser.parse_args()
    global DOWNVOTE_EVERY
    DOWNVOTE_EVERY = round(1 / args.downvotes) if args.downvotes > 0 else 0
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
