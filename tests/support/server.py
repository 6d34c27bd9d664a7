"""The real app served over real HTTP on a loopback port, in a thread of the test process."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

from tests.support.polling import wait_until


class LiveServer:
    """The real app under uvicorn on an ephemeral loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), "uvicorn to start")
        if not self.server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
