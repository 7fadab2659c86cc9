"""A local OpenAI-compatible chat completions server (stdlib HTTP on a loopback port the OS picks).

Use it from a test with the official SDK::

    with ChatServer() as chat:
        client = OpenAI(api_key="test", base_url=chat.base_url)
        answer = client.chat.completions.create(model="gpt-test", messages=[...])
        assert chat.requests[0]["messages"] == [...]

Endpoints:

* ``POST /v1/chat/completions``: a ``chat.completion`` JSON body, or with ``"stream": true``
  Server-Sent Events of ``chat.completion.chunk`` objects (a first chunk with the assistant role,
  one chunk per word of the answer, a last chunk with ``finish_reason: "stop"``, an extra usage
  chunk when ``stream_options.include_usage`` is true, then ``data: [DONE]``).
* ``GET /v1/models``: a list holding the one model the server was built with.

The answer text comes from `ChatServer.responder` (replaceable at any time), called with the
request's ``messages``; the default is `echo_responder` (``"Answer to: <last user message>"``).

Token counts are WORDS, not real tokenizer tokens: ``prompt_tokens`` is the number of
whitespace-separated words in the text of every message, ``completion_tokens`` the number of words
of the answer, ``total_tokens`` their sum. They are deterministic, which is all the tests need.

Faults, queued and consumed in order, one per chat completions request: `ChatServer.fail_next`
answers with an OpenAI-shaped error (``{"error": {"message", "type", "param", "code"}}`` and a
``retry-after: 0`` header, so the SDK retries 429 and 5xx after its own short back-off);
`ChatServer.stall_next` sleeps before answering normally, to provoke client timeouts.
Every chat completions request body that is valid JSON is recorded in `ChatServer.requests`,
faulted requests included.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

__all__ = ["DEFAULT_MODEL", "ChatServer", "Responder", "count_words", "echo_responder", "message_text"]

DEFAULT_MODEL = "one-test-chat"

Responder = Callable[[list[dict[str, Any]]], str]
"""Given the request's ``messages``, the assistant's answer text."""

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}


def message_text(message: dict[str, Any]) -> str:
    """The text of one chat message: its string ``content``, or its ``text`` parts joined by spaces."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def count_words(text: str) -> int:
    """The server's notion of a token: a whitespace-separated word."""
    return len(text.split())


def echo_responder(messages: list[dict[str, Any]]) -> str:
    """The default answer: ``"Answer to: <text of the last user message>"``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"Answer to: {message_text(message)}"
    return "Answer to: (no user message)"


@dataclass(frozen=True)
class _Fault:
    """One queued fault: an error status, or a stall of some seconds before a normal answer."""

    status: int | None = None
    seconds: float = 0.0


class _Server(ThreadingHTTPServer):
    """The HTTP server, knowing the `ChatServer` its handlers serve."""

    daemon_threads = True

    def __init__(self, owner: ChatServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (timeouts); report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection (HTTP/1.1 keep-alive, like the SDK's httpx client expects)."""

    protocol_version = "HTTP/1.1"
    server_version = "ChatServer/1.0"

    @property
    def owner(self) -> ChatServer:
        return cast(_Server, self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/") == "/v1/models":
            model = self.owner.model
            self._json(200, {"object": "list", "data": [
                {"id": model, "object": "model", "created": self.owner.created, "owned_by": "one-tests"}]})
        else:
            self._error(404, f"Unknown path {self.path}", code="unknown_url")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
            self._error(404, f"Unknown path {self.path}", code="unknown_url")
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._error(400, "The request body is not valid JSON.")
            return
        if not isinstance(body, dict):
            self._error(400, "The request body must be a JSON object.")
            return
        owner = self.owner
        fault = owner._record(body)
        if fault is not None and fault.status is not None:
            self._error(fault.status, f"Injected fault: HTTP {fault.status}.")
            return
        if fault is not None and fault.seconds > 0:
            owner._stopping.wait(fault.seconds)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, "'messages' must be a non-empty array.", param="messages")
            return
        try:
            text = owner.responder(messages)
        except Exception as exc:
            self._error(500, f"The responder failed: {exc!r}")
            return
        model = str(body.get("model") or owner.model)
        prompt_tokens = sum(count_words(message_text(m)) for m in messages if isinstance(m, dict))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count_words(text),
                 "total_tokens": prompt_tokens + count_words(text)}
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            self._stream(_chunks(completion_id, created, model, text, usage if include_usage else None))
        else:
            self._json(200, {
                "id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": "fp_one_tests",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": usage})

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        kind, default_code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else
                                                        "invalid_request_error", None))
        error = {"message": message, "type": kind, "param": param, "code": code or default_code}
        self._json(status, {"error": error}, {"retry-after": "0", "x-request-id": f"req_{uuid.uuid4().hex}"})

    def _stream(self, events: Iterator[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events:
            self._chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def _chunks(completion_id: str, created: int, model: str, text: str,
            usage: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed answer: role, words, stop, usage."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_one_tests",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        if usage is not None:
            event["usage"] = None
        return event

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in re.findall(r"\s*\S+\s*", text) or ([text] if text else []):
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    if usage is not None:
        yield {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": "fp_one_tests", "choices": [], "usage": usage}


class ChatServer:
    """An OpenAI-compatible chat completions server for tests, as a context manager.

    `base_url` (``http://127.0.0.1:<port>/v1``) is what ``OpenAI(base_url=...)`` or
    ``OPENAI_BASE_URL`` takes; any API key is accepted. `responder` may be replaced at any time.
    """

    def __init__(self, responder: Responder | None = None, model: str = DEFAULT_MODEL) -> None:
        self.responder: Responder = responder or echo_responder
        self.model = model
        self.created = int(time.time())
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._faults: deque[_Fault] = deque()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The loopback port the OS picked (the server must be started)."""
        if self._server is None:
            raise RuntimeError("the chat server is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: the SDK's ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the chat completions request bodies received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def fail_next(self, n: int = 1, status: int = 429) -> None:
        """Answer the next `n` chat completions requests (after queued faults) with an HTTP `status`
        error in OpenAI's shape, with a ``retry-after: 0`` header."""
        with self._lock:
            self._faults.extend(_Fault(status=status) for _ in range(n))

    def stall_next(self, n: int, seconds: float) -> None:
        """Sleep `seconds` before answering each of the next `n` chat completions requests (after
        queued faults); a stop of the server cuts the sleep short."""
        with self._lock:
            self._faults.extend(_Fault(seconds=seconds) for _ in range(n))

    def reset(self) -> None:
        """Forget the recorded requests and the faults still queued."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    def _record(self, body: dict[str, Any]) -> _Fault | None:
        """Record a request body and take the next queued fault, if any."""
        with self._lock:
            self._requests.append(body)
            return self._faults.popleft() if self._faults else None

    def start(self) -> ChatServer:
        """Bind a loopback port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the chat server is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers and close the socket."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._stopping.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
