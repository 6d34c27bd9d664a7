"""Ingest throughput and latency: Downvote's receiver beside a bare FastAPI endpoint, same run.

    .venv/bin/python benchmarks/ingest.py [--rounds 3] [--seconds 10] [--connections 16]
        [--pg-url URL] [--batches 30] [--skip-postgresql]

Single events are sent by `wrk -t1 -c16` (Debian's `wrk` package) as in issue 14: 200-byte
thumbs-up events with an API key, so no Slack work. Servers run as subprocesses on loopback
(one uvicorn process each unless stated), each warmed up for 2 s first:

- the bare endpoint (reads the body, answers 202): the ceiling;
- `downvote serve` on SQLite: access log on (as shipped), `--no-access-log`, `--workers 2`;
- `downvote serve` on PostgreSQL, one process and `--workers 2`;
- then, once, 1000-event batches on SQLite (aiohttp, 2 at a time), in events/s.

The bare endpoint's rate moves by up to a third from one minute to the next on a shared
machine, so it is measured again right before each server it is compared with: every ratio is
to the bare run just before. Prints, for each server, the median over the rounds of req/s, p50,
p99 and of those ratios, and every round's ratio beside them; the bare line is the median of
all its runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from servers import CLI, ROOT, Proc, free_port, register_app, start
from sqlalchemy import create_engine, text

BARE_APP = """
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
app = FastAPI()
@app.post("/v1/feedback")
async def feedback(request: Request):
    await request.body()
    return JSONResponse({"id": "x", "duplicate": False}, status_code=202)
"""

EVENT = {
    "rating": "up",
    "prompt": "How do tides work? Please explain briefly.",
    "response": "Tides are caused mostly by the moon pulling on the oceans.",
    "model": "gpt-x",
    "feature": "faq",
    "latency_ms": 412,
    "confidence": 0.9,
}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


@dataclass
class Row:
    name: str
    rate: float
    p50_ms: float
    p99_ms: float
    unit: str = "req/s"

    def line(self) -> str:
        return (
            f"{self.name:<44} {self.rate:>9,.0f} {self.unit:<9}"
            f"{self.p50_ms:>8.1f} {self.p99_ms:>8.1f}"
        )


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, script: Path, seconds: int, connections: int) -> Row:
    """Run wrk (after a 2 s warm-up) and read req/s, p50 and p99 from its --latency report."""
    base = ["wrk", "-t1", f"-c{connections}", "-s", str(script), url]
    subprocess.run([*base[:3], "-d2s", *base[3:]], check=True, capture_output=True)
    out = subprocess.run(
        [*base[:3], f"-d{seconds}s", "--latency", *base[3:]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url} answered errors under load:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return Row("", rate, p50, p99)


def api_key(env: dict[str, str]) -> str:
    return register_app(env, credential="dv_")


def serve(name: str, env: dict[str, str], workdir: Path, *options: str) -> tuple[Proc, str]:
    port = free_port()
    proc = start(name, [*CLI, "serve", "--port", str(port), *options], env, port, workdir)
    return proc, f"http://127.0.0.1:{port}"


def measure(
    name: str, env: dict[str, str], workdir: Path, args: argparse.Namespace, *options: str
) -> Row:
    """Register an app, serve, and load /v1/feedback with wrk."""
    script = workdir / f"{name}.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(json.dumps(EVENT)), key=api_key(env)))
    proc, url = serve(name, env, workdir, *options)
    try:
        row = wrk(f"{url}/v1/feedback", script, args.seconds, args.connections)
    finally:
        proc.stop()
    row.name = name
    return row


def measure_bare(workdir: Path, args: argparse.Namespace) -> Row:
    (workdir / "bare_app.py").write_text(BARE_APP)
    script = workdir / "bare.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(json.dumps(EVENT)), key="none"))
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "info", "--app-dir", str(workdir)]
    proc = start(
        "bare", [*uvicorn, "bare_app:app", "--port", str(port)], {**os.environ}, port, workdir
    )
    try:
        row = wrk(f"http://127.0.0.1:{port}/v1/feedback", script, args.seconds, args.connections)
    finally:
        proc.stop()
    row.name = "bare FastAPI endpoint (the ceiling)"
    return row


async def post_batches(url: str, key: str, batches: int) -> Row:
    """1000-event batches, two requests in flight; events/s over the whole run."""
    bodies = [
        json.dumps({"events": [{**EVENT, "id": f"b{b}_{n}"} for n in range(1000)]})
        for b in range(batches)
    ]
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            while bodies:
                body = bodies.pop()
                began = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"batch: HTTP {response.status}")
                latencies.append((time.perf_counter() - began) * 1000)

        began = time.perf_counter()
        await asyncio.gather(worker(), worker())
        elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Row(
        "batch of 1000 events, SQLite",
        batches * 1000 / elapsed,
        latencies[len(latencies) // 2],
        p99,
        "events/s",
    )


def measure_batches(env: dict[str, str], workdir: Path, batches: int) -> Row:
    key = api_key(env)
    proc, url = serve("batches", env, workdir, "--no-access-log")
    try:
        return asyncio.run(post_batches(f"{url}/v1/feedback/batch", key, batches))
    finally:
        proc.stop()


def environment(database_url: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "DOWNVOTE_CONFIG"):
        env.pop(name, None)
    return env


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own for one run, dropped afterwards."""
    name = f"downvote_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


SINGLE_EVENT_SERVERS: list[tuple[str, str, tuple[str, ...]]] = [
    ("downvote serve, SQLite (access log on)", "sqlite", ()),
    ("downvote serve, SQLite, --no-access-log", "sqlite", ("--no-access-log",)),
    ("downvote serve, SQLite, --workers 2", "sqlite", ("--workers", "2", "--no-access-log")),
    ("downvote serve, PostgreSQL", "postgresql", ()),
    ("downvote serve, PostgreSQL, --workers 2", "postgresql", ("--workers", "2")),
]


def run_round(
    args: argparse.Namespace, workdir: Path, databases: dict[str, dict[str, str]]
) -> dict[str, tuple[Row, Row]]:
    """Each server right after a run of the bare endpoint: (bare, server) for each."""
    pairs = {}
    for name, backend, options in SINGLE_EVENT_SERVERS:
        if backend in databases:
            bare = measure_bare(workdir, args)
            pairs[name] = (bare, measure(name, databases[backend], workdir, args, *options))
    return pairs


def median_row(name: str, rows: list[Row]) -> Row:
    return Row(
        name,
        statistics.median(r.rate for r in rows),
        statistics.median(r.p50_ms for r in rows),
        statistics.median(r.p99_ms for r in rows),
        rows[0].unit,
    )


def report(rounds: list[dict[str, tuple[Row, Row]]], batches: Row) -> None:
    print(
        f"{'':<44} {'rate':>9} {'':<9}{'p50 ms':>8} {'p99 ms':>8} {'rate/bare':>9} {'p99/bare':>8}"
        "   rate/bare by round"
    )
    every_bare = [bare for pairs in rounds for bare, _ in pairs.values()]
    print(median_row("bare FastAPI endpoint (the ceiling)", every_bare).line())
    for name in rounds[0]:
        pairs = [r[name] for r in rounds]
        rate_ratios = [row.rate / bare.rate for bare, row in pairs]
        p99_ratios = [row.p99_ms / bare.p99_ms for bare, row in pairs]
        line = median_row(name, [row for _, row in pairs]).line()
        by_round = " ".join(f"{ratio:.2f}" for ratio in rate_ratios)
        print(
            f"{line} {statistics.median(rate_ratios):>8.2f}x "
            f"{statistics.median(p99_ratios):>7.1f}x   {by_round}"
        )
    print(batches.line())


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="downvote-bench-"))
    with ExitStack() as stack:
        databases = {"sqlite": environment(f"sqlite:///{workdir}/single.db")}
        if not args.skip_postgresql:
            databases["postgresql"] = environment(
                stack.enter_context(scratch_database(args.pg_url))
            )
        rounds = []
        for number in range(1, args.rounds + 1):
            print(f"round {number} of {args.rounds}…", file=sys.stderr, flush=True)
            rounds.append(run_round(args, workdir, databases))
    batches = measure_batches(environment(f"sqlite:///{workdir}/batches.db"), workdir, args.batches)
    print(
        f"\nIngest · wrk -t1 -c{args.connections} -d{args.seconds}s · 200-byte thumbs-up events, "
        f"API key · median of {args.rounds} rounds\n"
    )
    report(rounds, batches)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--skip-postgresql", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("benchmarks/ingest.py needs wrk: apt-get install wrk")
    run(args)


if __name__ == "__main__":
    main()
