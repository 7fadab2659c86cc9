"""`one serve`'s HTTP server: uvicorn, stopped gracefully by SIGTERM or SIGINT.

uvicorn stops accepting connections, lets in-flight requests finish, and then (by default) raises
the signal again so the process dies of it. That would skip what this process still has to do:
close the runtime (the command writer drains its queue, runners and the saga driver stop at a
step boundary) and stop the embedded PostgreSQL it started. So the signal is not raised again,
and the process exits 0 once everything it started has stopped.
"""

from __future__ import annotations

from types import FrameType

import uvicorn

from api.app import create_app
from api.runtime import Runtime


class GracefulServer(uvicorn.Server):
    """A uvicorn server that stops on a signal without re-raising it afterwards, ending the live
    event streams first (uvicorn waits for open responses, and those never end by themselves)."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop serving (a second SIGINT forces it, as in uvicorn)."""
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # uvicorn would raise these again on its way out
        self.runtime.live.close(wait=False)


def serve_until_signalled(runtime: Runtime, host: str, port: int) -> None:
    """Serve the runtime's API until SIGTERM or SIGINT, then close the runtime."""
    config = uvicorn.Config(create_app(runtime), host=host, port=port, log_level="warning")
    try:
        GracefulServer(config, runtime).run()
    finally:
        runtime.close()
