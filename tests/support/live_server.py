"""Serve the app with uvicorn on a free loopback port in a background thread (tests, benches)."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.types import ASGIApp

from api.app import create_app
from api.runtime import Runtime
from tests.support.processes import HOST, free_port


class LiveServer:
    """`with LiveServer(runtime) as live:` serves the API at `live.url` until the block ends."""

    def __init__(self, target: Runtime | ASGIApp, backlog: int = 2048) -> None:
        """Serve the ONE API of a runtime, or any ASGI app (e.g. the embeddings server)."""
        self.port = free_port()
        ours = isinstance(target, Runtime)
        config = uvicorn.Config(create_app(target) if isinstance(target, Runtime) else target,
                                host=HOST, port=self.port, log_level="warning",
                                lifespan="on" if ours else "auto", backlog=backlog)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{HOST}:{self.port}"

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
