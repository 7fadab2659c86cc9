"""A stand-in for an external service a DSL feature calls (e.g. ElevenLabs' voice cloning), at the
HTTP layer: `POST /<method>` answers JSON from a per-method responder; it records every call (with
its Idempotency-Key) and can fail the next calls with a status."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Responder = Callable[[dict[str, Any]], Any]


class ServiceStub:
    """A loopback HTTP service; use as a context manager."""

    def __init__(self, responders: dict[str, Responder]) -> None:
        self.responders = responders
        self.calls: list[tuple[str, str | None, dict[str, Any]]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Its base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next `n` calls with `status`."""
        with self._lock:
            self._failures.extend([status] * n)

    def _answer(self, method: str, key: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            self.calls.append((method, key, body))
            if self._failures:
                return self._failures.pop(0), {"error": "unavailable"}
        responder = self.responders.get(method)
        return (404, {"error": f"no method {method}"}) if responder is None else (200, responder(body))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = stub._answer(self.path.strip("/"), self.headers.get("Idempotency-Key"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler

    def __enter__(self) -> ServiceStub:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
