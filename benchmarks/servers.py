"""What the benchmarks share: servers started on loopback, an app registered, signed requests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from bot.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.log_file.close()


def start(name: str, args: list[str], env: dict[str, str], port: int, workdir: Path) -> Proc:
    """Start a server and wait (with a deadline) for its port to accept connections."""
    log = workdir / f"{name}.log"
    log_file = log.open("ab")
    # The fake exits when its stdin closes, so it cannot outlive us even if we are killed.
    process = subprocess.Popen(
        args, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=log_file, stderr=log_file
    )
    proc = Proc(name, process, log, log_file)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if process.poll() is not None:
                proc.stop()
                raise RuntimeError(f"{name} exited:\n{log_tail(log)}") from None
            time.sleep(0.05)  # start-up only: waiting for the port to open
    proc.stop()
    raise RuntimeError(f"{name} did not open port {port} in 30 s:\n{log_tail(log)}")


def register_app(env: dict[str, str], *, credential: str = "whsec_") -> str:
    """Add an app with `downvote apps add`; its signing secret (or, with "dv_", its API key)."""
    out = subprocess.run(
        [*CLI, "apps", "add", f"bench-{uuid.uuid4().hex[:6]}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(w for w in out.split() if w.startswith(credential))


def signed(secret: Webhook, body: str) -> dict[str, str]:
    msg_id, now = "msg_" + uuid.uuid4().hex, datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": secret.sign(msg_id, now, body),
    }
