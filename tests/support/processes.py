"""Run `downvote` as a user would: real processes, real ports, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def downvote_env(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a fresh user: nothing from the developer's shell but PATH and friends."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DOWNVOTE_")) and k != "DATABASE_URL"
    }
    return {**env, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", **settings}


def run_cli(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


class Serve:
    """A `downvote serve` process whose output is collected as it runs."""

    def __init__(
        self, env: dict[str, str], cwd: Path = ROOT, options: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port), *options],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(self._healthy, f"downvote serve on {self.url}; output: {self.text()[-2000:]}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def text(self) -> str:
        return "".join(self.output)

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"downvote serve exited early:\n{self.text()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


@contextmanager
def serving(env: dict[str, str], cwd: Path = ROOT, *options: str) -> Iterator[Serve]:
    """`downvote serve [options]`, killed at the end if the test did not stop it."""
    server = Serve(env, cwd, options)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.kill()
