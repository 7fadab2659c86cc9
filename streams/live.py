"""The live log: one thread per process follows the log's appends and fans each chunk out to the
subscribers (the `GET /v1/stream` clients) on their event loops.

A subscriber registers first and then catches up from the log itself (`catch_up_then_follow`), so
the chunks fanned out while it catches up are buffered, and the two overlap instead of leaving a
gap; what both deliver is sent once (by position). A subscriber that falls more than `max_buffer`
events behind is ended with a reason (it resumes from its last event id) instead of letting its
buffer grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field

from eventlog.envelope import Envelope
from eventlog.reader import follow, read_to_end
from eventlog.store import EventLog
from infra.database import ConnectionInfo

MAX_BUFFER = 10_000


class Overflowed(Exception):
    """The subscriber fell too far behind the log and was cut off."""


@dataclass(eq=False)
class Subscription:
    """One client's buffer of live envelopes, filled on its event loop."""

    loop: asyncio.AbstractEventLoop
    admits: Callable[[Envelope], bool]
    max_buffer: int
    buffer: deque[Envelope] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False

    def offer(self, chunk: list[Envelope]) -> None:
        """Buffer the chunk's admitted envelopes (on the subscriber's loop)."""
        if self.overflowed or self.closed:
            return
        self.buffer.extend(envelope for envelope in chunk if self.admits(envelope))
        if len(self.buffer) > self.max_buffer:
            self.overflowed = True
            self.buffer.clear()
        self.wake.set()

    def end(self) -> None:
        """Stop the subscriber (on its loop): the server is shutting down."""
        self.closed = True
        self.wake.set()


class LiveLog:
    """Follows the log from the first subscription on and fans its appends out."""

    def __init__(self, event_log: EventLog, db: ConnectionInfo, max_buffer: int = MAX_BUFFER) -> None:
        self.event_log = event_log
        self.db = db
        self.max_buffer = max_buffer
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, admits: Callable[[Envelope], bool]) -> Subscription:
        """Register a subscriber on the running loop; it receives every chunk appended from now on."""
        subscription = Subscription(asyncio.get_running_loop(), admits, self.max_buffer)
        with self._lock:
            if self._stop.is_set():
                subscription.closed = True
                return subscription
            self._subscribers.add(subscription)
            if self._thread is None:
                self._start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop fanning out to it."""
        with self._lock:
            self._subscribers.discard(subscription)

    def close(self, wait: bool = True) -> None:
        """Stop following and end every subscription (waiting for the follower thread unless not
        `wait`, e.g. from a signal handler on the event loop)."""
        with self._lock:
            self._stop.set()
            subscribers, self._subscribers = list(self._subscribers), set()
            thread = self._thread
        for subscription in subscribers:
            _call_soon(subscription, subscription.end)
        if thread is not None and wait:
            thread.join(timeout=10)

    def _start(self) -> None:
        head = self.event_log.recorder.max_notification_id() or 0
        self._thread = threading.Thread(target=self._follow, args=(head,), name="one-live-log", daemon=True)
        self._thread.start()

    def _follow(self, after: int) -> None:
        for chunk in follow(self.event_log, self.db, after, self._stop):
            with self._lock:
                subscribers = list(self._subscribers)
            for subscription in subscribers:
                _call_soon(subscription, subscription.offer, chunk)


def _call_soon(subscription: Subscription, callback: Callable[..., None], *args: object) -> None:
    with contextlib.suppress(RuntimeError):  # its loop is closed: the client is gone
        subscription.loop.call_soon_threadsafe(callback, *args)


async def catch_up_then_follow(live: LiveLog, after: int, admits: Callable[[Envelope], bool],
                               heartbeat_s: float) -> AsyncGenerator[Envelope | None]:
    """Every admitted envelope after position `after`, then each one appended, in log order and
    once each; `None` when `heartbeat_s` pass with nothing to send. Raises `Overflowed` when the
    subscriber falls too far behind; returns when the live log closes."""
    subscription = live.subscribe(admits)
    sent = after
    chunks = read_to_end(live.event_log, after, 2000)
    try:
        while (chunk := await asyncio.to_thread(_next_chunk, chunks)) is not None:
            for envelope in chunk:
                if admits(envelope):
                    yield envelope
                sent = envelope.position
        while not subscription.closed:
            if subscription.overflowed:
                raise Overflowed(f"more than {subscription.max_buffer} events behind the log")
            if not subscription.buffer:
                subscription.wake.clear()
                try:
                    await asyncio.wait_for(subscription.wake.wait(), heartbeat_s)
                except TimeoutError:
                    yield None
                continue
            envelope = subscription.buffer.popleft()
            if envelope.position > sent:
                sent = envelope.position
                yield envelope
    finally:
        live.unsubscribe(subscription)
        with contextlib.suppress(ValueError):  # still being read in a worker thread: it ends itself
            chunks.close()


def _next_chunk(chunks: Generator[list[Envelope]]) -> list[Envelope] | None:
    return next(chunks, None)
