"""Running the vector projection: in-process (embedded mode), and re-embedding with a swap.

The vector projection has its own runner (and checkpoint per index) so slow embedding never
holds back the other read models. When the configured embedder differs from the active index's,
a second runner builds a new index from position 0 while the active one keeps serving (and
keeps following the log); once the new index has caught up, `activate` swaps them in one
transaction and the old index is dropped.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence

import psycopg

from domain.knowledge import TextFields
from eventlog.envelope import Envelope
from eventlog.store import EventLog
from infra.database import ConnectionInfo
from infra.settings import Settings
from projections.base import Rejected
from projections.knowledge.indexes import (
    KnowledgeIndex,
    activate,
    active_index,
    drop_index,
    find_or_create,
    hold_active_index,
    list_indexes,
)
from projections.knowledge.writer import KnowledgeWriter
from projections.positions import read_checkpoints
from providers.embeddings import Embedder, EmbedderSpec
from streams.inprocess import InProcessRunner

log = logging.getLogger(__name__)

EmbedderFor = Callable[[EmbedderSpec], Embedder]
"""Builds (or returns the cached) embedder for an index's spec."""


def embedder_cache(settings: Settings) -> EmbedderFor:
    """One embedder per spec for this process (models load once); credentials from `settings`."""
    from providers.factory import build_embedder

    @functools.cache
    def embedder_for(spec: EmbedderSpec) -> Embedder:
        return build_embedder(spec, settings)

    return embedder_for


def text_fields(settings: Settings) -> TextFields:
    """The searchable properties per thing type (`ONE_KNOWLEDGE_FIELDS` overrides the defaults)."""
    return TextFields.parse(settings.knowledge_fields)


def prepare_indexes(
    conn: psycopg.Connection[object], spec: EmbedderSpec, embedder_for: EmbedderFor,
) -> tuple[KnowledgeIndex, KnowledgeIndex]:
    """(active, target): the index serving now and the one for `spec` (the same unless the model
    changed). The first index is activated at once; abandoned building indexes are dropped."""
    active = ensure_active(conn, spec, embedder_for)
    target = find_or_create(conn, spec, embedder_for(spec).dimension)
    for index in list_indexes(conn):
        if index.name not in (active.name, target.name):
            drop_index(conn, index)
    return active, target


def ensure_active(
    conn: psycopg.Connection[object], spec: EmbedderSpec, embedder_for: EmbedderFor,
) -> KnowledgeIndex:
    """The active index; if there is none yet, one for `spec` is created and activated."""
    active = active_index(conn)
    if active is not None:
        return active
    created = find_or_create(conn, spec, embedder_for(spec).dimension)
    activate(conn, created)
    return index_named(conn, created.name)


def index_named(conn: psycopg.Connection[object], name: str) -> KnowledgeIndex:
    """The registered index called `name`."""
    return next(i for i in list_indexes(conn) if i.name == name)


def caught_up(conn: psycopg.Connection[object], target: KnowledgeIndex, active: KnowledgeIndex) -> bool:
    """True when `target` reflects at least as much of the log as `active`."""
    points = read_checkpoints(conn, [target.checkpoint, active.checkpoint])
    return points[target.checkpoint] >= points[active.checkpoint]


def swap(conn: psycopg.Connection[object], target: KnowledgeIndex) -> KnowledgeIndex | None:
    """Activate `target`, then drop the index it replaces (returned)."""
    previous = activate(conn, target)
    if previous is not None:
        drop_index(conn, previous)
        log.info("knowledge index %s (%s) replaced %s (%s)", target.name, target.spec.model,
                 previous.name, previous.spec.model)
    return previous


class KnowledgeRunners:
    """The in-process vector projection: a live runner for the active index, a builder while a
    new index is being built for a changed embedder, and a periodic retry of the documents whose
    embedding failed (so they heal by themselves once the embedder works again)."""

    def __init__(self, event_log: EventLog, db: ConnectionInfo, spec: EmbedderSpec,
                 embedder_for: EmbedderFor, text_fields: TextFields, retry_every_s: float = 60.0) -> None:
        self.event_log = event_log
        self.db = db
        self.embedder_for = embedder_for
        self.text_fields = text_fields
        self.retry_every_s = retry_every_s
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            active, target = prepare_indexes(conn, spec, embedder_for)
        self.live = self._runner(active)
        self.builder = None if target.name == active.name else self._runner(target)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch_build, name="one-knowledge-swap", daemon=True)
        self._retrier = threading.Thread(target=self._retry_failed, name="one-knowledge-retry", daemon=True)

    def _runner(self, index: KnowledgeIndex) -> InProcessRunner:
        writer = KnowledgeWriter(index, self.embedder_for(index.spec), self.text_fields)
        return InProcessRunner(self.event_log, self.db, writer, chunk_size=500,
                               name=f"one-knowledge-{index.name}")

    @property
    def position(self) -> int:
        """The log position the active index reflects."""
        return self.live.position

    @property
    def error(self) -> BaseException | None:
        """The live runner's last failure, if it has not recovered."""
        return self.live.error

    def start(self) -> KnowledgeRunners:
        """Start following the log (and building, if a new index is pending)."""
        self.live.start()
        self._retrier.start()
        if self.builder is not None:
            self.builder.start()
            self._monitor.start()
        return self

    def _retry_failed(self) -> None:
        while not self._stop.wait(self.retry_every_s):
            writer = self.live.writer
            assert isinstance(writer, KnowledgeWriter)
            retry_failed_embeddings(writer.retry_failed, self.db)

    def _watch_build(self) -> None:
        with psycopg.connect(self.db.conninfo, autocommit=True) as conn:
            while not self._stop.wait(0.2):
                builder = self.builder
                if builder is None:
                    return
                index = _index_of(builder)
                if caught_up(conn, index, _index_of(self.live)):
                    with self._lock:
                        swap(conn, index)
                        old, self.live, self.builder = self.live, builder, None
                    old.stop()
                    return

    def stop(self) -> None:
        """Stop the runners (and a pending swap)."""
        self._stop.set()
        with self._lock:
            runners = [r for r in (self.live, self.builder) if r is not None]
        for runner in runners:
            runner.stop()
        for thread in (self._monitor, self._retrier):
            if thread.is_alive():
                thread.join(timeout=5)


def retry_failed_embeddings(retry: Callable[[psycopg.Connection[object]], tuple[int, int]],
                            db: ConnectionInfo) -> None:
    """One round of re-embedding what failed, on its own connection; failures are logged and
    left for the next round (the database or the embedder may be away)."""
    try:
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            fixed, failing = retry(conn)
        if fixed or failing:
            log.info("knowledge retry: %d re-embedded, %d still failing", fixed, failing)
    except Exception:
        log.exception("knowledge retry failed")


def _index_of(runner: InProcessRunner) -> KnowledgeIndex:
    writer = runner.writer
    assert isinstance(writer, KnowledgeWriter)
    return writer.index


def reindex(event_log: EventLog, db: ConnectionInfo, spec: EmbedderSpec, embedder_for: EmbedderFor,
            text_fields: TextFields) -> tuple[KnowledgeIndex, KnowledgeIndex | None]:
    """Build the index for `spec` from the log here and now, swap it in, drop the old one.

    For distributed mode (the Faust knowledge workers write to whichever index is active, and the
    swap waits for their in-flight batches) or an embedded install while `one serve` is stopped.
    Returns (new index, replaced index)."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        _, target = prepare_indexes(conn, spec, embedder_for)
        builder = InProcessRunner(event_log, db, KnowledgeWriter(target, embedder_for(spec), text_fields))
        builder.catch_up(conn)
        previous = swap(conn, target)
        builder.catch_up(conn)  # what workers wrote to the old index just before the swap
    return target, previous


class ActiveIndexWriter:
    """The vector projection's `Writer` for the Faust knowledge workers: each batch goes to the
    index active at that moment, held (FOR SHARE) until the batch commits so a swap waits."""

    names = ("knowledge",)

    def __init__(self, embedder_for: EmbedderFor, text_fields: TextFields) -> None:
        self.embedder_for = embedder_for
        self.text_fields = text_fields

    def write(self, conn: psycopg.Connection[object], envelopes: Sequence[Envelope],
              since: dict[str, int] | None = None) -> list[Rejected]:
        """Write the batch into the active index (nothing if no index exists yet)."""
        index = hold_active_index(conn)
        if index is None:
            raise NoActiveIndex("no knowledge index is active: start `one serve` or `one knowledge reindex`")
        return KnowledgeWriter(index, self.embedder_for(index.spec), self.text_fields).write(conn, envelopes)

    def retry_failed(self, conn: psycopg.Connection[object]) -> tuple[int, int]:
        """`KnowledgeWriter.retry_failed` on the active index (nothing before there is one)."""
        with conn.transaction():
            index = hold_active_index(conn)
            if index is None:
                return 0, 0
            return KnowledgeWriter(index, self.embedder_for(index.spec), self.text_fields).retry_failed(conn)


class NoActiveIndex(RuntimeError):
    """The knowledge workers found no index to write to."""
