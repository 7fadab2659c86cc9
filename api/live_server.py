"""Serve the app with uvicorn on a free loopback port in a background thread (tests, benches)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from api.app import create_app
from api.runtime import Runtime


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """`with LiveServer(runtime) as live:` serves the API at `live.url` until the block ends."""

    def __init__(self, target: Runtime | ASGIApp, backlog: int = 2048) -> None:
        """Serve the ONE API of a runtime, or any ASGI app (e.g. the embeddings server)."""
        self.port = free_port()
        ours = isinstance(target, Runtime)
        config = uvicorn.Config(create_app(target) if isinstance(target, Runtime) else target,
                                host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on" if ours else "auto", backlog=backlog)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
