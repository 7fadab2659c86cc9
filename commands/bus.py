"""The command bus: group commit of concurrent commands into one transaction.

Callers submit commands from any thread (or `await` them); one writer thread drains the queue,
runs each command's handler in its own scope and appends every accepted command's events, plus
their idempotency records, in a single transaction. A refused command fails alone; if the
transaction itself fails (a concurrent writer in another process), the batch is re-run one
command at a time so only the command at fault fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError as EventsourcingIntegrityError
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from commands import (  # noqa: F401  (register their handlers)
    agents,
    clones,
    community_events,
    deployments,
    features,
    identity,
    invitations,
    processes,
    purchases,
    schedules,
    workflows,
)
from commands.handlers import HANDLERS, Context, Reply
from commands.unit_of_work import Batch, Scope
from domain.base import caused_by
from domain.errors import DomainError, VersionConflict
from eventlog.store import EventLog
from infra import tracing

log = logging.getLogger(__name__)


class IdempotencyMismatch(DomainError):
    """The Idempotency-Key was used before with a different request."""

    code = "idempotency_mismatch"


@dataclass(frozen=True)
class CommandResult:
    """The response of an accepted command (identical when replayed by idempotency key)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass
class _Pending:
    command: Any
    ctx: Context
    future: Future[CommandResult] = field(default_factory=Future)
    waiter: asyncio.Future[CommandResult] | None = None
    """Set for `execute_async`: resolved on its event loop once the whole batch is settled."""
    trace_context: OtelContext = field(default_factory=otel_context.get_current)
    """The submitter's trace context (its request's span): the command's span continues it."""

    @property
    def key(self) -> tuple[str, str] | None:
        if self.ctx.idempotency_key is None:
            return None
        return (self.ctx.actor_id, self.ctx.idempotency_key)


@dataclass
class _Accepted:
    item: _Pending
    scope: Scope
    reply: Reply
    traced: OtelContext
    """The command's span, for the span of its append."""


def _caused_by(ctx: Context) -> contextlib.AbstractContextManager[None]:
    """The command's events belong to its request, are caused by it and made in the current span."""
    return caused_by(ctx.correlation_id, ctx.causation_id, tracing.current_traceparent())


def request_fingerprint(*parts: Any) -> str:
    """Stable hash of a request (method, path, canonical body) for idempotency comparison."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class CommandBus:
    """Accepts commands from many callers and commits them in groups."""

    def __init__(
        self,
        log: EventLog,
        max_batch: int = 512,
        on_appended: Callable[[int], None] | None = None,
    ) -> None:
        self.log = log
        self.max_batch = max_batch
        self.on_appended = on_appended
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="one-command-writer", daemon=True)
        self.batches = 0
        self.commands = 0

    def start(self) -> CommandBus:
        """Start the writer thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish queued commands, then stop the writer thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def submit(self, command: Any, ctx: Context | None = None) -> Future[CommandResult]:
        """Queue a command; the future resolves once it is durable (or refused)."""
        return self._enqueue(_Pending(command, ctx or Context())).future

    def execute(self, command: Any, ctx: Context | None = None) -> CommandResult:
        """Submit and wait (for synchronous callers: CLI, tests, benchmarks)."""
        return self.submit(command, ctx).result()

    async def execute_async(self, command: Any, ctx: Context | None = None) -> CommandResult:
        """Submit and await without blocking the event loop. The writer wakes each event loop once
        per batch (not once per command) to hand over the results."""
        waiter: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending(command, ctx or Context(), waiter=waiter))
        return await waiter

    def _enqueue(self, item: _Pending) -> _Pending:
        if type(item.command) not in HANDLERS:
            raise TypeError(f"no handler for {type(item.command).__name__}")
        self._queue.put(item)
        return item

    # ---- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            items = [first]
            while len(items) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                items.append(nxt)
            try:
                self._process(items)
            except Exception as error:  # pragma: no cover - last-resort guard keeps the writer alive
                log.exception("command batch failed")
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(error)
            _wake_waiters(items)

    def _process(self, items: list[_Pending]) -> None:
        runnable, deferred = self._resolve_idempotency(items)
        batch = Batch(self.log)
        accepted: list[_Accepted] = []
        for item in runnable:
            scope = Scope(batch)
            span = tracing.tracer().start_span(f"command {type(item.command).__name__}",
                                               context=item.trace_context)
            try:
                with trace.use_span(span, end_on_exit=True), _caused_by(item.ctx):
                    reply = HANDLERS[type(item.command)](item.command, item.ctx, scope)
            except DomainError as refusal:
                item.future.set_exception(refusal)
                continue
            except Exception as error:
                log.exception("handler crashed for %s", type(item.command).__name__)
                item.future.set_exception(error)
                continue
            scope.commit()
            accepted.append(_Accepted(item, scope, reply, trace.set_span_in_context(span)))
        if accepted:
            self._commit(batch, accepted)
        if deferred:
            self._process(deferred)

    def _commit(self, batch: Batch, accepted: list[_Accepted]) -> None:
        events = [e for aggregate in batch.aggregates.values() for e in aggregate.collect_events()]
        results: list[CommandResult] = []

        def after_insert(curs: Cursor[DictRow], positions: Sequence[int]) -> None:
            position_of = {
                (e.originator_id, e.originator_version): p
                for e, p in zip(events, positions, strict=True)
            }
            results[:] = [_result(a, position_of) for a in accepted]
            for sql, params in batch.writes:
                curs.execute(sql, params)
            _store_idempotency(curs, accepted, results)

        started = time.time_ns()
        try:
            if events:
                self.log.events.put(events, after_insert=after_insert)
            else:
                with self.log.recorder.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
                    after_insert(curs, [])
        except (psycopg.IntegrityError, EventsourcingIntegrityError) as conflict:
            if len(accepted) > 1:
                log.info("batch of %d hit a conflict; retrying one by one", len(accepted))
                for one in accepted:
                    self._process([one.item])
                return
            only = accepted[0].item
            if only.key is not None and self._find_idempotent([only]):
                self._process([only])
            else:
                only.future.set_exception(VersionConflict(f"concurrent write: {conflict}", "id"))
            return
        except Exception as error:
            for one in accepted:
                one.item.future.set_exception(error)
            return
        self.batches += 1
        self.commands += len(accepted)
        if tracing.enabled():
            committed = time.time_ns()
            for one in accepted:
                tracing.tracer().start_span("append", context=one.traced, start_time=started,
                                            attributes={"events": len(events)}).end(end_time=committed)
        for one, result in zip(accepted, results, strict=True):
            one.item.future.set_result(result)
        if self.on_appended is not None and results:
            self.on_appended(max(p for r in results if (p := r.body.get("position")) is not None))

    # ---- idempotency -------------------------------------------------------------------------

    def _resolve_idempotency(
        self, items: list[_Pending]
    ) -> tuple[list[_Pending], list[_Pending]]:
        """Answer replays and mismatches; defer in-batch repeats of a key until its first is done."""
        keyed = [item for item in items if item.key is not None]
        stored = self._find_idempotent(keyed) if keyed else {}
        runnable: list[_Pending] = []
        deferred: list[_Pending] = []
        in_batch: set[tuple[str, str]] = set()
        for item in items:
            key = item.key
            if key is None:
                runnable.append(item)
            elif key in stored:
                request_hash, result = stored[key]
                if request_hash == item.ctx.request_hash:
                    item.future.set_result(result)
                else:
                    item.future.set_exception(IdempotencyMismatch(
                        "Idempotency-Key was already used with a different request",
                        "Idempotency-Key",
                    ))
            elif key in in_batch:
                deferred.append(item)
            else:
                in_batch.add(key)
                runnable.append(item)
        return runnable, deferred

    def _find_idempotent(
        self, items: list[_Pending]
    ) -> dict[tuple[str, str], tuple[str | None, CommandResult]]:
        keys = [item.key for item in items if item.key is not None]
        with self.log.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                "SELECT actor_id, key, request_hash, status, response FROM idempotency_keys"
                " WHERE (actor_id, key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([k[0] for k in keys], [k[1] for k in keys]),
            ).fetchall()
        return {
            (r["actor_id"], r["key"]): (
                r["request_hash"], CommandResult(r["status"], r["response"], replayed=True)
            )
            for r in rows
        }


def _wake_waiters(items: list[_Pending]) -> None:
    """Hand the settled futures of a batch to their `execute_async` callers: one thread-safe call
    per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
    for item in items:
        if item.waiter is not None:
            by_loop.setdefault(item.waiter.get_loop(), []).append(item)
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, waiting)


def _settle(items: list[_Pending]) -> None:
    """On the waiters' event loop: copy each outcome (callers that gave up are skipped)."""
    for item in items:
        waiter = item.waiter
        if waiter is None or waiter.done():
            continue
        error = item.future.exception()
        if error is None:
            waiter.set_result(item.future.result())
        else:
            waiter.set_exception(error)


def _result(accepted: _Accepted, position_of: dict[tuple[UUID, int], int]) -> CommandResult:
    reply, scope = accepted.reply, accepted.scope
    positions = [position_of[change] for change in scope.changes()]
    primary = scope.working[reply.stream_id]
    body = {
        "id": str(reply.stream_id),
        "version": primary.version,
        "position": max(positions) if positions else None,
        **reply.extra,
    }
    return CommandResult(reply.status, body)


def _store_idempotency(
    curs: Cursor[DictRow], accepted: list[_Accepted], results: list[CommandResult]
) -> None:
    rows = [
        (key[0], key[1], one.item.ctx.request_hash, result.status, Jsonb(result.body))
        for one, result in zip(accepted, results, strict=True)
        if (key := one.item.key) is not None
    ]
    if rows:
        curs.executemany(
            "INSERT INTO idempotency_keys (actor_id, key, request_hash, status, response)"
            " VALUES (%s, %s, %s, %s, %s)",
            rows,
        )
