"""Run the fake Slack as its own process, for benchmarks:
``python -m tests.support.fake_slack --port 8765 --latency-ms 50``."""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import threading

from tests.support.fake_slack.fake import DEFAULT_TOKEN, FakeSlack
from tests.support.fake_slack.workspace import DEFAULT_PUBLIC_CHANNELS


def _stdin_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, or until stdin closes when stdin is a pipe."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_slack", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit-per-channel-per-sec", type=float, default=None)
    parser.add_argument(
        "--token", action="append", help=f"valid token (repeatable; default {DEFAULT_TOKEN})"
    )
    parser.add_argument(
        "--channel", action="append", default=[], help="one more public channel (repeatable)"
    )
    args = parser.parse_args(argv)

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    fake = FakeSlack(
        tokens=args.token or (DEFAULT_TOKEN,),
        channels=[*DEFAULT_PUBLIC_CHANNELS, *args.channel],
        latency_ms=args.latency_ms,
        rate_limit_per_channel_per_sec=args.rate_limit_per_channel_per_sec,
        host=args.host,
        port=args.port,
    )
    with fake:
        print(fake.api_url, flush=True)
        if _stdin_is_pipe():

            def wait_for_eof() -> None:
                sys.stdin.buffer.read()
                done.set()

            threading.Thread(target=wait_for_eof, daemon=True).start()
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
